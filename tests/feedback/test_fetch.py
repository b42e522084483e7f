"""`ainews bounces fetch` and the scheduler's fetch against a real Dovecot: the DSN for a
message we sent is read over TLS with a verified certificate, stored, acted on, and moved to
the processed folder; nothing is deleted and a second fetch finds nothing new."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from ainews_newsletter.config import load_config
from ainews_newsletter.schedule.job import fetch_bounces
from tests.conftest import Project, SmtpServer, smtp_env
from tests.feedback.returns import dsn, nested, prose_bounce
from tests.peers import wait_until

if TYPE_CHECKING:
    from tests.peers.dovecot import DovecotPeer



@pytest.fixture
def imap(dovecot_peer: DovecotPeer) -> Iterator[DovecotPeer]:
    shutil.rmtree(dovecot_peer.maildir, ignore_errors=True)  # each test starts empty
    yield dovecot_peer


def _mailbox_config(peer: DovecotPeer, security: str = "tls") -> str:
    port = peer.imaps_port if security == "tls" else peer.imap_port
    return f"""
        [bounces]
        address = "bounces@news.example.org"
        imap_host = "{peer.host}"
        imap_port = {port}
        imap_user = "{peer.user}"
        imap_security = "{security}"
        imap_ca_file = "{peer.ca_file}"
        """


def _sent(project: Project, server: SmtpServer, count: int) -> list[tuple[str, bytes]]:
    readers = project.import_readers(count)
    result = project.run("send", "--week", "2026-W47", "--yes", env=smtp_env(server))
    assert result.exit_code == 0, result.output
    by_reader = {m.rcpt_tos[0]: (m.mail_from, m.data) for m in server.handler.messages}
    return [by_reader[reader] for reader in readers]


def test_fetch_stores_acts_and_moves(project: Project, smtp_server: SmtpServer,
                                     imap: DovecotPeer) -> None:
    project.write_config(_mailbox_config(imap, security="starttls"))
    sent = _sent(project, smtp_server, 2)
    envelope, original = sent[0]
    imap.deliver(dsn(envelope, "reader000@example.com", original=original))
    imap.deliver(b"not a header line at all\x00\x01\x02")  # junk in the mailbox
    env = {"AINEWS_BOUNCES__PASSWORD": imap.password}

    result = project.run("bounces", "fetch", "--json", env=env)
    assert result.exit_code == 1  # the junk is named, the rest goes on
    assert "imap:INBOX/" in result.stderr
    summary = json.loads(result.stdout)
    assert (summary["moved"], summary["new_events"], summary["changed"]) == (
        2, 1, {"bounced": 1})
    assert imap.folder_messages("INBOX") == []
    assert len(imap.folder_messages("Processed")) == 2  # moved, not deleted
    status = dict(project.query("SELECT email, status FROM subscribers"))
    assert status == {"reader000@example.com": "bounced", "reader001@example.com": "active"}

    again = project.run("bounces", "fetch", env=env)
    assert again.exit_code == 0, again.output
    assert "moved 0 messages" in again.stdout
    assert imap.password not in again.output


def test_a_message_fetched_twice_counts_once(project: Project, smtp_server: SmtpServer,
                                             imap: DovecotPeer) -> None:
    project.write_config(_mailbox_config(imap))
    envelope, original = _sent(project, smtp_server, 1)[0]
    report = dsn(envelope, "reader000@example.com", status="5.2.2", original=original,
                 diagnostic="552 5.2.2 <{r}>: mailbox full")
    imap.deliver(report)
    env = {"AINEWS_BOUNCES__PASSWORD": imap.password}
    assert project.run("bounces", "fetch", env=env).exit_code == 0
    imap.deliver(report)  # e.g. a crash between storing and moving: it is still there
    second = json.loads(project.run("bounces", "fetch", "--json", env=env).stdout)
    assert (second["moved"], second["new_events"], second["repeated"]) == (1, 0, 1)
    assert project.query("SELECT count(*) FROM feedback_events") == [(1,)]


def test_the_scheduler_fetch_logs_instead_of_failing(project: Project, imap: DovecotPeer,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    project.write_config(_mailbox_config(imap))
    wrong = load_config(project.config_path, environ={
        "AINEWS_BOUNCES__PASSWORD": "not-the-password"})
    with caplog.at_level(logging.INFO, logger="ainews.schedule"):
        assert fetch_bounces(wrong) is False
        right = load_config(project.config_path, environ={
            "AINEWS_BOUNCES__PASSWORD": imap.password})
        imap.deliver(dsn("bounces@news.example.org", "stranger@readers.example"))
        assert fetch_bounces(right) is True
    messages = [record.getMessage() for record in caplog.records]
    assert any("bounces:" in m and "login" in m.lower() for m in messages), messages
    assert any("1 messages, 1 new events (hard 1), 0 bounced" in m for m in messages), messages
    assert all("not-the-password" not in m for m in messages)


def test_the_scheduler_reads_the_mailbox_every_fetch_minutes(project: Project,
                                                             imap: DovecotPeer) -> None:
    project.write_config(_mailbox_config(imap))
    imap.deliver(dsn("bounces@news.example.org", "stranger@readers.example"))
    env = {**os.environ, "AINEWS_BOUNCES__PASSWORD": imap.password,
           "AINEWS_LINT__SPAMASSASSIN": "false"}
    process = subprocess.Popen([sys.executable, "-m", "ainews_newsletter", "--config",
                                str(project.config_path), "schedule", "run"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        moved = wait_until(lambda: len(imap.folder_messages("Processed")) == 1, 60)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert moved, stderr
    assert process.returncode == 0, stderr
    assert "bounces: bounces@127.0.0.1" in stderr and "1 new events (hard 1)" in stderr
    assert imap.folder_messages("INBOX") == []
    assert project.query("SELECT kind, effect FROM feedback_events") == [("hard", "unmatched")]


def test_hostile_mail_in_the_mailbox_and_in_the_pipe_is_read_like_a_file(
        project: Project, imap: DovecotPeer) -> None:
    # issue 27: the mailbox read and `ingest -` share the parser's bounds with `parse`
    project.write_config(_mailbox_config(imap))
    hostile = [prose_bounce(b"-" * 12_000),
               prose_bounce(b"a" * 100_000, b"To: " + b"a" * 100_000 + b"\n"),
               prose_bounce(headers=b"Subject: " + b"=?utf-8?q?a?= " * 70_000 + b"\n"),
               b"From: MAILER-DAEMON@mx.example\nSubject: failed\nContent-Type: text/plain; "
               b"charset=\"undefined\"\n\n<reader@example.com>: 550 5.1.1 user unknown\n",
               nested(1_000)]
    for raw in hostile:
        imap.deliver(raw)
    env = {"AINEWS_BOUNCES__PASSWORD": imap.password}
    result = project.run("bounces", "fetch", "--json", env=env)
    assert (result.exit_code, result.stderr) == (0, ""), result.output
    summary = json.loads(result.stdout)
    assert (summary["messages"], summary["moved"], summary["problems"]) == (5, 5, [])
    assert summary["kinds"] == {"hard": 4, "other": 1}
    piped = project.run("bounces", "ingest", "-", "--json",
                        input=prose_bounce(b"-" * 12_000).decode())
    assert (piped.exit_code, json.loads(piped.stdout)["repeated"]) == (0, 1)


def test_a_processed_folder_made_by_another_client_meanwhile_is_used(
        project: Project, imap: DovecotPeer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The scheduler's retention round and its bounce round start together and may both
    find the processed folder missing: the one whose CREATE comes second gets
    ALREADYEXISTS and goes on (it once failed the round, and the fetch waited 15 minutes).
    Here the folder exists but the LIST answer is made to miss it."""
    import imaplib

    project.write_config(_mailbox_config(imap))
    imap.deliver(dsn("bounces@news.example.org", "stranger@readers.example"), "Processed")
    imap.deliver(dsn("bounces@news.example.org", "stranger@readers.example"))

    def list_sees_nothing(self: imaplib.IMAP4, *args: object) -> tuple[str, list[None]]:
        return "OK", [None]

    monkeypatch.setattr(imaplib.IMAP4, "list", list_sees_nothing)
    config = load_config(project.config_path, environ={
        "AINEWS_BOUNCES__PASSWORD": imap.password})
    assert fetch_bounces(config) is True
    assert imap.folder_messages("INBOX") == []
    assert len(imap.folder_messages("Processed")) == 2
