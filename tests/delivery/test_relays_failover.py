"""Several relays ([[smtp.relays]]): a relay that stops answering passes its messages to the
next; every reader gets the issue once (a duplicate only for a message in flight when a
connection was lost after DATA), counted from what the aiosmtpd relays received and from the
ledger, whose `relay` column names who took each row. The thread path (one connection) and
the worker-process path (4 connections in 2 workers), SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest

from ainews_newsletter.config import Config, load_config
from ainews_newsletter.delivery.capture import EphemeralPortController
from ainews_newsletter.delivery.relay_chain import RelayChain
from ainews_newsletter.delivery.transports import SmtpTransport, TransportUnavailable
from ainews_newsletter.errors import ConfigError
from ainews_newsletter.models import Window
from ainews_newsletter.pipeline.issue import open_subscribers
from ainews_newsletter.pipeline.send import execute_send, make_transport, plan_send
from tests.conftest import Project, RecordingHandler, SmtpServer, running_smtp_server
from tests.delivery.test_workers import _subscribe

pytestmark = pytest.mark.clock

W47 = Window(week="2026-W47")
# (connections, workers): one connection in this process; four spread over two processes.
PATHS = [pytest.param((1, 1), id="threads"), pytest.param((4, 2), id="processes")]


def _relay(name: str, port: int, **keys: Any) -> dict[str, Any]:
    return {"name": name, "host": "127.0.0.1", "port": port, **keys}


def _config(project: Project, relays: list[dict[str, Any]], path: tuple[int, int] = (1, 1),
            environ: dict[str, str] | None = None, delivery: dict[str, Any] | None = None,
            **smtp: Any) -> Config:
    connections, workers = path
    overrides: dict[str, Any] = {"smtp": {"relays": relays, "connections": connections,
                                          "workers": workers, **smtp},
                                 "delivery": delivery or {}}
    if project.storage_url is not None:
        overrides["storage"] = {"url": project.storage_url}
    return load_config(project.config_path, environ=environ or {}, overrides=overrides)


def _after_ten_recipients(server: SmtpServer, action: Callable[[], None]) -> None:
    """Run `action` once, when the server has seen its tenth RCPT."""
    seen = 0
    lock = threading.Lock()

    def count(address: str) -> None:
        nonlocal seen
        with lock:
            seen += 1
            if seen == 10:
                action()

    server.handler.on_rcpt = count


def _by_relay(project: Project) -> dict[str, set[str]]:
    """The ledger: which relay each sent row names."""
    rows = project.query("SELECT relay, email FROM deliveries WHERE state = 'sent'")
    named: dict[str, set[str]] = {}
    for relay, email in rows:
        named.setdefault(str(relay), set()).add(email)
    return named


@contextmanager
def _stoppable_server() -> Iterator[tuple[SmtpServer, Callable[[], None]]]:
    """aiosmtpd on 127.0.0.1 and a function stopping it (once) mid-send."""
    handler = RecordingHandler()
    controller = EphemeralPortController(handler, hostname="127.0.0.1", port=0)
    controller.start()
    lock = threading.Lock()
    stopped = False

    def stop() -> None:
        nonlocal stopped
        with lock:
            if stopped:
                return
            stopped = True
        controller.stop()

    try:
        yield SmtpServer(handler, controller.port), stop
    finally:
        stop()


@pytest.mark.parametrize("path", PATHS)
def test_a_relay_down_before_the_send_passes_everyone_to_the_next(
        any_project: Project, unused_port: int, path: tuple[int, int]) -> None:
    with running_smtp_server() as second:
        config = _config(any_project, [_relay("first", unused_port),
                                       _relay("second", second.port)], path)
        addresses = _subscribe(config, 40)
        counts = execute_send(config, plan_send(config, W47))
        assert (counts.sent, counts.queued, counts.sending) == (40, 0, 0)
        assert sorted(second.recipients()) == sorted(addresses)  # each exactly once
        assert _by_relay(any_project) == {"second": set(addresses)}


@pytest.mark.parametrize("path", PATHS)
def test_a_relay_answering_421_mid_send_hands_the_rest_on(any_project: Project,
                                                          path: tuple[int, int]) -> None:
    """From the 10th message the first relay answers 421 (closing): that message and the
    ones after go through the second, none is lost and none goes twice (a 421 is a refusal:
    the first relay never took the message)."""
    with running_smtp_server() as first, running_smtp_server() as second:
        config = _config(any_project, [_relay("first", first.port),
                                       _relay("second", second.port)], path)
        addresses = _subscribe(config, 40)
        def closing() -> None:
            first.handler.replies = {a: "421 4.3.2 shutting down" for a in addresses}

        _after_ten_recipients(first, closing)
        counts = execute_send(config, plan_send(config, W47))
        assert (counts.sent, counts.queued, counts.sending, counts.deferred) == (40, 0, 0, 0)
        received = Counter(first.recipients() + second.recipients())
        assert received == Counter(addresses)  # 0 lost, 0 twice
        assert 0 < len(first.recipients()) < 10 + path[0]
        ledger = _by_relay(any_project)
        assert ledger == {"first": set(first.recipients()), "second": set(second.recipients())}


@pytest.mark.parametrize("path", PATHS)
def test_a_relay_stopped_mid_send_loses_nobody(project: Project,
                                               path: tuple[int, int]) -> None:
    """The first relay's server is stopped after 10 messages, connections cut wherever they
    are: a message cut after DATA may have arrived and is recorded deferred (to be sent
    again: the duplicates the contract allows, at most one per connection); every other
    reader is sent exactly once, through one relay or the other."""
    with _stoppable_server() as (first, stop), running_smtp_server() as second:
        config = _config(project, [_relay("first", first.port, timeout=5),
                                   _relay("second", second.port)], path)
        addresses = _subscribe(config, 40)
        first.handler.data_delay = 0.01
        # Not from the server's own loop:
        _after_ten_recipients(first, lambda: threading.Thread(target=stop).start())
        counts = execute_send(config, plan_send(config, W47))
        assert counts.queued == counts.sending == counts.failed == 0
        assert counts.sent + counts.deferred == 40
        assert counts.deferred <= path[0]  # only a message in flight per connection
        received = Counter(first.recipients() + second.recipients())
        sent = {email for (email,) in project.query(
            "SELECT email FROM deliveries WHERE state = 'sent'")}
        assert all(received[address] == 1 for address in sent)  # sent ones: exactly once
        assert set(received) <= set(addresses) and max(received.values()) == 1
        assert set(received) >= sent  # nobody recorded sent that no relay got
        assert first.recipients() and second.recipients()
        assert _by_relay(project)["second"] == set(second.recipients())


def test_every_relay_down_stops_the_send_resumably(project: Project,
                                                   unused_port: int) -> None:
    """No relay answers: one line naming each, exit 1, every row still queued; once a relay
    is back `send --resume` mails everyone once."""
    project.write_config(f"""
        [[smtp.relays]]
        name = "first"
        host = "127.0.0.1"
        port = {unused_port}

        [[smtp.relays]]
        host = "127.0.0.1"
        port = {unused_port}
        name = "second"
        """)
    addresses = project.import_readers(12)
    result = project.run("send", "--week", "2026-W47", "--yes")
    assert result.exit_code == 1
    assert "every relay is down" in result.stderr and "first:" in result.stderr
    assert "second:" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert project.query("SELECT state, count(*) FROM deliveries GROUP BY state") == [
        ("queued", 12)]
    with running_smtp_server() as back:
        project.write_config(f"""
            [[smtp.relays]]
            name = "first"
            host = "127.0.0.1"
            port = {unused_port}

            [[smtp.relays]]
            name = "second"
            host = "127.0.0.1"
            port = {back.port}
            """)
        assert project.run("send", "--resume", "--yes").exit_code == 0
        assert sorted(back.recipients()) == sorted(addresses)
    assert _by_relay(project) == {"second": set(addresses)}


def test_the_first_relay_is_tried_again_after_failback_seconds(project: Project) -> None:
    """One 421 from the first relay sends the messages to the second; once failback_seconds
    (0.3 s here) have passed the first takes them again. The second answers slowly (0.1 s a
    message), so 30 messages outlast the failback whatever the machine's speed."""
    with running_smtp_server() as first, running_smtp_server() as second:
        config = _config(project, [_relay("first", first.port),
                                   _relay("second", second.port)], failback_seconds=0.3)
        addresses = _subscribe(config, 30)
        first.handler.replies = {addresses[3]: "421 4.3.2 try later"}
        second.handler.data_delay = 0.1
        counts = execute_send(config, plan_send(config, W47))
        assert counts.sent == 30
        assert Counter(first.recipients() + second.recipients()) == Counter(addresses)
        assert first.recipients()[:3] == addresses[:3]
        assert second.recipients()[0] == addresses[3]  # the refused one, on the second
        assert addresses[-1] in first.recipients()  # back on the first after failback


@pytest.mark.parametrize("path", PATHS)
def test_a_relays_hourly_quota_holds_and_the_next_takes_the_rest(
        project: Project, path: tuple[int, int]) -> None:
    with running_smtp_server() as first, running_smtp_server() as second:
        config = _config(project, [_relay("first", first.port, max_per_hour=6),
                                   _relay("second", second.port)], path)
        addresses = _subscribe(config, 30)
        counts = execute_send(config, plan_send(config, W47))
        assert counts.sent == 30
        assert Counter(first.recipients() + second.recipients()) == Counter(addresses)
        assert 1 <= len(first.recipients()) <= 6  # the quota held, across processes too
        assert len(_by_relay(project)["first"]) == len(first.recipients())


def test_one_smtp_relay_is_unchanged(project: Project, smtp_server: SmtpServer) -> None:
    """No relays list: the one [smtp] relay, its transport, and no relay named in the
    ledger (what was written before relays)."""
    project.write_config(f"""
        [smtp]
        host = "127.0.0.1"
        port = {smtp_server.port}
        """)
    addresses = project.import_readers(5)
    config = load_config(project.config_path, environ={})
    assert type(make_transport(config)) is SmtpTransport
    assert project.run("send", "--week", "2026-W47", "--yes").exit_code == 0
    assert sorted(smtp_server.recipients()) == sorted(addresses)
    assert project.query("SELECT count(*) FROM deliveries WHERE relay IS NOT NULL") == [(0,)]
    status = json.loads(project.run("status", "--json").stdout)
    assert status["relays"] == {} and status["sent"] == 5


def test_relays_from_the_environment_as_json(project: Project) -> None:
    with running_smtp_server() as first:
        relays = [{"host": "127.0.0.1", "port": first.port, "username": "news",
                   "password_env": "FIRST_RELAY_PASSWORD"}]
        config = load_config(project.config_path, environ={
            "AINEWS_SMTP__RELAYS": json.dumps(relays), "FIRST_RELAY_PASSWORD": "s3cret"})
        assert [relay.label for relay in config.smtp.relays] == [f"127.0.0.1:{first.port}"]
        settings = config.smtp.relays[0].smtp_settings(config.smtp)
        assert settings.password is not None
        assert settings.password.get_secret_value() == "s3cret"
        assert "s3cret" not in repr(config)
        assert isinstance(make_transport(config), RelayChain)


@pytest.mark.parametrize(("relays", "environ", "expected"), [
    ([{"name": "backup", "host": "h", "hots": "x"}], {},
     "unknown key 'smtp.relays[0].hots'"),
    ([{"name": "backup", "host": "h", "password_env": "BACKUP_PASSWORD"}], {},
     "relay 'backup': its password_env BACKUP_PASSWORD is not set"),
    ([{"name": "backup", "host": "h", "password_env": "AINEWS_SMTP__PASSWORD"}], {},
     "password_env 'AINEWS_SMTP__PASSWORD' must not start with AINEWS_"),
    ([{"host": "h"}, {"host": "h", "port": 25}], {}, "two relays named 'h:25'"),
    ([{"host": "h", "name": "n" * 256}], {}, "is longer than 255 characters"),
])
def test_relay_config_mistakes_are_one_line(project: Project, relays: list[dict[str, Any]],
                                            environ: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(project.config_path,
                    environ={"AINEWS_SMTP__RELAYS": json.dumps(relays), **environ})
    assert expected in str(raised.value)
    assert "\n" not in str(raised.value)
    assert "environment AINEWS_SMTP__RELAYS" in str(raised.value) or "relay '" in str(
        raised.value)


def test_a_relay_password_env_unset_is_one_line_from_the_cli(project: Project) -> None:
    project.write_config("""
        [[smtp.relays]]
        name = "backup"
        host = "smtp.example.org"
        username = "news"
        password_env = "BACKUP_PASSWORD"
        """)
    result = project.run("status")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        result.stderr.strip()]  # one line
    assert "backup" in result.stderr and "BACKUP_PASSWORD" in result.stderr
    assert "Traceback" not in result.stderr


def test_status_counts_per_relay(any_project: Project, unused_port: int) -> None:
    with running_smtp_server() as first, running_smtp_server() as second:
        first.handler.replies = {"reader002@example.com": "550 5.1.1 no such user",
                                 "reader003@example.com": "451 4.7.1 greylisted"}
        any_project.write_config(f"""
            [[smtp.relays]]
            name = "first"
            host = "127.0.0.1"
            port = {first.port}
            max_per_hour = 6
            """ + f"""
            [[smtp.relays]]
            name = "second"
            host = "127.0.0.1"
            port = {second.port}
            """)
        any_project.import_readers(10)
        assert any_project.run("send", "--week", "2026-W47", "--yes").exit_code == 0
    status = json.loads(any_project.run("status", "--json").stdout)
    # The first took 6 (its quota): 4 sent, one failed (550), one deferred (451).
    assert status["relays"] == {"first": {"sent": 4, "deferred": 1, "failed": 1},
                                "second": {"sent": 4, "deferred": 0, "failed": 0}}
    text = any_project.run("status").stdout
    assert "relay first: sent 4, deferred 1, failed 1" in text
    assert "relay second: sent 4, deferred 0, failed 0" in text


def test_all_relays_down_mid_transaction_raises_unavailable(unused_port: int) -> None:
    """The chain alone: nothing answers, so it says so, naming each relay."""
    config = load_config(None, environ={}, overrides={"smtp": {"relays": [
        _relay("a", unused_port), _relay("b", unused_port)]}})
    chain = make_transport(config)
    with ExitStack() as stack:
        stack.callback(chain.close)
        with pytest.raises(TransportUnavailable, match=r"every relay is down \(a: .*; b: "):
            chain.send("digest@news.example.org", "reader@example.com", b"Subject: x\r\n\r\nx\r\n")


@contextmanager
def _greeting_421() -> Iterator[int]:
    """A server on 127.0.0.1 that greets every connection with 421 and hangs up (a relay
    too busy to take anyone); yields its port."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.sendall(b"421 4.3.2 too busy, try later\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        done.set()
        thread.join(5)
        listener.close()


@pytest.mark.parametrize("fault", ["tls", "login", "greeting-421"])
def test_a_relay_failing_at_connect_passes_everyone_on(project: Project, fault: str) -> None:
    """TLS failing (implicit TLS to a plain server), a login the relay refuses (it offers no
    AUTH), a 421 greeting: the second relay takes every message, each once."""
    with running_smtp_server() as plain, running_smtp_server() as second, \
            _greeting_421() as busy:
        first = {"tls": _relay("first", plain.port, security="tls", timeout=5),
                 "login": _relay("first", plain.port, username="news",
                                 password_env="FIRST_PASSWORD"),
                 "greeting-421": _relay("first", busy)}[fault]
        config = _config(project, [first, _relay("second", second.port)],
                         environ={"FIRST_PASSWORD": "secret"})
        addresses = _subscribe(config, 8)
        counts = execute_send(config, plan_send(config, W47))
        assert (counts.sent, counts.queued, counts.sending) == (8, 0, 0)
        assert sorted(second.recipients()) == sorted(addresses)
        assert plain.recipients() == []
        assert _by_relay(project) == {"second": set(addresses)}


def test_a_relay_past_the_error_threshold_hands_the_rest_on(project: Project) -> None:
    """The first relay defers everything (451): once error_threshold of the last
    error_window answers are refusals it counts as down, and the second takes the rest; the
    deferred rows stay in the ledger for their retry."""
    with running_smtp_server() as first, running_smtp_server() as second:
        config = _config(project, [_relay("first", first.port), _relay("second", second.port)],
                         delivery={"error_threshold": 0.5, "error_window": 5})
        addresses = _subscribe(config, 20)
        first.handler.replies = {address: "451 4.7.1 try again later" for address in addresses}
        counts = execute_send(config, plan_send(config, W47))
        assert (counts.deferred, counts.sent, counts.queued, counts.failed) == (5, 15, 0, 0)
        assert sorted(second.recipients()) == sorted(addresses[5:])
        deferred = project.query("SELECT relay, email FROM deliveries WHERE state = 'deferred'")
        assert sorted(deferred) == [("first", address) for address in addresses[:5]]


def test_a_relay_back_after_failback_is_not_tripped_by_its_old_refusals(
        project: Project) -> None:
    """The first relay defers five messages (451) and passes the error threshold; after
    failback_seconds it accepts again and keeps every message from then on: its old
    refusals are forgotten when it is taken out of use (else its first success after
    failback would trip it again, and it would take one message per failback period)."""
    with running_smtp_server() as first, running_smtp_server() as second:
        config = _config(project, [_relay("first", first.port), _relay("second", second.port)],
                         delivery={"error_threshold": 0.5, "error_window": 5},
                         failback_seconds=0.3)
        addresses = _subscribe(config, 40)
        first.handler.replies = {address: "451 4.7.1 try again later"
                                 for address in addresses[:5]}
        second.handler.data_delay = 0.1  # so the failback comes before the list's end
        counts = execute_send(config, plan_send(config, W47))
        assert (counts.sent, counts.deferred) == (35, 5)
        relays = [relay for (relay,) in project.query(
            "SELECT relay FROM deliveries WHERE state = 'sent' ORDER BY sent_at, id")]
        assert "first" in relays and relays[-1] == "first"
        back = relays.index("first")
        assert set(relays[back:]) == {"first"}, relays  # once back, it stays


def test_connections_racing_for_a_quota_s_last_slot_never_wait_for_the_hour() -> None:
    """Three connections ask a relay with one message left this hour at once: one takes
    it, the others are told at once (and go to the next relay), none waits."""
    import threading

    from ainews_newsletter.delivery.pacing import RateLimiter

    limiter = RateLimiter(0, max_per_hour=1)
    start = threading.Barrier(3)
    answers: list[bool] = []

    def ask() -> None:
        start.wait()
        answers.append(limiter.take_within_quota())

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    assert sorted(answers) == [False, False, True]


@pytest.mark.parametrize("path", PATHS)
def test_each_relay_carries_its_own_provider_s_tag_header(
        project: Project, path: tuple[int, int]) -> None:
    """A Postmark relay first, an SES relay second, a plain one third: the messages each
    takes carry that provider's metadata header with the row's own tag (what its webhook
    events bring back), never another's, nor our placeholder line."""
    import email
    import email.policy

    with running_smtp_server() as first, running_smtp_server() as second, \
            running_smtp_server() as third:
        config = _config(project, [
            _relay("pm", first.port, provider="postmark", provider_stream="news"),
            _relay("ses", second.port, provider="ses"),
            _relay("plain", third.port)], path)
        addresses = _subscribe(config, 12)
        first.handler.replies = {addresses[3]: "421 4.3.2 try later"}
        second.handler.replies = {addresses[7]: "421 4.3.2 try later"}
        counts = execute_send(config, plan_send(config, W47))
        assert counts.sent == 12
        tags = dict(project.query("SELECT email, return_tag FROM deliveries"))
        seen: dict[str, set[str]] = {}
        for server in (first, second, third):
            for received in server.handler.messages:
                message = email.message_from_bytes(received.data, policy=email.policy.default)
                [address] = received.rcpt_tos
                assert "X-Ainews-Relay-Tag" not in message
                if server is first:
                    assert message["X-PM-Metadata-ainews_tag"] == tags[address]
                    assert message["X-PM-Message-Stream"] == "news"
                    assert "X-SES-MESSAGE-TAGS" not in message
                elif server is second:
                    assert message["X-SES-MESSAGE-TAGS"] == f"ainews_tag={tags[address]}"
                    assert "X-PM-Metadata-ainews_tag" not in message
                else:
                    assert not [name for name in message
                                if name.startswith(("X-PM", "X-SES"))]
                seen.setdefault(address, set()).add(
                    "pm" if server is first else "ses" if server is second else "plain")
        assert sorted(seen) == sorted(addresses)
        used = {name for names in seen.values() for name in names}
        # Worker processes each keep their own view of which relay is down: only the one
        # that met a 421 moves on, so which relays the others use is theirs to find.
        assert used == {"pm", "ses", "plain"} if path == (1, 1) else {"pm", "ses"} <= used


def test_a_welcome_through_a_provider_relay_carries_its_header_not_the_placeholder(
        project: Project) -> None:
    """The welcome mail, unsigned (no DKIM), has the provider lines first in the message:
    the relay's own header goes in there too, and a row without a tag still gets the
    relay's stream line."""
    import email
    import email.policy

    from ainews_newsletter.delivery.provider_headers import ProviderHeaders, for_relay
    from ainews_newsletter.pipeline.welcome import Welcomes
    from ainews_newsletter.subscribers.signups import SignUps

    project.write_config("[subscribers]\nwelcome = true\n")
    with running_smtp_server() as relay:
        config = _config(project, [_relay("pm", relay.port, provider="postmark",
                                          provider_stream="news")])
        signups = SignUps(open_subscribers(config))
        signups.sign_up("ada@example.com", None, None)
        signups.confirm("ada@example.com")
        welcomes = Welcomes(config)
        assert welcomes.catch_up() == 1 and welcomes.send_due().sent == 1
        [received] = relay.handler.messages
        message = email.message_from_bytes(received.data, policy=email.policy.default)
        assert "X-Ainews-Relay-Tag" not in message
        assert message["X-PM-Message-Stream"] == "news"
        assert message["X-PM-Metadata-ainews_tag"]
    untagged = ProviderHeaders.relay_placeholder().lines(None) + b"From: a\r\n\r\nbody\r\n"
    assert for_relay(untagged, ProviderHeaders.of("postmark", "news")) == (
        b"X-PM-Message-Stream: news\r\nFrom: a\r\n\r\nbody\r\n")
    assert for_relay(untagged, None) == b"From: a\r\n\r\nbody\r\n"
