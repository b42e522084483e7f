"""The send loop: take due ledger rows, claim each (`sending`, committed), hand it to the
transport, record the answer. Stops cleanly, leaving rows queued, if the transport goes away."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from email.errors import MessageError

from ainews_newsletter import clock
from ainews_newsletter.config import NewsletterConfig
from ainews_newsletter.delivery.claims import (
    Admits,
    Claim,
    Delivery,
    LedgerWriter,
    RetryPolicy,
)
from ainews_newsletter.delivery.clicklinks import ClickLinks
from ainews_newsletter.delivery.dkim import Signer
from ainews_newsletter.delivery.ledger import IssueRecord, Ledger
from ainews_newsletter.delivery.message import IssueMessages
from ainews_newsletter.delivery.returnpath import verp_address
from ainews_newsletter.delivery.transports import Transport, TransportUnavailable
from ainews_newsletter.errors import DeliveryError
from ainews_newsletter.models import DeliveryCounts, DeliveryState, SendOutcome, counted

Progress = Callable[[DeliveryState], None]
StopRequested = Callable[[], bool]
# A message refused for good (5xx, or given up after deferrals): the feedback policy's
# input for refusals at RCPT/DATA time, the same as for a bounce that comes back later.
Refused = Callable[[Delivery, SendOutcome], None]


class SendPaused(DeliveryError):
    """Too many refusals in a row: the send stops with the remaining rows still queued."""


class ErrorWatch:
    """The share of refused messages over the last `window` (deferred or failed)."""

    def __init__(self, threshold: float, window: int) -> None:
        self.threshold = threshold
        self.recent: deque[bool] = deque(maxlen=window)
        self._lock = threading.Lock()

    def record(self, outcome: SendOutcome) -> None:
        with self._lock:
            self.recent.append(outcome.state is not DeliveryState.SENT)
            refused = sum(self.recent)
        if len(self.recent) == self.recent.maxlen and refused >= self.threshold * len(
                self.recent):
            raise SendPaused(f"paused: {refused} of the last "
                             f"{counted(len(self.recent), 'message')} were "
                             f"refused (last reply: {outcome.code} {outcome.reply[:120]}); "
                             "check the mail server")


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


HOUR = 3600.0


class RateLimiter:
    """One limit shared by every connection: messages at least 1/rate_per_second apart, and
    at most max_per_hour in any hour (a relay's quota). Monotonic clock: immune to NTP jumps.
    `clock` and `sleep` are injectable so tests need not wait an hour."""

    def __init__(self, rate_per_second: float, max_per_hour: int = 0,
                 clock_: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = 1.0 / rate_per_second if rate_per_second > 0 else 0.0
        self.max_per_hour = max_per_hour
        self._clock, self._sleep = clock_, sleep
        self._next = clock_()
        self._sent: deque[float] = deque()  # send times within the last hour
        self._lock = threading.Lock()

    def _delay(self) -> float:
        """Seconds to wait before the next message may go; 0 reserves the slot now."""
        now = self._clock()
        while self._sent and self._sent[0] <= now - HOUR:
            self._sent.popleft()
        if self.max_per_hour and len(self._sent) >= self.max_per_hour:
            return self._sent[0] + HOUR - now
        if self.interval and self._next > now:
            return self._next - now
        self._next = max(now, self._next) + self.interval
        if self.max_per_hour:
            self._sent.append(now)
        return 0.0

    def try_acquire(self) -> bool:
        """Take a slot only if one is free now (never waits)."""
        with self._lock:
            return self._delay() <= 0

    def wait(self, stop: StopRequested | None = None) -> bool:
        """Block until a message may go; False if `stop` was requested while waiting (an
        hourly quota can mean a long wait, and SIGTERM must not wait for it)."""
        while True:
            with self._lock:
                delay = self._delay()
            if delay <= 0:
                return True
            if stop is not None and stop():
                return False
            self._sleep(min(delay, 1.0))


@dataclass(frozen=True)
class Hooks:
    """What the caller can plug into a send (all optional)."""

    # Asked in each claim's transaction: an unsubscribe (complaint, bounce) committed
    # before a reader's claim is always honoured, however late in the send.
    admits: Admits | None = None
    on_result: Progress | None = None  # after each recorded message
    should_stop: StopRequested | None = None  # checked before each claim: SIGTERM, Ctrl-C
    on_refused: Refused | None = None  # recorded failed with a server's answer


@dataclass(frozen=True)
class _Shared:
    """What every connection of one send shares."""

    issue: IssueRecord
    messages: IssueMessages  # built once: one MIME boundary; Date filled in per message
    ledger: Ledger
    newsletter: NewsletterConfig
    settings: SendSettings
    hooks: Hooks
    limiter: RateLimiter
    watch: ErrorWatch


class _ConnectionWorker:
    """One connection's loop: claim a due row, send it, record the answer, until none is
    left or `stop` says so."""

    def __init__(self, shared: _Shared, transport: Transport, writer: LedgerWriter,
                 stop: StopRequested) -> None:
        self.shared, self.transport, self.writer, self.stop = shared, transport, writer, stop

    def run(self, share: tuple[int, int] | None) -> None:
        s = self.shared
        if self.writer.skips_locked:
            self._run_claiming_one_by_one()
            return
        while not self.stop() and (batch := s.ledger.due(
                s.issue.id, clock.now(), s.settings.batch_size, share)):
            self._send_batch(batch)

    def _send_batch(self, batch: list[Delivery]) -> None:
        """SQLite: a batch read at once, each row claimed just before it goes."""
        s = self.shared
        ahead: Claim | None = None  # the row in hand's claim, made in the previous commit
        for index, delivery in enumerate(batch):
            if ahead is Claim.LEFT:  # its reader left: recorded and counted already
                ahead = None
                continue
            if ahead is not Claim.CLAIMED:
                if self.stop() or not s.limiter.wait(self.stop):  # wait before claiming:
                    return  # a stop while waiting leaves the row queued, not `sending`
                claim = self.writer.claim(delivery, clock.now())
                if claim is Claim.LEFT:
                    self._count(DeliveryState.FAILED)
                if claim is not Claim.CLAIMED:
                    continue  # another sender took it, or the reader left
            following = batch[index + 1] if index + 1 < len(batch) else None
            ahead = self._send_and_record(delivery, following)

    def _run_claiming_one_by_one(self) -> None:
        """PostgreSQL: claim the next row no other sender holds (SKIP LOCKED), send it,
        record it; repeat. Several processes share the issue this way."""
        s = self.shared
        while not self.stop() and s.limiter.wait(self.stop):
            claimed = self.writer.claim_next(s.issue.id, clock.now(), s.settings.claim_lease)
            if claimed is None:
                return
            if claimed.left:
                self._count(DeliveryState.FAILED)
                continue
            self._send_and_record(claimed.delivery, None)

    def _count(self, state: DeliveryState) -> None:
        if self.shared.hooks.on_result is not None:
            self.shared.hooks.on_result(state)

    def _send_one(self, delivery: Delivery) -> SendOutcome:
        s = self.shared
        try:
            message = s.messages.bytes_for(delivery.recipient, clock.now(), delivery.id)
            if s.settings.signer is not None:
                message = s.settings.signer(message)
        except (MessageError, ValueError, UnicodeError, DeliveryError) as exc:
            # One unbuildable message (a stored address from before validation tightened,
            # say) must not stop the send for everyone after it.
            return SendOutcome(DeliveryState.FAILED, 0, f"could not build the message: {exc}")
        try:
            return self.transport.send(self._envelope_sender(delivery),
                                       delivery.recipient.email, message)
        except TransportUnavailable:
            self.writer.requeue(delivery, clock.now())
            raise

    def _envelope_sender(self, delivery: Delivery) -> str:
        verp = self.shared.settings.verp
        if verp is None or delivery.return_tag is None:  # rows snapshotted before 0004
            return self.shared.newsletter.from_
        return verp_address(verp[0], verp[1], delivery.return_tag)

    def _send_and_record(self, delivery: Delivery,
                         following: Delivery | None) -> Claim | None:
        """Send one claimed row and record the answer. When the `following` row may go at
        once (no stop, no rate wait) its claim rides in this row's commit: one commit per
        message instead of two. Returns what became of that claim (None: not tried)."""
        s = self.shared
        outcome = self._send_one(delivery)
        now = clock.now()
        ahead = (following
                 if following is not None and not self.stop() and s.limiter.try_acquire()
                 else None)
        state, claim_ahead = self.writer.record(
            delivery, outcome, now, s.settings.policy, started=s.issue.snapshot_at,
            then_claim=ahead)
        claimed_ahead = claim_ahead is Claim.CLAIMED
        try:
            if (s.hooks.on_refused is not None and state is DeliveryState.FAILED
                    and outcome.code):  # code 0: never reached a server (unbuildable)
                s.hooks.on_refused(delivery, outcome)
            self._count(state)
            if claim_ahead is Claim.LEFT:
                self._count(DeliveryState.FAILED)
            s.watch.record(outcome)
        except BaseException:
            if claimed_ahead and following is not None:  # paused: it never went
                self.writer.requeue(following, clock.now())
            raise
        return claim_ahead


def _run_connection(shared: _Shared, transport: Transport, stop: StopRequested,
                    share: tuple[int, int] | None) -> None:
    with shared.ledger.writer(shared.hooks.admits) as writer:
        try:
            _ConnectionWorker(shared, transport, writer, stop).run(share)
        finally:
            transport.close()


def deliver(issue: IssueRecord, ledger: Ledger, transports: Callable[[], Transport],
            newsletter: NewsletterConfig, settings: SendSettings,
            hooks: Hooks | None = None, connections: int = 1) -> DeliveryCounts:
    """Send every due row of `issue` over `connections` parallel connections (each a thread
    with its own transport from `transports`, sharing the rate limit and the error watch);
    returns the counts afterwards. Raises TransportUnavailable (after requeueing the row in
    hand) if the server cannot be reached, SendPaused if it refuses too much. When
    `should_stop` turns true each connection finishes and records the message in hand, so a
    stopped send leaves nothing in `sending`."""
    hooks = hooks or Hooks()
    shared = _Shared(issue, IssueMessages(issue.rendered, newsletter, issue.created_at,
                                           settings.clicks),
                     ledger, newsletter, settings, hooks,
                     RateLimiter(settings.rate_per_second, settings.max_per_hour),
                     ErrorWatch(settings.error_threshold, settings.error_window))
    requested = hooks.should_stop or (lambda: False)
    if connections <= 1:
        _run_connection(shared, transports(), requested, None)
        return ledger.counts(issue.id)
    failed = threading.Event()
    errors: list[BaseException] = []

    def run(share: tuple[int, int]) -> None:
        try:
            _run_connection(shared, transports(), lambda: requested() or failed.is_set(),
                            share)
        except BaseException as exc:  # handed to the caller below
            errors.append(exc)
            failed.set()

    threads = [threading.Thread(target=run, args=((k, connections),), name=f"smtp-{k}")
               for k in range(connections)]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except BaseException:  # a second Ctrl-C: stop claiming, but let messages in flight end
        failed.set()  # recorded, so that nothing is `sending` once the sender lock goes
        for thread in threads:
            thread.join()
        raise
    if errors:
        raise errors[0]
    return ledger.counts(issue.id)
