"""The send loop: take due ledger rows, mark each `sending` (committed), hand it to the
transport, record the answer. Stops cleanly, leaving rows queued, if the transport goes away."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ainews_newsletter import clock
from ainews_newsletter.config import NewsletterConfig
from ainews_newsletter.delivery.ledger import IssueRecord, Ledger, RetryPolicy
from ainews_newsletter.delivery.message import build_message
from ainews_newsletter.delivery.transports import Transport, TransportUnavailable
from ainews_newsletter.models import DeliveryCounts, DeliveryState

Progress = Callable[[DeliveryState], None]


@dataclass(frozen=True)
class SendSettings:
    policy: RetryPolicy
    batch_size: int
    rate_per_second: float  # 0 = no limit


class RateLimiter:
    """Spaces messages at least 1/rate seconds apart (monotonic clock: immune to NTP jumps)."""

    def __init__(self, rate_per_second: float) -> None:
        self.interval = 1.0 / rate_per_second if rate_per_second > 0 else 0.0
        self._next = time.monotonic()

    def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        if now < self._next:
            time.sleep(self._next - now)
        self._next = max(now, self._next) + self.interval


def deliver(issue: IssueRecord, ledger: Ledger, transport: Transport,
            newsletter: NewsletterConfig, settings: SendSettings,
            on_result: Progress | None = None) -> DeliveryCounts:
    """Send every due row of `issue`; returns the counts afterwards. Raises
    TransportUnavailable (after requeueing the row in hand) if the server cannot be reached."""
    limiter = RateLimiter(settings.rate_per_second)
    envelope_from = newsletter.from_
    try:
        while batch := ledger.due(issue.id, clock.now(), settings.batch_size):
            for delivery in batch:
                message = build_message(issue.rendered, delivery.recipient, newsletter,
                                        issue.created_at).as_bytes()
                limiter.wait()
                ledger.mark_sending(delivery, clock.now())
                try:
                    outcome = transport.send(envelope_from, delivery.recipient.email, message)
                except TransportUnavailable:
                    ledger.requeue(delivery, clock.now())
                    raise
                state = ledger.record(delivery, outcome, clock.now(), settings.policy)
                if on_result is not None:
                    on_result(state)
    finally:
        transport.close()
    return ledger.counts(issue.id)
