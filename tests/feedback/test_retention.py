"""Retention ([privacy], issue 29): `ainews db prune` as a real process under libfaketime,
31 and 401 days after a real send, cuts the feedback events' text to their status code and
then replaces the ledger's addresses by keyed hashes, while `ainews report` keeps every
count; it refuses nothing without AINEWS_SECRET_KEY but skips that rule and says so; the
mail in the IMAP processed folder of the private Dovecot goes after keep_feedback_details_days;
and the scheduler's daily job logs what it did. On SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, timedelta
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import insert

from ainews_newsletter import clock
from ainews_newsletter.config import load_config
from ainews_newsletter.database import engine_for
from ainews_newsletter.feedback.events import feedback_events
from ainews_newsletter.pipeline.retention import cut_diagnostic, cut_source
from ainews_newsletter.schedule.job import apply_retention_daily
from tests.conftest import Project, SmtpServer, smtp_env
from tests.subscribers.test_prune import _libfaketime

if TYPE_CHECKING:
    from tests.peers.dovecot import DovecotPeer

# The tests that move the clock are marked `clock` (scripts/test-clocks reruns them under
# libfaketime); the IMAP one is not: Dovecot dates its mail by the file system's clock,
# which a faked test process does not move.

SECRET = "retention-secret-of-enough-length"
DIAGNOSTIC = "smtp; 550 5.1.1 <reader000@example.com>: Ann Quill: no such user here"


def _keyed(address: str) -> str:
    return "hashed:" + hmac.new(SECRET.encode(), address.lower().encode(),
                                hashlib.sha256).hexdigest()


def _sent_with_a_bounce(project: Project, server: SmtpServer) -> None:
    """Two readers sent W47 (one named), and a bounce for the first that quotes both her
    address and her name."""
    assert project.run("subscribers", "add", "Reader000@example.com",
                       "--name", "Ann Quill").exit_code == 0
    assert project.run("subscribers", "add", "reader001@example.com").exit_code == 0
    sent = project.run("send", "--week", "2026-W47", "--yes", "--force",
                       env=smtp_env(server))
    assert sent.exit_code == 0, sent.output
    [(delivery_id, subscriber_id, issue_id)] = project.query(
        "SELECT id, subscriber_id, issue_id FROM deliveries WHERE email = ?",
        "Reader000@example.com")
    url = project.storage_url or f"sqlite:///{project.database}"
    with engine_for(url).begin() as connection:
        connection.execute(insert(feedback_events).values(
            dedup_key="bounce-1", received_at=clock.now(), kind="hard",
            email="reader000@example.com", status="5.1.1", action="failed",
            diagnostic=DIAGNOSTIC, source="imap:INBOX/17", matched_by="tag",
            delivery_id=delivery_id, issue_id=issue_id, subscriber_id=subscriber_id,
            sent_at=clock.now(), effect="counted"))


def _report(project: Project) -> object:
    result = project.run("report", "2026-W47", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _prune(project: Project, days: int, secret: bool = True, *args: str,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`ainews db prune ARGS` as its own process whose clock libfaketime sets `days` ahead."""
    moment = (clock.now() + timedelta(days=days)).astimezone(UTC)
    environ = {key: value for key, value in os.environ.items()
               if key not in ("AINEWS_SECRET_KEY", "AINEWS_STORAGE__URL")}
    environ.update({"LD_PRELOAD": str(_libfaketime()), "TZ": "UTC",
                    "FAKETIME": moment.strftime("@%Y-%m-%d %H:%M:%S"),
                    "AINEWS_LINT__SPAMASSASSIN": "false", **(env or {})})
    if secret:
        environ["AINEWS_SECRET_KEY"] = SECRET
    if project.storage_url:
        environ["AINEWS_STORAGE__URL"] = project.storage_url
    return subprocess.run([sys.executable, "-m", "ainews_newsletter", "--config",
                           str(project.config_path), "db", "prune", *args],
                          env=environ, capture_output=True, text=True, timeout=120,
                          check=False)


def test_the_texts_that_may_name_someone_are_cut_to_what_names_no_one() -> None:
    assert cut_diagnostic(DIAGNOSTIC) == "5.1.1"
    assert cut_diagnostic("550 mailbox ann@example.com unknown") == "550"
    assert cut_diagnostic("Ann Quill is away") == ""
    assert cut_diagnostic(cut_diagnostic(DIAGNOSTIC)) == "5.1.1"  # idempotent
    assert cut_source("imap:INBOX/17") == "imap"
    assert cut_source("webhook:ses") == "webhook"
    assert cut_source("/home/ann.quill/bounces/ann@example.com.eml") == "file"
    assert cut_source("C:/mail/x.eml") == "file"
    assert [cut_source(word) for word in ("smtp", "-", "imap", "file")] == [
        "smtp", "-", "imap", "file"]


@pytest.mark.clock
def test_db_prune_under_libfaketime_keeps_the_reports_counts(
        any_project: Project, smtp_server: SmtpServer) -> None:
    project = any_project
    _libfaketime()
    _sent_with_a_bounce(project, smtp_server)
    before = _report(project)

    soon = _prune(project, 5, True, "--json")
    assert soon.returncode == 0, soon.stderr
    assert json.loads(soon.stdout)["feedback_details_cut"] == 0
    assert project.query("SELECT diagnostic FROM feedback_events") == [(DIAGNOSTIC,)]

    month = _prune(project, 31, True, "--json")
    assert month.returncode == 0, month.stderr
    done = json.loads(month.stdout)
    assert (done["feedback_details_cut"], done["deliveries_hashed"]) == (1, 0)
    assert done["imap_messages_deleted"] is None  # no mailbox configured
    assert project.query("SELECT diagnostic, source, status, kind FROM feedback_events") == [
        ("5.1.1", "imap", "5.1.1", "hard")]
    assert project.query("SELECT count(*) FROM deliveries WHERE email LIKE 'hashed:%'") == [
        (0,)]

    keyless = _prune(project, 401, False)
    assert keyless.returncode == 0, keyless.stderr
    assert "warning: AINEWS_SECRET_KEY is not set" in keyless.stderr
    assert project.query("SELECT count(*) FROM deliveries WHERE email LIKE 'hashed:%'") == [
        (0,)]

    late = _prune(project, 401)
    assert late.returncode == 0, late.stderr
    assert "2 deliveries, 0 welcomes, 1 feedback event" in late.stdout
    rows = project.query("SELECT email, name, last_reply FROM deliveries ORDER BY id")
    assert rows == [(_keyed("reader000@example.com"), None, None),
                    (_keyed("reader001@example.com"), None, None)]
    assert project.query("SELECT email FROM feedback_events") == [
        (_keyed("reader000@example.com"),)]
    assert _report(project) == before  # every count survives
    again = _prune(project, 402, True, "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["deliveries_hashed"] == 0  # idempotent
    assert project.query("SELECT email, name, last_reply FROM deliveries ORDER BY id") == rows


@pytest.mark.clock
def test_the_scheduler_job_applies_and_logs_it(project: Project, smtp_server: SmtpServer,
                                               caplog: pytest.LogCaptureFixture) -> None:
    _sent_with_a_bounce(project, smtp_server)
    keyless = load_config(project.config_path, environ={})
    with clock.use_clock(clock.frozen(clock.now() + timedelta(days=500))), \
            caplog.at_level(logging.INFO, "ainews.schedule"):
        apply_retention_daily(keyless)
        assert "AINEWS_SECRET_KEY is not set" in caplog.text
        assert "feedback_details_cut 1" in caplog.text
        apply_retention_daily(load_config(project.config_path,
                                          environ={"AINEWS_SECRET_KEY": SECRET}))
    assert "deliveries_hashed 2" in caplog.text
    assert project.query("SELECT email FROM deliveries WHERE name IS NOT NULL") == []
    assert project.query("SELECT email FROM deliveries ORDER BY id")[0] == (
        _keyed("Reader000@example.com"),)


@pytest.mark.clock
def test_the_running_scheduler_applies_retention_when_it_starts(
        project: Project, smtp_server: SmtpServer) -> None:
    """`ainews schedule run` as a real process: the retention job is on its list, runs at
    start (a bounce received 40 days ago loses its text), and says so in the log."""
    url = f"sqlite:///{project.database}"
    project.import_readers(1)  # makes the database
    with engine_for(url).begin() as connection:
        connection.execute(insert(feedback_events).values(
            dedup_key="old", received_at=clock.now() - timedelta(days=40), kind="hard",
            email="reader000@example.com", status="5.1.1", action="failed",
            diagnostic=DIAGNOSTIC, source="bounce.eml", matched_by="-", delivery_id=None,
            issue_id=None, subscriber_id=None, sent_at=None, effect="none"))
    env = {key: value for key, value in os.environ.items() if key != "AINEWS_SECRET_KEY"}
    env.update({**smtp_env(smtp_server), "AINEWS_LINT__SPAMASSASSIN": "false"})
    process = subprocess.Popen([sys.executable, "-m", "ainews_newsletter", "--config",
                                str(project.config_path), "schedule", "run"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        deadline = time.monotonic() + 60
        while project.query("SELECT diagnostic FROM feedback_events") != [("5.1.1",)]:
            assert process.poll() is None and time.monotonic() < deadline, "not applied"
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGTERM)
        _, log = process.communicate(timeout=60)
    assert process.returncode == 0, log
    assert "retention: keep_feedback_details_days 30" in log
    assert "feedback_details_cut 1" in log
    assert "retention: AINEWS_SECRET_KEY is not set" in log


# -- the IMAP processed folder ---------------------------------------------------------------

@pytest.fixture
def imap(dovecot_peer: DovecotPeer) -> Iterator[DovecotPeer]:
    shutil.rmtree(dovecot_peer.maildir, ignore_errors=True)
    yield dovecot_peer


def test_old_mail_in_the_processed_folder_is_deleted(project: Project,
                                                     imap: DovecotPeer) -> None:
    _libfaketime()
    project.write_config(f"""
        [bounces]
        address = "bounces@news.example.org"
        imap_host = "{imap.host}"
        imap_port = {imap.imap_port}
        imap_user = "{imap.user}"
        imap_security = "none"
        """)  # not TLS: a month on, the test's certificate has expired
    imap.deliver(b"Subject: handled one\r\n\r\nold bounce\r\n", folder="Processed")
    imap.deliver(b"Subject: handled two\r\n\r\nold bounce\r\n", folder="Processed")
    imap.deliver(b"Subject: not read yet\r\n\r\nwaiting\r\n")
    env = {"AINEWS_BOUNCES__PASSWORD": imap.password}
    today = _prune(project, 0, True, "--json", env=env)
    assert today.returncode == 0, today.stderr
    assert json.loads(today.stdout)["imap_messages_deleted"] == 0
    assert len(imap.folder_messages("Processed")) == 2
    month = _prune(project, 33, env=env)  # a day's margin, and one for the timezone
    assert month.returncode == 0, month.stderr
    assert "IMAP processed folder: 2 messages older than 30 days deleted" in month.stdout
    assert imap.folder_messages("Processed") == []
    assert len(imap.folder_messages("INBOX")) == 1  # only the processed folder
    skipped = _prune(project, 33, True, "--no-mailbox", "--json", env=env)
    assert json.loads(skipped.stdout)["imap_messages_deleted"] is None
    no_password = _prune(project, 33)  # the mailbox fails: said in one line, exit 1
    assert no_password.returncode == 1
    assert "feedback events older than 30 days" in no_password.stdout  # the rest was done
    assert no_password.stderr.strip().splitlines()[-1] == (
        "error: bounces: the IMAP password is read from the environment only: set "
        "AINEWS_BOUNCES__PASSWORD")
