"""The send loop: take due ledger rows, claim each (`sending`, committed), hand it to the
transport, record the answer. Stops cleanly, leaving rows queued, if the transport goes away."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import timedelta
from email.errors import MessageError

from ainews_newsletter import clock
from ainews_newsletter.config import NewsletterConfig
from ainews_newsletter.delivery.dkim import Signer
from ainews_newsletter.delivery.ledger import Delivery, IssueRecord, Ledger, RetryPolicy
from ainews_newsletter.delivery.message import build_message
from ainews_newsletter.delivery.transports import Transport, TransportUnavailable
from ainews_newsletter.models import DeliveryCounts, DeliveryState, SendOutcome

Progress = Callable[[DeliveryState], None]
# Given subscriber ids, the ones still active: checked per batch right before sending, so an
# unsubscribe that lands after the audience snapshot is still honoured.
StillActive = Callable[[Collection[int]], set[int]]


@dataclass(frozen=True)
class SendSettings:
    policy: RetryPolicy
    batch_size: int
    rate_per_second: float  # 0 = no limit
    claim_timeout: timedelta
    signer: Signer | None = None  # DKIM


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


def _send_one(delivery: Delivery, issue: IssueRecord, ledger: Ledger, transport: Transport,
              newsletter: NewsletterConfig, limiter: RateLimiter,
              signer: Signer | None) -> SendOutcome:
    try:
        message = build_message(issue.rendered, delivery.recipient, newsletter,
                                issue.created_at).as_bytes()
        if signer is not None:
            message = signer(message)
    except (MessageError, ValueError, UnicodeError) as exc:
        # One unbuildable message (a stored address from before validation tightened, say)
        # must not stop the send for everyone after it.
        return SendOutcome(DeliveryState.FAILED, 0, f"could not build the message: {exc}")
    limiter.wait()
    try:
        return transport.send(newsletter.from_, delivery.recipient.email, message)
    except TransportUnavailable:
        ledger.requeue(delivery, clock.now())
        raise


def deliver(issue: IssueRecord, ledger: Ledger, transport: Transport,
            newsletter: NewsletterConfig, settings: SendSettings,
            still_active: StillActive | None = None,
            on_result: Progress | None = None) -> DeliveryCounts:
    """Send every due row of `issue`; returns the counts afterwards. Raises
    TransportUnavailable (after requeueing the row in hand) if the server cannot be reached."""
    limiter = RateLimiter(settings.rate_per_second)
    try:
        while batch := ledger.due(issue.id, clock.now(), settings.batch_size,
                                  settings.claim_timeout):
            wanted = (still_active({d.recipient.subscriber_id for d in batch})
                      if still_active is not None else None)
            for delivery in batch:
                if not ledger.claim(delivery, clock.now(), settings.claim_timeout):
                    continue  # another sender took it between our read and our claim
                if wanted is not None and delivery.recipient.subscriber_id not in wanted:
                    outcome = SendOutcome(DeliveryState.FAILED, 0,
                                          "not sent: no longer an active subscriber")
                else:
                    outcome = _send_one(delivery, issue, ledger, transport, newsletter,
                                        limiter, settings.signer)
                state = ledger.record(delivery, outcome, clock.now(), settings.policy)
                if on_result is not None:
                    on_result(state)
    finally:
        transport.close()
    return ledger.counts(issue.id)
