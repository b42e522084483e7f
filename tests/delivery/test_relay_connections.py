"""A relay's own `connections` ([[smtp.relays]] connections = N): at most N of the send's
connections use it at once, the others go to the next relay, and a connection no relay that
is up has a place for retires, its rows sent by the others: nobody lost, nobody twice.

Counted on the relays themselves (aiosmtpd handlers keeping how many sessions are open at
once, from EHLO to QUIT) and in the ledger; the thread path (three connections in this
process) and the worker-process path (four in two processes, each holding its share of the
places), SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from ainews_newsletter.config import Config
from ainews_newsletter.config.mail import RelayConfig, SmtpConfig
from ainews_newsletter.delivery.capture import EphemeralPortController
from ainews_newsletter.delivery.relay_chain import relays_for_send, share_of
from ainews_newsletter.errors import ConfigError
from ainews_newsletter.pipeline.relaying import relay_transports
from ainews_newsletter.pipeline.send import execute_send, plan_send
from tests.conftest import Project, RecordingHandler, SmtpServer
from tests.delivery.test_relays_failover import W47, _after_ten_recipients, _by_relay, _config
from tests.delivery.test_relays_failover import _relay as relay_keys
from tests.delivery.test_workers import _subscribe

pytestmark = pytest.mark.clock

# (connections, workers): three threads of this process; four connections in two processes.
THREADS, PROCESSES = (3, 1), (4, 2)
PATHS = [pytest.param(THREADS, id="threads"), pytest.param(PROCESSES, id="processes")]


class Gathering:
    """Sessions open at once across the relays of one test. A connection's share can be
    sent before the next thread or process has even connected, so a count of sessions open
    at once would depend on the machine's speed: with a target, each session's messages wait
    until that many sessions are open at every relay together (bounded: ~5 s)."""

    def __init__(self, target: int | None = None) -> None:
        self.target = target
        self.open = 0
        self._lock = threading.Lock()  # each relay answers in its own thread

    def change(self, step: int) -> None:
        with self._lock:
            self.open += step

    async def wait_for_the_others(self) -> None:
        for _ in range(500):  # bounded in steps, not by a clock (CI fakes the clock)
            if self.target is None or self.open >= self.target:
                return
            await asyncio.sleep(0.01)


class SessionCountingHandler(RecordingHandler):
    """Also keeps the most sessions that were open at once (EHLO to QUIT: our client says
    QUIT whenever it lets a connection go)."""

    def __init__(self, gathering: Gathering) -> None:
        super().__init__()
        self.open = 0
        self.most_open = 0
        self.gathering = gathering
        self._lock = threading.Lock()

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        with self._lock:
            self.open += 1
            self.gathering.change(+1)
            self.most_open = max(self.most_open, self.open)
        return await super().handle_EHLO(server, session, envelope, hostname, responses)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await self.gathering.wait_for_the_others()
        answer: str = await super().handle_DATA(server, session, envelope)
        return answer

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self.open -= 1
            self.gathering.change(-1)
        return "221 Bye"


@contextmanager
def counting_server(gathering: Gathering | None = None,
                    ) -> Iterator[tuple[SmtpServer, SessionCountingHandler]]:
    handler = SessionCountingHandler(gathering or Gathering())
    controller = EphemeralPortController(handler, hostname="127.0.0.1", port=0)
    controller.start()
    try:
        yield SmtpServer(handler, controller.port), handler
    finally:
        controller.stop()


def _received(*servers: SmtpServer) -> Counter[str]:
    return Counter(address for server in servers for address in server.recipients())


def _send(config: Config) -> None:
    counts = execute_send(config, plan_send(config, W47))
    assert (counts.sent, counts.queued, counts.sending, counts.deferred) == (
        counts.total, 0, 0, 0)


@pytest.mark.parametrize("cap", [pytest.param(1, id="capped"), pytest.param(None, id="uncapped")])
def test_a_relay_never_has_more_connections_open_than_its_own(any_project: Project,
                                                              cap: int | None) -> None:
    """Three connections, the first relay allowing one: it never sees two sessions at once,
    the other two connections send through the second relay. Uncapped, the same send opens
    three sessions at the first relay (so the count would see a cap not kept)."""
    three = Gathering(3)
    with counting_server(three) as (first, first_sessions), \
            counting_server(three) as (second, second_sessions):
        first_keys = relay_keys("first", first.port)
        if cap is not None:
            first_keys["connections"] = cap
        config = _config(any_project, [first_keys, relay_keys("second", second.port)], THREADS)
        addresses = _subscribe(config, 60)
        _send(config)
        assert _received(first, second) == Counter(addresses)  # 0 lost, 0 twice
        if cap is None:
            assert first_sessions.most_open == 3
            assert second.recipients() == []
        else:
            assert first_sessions.most_open == cap
            assert 1 <= second_sessions.most_open <= 2
            assert first.recipients() and second.recipients()
        ledger = _by_relay(any_project)
        assert ledger == {name: set(server.recipients())
                          for name, server in (("first", first), ("second", second))
                          if server.recipients()}


def test_worker_processes_share_a_relays_places(any_project: Project) -> None:
    """Four connections in two processes, the first relay allowing two: each process holds
    one place, so the relay sees two sessions at most, and the other two connections send
    through the second."""
    four = Gathering(4)
    with counting_server(four) as (first, first_sessions), \
            counting_server(four) as (second, second_sessions):
        config = _config(any_project, [relay_keys("first", first.port, connections=2),
                                       relay_keys("second", second.port)], PROCESSES)
        addresses = _subscribe(config, 80)
        _send(config)
        assert _received(first, second) == Counter(addresses)
        assert first_sessions.most_open == 2
        assert 1 <= second_sessions.most_open <= 2


def test_worker_processes_use_every_place_of_every_relay(any_project: Project) -> None:
    """Two relays allowing one connection each, two connections in two processes: each
    process holds one relay's place, so both relays send and neither sees two sessions."""
    two = Gathering(2)
    with counting_server(two) as (first, first_sessions), \
            counting_server(two) as (second, second_sessions):
        config = _config(any_project, [relay_keys("first", first.port, connections=1),
                                       relay_keys("second", second.port, connections=1)],
                         (2, 2))
        addresses = _subscribe(config, 60)
        _send(config)
        assert _received(first, second) == Counter(addresses)
        assert first.recipients() and second.recipients()
        assert (first_sessions.most_open, second_sessions.most_open) == (1, 1)


@pytest.mark.parametrize("path", PATHS)
def test_connections_with_no_place_retire_and_their_rows_go_with_the_others(
        any_project: Project, unused_port: int, path: tuple[int, int]) -> None:
    """The first relay is down from the start and the second allows one connection: every
    connection but one retires at its first message, which goes back to the queue (on
    SQLite with the retired connection's share of the rows); the one left sends all."""
    with counting_server() as (second, second_sessions):
        config = _config(any_project, [relay_keys("first", unused_port),
                                       relay_keys("second", second.port, connections=1)],
                         path)
        addresses = _subscribe(config, 40)
        _send(config)
        assert _received(second) == Counter(addresses)  # 0 lost, 0 twice
        assert second_sessions.most_open == 1
        # Usually one connection does it all; one that starts late (a busy machine) may find
        # the place free once the first has ended, and take it: never two at once.
        assert 1 <= second_sessions.connections <= path[0]
        assert _by_relay(any_project) == {"second": set(addresses)}


@pytest.mark.parametrize("path", PATHS)
def test_connections_retiring_mid_send_lose_nobody(any_project: Project,
                                                   path: tuple[int, int]) -> None:
    """From the 10th message the first relay answers 421 (closing): every connection moves
    to the second, which allows one; the rest retire with the row in hand. A 421 is a
    refusal, so nothing goes twice."""
    with counting_server() as (first, _), counting_server() as (second, second_sessions):
        config = _config(any_project, [relay_keys("first", first.port),
                                       relay_keys("second", second.port, connections=1)],
                         path)
        addresses = _subscribe(config, 60)

        def closing() -> None:
            first.handler.replies = {a: "421 4.3.2 shutting down" for a in addresses}

        _after_ten_recipients(first, closing)
        _send(config)
        assert _received(first, second) == Counter(addresses)
        assert second_sessions.most_open == 1
        assert len(second.recipients()) >= 60 - 10 - path[0] * 2


def test_the_send_opens_no_more_connections_than_every_relays_places_together(
        project: Project) -> None:
    both_capped = _config(project, [relay_keys("a", 2525, connections=2),
                                    relay_keys("b", 2526, connections=1)], (8, 4))
    _, workers, connections = relay_transports(both_capped, 4)
    assert (connections, workers) == (3, 3)
    one_open = _config(project, [relay_keys("a", 2525, connections=2),
                                 relay_keys("b", 2526)], (8, 4))
    _, workers, connections = relay_transports(one_open, 4)
    assert (connections, workers) == (8, 4)


@pytest.mark.parametrize(("caps", "connections", "processes"), [
    ([1, 1], 2, 2), ([2, 1], 3, 3), ([2, 2], 4, 4), ([3], 3, 2), ([2, 2], 4, 2),
    ([1, 3], 4, 3), ([5, None], 4, 2), ([1], 8, 4)])
def test_each_process_holds_the_places_of_its_own_connections(
        caps: list[int | None], connections: int, processes: int) -> None:
    """Every relay's places add up to its cap (or the connections, if fewer), and when the
    caps together allow every connection, each process holds a place for each of its own."""
    smtp = SmtpConfig(relays=[RelayConfig(host="127.0.0.1", port=2525 + k, connections=cap)
                              for k, cap in enumerate(caps)], connections=connections)
    held = []
    for number in range(processes):
        relays = relays_for_send(smtp, 0.5, 10)
        relays.in_process(number, processes, connections)
        held.append([link.places for link in relays.links])
    for k, cap in enumerate(caps):
        if cap is not None:
            assert sum(places[k] or 0 for places in held) == min(cap, connections)
    if all(cap is not None for cap in caps) and sum(c or 0 for c in caps) == connections:
        for number, places in enumerate(held):
            own = len(range(number, connections, processes))
            assert sum(p or 0 for p in places) == own


def test_shares_of_a_limit_add_up_and_differ_by_one_at_most() -> None:
    for total in range(0, 40):
        for processes in range(1, 9):
            parts = [share_of(total, number, processes) for number in range(processes)]
            assert sum(parts) == total
            assert max(parts) - min(parts) <= 1


def test_a_relays_connections_must_be_at_least_one(project: Project) -> None:
    with pytest.raises(ConfigError, match="connections"):
        _config(project, [relay_keys("a", 2525, connections=0)])
