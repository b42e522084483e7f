"""What one send is made of, whichever way it runs (threads in this process,
thread_sender.py, or worker processes, process_sender.py): its settings, the caller's
hooks, and the pieces every connection shares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from ainews_newsletter.delivery.claims import DeliverableCheck, Delivery, RetryPolicy
from ainews_newsletter.delivery.clicklinks import ClickLinks
from ainews_newsletter.delivery.dkim import Signer
from ainews_newsletter.delivery.ledger import IssueRecord, Ledger
from ainews_newsletter.delivery.outgoing import Outgoing
from ainews_newsletter.delivery.pacing import ErrorWatch, RateLimiter, StopRequested
from ainews_newsletter.delivery.provider_headers import ProviderHeaders
from ainews_newsletter.models import DeliveryState, SendOutcome

Progress = Callable[[DeliveryState], None]
# A message refused for good (5xx, or given up after deferrals): the feedback policy's
# input for refusals at RCPT/DATA time, the same as for a bounce that comes back later.
Refused = Callable[[Delivery, SendOutcome], None]


@dataclass(frozen=True)
class SendSettings:
    policy: RetryPolicy
    batch_size: int
    rate_per_second: float  # 0 = no limit
    # PostgreSQL: a row `sending` for longer than this (by the database's clock) is taken
    # as left by a dead sender. SQLite does not need it: the sender lock tells (presence.py).
    claim_lease: timedelta
    max_per_hour: int = 0  # 0 = no limit
    signer: Signer | None = None  # DKIM
    # (bounce address, delimiter): each message's envelope sender becomes its VERP address.
    # None: the envelope sender is [newsletter] from.
    verp: tuple[str, str] | None = None
    error_threshold: float = 1.0  # share of the last error_window refused that pauses
    error_window: int = 20
    clicks: ClickLinks | None = None  # count clicks: each reader's post links become theirs
    # [smtp] provider: each message carries its row's tag in the provider's metadata header.
    provider: ProviderHeaders | None = None


@dataclass(frozen=True)
class Hooks:
    """What the caller can plug into a send (all optional)."""

    # Asked in each claim's transaction: an unsubscribe (complaint, bounce) committed
    # before a reader's claim is always honoured, however late in the send.
    deliverable: DeliverableCheck | None = None
    on_result: Progress | None = None  # after each recorded message
    should_stop: StopRequested | None = None  # checked before each claim: SIGTERM, Ctrl-C
    on_refused: Refused | None = None  # recorded failed with a server's answer


@dataclass(frozen=True)
class SendContext:
    """What every connection of one send shares."""

    issue: IssueRecord
    outgoing: Outgoing
    ledger: Ledger
    settings: SendSettings
    hooks: Hooks
    limiter: RateLimiter
    watch: ErrorWatch

    def count(self, state: DeliveryState) -> None:
        if self.hooks.on_result is not None:
            self.hooks.on_result(state)

    def refused(self, delivery: Delivery, state: DeliveryState, outcome: SendOutcome) -> None:
        """Hand a refusal by the server (failed, with a reply code) to the feedback hook;
        code 0 never reached a server (unbuildable), so it is no refusal."""
        if (self.hooks.on_refused is not None and state is DeliveryState.FAILED
                and outcome.code):
            self.hooks.on_refused(delivery, outcome)
