"""Each relay of [[smtp.relays]] keeps its own rate_per_second and timeout: its limiter paces
the messages going through it and no other, a worker process holds its share of the rate,
and its connection is opened with its own timeout. Timed by an injected clock, not the wall's
(no timing assertions)."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest

from ainews_newsletter.delivery.pacing import RateLimiter
from ainews_newsletter.delivery.relay_chain import RelayChain, relays_for_send
from ainews_newsletter.delivery.transports import Transport
from ainews_newsletter.models import DeliveryState, SendOutcome
from tests.conftest import Project
from tests.delivery.test_relays_failover import _config, _relay


class _Clock:
    """A monotonic clock the test moves; `sleep` moves it too (and records the wait)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


class _Taking(Transport):
    """A relay that takes every message, noting which relay and when."""

    def __init__(self, name: str, clock: _Clock, log: list[tuple[str, float]]) -> None:
        self.name, self.clock, self.log = name, clock, log

    def describe(self) -> str:
        return self.name

    def send(self, envelope_from: str, recipient: str, message: bytes) -> SendOutcome:
        self.log.append((self.name, self.clock.now))
        return SendOutcome(DeliveryState.SENT, 250, "2.0.0 queued")

    def close(self) -> None:
        pass


def _two_relays(project: Project, **first: Any) -> Any:
    config = _config(project, [_relay("paced", 2525, **first), _relay("free", 2526)])
    return config, relays_for_send(config.smtp, config.delivery.error_threshold,
                                   config.delivery.error_window)


def test_each_relay_has_its_own_rate_and_timeout(project: Project) -> None:
    config, relays = _two_relays(project, rate_per_second=4, timeout=7)
    paced, free = relays.links
    assert (paced.limiter.interval, free.limiter.interval) == (0.25, 0.0)
    assert not free.limiter.limits
    # The timeout the relay's own connection is opened with (SmtpTransport(settings)).
    assert (paced.settings.timeout, free.settings.timeout) == (7, config.smtp.timeout)
    assert config.smtp.timeout != 7
    # Worker process 0 of 2 holds half the relay's rate.
    relays.in_process(0, 2, 4)
    assert paced.limiter.interval == 0.5 and not free.limiter.limits


def test_a_relays_rate_paces_the_messages_through_it(project: Project,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Ten messages through a relay allowing 4 a second: 0.25 s apart on the (injected)
    clock; the same ten through the relay without a rate go at once."""
    clock = _Clock()
    log: list[tuple[str, float]] = []
    _, relays = _two_relays(project, rate_per_second=4)
    paced, free = relays.links
    paced.limiter = RateLimiter(4, clock_=clock, sleep=clock.sleep)
    free.limiter = RateLimiter(0, clock_=clock, sleep=clock.sleep)
    names = {paced.settings.port: "paced", free.settings.port: "free"}
    chain = RelayChain(relays, make=lambda settings: _Taking(names[settings.port], clock, log))
    for number in range(10):
        chain.send("news@example.com", f"r{number}@example.com", b"Subject: x\r\n\r\nx\r\n")
    times = [moment for name, moment in log if name == "paced"]
    assert len(times) == 10
    assert [round(later - earlier, 6) for earlier, later in pairwise(times)] == [0.25] * 9
    paced.down_until = float("inf")  # the paced relay down: the rest go through "free"
    before = clock.now
    for number in range(10):
        chain.send("news@example.com", f"s{number}@example.com", b"Subject: x\r\n\r\nx\r\n")
    assert [name for name, _ in log[10:]] == ["free"] * 10
    assert clock.now == before  # no wait at all
