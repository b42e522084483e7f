"""PostgreSQL restarted, or gone for a while, under a send, the public server and the
scheduler ([storage] reconnect_seconds; delivery/reconnect.py).

These tests stop and start a cluster, so they run their own (not the session's shared one):
a throwaway data folder and socket folder, one database per test. The send is a real
`ainews send` process (4 connections in 2 worker processes) into aiosmtpd; what counts is
what the ledger says and what the SMTP server received: nobody lost, and at most the
messages in flight twice (two per connection)."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from ainews_newsletter.database import dispose_all
from tests.conftest import Project, SmtpServer, smtp_env
from tests.peers.postgres import Missing, PrivateCluster

pytestmark = pytest.mark.clock

# The issue asks for a 20,000-reader send; on a busy two-core machine that is a minute or
# more per send, so the count is here to lower while working on this file.
READERS = 20_000
CONNECTIONS = 4
IN_FLIGHT = CONNECTIONS * 2  # per connection: the message on the wire and the next
SEND_TIMEOUT = 600  # seconds a whole send may take before the test gives up on it


def _real_clock() -> dict[str, str]:
    """The environment without libfaketime (scripts/test-clocks): under it every process
    starts at the same fake moment, so a restarted server's clock would step back, and the
    claims' leases are measured by the database's clock. A database server on another
    machine keeps its own time, too."""
    return {key: value for key, value in os.environ.items()
            if key != "LD_PRELOAD" and not key.startswith("FAKETIME")}


class Cluster(PrivateCluster):
    """A private PostgreSQL cluster this module may stop and start (tests/peers/postgres.py),
    on the real clock; one database per test."""

    def __init__(self) -> None:
        try:
            super().__init__(54347, prefix="ainews-pg-restart-", fast=True,
                             environ=_real_clock())
        except Missing as exc:
            pytest.fail(str(exc))
        self.databases = itertools.count(1)

    def new_database(self) -> str:
        return self.create_database(f"restart_{next(self.databases)}")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    own = Cluster()
    own.start()
    try:
        yield own
    finally:
        dispose_all()
        own.close()


@pytest.fixture
def running(cluster: Cluster) -> Iterator[Cluster]:
    """The cluster, started again after the test if it stopped it."""
    yield cluster
    dispose_all()
    with contextlib.suppress(subprocess.CalledProcessError):  # it is running already
        cluster.start()


@pytest.fixture
def pg_project(project: Project, running: Cluster) -> Project:
    project.storage_url = running.new_database()
    return project


def _import(project: Project, count: int) -> list[str]:
    addresses = [f"reader{i:05d}@example.com" for i in range(count)]
    csv_file = project.root / "list.csv"
    csv_file.write_text("email\n" + "\n".join(addresses) + "\n", encoding="utf-8")
    result = project.run("subscribers", "import", str(csv_file))
    assert result.exit_code == 0, result.output
    dispose_all()
    return addresses


def _send(project: Project, server: SmtpServer, *args: str, workers: int = 2,
          **settings: str) -> subprocess.Popen[str]:
    assert project.storage_url is not None
    env = {**os.environ, **smtp_env(server), "AINEWS_LINT__SPAMASSASSIN": "false",
           "AINEWS_STORAGE__URL": project.storage_url,
           "AINEWS_SMTP__CONNECTIONS": str(CONNECTIONS), "AINEWS_SMTP__WORKERS": str(workers),
           **{f"AINEWS_{key.upper()}": value for key, value in settings.items()}}
    return subprocess.Popen(
        [sys.executable, "-m", "ainews_newsletter", "--config", str(project.config_path),
         "send", "--yes", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)


def _wait_for_messages(server: SmtpServer, process: subprocess.Popen[str], count: int) -> None:
    deadline = time.monotonic() + SEND_TIMEOUT
    while len(server.handler.messages) < count:
        if process.poll() is not None:
            pytest.fail(f"the send ended before {count} messages: {process.communicate()}")
        assert time.monotonic() < deadline, "the send never got that far"
        time.sleep(0.05)


def _nobody_lost(project: Project, server: SmtpServer, readers: list[str]) -> None:
    """Every reader got the issue, at most the messages in flight twice, and the ledger
    says everyone was sent once."""
    received = Counter(server.recipients())
    assert set(received) == set(readers)  # nobody lost, nobody else
    assert sum(count - 1 for count in received.values()) <= IN_FLIGHT
    assert dict(project.query("SELECT state, count(*) FROM deliveries GROUP BY state")) == {
        "sent": len(readers)}


@pytest.mark.parametrize(("workers", "readers_count"), [(2, READERS), (1, READERS // 10)],
                         ids=["worker-processes", "threads"])
def test_a_restart_mid_send_is_waited_out(pg_project: Project, smtp_server: SmtpServer,
                                          running: Cluster, workers: int,
                                          readers_count: int) -> None:
    """The database stops (fast: every session ended) a quarter into the send and is back a
    few seconds later: the same `ainews send` reconnects and finishes, exit 0. The default
    sender (connections in worker processes, this process the ledger's one writer) and the
    threaded one (each connection its own writer)."""
    readers = _import(pg_project, readers_count)
    process = _send(pg_project, smtp_server, "--week", "2026-W47", workers=workers)
    try:
        _wait_for_messages(smtp_server, process, readers_count // 4)
        running.stop()
        stopped_at = len(smtp_server.handler.messages)
        time.sleep(3)  # a failover's few seconds: the sender must wait, not give up
        running.start()
        _, stderr = process.communicate(timeout=SEND_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    # It met the outage and said so, and its end (once per outage met: a threaded sender's
    # idle connection may find it dead only after another has seen the database back).
    assert stderr.count("is unreachable (") >= 1, stderr
    assert stderr.count("is unreachable (") == stderr.count("is back; going on"), stderr
    # Nothing went while it was away beyond the rows out already (the answers wait).
    assert stopped_at < readers_count
    _nobody_lost(pg_project, smtp_server, readers)


def test_a_database_away_too_long_stops_the_send_resumably(
        pg_project: Project, smtp_server: SmtpServer, running: Cluster) -> None:
    """Gone for longer than reconnect_seconds: one line naming the database and the way
    on, exit 1, no traceback; once it is back `send --resume` finishes, nobody lost."""
    readers = _import(pg_project, READERS // 4)
    process = _send(pg_project, smtp_server, "--week", "2026-W47",
                    storage__reconnect_seconds="3")
    try:
        _wait_for_messages(smtp_server, process, READERS // 16)
        running.stop()
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 1, stderr
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    assert "has been unreachable for 3 s" in errors[0]
    assert f"{running.root}:{running.port}/restart_" in errors[0]  # which database
    assert "`ainews send --resume --yes`" in errors[0]
    assert len(smtp_server.recipients()) < len(readers)  # it did stop part-way

    running.start()
    # Rows the stopped sender left `sending` go again once their claim's lease is over.
    resumed = _send(pg_project, smtp_server, "--resume",
                    delivery__claim_timeout_seconds="5")
    _, stderr = resumed.communicate(timeout=SEND_TIMEOUT)
    assert resumed.returncode == 0, stderr
    _nobody_lost(pg_project, smtp_server, readers)


def test_the_public_server_answers_503_while_the_database_is_away(
        pg_project: Project, running: Cluster) -> None:
    """503 with Retry-After while it is stopped, 200 again once it is back, from the same
    app: the pool drops dead connections by itself."""
    from starlette.testclient import TestClient

    from ainews_newsletter.config import load_config
    from ainews_newsletter.web.public import create_public_app

    assert pg_project.storage_url is not None
    config = load_config(pg_project.config_path, environ={
        "AINEWS_SECRET_KEY": "test-secret-key-of-enough-length",
        "AINEWS_STORAGE__URL": pg_project.storage_url})
    with TestClient(create_public_app(config)) as client:
        assert client.get("/issues/").status_code == 200
        running.stop()
        away = client.get("/issues/")
        assert away.status_code == 503
        assert away.headers["retry-after"] == "30"
        unsubscribe = client.post("/unsubscribe/some-token",
                                  data={"List-Unsubscribe": "One-Click"})
        assert unsubscribe.status_code == 503  # the provider retries it later
        running.start()
        assert client.get("/issues/").status_code == 200
        assert client.post("/unsubscribe/some-token",
                           data={"List-Unsubscribe": "One-Click"}).status_code == 400


def test_the_scheduler_logs_a_run_while_the_database_is_away_and_goes_on(
        pg_project: Project, running: Cluster, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that fires while the database is down: one log line (no traceback), no
    exception into APScheduler; the next run, with the database back, is done and
    recorded."""
    from ainews_newsletter.config import load_config
    from ainews_newsletter.schedule import daemon

    assert pg_project.storage_url is not None
    config = load_config(pg_project.config_path, environ={
        "AINEWS_STORAGE__URL": pg_project.storage_url, "AINEWS_DELIVERY__BACKEND": "memory"})
    monkeypatch.setattr(daemon, "_runtime",
                        daemon._RunningScheduler(config, threading.Event(), 0))
    running.stop()
    with caplog.at_level(logging.INFO, logger="ainews.schedule"):
        daemon.fire()
        daemon.retry_deferred()
        daemon.expire_unconfirmed()
    failures = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert [record.getMessage().split(":")[0] for record in failures] == [
        "scheduled run", "resume", "unconfirmed sign-ups"]
    assert all("is unreachable" in record.getMessage() and record.exc_info is None
               for record in failures)
    caplog.clear()

    running.start()
    with caplog.at_level(logging.INFO, logger="ainews.schedule"):
        daemon.fire()
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
    outcomes = pg_project.query("SELECT outcome FROM schedule_runs")
    assert len(outcomes) == 1 and outcomes[0][0] != "running"


def test_only_a_lost_or_refused_connection_counts_as_away() -> None:
    """SQLite's "database is locked" has its own busy wait, and a refusal (a constraint, a
    full disk) is not waited out: retrying it would only hide it."""
    import sqlite3

    import psycopg
    from sqlalchemy.exc import IntegrityError, OperationalError

    from ainews_newsletter.storage_faults import database_away

    def wrapped(error: Exception) -> OperationalError:
        return OperationalError("SELECT 1", {}, error)

    assert database_away(wrapped(psycopg.errors.AdminShutdown("terminating connection")))
    assert database_away(wrapped(psycopg.errors.CannotConnectNow("starting up")))
    assert database_away(wrapped(psycopg.OperationalError("connection refused")))
    assert not database_away(wrapped(sqlite3.OperationalError("database is locked")))
    assert not database_away(wrapped(psycopg.errors.DiskFull("no space")))
    assert not database_away(wrapped(psycopg.errors.QueryCanceled("statement timeout")))
    assert not database_away(IntegrityError("INSERT", {}, psycopg.errors.UniqueViolation()))


def test_the_waits_double_to_ten_seconds_and_stop_at_the_limit() -> None:
    """The retries' waits (no real sleeping): 0.5 s doubling, at most 10 s, none past
    reconnect_seconds; then one DatabaseAway naming the database, and after that no more
    waiting (the send is stopping)."""
    import psycopg
    from sqlalchemy.exc import OperationalError

    from ainews_newsletter.delivery import reconnect

    waits: list[float] = []
    clock = [0.0]

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock[0] += seconds

    def away() -> None:
        raise OperationalError("SELECT 1", {}, psycopg.OperationalError("refused"))

    retry = reconnect.Reconnect(40, "db.example:5432/ainews", sleep=sleep,
                                monotonic=lambda: clock[0])
    with pytest.raises(reconnect.DatabaseAway) as raised:
        retry.run(away)
    assert str(raised.value).startswith(
        "the database at db.example:5432/ainews has been unreachable for 40 s (refused)")
    assert waits == [0.5, 1, 2, 4, 8, 10, 10, 4.5]
    waits.clear()
    with pytest.raises(reconnect.DatabaseAway):
        retry.run(away)
    assert waits == []
    tries = iter([away, lambda: 7])
    assert reconnect.Reconnect(40, "x", sleep=sleep).run(lambda: next(tries)()) == 7
    assert waits == [0.5]  # away once, then through


def test_the_audience_snapshot_waits_out_a_restart(pg_project: Project,
                                                   running: Cluster) -> None:
    """The database stops inside a snapshot batch's transaction (while the batch asks who
    is still listed) and is back two seconds later: the batch is written again, whole, and
    the snapshot completes with every reader once."""
    from ainews_newsletter import clock
    from ainews_newsletter.config import load_config
    from ainews_newsletter.models import Window
    from ainews_newsletter.pipeline.issue import open_ledger, open_subscribers
    from ainews_newsletter.pipeline.send import freeze_issue, plan_send
    from ainews_newsletter.subscribers.queries import still_listed

    readers = _import(pg_project, 1000)
    assert pg_project.storage_url is not None
    config = load_config(pg_project.config_path,
                         environ={"AINEWS_STORAGE__URL": pg_project.storage_url})
    issue = freeze_issue(config, plan_send(config, Window(week="2026-W47")))
    recipients = list(open_subscribers(config).iter_recipients(batch_size=500))
    calls = [0]
    restarter: list[threading.Thread] = []

    def listed_across_a_restart(connection: Any, ids: Any) -> set[tuple[int, str]]:
        calls[0] += 1
        if calls[0] == 3:  # the third batch's transaction: the database goes
            running.stop()
            restarter.append(threading.Thread(target=lambda: (time.sleep(2),
                                                              running.start())))
            restarter[0].start()
        return still_listed(connection, ids)

    total = open_ledger(config).snapshot(issue.id, recipients, clock.now(), batch_size=100,
                                         still_listed=listed_across_a_restart)
    restarter[0].join(timeout=60)
    assert calls[0] == 11  # ten batches, the third one twice
    assert total == len(readers)
    assert pg_project.query("SELECT count(DISTINCT email) FROM deliveries") == [(1000,)]
    assert pg_project.query("SELECT snapshot_at IS NOT NULL FROM issues") == [(True,)]
