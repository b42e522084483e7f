"""Connections spread over worker processes ([smtp] workers): the workers build and send,
the sending process alone claims and records. The same guarantees as the threaded sender:
everyone once, nothing left `sending` after a stop, a dead worker or a killed parent costs at
most the messages on the wire, and the shared rate limit still holds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ainews_newsletter.config import Config, load_config
from ainews_newsletter.delivery.transports import SmtpTransport, Transport
from ainews_newsletter.errors import DeliveryError
from ainews_newsletter.models import SendOutcome, Window
from ainews_newsletter.pipeline.issue import audience_list, open_ledger, open_subscribers
from ainews_newsletter.pipeline.send import execute_send, plan_send, send_settings
from tests.conftest import Project, SmtpServer, smtp_env

pytestmark = pytest.mark.clock

W47 = Window(week="2026-W47")


def _config(project: Project, server: SmtpServer, connections: int, workers: int,
            **smtp: Any) -> Config:
    overrides: dict[str, Any] = {
        "smtp": {"host": "127.0.0.1", "port": server.port, "connections": connections,
                 "workers": workers, **smtp}}
    if project.storage_url is not None:
        overrides["storage"] = {"url": project.storage_url}
    return load_config(project.config_path, environ={}, overrides=overrides)


def _subscribe(config: Config, count: int) -> list[str]:
    store = open_subscribers(config)
    addresses = [f"reader{i:03d}@example.com" for i in range(count)]
    for address in addresses:
        store.add(address)
    return addresses


def _states(project: Project) -> dict[str, int]:
    return dict(project.query("SELECT state, count(*) FROM deliveries GROUP BY state"))


def test_worker_processes_mail_everyone_exactly_once(any_project: Project,
                                                     smtp_server: SmtpServer) -> None:
    """SQLite (claims read in batches) and PostgreSQL (SKIP LOCKED claims) alike."""
    config = _config(any_project, smtp_server, connections=4, workers=2)
    addresses = _subscribe(config, 60)
    smtp_server.handler.data_delay = 0.005
    counts = execute_send(config, plan_send(config, W47))
    assert (counts.sent, counts.sending, counts.queued) == (60, 0, 0)
    assert sorted(smtp_server.recipients()) == sorted(addresses)  # each exactly once
    assert smtp_server.handler.connections == 4
    assert _states(any_project) == {"sent": 60}


class _PidRecording:
    """A transport factory that notes which process made each transport."""

    def __init__(self, folder: Path, config: Config) -> None:
        self.folder, self.config = folder, config

    def __call__(self) -> Transport:
        (self.folder / f"{os.getpid()}-{time.monotonic_ns()}").touch()
        return SmtpTransport(self.config.smtp)


def test_connections_live_in_other_processes(project: Project, smtp_server: SmtpServer,
                                             tmp_path: Path) -> None:
    from ainews_newsletter.delivery.thread_sender import deliver

    config = _config(project, smtp_server, connections=4, workers=2)
    _subscribe(config, 20)
    plan = plan_send(config, W47)
    execute_send(config, plan, should_stop=lambda: True)  # freeze and snapshot
    ledger = open_ledger(config)
    issue = ledger.find_issue(audience_list(config), plan.period_key)
    assert issue is not None and ledger.counts(issue.id).queued == 20
    made = tmp_path / "made"
    made.mkdir()
    counts = deliver(issue, ledger, _PidRecording(made, config), config.newsletter,
                     send_settings(config), connections=4, workers=2)
    assert counts.sent == 20
    pids = Counter(name.name.split("-")[0] for name in made.iterdir())
    assert str(os.getpid()) not in pids  # no connection in the sending process
    assert sorted(pids.values()) == [2, 2]  # four connections over two workers


def test_a_stop_finishes_what_is_out_and_leaves_the_rest_queued(
        project: Project, smtp_server: SmtpServer) -> None:
    config = _config(project, smtp_server, connections=3, workers=3)
    addresses = _subscribe(config, 80)
    smtp_server.handler.data_delay = 0.02
    counts = execute_send(config, plan_send(config, W47),
                          should_stop=lambda: len(smtp_server.handler.messages) >= 10)
    assert counts.sending == 0
    assert 10 <= counts.sent < 80 and counts.sent + counts.queued == 80
    assert counts.sent == len(smtp_server.handler.messages)  # every message sent is recorded
    resumed = execute_send(config, plan_send(config, W47))
    assert resumed.sent == 80
    assert sorted(smtp_server.recipients()) == sorted(addresses)  # the rest, once each


def test_a_refusing_server_pauses_the_send_with_nothing_left_sending(
        project: Project, smtp_server: SmtpServer) -> None:
    config = load_config(project.config_path, environ={}, overrides={
        "smtp": {"host": "127.0.0.1", "port": smtp_server.port, "connections": 2,
                 "workers": 2},
        "delivery": {"error_threshold": 0.5, "error_window": 10}})
    addresses = _subscribe(config, 60)
    for address in addresses:
        smtp_server.handler.replies[address] = "451 4.3.0 try later"
    with pytest.raises(DeliveryError, match="paused"):
        execute_send(config, plan_send(config, W47))
    states = _states(project)
    assert "sending" not in states
    assert states["deferred"] >= 10 and states.get("queued", 0) > 0  # stopped early
    assert sum(states.values()) == 60


def test_the_hourly_quota_is_shared_by_worker_processes(project: Project,
                                                        smtp_server: SmtpServer) -> None:
    """Quota 3 an hour over two workers: three go, the rest wait (an hour); a stop after
    2 s finds them queued, not `sending`."""
    config = _config(project, smtp_server, connections=2, workers=2, max_per_hour=3)
    _subscribe(config, 8)
    started = time.monotonic()
    counts = execute_send(config, plan_send(config, W47),
                          should_stop=lambda: time.monotonic() - started > 2)
    assert (counts.sent, counts.queued, counts.sending) == (3, 5, 0)
    assert len(smtp_server.handler.messages) == 3


class _KillsItsWorker:
    """A transport whose worker process dies (SIGKILL) when it is handed `victim`."""

    def __init__(self, config: Config, victim: str) -> None:
        self.inner, self.victim = SmtpTransport(config.smtp), victim

    def describe(self) -> str:
        return self.inner.describe()

    def send(self, envelope_from: str, recipient: str, message: bytes) -> SendOutcome:
        if recipient == self.victim:
            os.kill(os.getpid(), signal.SIGKILL)
        return self.inner.send(envelope_from, recipient, message)

    def close(self) -> None:
        self.inner.close()


def test_a_dead_worker_stops_the_send_and_loses_nobody(
        project: Project, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(project, smtp_server, connections=2, workers=2)
    addresses = _subscribe(config, 40)
    victim = addresses[15]
    monkeypatch.setattr("ainews_newsletter.pipeline.send.make_transport",
                        lambda cfg: _KillsItsWorker(cfg, victim))
    with pytest.raises(DeliveryError, match="worker process ended unexpectedly"):
        execute_send(config, plan_send(config, W47))
    # Its rows out stay `sending` (whether the one on the wire went is unknown) ...
    assert project.query("SELECT count(*) FROM deliveries WHERE state = 'sending'") != [(0,)]
    assert victim not in smtp_server.recipients()
    monkeypatch.undo()
    # ... and the next send, alone, gives them back and finishes everyone.
    counts = execute_send(config, plan_send(config, W47))
    assert counts.sent == 40
    received = Counter(smtp_server.recipients())
    assert set(received) == set(addresses) and received[victim] == 1


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_kill_9_of_the_sender_ends_its_workers_and_loses_nobody(
        project: Project, smtp_server: SmtpServer) -> None:
    """Ten kill -9 of `ainews send` with three connections in two workers: the orphaned
    workers stop by themselves, nobody is lost, and each kill costs at most one duplicate
    per connection (the messages on the wire)."""
    readers = project.import_readers(300)
    smtp_server.handler.data_delay = 0.005
    env = {**os.environ, **smtp_env(smtp_server), "AINEWS_LINT__SPAMASSASSIN": "false",
           "AINEWS_SMTP__CONNECTIONS": "3", "AINEWS_SMTP__WORKERS": "2"}
    command = [sys.executable, "-m", "ainews_newsletter", "--config",
               str(project.config_path), "send", "--yes", "--week", "2026-W47"]

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)

    kills = 0
    for round_ in range(10):
        process = start()
        deadline = time.monotonic() + 30
        before = len(smtp_server.handler.messages)
        while len(smtp_server.handler.messages) < before + 3 + round_:
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "the sender never got going"
            time.sleep(0.01)
        workers = _children(process.pid)
        assert len(workers) == 2
        process.kill()
        process.wait()
        kills += 1
        deadline = time.monotonic() + 30  # the orphans notice and stop
        while any(_alive(pid) for pid in workers):
            assert time.monotonic() < deadline, "orphaned workers kept running"
            time.sleep(0.02)
    final = start()
    _, stderr = final.communicate(timeout=120)
    assert final.returncode == 0, stderr
    received = Counter(smtp_server.recipients())
    assert set(received) == set(readers)  # nobody lost
    duplicates = sum(count - 1 for count in received.values())
    assert duplicates <= kills * 3
    assert project.query("SELECT DISTINCT state FROM deliveries") == [("sent",)]


def test_a_rate_limited_send_waits_for_its_slots_instead_of_ending(
        project: Project, smtp_server: SmtpServer) -> None:
    """Lanes sit empty between slots while rows are still due: the send goes on."""
    config = _config(project, smtp_server, connections=2, workers=2, rate_per_second=20)
    addresses = _subscribe(config, 10)
    counts = execute_send(config, plan_send(config, W47))
    assert (counts.sent, counts.queued, counts.sending) == (10, 0, 0)
    assert sorted(smtp_server.recipients()) == sorted(addresses)


def test_a_ledger_failure_mid_send_stops_it_instead_of_hanging(
        project: Project, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The answers in the failed commit stay `sending` (resent later: at-least-once), the
    workers waiting to hear about them are let go, and the error comes out."""
    import threading

    from ainews_newsletter.delivery.claims import LedgerWriter

    config = _config(project, smtp_server, connections=2, workers=2)
    addresses = _subscribe(config, 30)
    smtp_server.handler.data_delay = 0.01
    record = LedgerWriter.record
    calls = [0]

    def failing(self: LedgerWriter, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == 5:
            raise OSError(28, "No space left on device")
        return record(self, *args, **kwargs)

    monkeypatch.setattr(LedgerWriter, "record", failing)
    raised: list[BaseException] = []

    def send() -> None:
        try:
            execute_send(config, plan_send(config, W47))
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while thread.is_alive():
        assert time.monotonic() < deadline, "the send hung after the ledger failed"
        time.sleep(0.05)
    assert len(raised) == 1 and "No space left" in str(raised[0])
    monkeypatch.undo()
    counts = execute_send(config, plan_send(config, W47))
    assert counts.sent == 30
    received = Counter(smtp_server.recipients())
    assert set(received) == set(addresses)  # nobody lost
    assert sum(count - 1 for count in received.values()) <= 2  # the answers in that commit


def test_records_read_off_a_pipe_are_what_was_sent_however_they_arrive() -> None:
    """The parent and the workers read each other's records with RecordReader (one system
    call per record, not Connection.recv's two): records that arrive together, split, or
    larger than one read come out whole and in order, and a closed end is EOFError, as
    with recv."""
    import multiprocessing
    import pickle
    import threading

    from ainews_newsletter.delivery.worker_process import RecordReader

    mine, theirs = multiprocessing.get_context("fork").Pipe(duplex=True)
    reader = RecordReader(mine)
    together: list[Any] = [(1, "sent", 250, "ok", None), (True, None), None]
    for record in together:  # all three sent before any is read
        theirs.send(record)
    assert [reader.read() for _ in together] == together
    split = (2, "deferred", 451, "4.2.0 try later", "backup")
    pickled = pickle.dumps(split)
    framed = len(pickled).to_bytes(4, "big") + pickled
    os.write(theirs.fileno(), framed[:3])  # not even the whole length yet

    def rest() -> None:
        time.sleep(0.05)
        os.write(theirs.fileno(), framed[3:])

    later = threading.Thread(target=rest)
    later.start()
    assert reader.read() == split
    later.join()
    large = (3, "failed", 550, "5.7.1 " + "refused; " * 50_000, None)  # beyond one read
    sender = threading.Thread(target=lambda: theirs.send_bytes(pickle.dumps(large)))
    sender.start()
    assert reader.read() == large
    sender.join()
    theirs.close()
    with pytest.raises(EOFError):
        reader.read()
    mine.close()
