"""List hygiene: sign-ups never confirmed expire ([subscribers] unconfirmed_days) through the
scheduler's job and `ainews subscribers prune --unconfirmed` (also as a real process under
libfaketime, a month on); `prune --inactive-issues N` finds the readers who clicked nothing
in their last N issues, from real sends and real click rows, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ainews_newsletter import clock
from ainews_newsletter.config import Config, load_config
from ainews_newsletter.database import engine_for
from ainews_newsletter.delivery.clickstats import click_target, record_click
from ainews_newsletter.models import SubscriberStatus
from ainews_newsletter.pipeline.issue import open_subscribers
from ainews_newsletter.schedule.job import expire_sign_ups
from ainews_newsletter.subscribers.signups import SignUps
from tests.conftest import Project, SmtpServer, smtp_env

# Clock-sensitive (expiry counts days; a subprocess runs a month ahead): run again under
# libfaketime at awkward dates by scripts/test-clocks.
pytestmark = pytest.mark.clock

SECRET = "click-secret-key-of-enough-length"


@contextmanager
def at(moment: datetime) -> Iterator[None]:
    with clock.use_clock(clock.frozen(moment)):
        yield


def _config(project: Project) -> Config:
    environ = {"AINEWS_STORAGE__URL": project.storage_url} if project.storage_url else {}
    return load_config(project.config_path, environ=environ)


def _emails(project: Project, status: str | None = None) -> list[str]:
    rows = project.query("SELECT email, status FROM subscribers ORDER BY id")
    return [email for email, found in rows if status in (None, found)]


# -- unconfirmed sign-ups --------------------------------------------------------------------

def test_the_scheduler_job_removes_sign_ups_a_month_old(
        project: Project, caplog: pytest.LogCaptureFixture) -> None:
    config = _config(project)
    signups = SignUps(open_subscribers(config))
    start = clock.now()
    with at(start):
        signups.sign_up("old@example.com", None, None)
        signups.sign_up("again@example.com", None, None)
        open_subscribers(config).add("reader@example.com")  # active: never expires
    with at(start + timedelta(days=20)):
        signups.sign_up("again@example.com", None, None)  # a new link: the age starts again
    with at(start + timedelta(days=2)):
        signups.sign_up("new@example.com", None, None)
    with at(start + timedelta(days=31)), caplog.at_level(logging.INFO, "ainews.schedule"):
        assert expire_sign_ups(config) == 1
    assert "removed 1 pending for more than 30 days" in caplog.text
    assert _emails(project) == ["again@example.com", "reader@example.com", "new@example.com"]
    [old_id] = {row[0] for row in project.query(
        "SELECT subscriber_id FROM subscriber_events WHERE kind = 'removed'")}
    assert project.query("SELECT kind, source FROM subscriber_events WHERE subscriber_id = ? "
                         "ORDER BY id", old_id) == [("joined", "web"),
                                                    ("removed", "unconfirmed")]
    assert project.query("SELECT count(*) FROM suppressions") == [(0,)]
    assert project.query("SELECT count(*) FROM memberships") == [(3,)]
    with at(start + timedelta(days=51)):
        assert expire_sign_ups(config) == 2  # "again" 31 days after its second sign-up
    assert _emails(project) == ["reader@example.com"]


def test_the_running_scheduler_expires_sign_ups_when_it_starts(
        project: Project, smtp_server: SmtpServer) -> None:
    """`ainews schedule run` as a real process: the expiry job is on its list, runs at
    start, and says so in the log."""
    config = _config(project)
    with at(clock.now() - timedelta(days=31)):
        SignUps(open_subscribers(config)).sign_up("stale@example.com", None, None)
    SignUps(open_subscribers(config)).sign_up("fresh@example.com", None, None)
    env = {**os.environ, **smtp_env(smtp_server), "AINEWS_LINT__SPAMASSASSIN": "false"}
    process = subprocess.Popen([sys.executable, "-m", "ainews_newsletter", "--config",
                                str(project.config_path), "schedule", "run"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        deadline = time.monotonic() + 60
        while _emails(project) != ["fresh@example.com"]:
            assert process.poll() is None and time.monotonic() < deadline, "not expired"
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGTERM)
        _, log = process.communicate(timeout=60)
    assert process.returncode == 0, log
    assert "unconfirmed sign-ups: removed 1 pending for more than 30 days" in log


def test_prune_unconfirmed_prints_what_it_removed(project: Project) -> None:
    project.write_config("[subscribers]\nunconfirmed_days = 7\n")
    start = clock.now()
    with at(start):
        assert project.run("subscribers", "add", "zoe@example.com",
                           "--status", "pending").exit_code == 0
    with at(start + timedelta(days=6)):
        shown = project.run("subscribers", "prune", "--unconfirmed")
    assert shown.exit_code == 0 and "removed 0 unconfirmed sign-ups" in shown.output
    with at(start + timedelta(days=8)):
        result = project.run("subscribers", "prune", "--unconfirmed", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["unconfirmed"]["days"] == 7
    assert [reader["email"] for reader in report["unconfirmed"]["removed"]] == [
        "zoe@example.com"]
    assert _emails(project) == []


def test_prune_needs_something_to_do(project: Project) -> None:
    result = project.run("subscribers", "prune")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "error: say what to prune: --unconfirmed, --inactive-issues N, or both"]


def _libfaketime() -> Path:
    for pattern in ("/usr/lib/*/faketime/libfaketime.so.1", "/usr/lib/faketime/libfaketime.so.1",
                    "/usr/local/lib/faketime/libfaketime.so.1"):
        found = sorted(Path("/").glob(pattern.lstrip("/")))
        if found:
            return found[0]
    pytest.skip("libfaketime is not installed (Debian: apt-get install faketime); "
                "scripts/test-clocks installs it")


def _at(moment: datetime, *command: str) -> subprocess.CompletedProcess[str]:
    """COMMAND as its own process whose clock starts at `moment` (libfaketime; its start
    time is read in the process's timezone, here UTC)."""
    env = {**os.environ, "LD_PRELOAD": str(_libfaketime()), "TZ": "UTC",
           "FAKETIME": moment.astimezone(UTC).strftime("@%Y-%m-%d %H:%M:%S"),
           "AINEWS_LINT__SPAMASSASSIN": "false"}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120,
                          check=False)


def _ainews_at(project: Project, moment: datetime, *args: str) -> subprocess.CompletedProcess[str]:
    return _at(moment, sys.executable, "-m", "ainews_newsletter", "--config",
               str(project.config_path), *args)


def test_unconfirmed_sign_ups_expire_a_month_on_under_libfaketime(project: Project) -> None:
    """The real command in a process whose clock libfaketime moves 29, then 31 days past
    the sign-up: the first leaves it, the second removes it and says so."""
    _libfaketime()
    assert project.run("subscribers", "add", "una@example.com",
                       "--status", "pending").exit_code == 0
    # Whole seconds: FAKETIME's "@…" start time has no fraction, so a start built from a
    # moment with microseconds begins up to a second before it (a CI run saw .86 < .88).
    signed_up = clock.now().replace(microsecond=0)
    # The fake clock must have taken hold before a green run means anything.
    probe = _at(signed_up + timedelta(days=31), sys.executable, "-c",
                "import datetime; print(datetime.datetime.now(datetime.UTC).isoformat())")
    assert probe.returncode == 0, probe.stderr
    seen = datetime.fromisoformat(probe.stdout.strip())
    assert abs(seen - (signed_up + timedelta(days=31))) < timedelta(hours=1), seen
    early = _ainews_at(project, signed_up + timedelta(days=29), "subscribers", "prune",
                       "--unconfirmed", "--json")
    assert early.returncode == 0, early.stderr
    assert json.loads(early.stdout)["unconfirmed"]["removed"] == []
    assert _emails(project) == ["una@example.com"]
    late = _ainews_at(project, signed_up + timedelta(days=31), "subscribers", "prune",
                      "--unconfirmed")
    assert late.returncode == 0, late.stderr
    assert "removed 1 unconfirmed sign-up" in late.stdout and "una@example.com" in late.stdout
    assert _emails(project) == []
    [(at_removal,)] = project.query("SELECT at FROM subscriber_events WHERE kind = 'removed'")
    removed_at = datetime.fromisoformat(str(at_removal)).replace(tzinfo=UTC)
    assert removed_at >= signed_up + timedelta(days=31)  # the process's own (fake) clock


# -- readers who stopped clicking ------------------------------------------------------------

def _send(project: Project, server: SmtpServer, week: str) -> None:
    result = project.run("send", "--week", week, "--yes", "--force",
                         env={**smtp_env(server), "AINEWS_SECRET_KEY": SECRET})
    assert result.exit_code == 0, result.output


def _click(project: Project, address: str, week: str, scanner: bool = False) -> None:
    [(delivery_id,)] = project.query(
        "SELECT d.id FROM deliveries d JOIN issues i ON i.id = d.issue_id "
        "WHERE d.email = ? AND i.period_key = ?", address, week)
    engine = engine_for(project.storage_url or f"sqlite:///{project.database}")
    target = click_target(engine, int(delivery_id), 1)
    assert target is not None
    record_click(engine, target, clock.now(), head=scanner)


def _inactive(project: Project, issues: int, *extra: str) -> dict[str, object]:
    result = project.run("subscribers", "prune", "--inactive-issues", str(issues), "--json",
                         *extra)
    assert result.exit_code == 0, result.output
    found: dict[str, object] = json.loads(result.output)["inactive"]
    return found


def _named(report: dict[str, object]) -> list[str]:
    readers = report["readers"]
    assert isinstance(readers, list)
    return [reader["email"] for reader in readers]


def test_inactive_readers_from_real_sends_and_clicks(any_project: Project,
                                                     smtp_server: SmtpServer) -> None:
    project = any_project
    project.write_config("[tracking]\nclicks = true\n")
    clicker, scanned, silent = project.import_readers(3)
    _send(project, smtp_server, "2026-W46")
    assert project.run("subscribers", "add", "late@example.com").exit_code == 0
    _send(project, smtp_server, "2026-W47")
    _click(project, clicker, "2026-W46")  # clicked the older issue only
    _click(project, scanned, "2026-W47", scanner=True)  # a link scanner's HEAD: nobody's
    assert _named(_inactive(project, 2)) == [scanned, silent]  # "late" had one issue only
    assert _named(_inactive(project, 1)) == [clicker, scanned, silent, "late@example.com"]
    assert _inactive(project, 3)["readers"] == []  # nobody was sent three
    plain = project.run("subscribers", "prune", "--inactive-issues", "2")
    assert plain.exit_code == 0
    assert "2 active readers with no click in their last 2 issues" in plain.output
    assert "add --yes" in plain.output and scanned in plain.output
    assert _emails(project, "active") == [clicker, scanned, silent, "late@example.com"]
    acted = _inactive(project, 2, "--yes")
    assert acted["unsubscribed"] == 2
    assert _emails(project, "active") == [clicker, "late@example.com"]
    assert _emails(project, "unsubscribed") == [scanned, silent]
    assert project.query("SELECT count(*) FROM subscriber_events WHERE kind = 'unsubscribed' "
                         "AND source = 'inactive'") == [(2,)]
    assert project.query("SELECT count(*) FROM suppressions") == [(0,)]
    assert _inactive(project, 2)["readers"] == []  # only active readers are named


def test_inactive_readers_need_click_counts(project: Project) -> None:
    project.import_readers(1)
    result = project.run("subscribers", "prune", "--inactive-issues", "4")
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: clicks are not counted ([tracking] clicks is off)")
    assert open_subscribers(_config(project)).require("reader000@example.com").status is \
        SubscriberStatus.ACTIVE
