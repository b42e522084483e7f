"""`ainews send` beyond the happy path: --dry-run, --to, --resume, --retry-failed, giving up,
hard bounces, SIGTERM, and kill -9 at random points followed by --resume."""

from __future__ import annotations

import fcntl
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta

import pytest

from ainews_newsletter import clock
from ainews_newsletter.config import Config, load_config
from ainews_newsletter.database import sqlite_path
from ainews_newsletter.models import Window
from ainews_newsletter.pipeline.send import execute_send, plan_send
from tests.conftest import Project, SmtpServer, smtp_env

# Run again under libfaketime at awkward dates by scripts/test-clocks.
pytestmark = pytest.mark.clock

W47 = Window(week="2026-W47")


def _subscribe(project: Project, count: int) -> list[str]:
    return project.import_readers(count)


def _config(project: Project, server: SmtpServer, **delivery: object) -> Config:
    return load_config(project.config_path, environ={}, overrides={
        "smtp": {"host": "127.0.0.1", "port": server.port}, "delivery": delivery})


def test_dry_run_sends_and_stores_nothing(project: Project, smtp_server: SmtpServer) -> None:
    _subscribe(project, 3)
    result = project.run("send", "--week", "2026-W47", "--dry-run", env=smtp_env(smtp_server))
    assert result.exit_code == 0, result.output
    assert "would go to 3 subscribers" in result.stdout
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in result.stdout
    assert "To: reader000@example.com" in result.stdout
    assert smtp_server.handler.messages == []
    assert project.query("SELECT count(*) FROM issues") == [(0,)]


def test_to_sends_one_test_copy_outside_the_ledger(project: Project,
                                                  smtp_server: SmtpServer) -> None:
    _subscribe(project, 3)
    result = project.run("send", "--week", "2026-W47", "--to", "editor@example.org",
                         env=smtp_env(smtp_server))
    assert result.exit_code == 0, result.output
    assert smtp_server.recipients() == ["editor@example.org"]
    assert project.query("SELECT count(*) FROM deliveries") == [(0,)]
    bad = project.run("send", "--week", "2026-W47", "--to", "not an address")
    assert bad.exit_code == 1 and "not a valid email address" in bad.stderr


def test_resume_and_retry_failed(project: Project, smtp_server: SmtpServer) -> None:
    addresses = _subscribe(project, 4)
    down = project.run("send", "--week", "2026-W47", "--yes",
                       env={"AINEWS_SMTP__HOST": "127.0.0.1", "AINEWS_SMTP__PORT": "9"})
    assert down.exit_code == 1
    smtp_server.handler.replies = {addresses[1]: "550 5.7.1 Refused by policy"}
    resumed = project.run("send", "--resume", "--yes", env=smtp_env(smtp_server))
    assert resumed.exit_code == 0, resumed.output
    assert "sent 3 of 4" in resumed.stdout and "--retry-failed" in resumed.stdout
    nothing = project.run("send", "--resume", "--yes", env=smtp_env(smtp_server))
    assert nothing.exit_code == 1 and "nothing to resume" in nothing.stderr

    smtp_server.handler.replies = {}
    retried = project.run("send", "--issue", "2026-W47", "--retry-failed", "--yes",
                          env=smtp_env(smtp_server))
    assert retried.exit_code == 0, retried.output
    assert "1 failed recipient queued again" in retried.stdout
    assert sorted(smtp_server.recipients()) == sorted(addresses)


def test_deferred_past_give_up_after_hours_fails(project: Project,
                                                smtp_server: SmtpServer) -> None:
    _subscribe(project, 1)
    smtp_server.handler.replies = {"reader000@example.com": "451 4.7.1 Try later"}
    config = _config(project, smtp_server, retry_base_seconds=600, give_up_after_hours=0.5)
    first = execute_send(config, plan_send(config, W47))
    assert first.deferred == 1  # next try in 10 minutes: inside the half hour
    later = clock.now() + timedelta(minutes=25)
    with clock.use_clock(clock.frozen(later)):
        plan = plan_send(config, W47)
        assert execute_send(config, plan).failed == 1  # the next would be too late


def test_hard_bounces_mark_the_subscriber_bounced(project: Project,
                                                 smtp_server: SmtpServer) -> None:
    addresses = _subscribe(project, 3)
    smtp_server.handler.replies = {addresses[0]: "550 5.1.1 No such user",
                                   addresses[1]: "550 5.7.1 Message refused as spam"}
    config = _config(project, smtp_server, bounce_limit=1)
    counts = execute_send(config, plan_send(config, W47))
    assert counts.failed == 2
    status = dict(project.query("SELECT email, status FROM subscribers"))
    assert status[addresses[0]] == "bounced"  # the mailbox does not exist
    assert status[addresses[1]] == "active"  # a policy refusal is not the reader's fault
    assert project.query("SELECT reason FROM suppressions") == [("bounced",)]


# -- stopping and crashing -----------------------------------------------------------------

def _sender(project: Project, server: SmtpServer, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, **smtp_env(server), "AINEWS_LINT__SPAMASSASSIN": "false"}
    if project.storage_url is not None:
        env["AINEWS_STORAGE__URL"] = project.storage_url
    return subprocess.Popen([sys.executable, "-m", "ainews_newsletter", "--config",
                             str(project.config_path), "send", "--yes", *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for_messages(server: SmtpServer, at_least: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while len(server.handler.messages) < at_least:
        assert time.monotonic() < deadline, "the sender never got going"
        time.sleep(0.02)


def test_two_processes_share_one_issue_and_send_each_row_once(
        any_project: Project, smtp_server: SmtpServer, unused_port: int) -> None:
    """Scale-out: two `ainews send --resume` processes on one issue. On PostgreSQL each
    claims the next row nobody holds (FOR UPDATE SKIP LOCKED); on SQLite the claim is one
    atomic UPDATE. Either way every reader gets exactly one message."""
    addresses = _subscribe(any_project, 60)
    down = {**smtp_env(smtp_server), "AINEWS_SMTP__PORT": str(unused_port)}
    started = any_project.run("send", "--week", "2026-W47", "--yes", env=down)
    assert started.exit_code != 0  # the issue is frozen and its audience queued; nobody sent
    assert any_project.query("SELECT count(*) FROM deliveries WHERE state = 'queued'") == [(60,)]
    smtp_server.handler.data_delay = 0.05  # slow enough (3 s in all) that the two overlap
    senders = [_sender(any_project, smtp_server, "--resume") for _ in range(2)]
    outputs = [sender.communicate(timeout=120) for sender in senders]
    assert [sender.returncode for sender in senders] == [0, 0], outputs
    assert sorted(smtp_server.recipients()) == addresses  # nobody twice, nobody lost
    assert smtp_server.handler.connections == 2
    assert any_project.query("SELECT state, count(*) FROM deliveries GROUP BY state") == [
        ("sent", 60)]
    by_connection = Counter(message.peer for message in smtp_server.handler.messages)
    assert len(by_connection) == 2 and min(by_connection.values()) >= 5  # both did real work


def test_sigterm_finishes_the_message_in_flight_no_duplicates(
        project: Project, smtp_server: SmtpServer) -> None:
    addresses = _subscribe(project, 40)
    smtp_server.handler.data_delay = 0.05
    process = _sender(project, smtp_server, "--week", "2026-W47")
    _wait_for_messages(smtp_server, 5)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert project.query("SELECT count(*) FROM deliveries WHERE state = 'sending'") == [(0,)]
    stopped_at = len(smtp_server.handler.messages)
    assert stopped_at < 40
    resumed = _sender(project, smtp_server, "--resume")
    resumed.communicate(timeout=60)
    assert resumed.returncode == 0
    assert sorted(smtp_server.recipients()) == sorted(addresses)  # everyone exactly once


def test_kill_9_at_random_points_then_resume(project: Project, smtp_server: SmtpServer) -> None:
    """20 crashes in one send, each at a random moment after the sender got going; every
    subscriber gets the issue, and each crash costs at most one duplicate (one connection:
    at most one message in flight). benchmarks/crash.py does the same a hundred times."""
    addresses = _subscribe(project, 400)
    smtp_server.handler.data_delay = 0.005
    rng = random.Random(47)
    kills = 0
    process = _sender(project, smtp_server, "--week", "2026-W47")
    for _ in range(20):
        # --week, not --resume: the first kill may land before the issue was even frozen.
        _wait_for_messages(smtp_server, len(smtp_server.handler.messages) + 1)
        time.sleep(rng.uniform(0, 0.25))
        assert process.poll() is None, "400 readers must outlast 20 short runs"
        process.kill()
        process.wait()
        kills += 1
        process = _sender(project, smtp_server, "--week", "2026-W47")
    process.communicate(timeout=120)
    final = _sender(project, smtp_server, "--week", "2026-W47")
    final.communicate(timeout=120)
    assert final.returncode == 0
    received = Counter(smtp_server.recipients())
    assert set(received) == set(addresses)  # nobody lost
    duplicates = sum(count - 1 for count in received.values())
    assert kills == 20 and duplicates <= kills
    assert project.query("SELECT DISTINCT state FROM deliveries") == [("sent",)]
    nothing_left = _sender(project, smtp_server, "--resume")
    _, stderr = nothing_left.communicate(timeout=60)
    assert nothing_left.returncode == 1 and b"nothing to resume" in stderr


def test_send_exits_1_while_another_sender_holds_rows_of_its_issue(
        any_project: Project, smtp_server: SmtpServer, unused_port: int) -> None:
    """A send that has done all it can but leaves rows under another sender's claim is not
    finished: it says how many and when they will be retried, and exits 1."""
    addresses = _subscribe(any_project, 3)
    down = any_project.run("send", "--week", "2026-W47", "--yes",
                           env={**smtp_env(smtp_server), "AINEWS_SMTP__PORT": str(unused_port)})
    assert down.exit_code == 1
    postgres = (any_project.storage_url or "").startswith("postgresql")
    claimed_at = "timezone('UTC', now())" if postgres else "updated_at"
    any_project.query(f"UPDATE deliveries SET state = 'sending', attempts = 1, "
                      f"updated_at = {claimed_at} WHERE email = ?", addresses[0])
    database_file = sqlite_path(any_project.storage_url or "") or any_project.database
    database_file.parent.mkdir(exist_ok=True)  # PostgreSQL: a lock nobody looks at
    with database_file.with_name("ainews.db.send-lock").open("a") as other:
        fcntl.flock(other, fcntl.LOCK_SH)  # on SQLite: the claim's sender is alive
        # It waits twice the SMTP timeout for the other's messages to be recorded.
        held = any_project.run("send", "--resume", "--yes",
                               env={**smtp_env(smtp_server), "AINEWS_SMTP__TIMEOUT": "0.5"})
    assert held.exit_code == 1, held.output
    assert "sent 2 of 3" in held.stdout
    assert "1 message of 2026-W47 is still claimed by another" in held.stderr
    if postgres:  # a lease by the database's clock: says from when
        assert "sends them again from 20" in held.stderr and "database's clock" in held.stderr
    else:  # presence: as soon as that sender is gone
        assert "sends them again at once" in held.stderr
        resumed = any_project.run("send", "--resume", "--yes", env=smtp_env(smtp_server))
        assert resumed.exit_code == 0, resumed.output
        assert sorted(smtp_server.recipients()) == addresses
    assert smtp_server.recipients().count(addresses[0]) == (0 if postgres else 1)


def test_a_server_refusing_everything_pauses_the_send(project: Project,
                                                      smtp_server: SmtpServer) -> None:
    addresses = _subscribe(project, 30)
    smtp_server.handler.replies = {address: "451 4.3.0 Mail server temporarily rejecting"
                                   for address in addresses}
    project.write_config("[delivery]\nerror_window = 10\nerror_threshold = 0.8\n")
    result = project.run("send", "--week", "2026-W47", "--yes", env=smtp_env(smtp_server))
    assert result.exit_code == 1
    assert "paused: 10 of the last 10 messages were refused" in result.stderr
    assert "nothing is lost" in result.stderr
    states = dict(project.query("SELECT state, count(*) FROM deliveries GROUP BY state"))
    assert states == {"deferred": 10, "queued": 20}  # the rest were not burned
