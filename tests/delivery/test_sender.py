"""Sending through a real SMTP server (aiosmtpd on 127.0.0.1): one message per subscriber,
one reused connection, a ledger that makes a second send a no-op, and retries by reply."""

from __future__ import annotations

import email
import email.policy
import fcntl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import IO

import pytest

from ainews_newsletter import clock
from ainews_newsletter.config import Config, load_config
from ainews_newsletter.delivery.transports import TransportUnavailable
from ainews_newsletter.models import DeliveryCounts, Window
from ainews_newsletter.pipeline.issue import open_subscribers
from ainews_newsletter.pipeline.send import execute_send, make_transport, plan_send, retry_failed
from tests.conftest import Project, SmtpServer

# Run again under libfaketime at awkward dates by scripts/test-clocks.
pytestmark = pytest.mark.clock

WEEK = "2026-W47"
W47 = Window(week=WEEK)


@pytest.fixture(params=["pipelining", "lockstep"])
def smtp_server(request: pytest.FixtureRequest, smtp_server: SmtpServer) -> SmtpServer:
    """Every test here runs twice: against a server offering PIPELINING (commands sent in
    one write) and one that does not (a command per round trip)."""
    smtp_server.handler.pipelining = request.param == "pipelining"
    return smtp_server


def _config(project: Project, port: int, smtp_timeout: float = 30, **delivery: int) -> Config:
    return load_config(project.config_path, environ={}, overrides={
        "smtp": {"host": "127.0.0.1", "port": port, "timeout": smtp_timeout},
        "delivery": delivery})


def _subscribe(config: Config, count: int) -> list[str]:
    store = open_subscribers(config)
    addresses = [f"reader{i}@example.com" for i in range(count)]
    for i, address in enumerate(addresses):
        store.add(address, name=f"Reader {i}")
    return addresses


def _send(config: Config) -> DeliveryCounts:
    return execute_send(config, plan_send(config, W47))


def test_one_message_per_active_subscriber_over_one_connection(
        project: Project, smtp_server: SmtpServer) -> None:
    config = _config(project, smtp_server.port)
    addresses = _subscribe(config, 5)
    open_subscribers(config).add("left@example.com")
    open_subscribers(config).unsubscribe("left@example.com")

    counts = _send(config)

    assert counts.as_dict() == {"issue": WEEK, "total": 5, "queued": 0, "sending": 0,
                                "sent": 5, "deferred": 0, "failed": 0}
    assert sorted(smtp_server.recipients()) == sorted(addresses)
    assert smtp_server.handler.connections == 1
    assert smtp_server.handler.resets == 4  # RSET between messages on the reused connection
    for received in smtp_server.handler.messages:
        message = received.message
        assert received.mail_from == "digest@news.example.org"
        assert message["To"].addresses[0].addr_spec == received.rcpt_tos[0]
        parts = [part.get_content_type() for part in message.iter_parts()]
        assert parts == ["text/plain", "text/html"]
        assert "Monday Chip News" in message["Subject"] or "Friday" in message["Subject"]
    ids = {received.message["Message-ID"] for received in smtp_server.handler.messages}
    assert len(ids) == 5


def test_second_send_of_the_same_issue_sends_nothing(
        project: Project, smtp_server: SmtpServer) -> None:
    config = _config(project, smtp_server.port)
    _subscribe(config, 3)
    _send(config)
    open_subscribers(config).add("late@example.com")  # after the snapshot

    plan = plan_send(config, W47)
    assert plan.pending == 0 and plan.existing is not None
    counts = execute_send(config, plan)

    assert counts.sent == 3 and counts.total == 3
    assert len(smtp_server.handler.messages) == 3


def test_row_is_committed_as_sending_before_the_server_sees_it(
        project: Project, smtp_server: SmtpServer) -> None:
    config = _config(project, smtp_server.port)
    _subscribe(config, 3)
    seen: list[str] = []

    def check_ledger(address: str) -> None:
        # Another connection to the same file: only committed data is visible.
        state = project.query("SELECT state FROM deliveries WHERE email = ?", address)
        seen.append(state[0][0])

    smtp_server.handler.on_rcpt = check_ledger
    _send(config)
    assert seen == ["sending", "sending", "sending"]


def test_5xx_fails_4xx_defers_and_is_retried_when_due(
        project: Project, smtp_server: SmtpServer) -> None:
    config = _config(project, smtp_server.port, retry_base_seconds=600)
    addresses = _subscribe(config, 4)
    smtp_server.handler.replies = {addresses[1]: "550 5.1.1 No such user",
                                   addresses[2]: "451 4.7.1 Greylisted, try later"}
    counts = _send(config)
    assert (counts.sent, counts.failed, counts.deferred) == (2, 1, 1)
    rows = dict(project.query("SELECT email, last_code FROM deliveries"))
    assert rows[addresses[1]] == 550 and rows[addresses[2]] == 451
    next_at = project.query("SELECT next_attempt_at FROM deliveries WHERE email = ?",
                            addresses[2])[0][0]
    assert next_at is not None

    smtp_server.handler.replies = {}
    again = _send(config)  # not yet due: nothing happens
    assert again.deferred == 1 and len(smtp_server.handler.messages) == 2

    later = clock.now() + timedelta(seconds=601)
    with clock.use_clock(clock.frozen(later)):
        final = _send(config)
    assert (final.sent, final.failed, final.deferred) == (3, 1, 0)
    assert smtp_server.recipients().count(addresses[2]) == 1
    assert addresses[1] not in smtp_server.recipients()  # a 5xx is never retried


def test_deferred_too_often_becomes_failed(project: Project, smtp_server: SmtpServer) -> None:
    config = _config(project, smtp_server.port, max_attempts=2, retry_base_seconds=1)
    (address,) = _subscribe(config, 1)
    smtp_server.handler.replies = {address: "452 4.2.2 Mailbox full"}
    assert _send(config).deferred == 1
    with clock.use_clock(clock.frozen(clock.now() + timedelta(seconds=5))):
        counts = _send(config)
    assert counts.failed == 1 and counts.deferred == 0
    assert project.query("SELECT attempts FROM deliveries") == [(2,)]


def test_421_drops_the_connection_and_the_next_message_reopens(
        project: Project, smtp_server: SmtpServer) -> None:
    config = _config(project, smtp_server.port)
    addresses = _subscribe(config, 4)
    smtp_server.handler.replies = {addresses[1]: "421 4.3.2 Closing connection"}
    counts = _send(config)
    assert (counts.sent, counts.deferred) == (3, 1)
    assert smtp_server.handler.connections == 2


def test_server_down_stops_the_send_and_loses_nobody(
        project: Project, smtp_server: SmtpServer, unused_port: int) -> None:
    down = _config(project, unused_port)
    addresses = _subscribe(down, 3)
    with pytest.raises(TransportUnavailable, match="cannot connect"):
        _send(down)
    assert project.query("SELECT DISTINCT state FROM deliveries") == [("queued",)]

    counts = _send(_config(project, smtp_server.port))  # the server is back: resume
    assert counts.sent == 3
    assert sorted(smtp_server.recipients()) == sorted(addresses)


def test_two_senders_at_once_mail_everyone_exactly_once(
        project: Project, smtp_server: SmtpServer) -> None:
    import threading

    config = _config(project, smtp_server.port)
    addresses = _subscribe(config, 10)
    smtp_server.handler.data_delay = 0.05  # slow server: both senders overlap for sure
    errors: list[BaseException] = []
    both_planned = threading.Barrier(2, timeout=30)

    def run() -> None:
        try:
            plan = plan_send(config, W47)
            both_planned.wait()  # start delivering together, as two cron runs would
            execute_send(config, plan)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sorted(smtp_server.recipients()) == sorted(addresses)  # nobody twice, nobody lost
    assert smtp_server.handler.connections == 2  # both really sent
    assert project.query("SELECT count(*) FROM issues") == [(1,)]


def _leave_in_flight(project: Project, unused_port: int, address: str) -> None:
    """What a killed process leaves behind: the issue frozen, a row claimed, its outcome
    unknown."""
    with pytest.raises(TransportUnavailable):  # freeze and snapshot; nothing sent
        _send(_config(project, unused_port))
    project.query("UPDATE deliveries SET state = 'sending', attempts = 1 WHERE email = ?",
                  address)


def test_alone_on_sqlite_a_dead_runs_row_is_resent_at_once(
        project: Project, smtp_server: SmtpServer, unused_port: int) -> None:
    config = _config(project, smtp_server.port, claim_timeout_seconds=300)
    addresses = _subscribe(config, 3)
    _leave_in_flight(project, unused_port, addresses[0])
    counts = _send(config)  # no other sender holds the lock: the old one is gone
    assert (counts.sent, counts.sending) == (3, 0)
    assert smtp_server.recipients().count(addresses[0]) == 1
    assert project.query("SELECT attempts FROM deliveries WHERE email = ?",
                         addresses[0]) == [(2,)]


@contextmanager
def _another_sender(project: Project) -> Iterator[IO[str]]:
    """A live sender, as `ainews send` announces itself: a shared lock on the send lock."""
    with (project.database.parent / "ainews.db.send-lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)
        yield lock


def test_with_another_sender_alive_its_claims_are_left_alone_whatever_the_clocks(
        project: Project, smtp_server: SmtpServer, unused_port: int) -> None:
    """On SQLite presence decides, not time: a live sender's claim is never taken, even by a
    process whose clock is a day ahead; once it is gone, its row goes at once, even by a
    process whose clock stepped back a day (earlier than the claim)."""
    # A send waits up to twice the SMTP timeout for another sender's message in flight.
    config = _config(project, smtp_server.port, smtp_timeout=0.5, claim_timeout_seconds=300)
    addresses = _subscribe(config, 3)
    _leave_in_flight(project, unused_port, addresses[0])
    with _another_sender(project):
        with clock.use_clock(clock.frozen(clock.now() + timedelta(days=1))):
            fresh = _send(config)
        assert (fresh.sent, fresh.sending) == (2, 1)
        assert addresses[0] not in smtp_server.recipients()
    with clock.use_clock(clock.frozen(clock.now() - timedelta(days=1))):
        after = _send(config)
    assert (after.sent, after.sending) == (3, 0)
    assert smtp_server.recipients().count(addresses[0]) == 1


def test_a_symlinked_database_shares_the_sender_lock(
        project: Project, smtp_server: SmtpServer, unused_port: int) -> None:
    """Two senders reaching one database through different paths see each other."""
    config = _config(project, smtp_server.port)
    addresses = _subscribe(config, 2)
    _leave_in_flight(project, unused_port, addresses[0])
    link = project.database.with_name("link.db")
    link.symlink_to(project.database)
    through_link = load_config(project.config_path, environ={}, overrides={
        "smtp": {"host": "127.0.0.1", "port": smtp_server.port, "timeout": 0.5},
        "storage": {"url": f"sqlite:///{link}"}})
    with _another_sender(project):
        counts = _send(through_link)
    assert (counts.sent, counts.sending) == (1, 1)  # the live sender's row left alone
    assert addresses[0] not in smtp_server.recipients()


def test_a_sender_outliving_the_other_finishes_its_orphaned_rows(
        project: Project, smtp_server: SmtpServer, unused_port: int) -> None:
    """The other sender dies while this one runs: at the end this one finds itself alone and
    sends the dead one's row instead of leaving it for a resume."""
    config = _config(project, smtp_server.port)
    addresses = _subscribe(config, 3)
    _leave_in_flight(project, unused_port, addresses[0])
    with _another_sender(project) as lock:
        # The other sender's lock goes when our first message arrives: it died mid-send.
        smtp_server.handler.on_rcpt = lambda _address: fcntl.flock(lock, fcntl.LOCK_UN)
        counts = _send(config)
    assert (counts.sent, counts.sending) == (3, 0)
    assert sorted(smtp_server.recipients()) == sorted(addresses)


def test_a_send_waits_for_the_other_senders_message_in_flight(
        project: Project, smtp_server: SmtpServer, unused_port: int) -> None:
    """Two healthy senders share an issue: the one that runs out of rows first waits for the
    other's message in flight to be recorded instead of reporting the send unfinished."""
    config = _config(project, smtp_server.port)
    addresses = _subscribe(config, 3)
    _leave_in_flight(project, unused_port, addresses[0])
    def record_later() -> None:
        time.sleep(0.5)  # not threading.Timer: it hangs under libfaketime
        project.query("UPDATE deliveries SET state = 'sent' WHERE email = ?", addresses[0])

    def the_other_records_its_message(address: str) -> None:
        if address == addresses[2]:  # our last message: the other's lands a bit later
            threading.Thread(target=record_later).start()

    with _another_sender(project):
        smtp_server.handler.on_rcpt = the_other_records_its_message
        counts = _send(config)
    assert (counts.sent, counts.sending) == (3, 0)
    assert addresses[0] not in smtp_server.recipients()  # the other sender's, not ours


def test_unsubscribe_after_the_snapshot_is_honoured(
        project: Project, smtp_server: SmtpServer, unused_port: int) -> None:
    config = _config(project, smtp_server.port)
    addresses = _subscribe(config, 3)
    with pytest.raises(TransportUnavailable):
        _send(_config(project, unused_port))  # snapshot taken, server down
    open_subscribers(config).unsubscribe(addresses[1])

    counts = _send(config)
    assert addresses[1] not in smtp_server.recipients()
    assert (counts.sent, counts.failed) == (2, 1)
    assert project.query("SELECT last_reply FROM deliveries WHERE email = ?", addresses[1]) == [
        ("not sent: no longer an active subscriber",)]


def test_sender_refused_stops_the_send_instead_of_failing_everyone(
        project: Project, smtp_server: SmtpServer) -> None:
    config = _config(project, smtp_server.port)
    _subscribe(config, 3)
    smtp_server.handler.mail_reply = "530 5.7.0 Authentication required"
    with pytest.raises(TransportUnavailable, match=r"refused the sender .* 530"):
        _send(config)
    assert project.query("SELECT DISTINCT state FROM deliveries") == [("queued",)]


def test_only_the_reply_to_data_can_mark_a_row_sent(
        project: Project, smtp_server: SmtpServer) -> None:
    config = _config(project, smtp_server.port)
    _subscribe(config, 1)
    smtp_server.handler.mail_reply = "251 odd but not an error"
    counts = _send(config)
    assert (counts.sent, counts.deferred) == (0, 1)
    assert smtp_server.handler.messages == []


def test_connection_lost_after_data_defers_instead_of_resending_at_once(
        project: Project, smtp_server: SmtpServer) -> None:
    config = _config(project, smtp_server.port)
    (address,) = _subscribe(config, 1)
    smtp_server.handler.drop_after_data = True
    counts = _send(config)
    assert counts.deferred == 1
    assert smtp_server.recipients() == [address]  # the server has it once, not twice
    assert "connection lost during DATA" in project.query("SELECT last_reply FROM deliveries")[0][0]


def test_renaming_the_newsletter_does_not_send_a_week_again(
        project: Project, smtp_server: SmtpServer) -> None:
    _subscribe(_config(project, smtp_server.port), 2)
    _send(_config(project, smtp_server.port))
    project.write_config()
    project.config_path.write_text(project.config_path.read_text().replace(
        'name = "Test Digest"', 'name = "Renamed Digest"'))
    renamed = _config(project, smtp_server.port)
    plan = plan_send(renamed, W47)
    assert plan.pending == 0 and plan.existing is not None
    assert len(smtp_server.handler.messages) == 2


def test_international_domain_is_sent_in_ascii(project: Project, smtp_server: SmtpServer) -> None:
    config = _config(project, smtp_server.port)
    store = open_subscribers(config)
    added = store.add("anna@bücher.example")
    assert added.email == "anna@xn--bcher-kva.example"
    _send(config)
    assert smtp_server.recipients() == ["anna@xn--bcher-kva.example"]


@pytest.mark.parametrize("reply", ["452 4.5.3 Too many recipients",
                                   "454 4.7.0 Temporary throttling, slow down"])
def test_452_and_454_defer(project: Project, smtp_server: SmtpServer, reply: str) -> None:
    config = _config(project, smtp_server.port)
    addresses = _subscribe(config, 2)
    smtp_server.handler.replies = {addresses[0]: reply}
    counts = _send(config)
    assert (counts.sent, counts.deferred) == (1, 1)
    assert project.query("SELECT last_code FROM deliveries WHERE email = ?",
                         addresses[0]) == [(int(reply[:3]),)]


def test_connection_dropped_before_data_is_retried_at_once(
        project: Project, smtp_server: SmtpServer) -> None:
    """Dropped before the message went out: nothing was handed over, so the sender reopens
    and sends it straight away, once."""
    config = _config(project, smtp_server.port)
    addresses = _subscribe(config, 2)
    smtp_server.handler.drop_at_rcpt_once = True
    counts = _send(config)
    assert counts.sent == 2
    assert sorted(smtp_server.recipients()) == sorted(addresses)
    assert smtp_server.handler.connections == 2


@pytest.mark.parametrize("workers", [1, 2], ids=["threads", "processes"])
def test_parallel_connections_share_the_issue_without_duplicates(
        project: Project, smtp_server: SmtpServer, workers: int) -> None:
    config = load_config(project.config_path, environ={}, overrides={
        "smtp": {"host": "127.0.0.1", "port": smtp_server.port, "connections": 3,
                 "workers": workers}})
    addresses = _subscribe(config, 30)
    smtp_server.handler.data_delay = 0.02
    counts = _send(config)
    assert counts.sent == 30
    assert sorted(smtp_server.recipients()) == sorted(addresses)  # each exactly once
    assert smtp_server.handler.connections == 3


@pytest.mark.parametrize("workers", [1, 2], ids=["threads", "processes"])
def test_one_failing_connection_stops_them_all_and_loses_nobody(
        project: Project, smtp_server: SmtpServer, unused_port: int, workers: int) -> None:
    down = load_config(project.config_path, environ={}, overrides={
        "smtp": {"host": "127.0.0.1", "port": unused_port, "connections": 3,
                 "workers": workers}})
    _subscribe(down, 9)
    with pytest.raises(TransportUnavailable):
        _send(down)
    assert project.query("SELECT DISTINCT state FROM deliveries") == [("queued",)]


@pytest.fixture
def busy_once(smtp_server: SmtpServer) -> Iterator[int]:
    """A port in front of the SMTP server whose first connection is greeted "421 busy" and
    closed; later connections are relayed to the real server."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    done = threading.Event()
    greeted = threading.Event()

    def pipe(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            target.close()

    def serve() -> None:
        while not done.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            if not greeted.is_set():
                greeted.set()
                client.sendall(b"421 4.3.2 Too busy, try again later\r\n")
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", smtp_server.port))
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=pipe, args=(source, target), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        done.set()
        thread.join(timeout=5)
        listener.close()


def test_421_at_connect_then_ok(project: Project, smtp_server: SmtpServer,
                                busy_once: int) -> None:
    config = _config(project, busy_once)
    addresses = _subscribe(config, 2)
    counts = _send(config)
    assert counts.sent == 2
    assert sorted(smtp_server.recipients()) == sorted(addresses)


def test_rate_limiter_hourly_quota_and_spacing_with_a_fake_clock() -> None:
    from ainews_newsletter.delivery.pacing import RateLimiter

    now = [1000.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(rate_per_second=2, max_per_hour=3, clock_=lambda: now[0], sleep=sleep)
    for _ in range(3):
        assert limiter.wait()
    assert now[0] == pytest.approx(1001.0)  # two gaps of 0.5 s between three messages
    assert limiter.wait()  # the fourth waits for the first one's hour to pass
    assert now[0] == pytest.approx(1000.0 + 3600.0)
    stopped = RateLimiter(rate_per_second=0, max_per_hour=1, clock_=lambda: now[0],
                          sleep=sleep)
    assert stopped.wait()
    assert stopped.wait(stop=lambda: True) is False  # a stop is not held up by the quota


def test_max_per_hour_through_a_send(project: Project, smtp_server: SmtpServer) -> None:
    """With a quota of 2 an hour, the third message waits (an hour); a stop a second after
    the second message arrived finds two sent and the rest still queued, not `sending`.
    Without the quota the other two would go in that second. (The stop is counted from the
    second message, not from the start: on a loaded machine two messages may take longer
    than any fixed time.)"""
    import time

    config = load_config(project.config_path, environ={}, overrides={
        "smtp": {"host": "127.0.0.1", "port": smtp_server.port, "max_per_hour": 2}})
    _subscribe(config, 4)
    plan = plan_send(config, W47)
    started = time.monotonic()
    second_arrived: list[float] = []

    def stop() -> bool:
        if time.monotonic() - started > 300:  # a bound, so a broken sender cannot hang
            return True
        if len(smtp_server.handler.messages) < 2:
            return False
        second_arrived[:] = second_arrived or [time.monotonic()]
        return time.monotonic() - second_arrived[0] > 1

    counts = execute_send(config, plan, should_stop=stop)
    assert (counts.sent, counts.queued, counts.sending) == (2, 2, 0)
    assert len(smtp_server.handler.messages) == 2


def test_memory_backend_keeps_each_message_and_scripted_replies_count(
        project: Project) -> None:
    from ainews_newsletter.delivery.transports import MemoryTransport

    config = load_config(project.config_path, environ={},
                         overrides={"delivery": {"backend": "memory"}})
    addresses = _subscribe(config, 4)
    assert isinstance(make_transport(config), MemoryTransport)
    outbox: list[tuple[str, str, bytes]] = []
    transport = MemoryTransport(outbox, replies={addresses[2]: (550, "5.1.1 no such user")})
    counts = execute_send(config, plan_send(config, W47), transport=transport)
    assert (counts.sent, counts.failed) == (3, 1)
    assert sorted(recipient for _, recipient, _ in outbox) == sorted(
        a for a in addresses if a != addresses[2])
    assert all(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in raw
               for _, _, raw in outbox)
    assert project.query("SELECT last_code FROM deliveries WHERE email = ?",
                         addresses[2]) == [(550,)]


def test_an_internationalized_address_goes_with_smtputf8_or_fails_alone(
        project: Project, smtp_server: SmtpServer) -> None:
    """RFC 6531: "ömil@example.com" is stored as typed and sent with MAIL FROM … SMTPUTF8
    to a server that offers it (the To: header in UTF-8); a server that does not fails only
    that row, saying why."""
    config = _config(project, smtp_server.port)
    store = open_subscribers(config)
    store.add("plain@example.com")
    stored = store.add("Ömil@Example.com", name="Ömil Ünal")
    assert stored.email == "Ömil@example.com"
    smtp_server.handler.smtputf8 = False  # a relay without RFC 6531
    counts = _send(config)
    assert (counts.sent, counts.failed) == (1, 1)
    assert smtp_server.recipients() == ["plain@example.com"]
    [(reply,)] = project.query("SELECT last_reply FROM deliveries WHERE state = 'failed'")
    assert "does not offer SMTPUTF8" in reply and "Ömil@example.com" in reply
    smtp_server.handler.smtputf8 = True
    assert retry_failed(config, WEEK) == 1
    again = _send(config)
    assert (again.sent, again.failed) == (2, 0)
    received = smtp_server.handler.messages[-1]
    assert received.rcpt_tos == ["Ömil@example.com"]
    assert "SMTPUTF8" in [option.upper() for option in received.mail_options]
    # Headers in raw UTF-8 (RFC 6532): a reader decodes the message as UTF-8 text.
    message = email.message_from_string(received.data.decode("utf-8"),
                                        policy=email.policy.default)
    to = message["To"].addresses[0]
    assert (to.addr_spec, to.display_name) == ("Ömil@example.com", "Ömil Ünal")
