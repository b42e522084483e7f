"""The welcome mail ([subscribers] welcome): queue one per reader, claim it, send it through
the configured transport (signed, with the reader's own one-click unsubscribe and the VERP
return path the issues use), record the answer.

Where it runs: `ainews serve` queues and sends a reader's welcome right after their
confirmation commits (DoubleOptIn.after_joined) and keeps a loop (WelcomeLoop) that sends
what a crash or a 4xx left waiting; the scheduler does the same every few minutes;
`ainews subscribers import --welcome` welcomes the readers it added.

Exactly one welcome per reader: the ledger's unique row per reader, claimed by one UPDATE.
The gap between a confirmation's commit and its welcome's queueing is closed by the catch-up:
readers who arrived from the web in the last CATCH_UP and have no welcome row yet are queued
by the next `serve` start, `serve`'s loop and the scheduler. A welcome claimed by a sender
that died is sent again once its claim is older than [delivery] claim_timeout_seconds (at
least once; a duplicate only for a message that was in flight)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from email.errors import MessageError
from functools import cached_property
from types import TracebackType

from sqlalchemy import ColumnElement, and_

from ainews_newsletter import clock
from ainews_newsletter.config import Config
from ainews_newsletter.database import engine_for
from ainews_newsletter.delivery.claims import Claim, RetryPolicy
from ainews_newsletter.delivery.pacing import RateLimiter
from ainews_newsletter.delivery.returnpath import verp_address
from ainews_newsletter.delivery.transports import Transport, TransportUnavailable
from ainews_newsletter.delivery.welcome_ledger import (
    FAILED,
    SENT,
    SKIPPED,
    WelcomeCounts,
    WelcomeLedger,
    WelcomeRow,
)
from ainews_newsletter.delivery.welcome_mail import welcome_bytes
from ainews_newsletter.errors import AinewsError, DeliveryError, RenderError
from ainews_newsletter.models import (
    DeliveryState,
    Recipient,
    SendOutcome,
)
from ainews_newsletter.pipeline.greeting import WelcomeTexts
from ainews_newsletter.pipeline.issue import message_signer
from ainews_newsletter.pipeline.relaying import message_provider
from ainews_newsletter.pipeline.send import claim_lease, make_transport, tags_deliveries
from ainews_newsletter.subscribers.addresses import normalize
from ainews_newsletter.subscribers.newcomers import Newcomers
from ainews_newsletter.subscribers.queries import (
    deliverable_subscriber,
    holds_address,
    still_listed,
)

log = logging.getLogger("ainews.welcome")
# How far back the catch-up looks for web arrivals without a welcome: far more than a
# restart takes. Turning [subscribers] welcome on therefore also welcomes the readers who
# joined from the web in the day before.
CATCH_UP = timedelta(hours=24)
LOOP_SECONDS = 60.0  # the longest `serve`'s loop sleeps between two looks
STOP_CHECK = 0.25  # how often a sleeping loop looks whether `serve` is stopping
# Called with each recorded state (sent, queued, failed, skipped).
Progress = Callable[[str], None]
GONE_REPLY = "not sent: the reader is gone (their id belongs to another reader now)"


def _normalized(address: str) -> str:
    """An address as subscribers.email_normalized holds it (a stored one: test domains
    allowed)."""
    try:
        return normalize(address, allow_test=True)[1]
    except AinewsError:  # not one a reader can have now: it matches nobody's
        return address.strip().lower()


def same_reader(queued_for: str, holder: str) -> bool:
    """Whether a welcome row queued for `queued_for` is for the reader at `holder`: SQLite
    gives a deleted highest id to the next reader, so the id alone does not say."""
    return _normalized(queued_for) == _normalized(holder)


@dataclass
class WelcomeRun:
    """What one pass did."""

    sent: int = 0
    retrying: int = 0  # a 4xx: queued again for later
    failed: int = 0
    skipped: int = 0  # the reader left, or is gone, before it went

    def count(self, state: str) -> None:
        if state == SENT:
            self.sent += 1
        elif state == FAILED:
            self.failed += 1
        elif state == SKIPPED:
            self.skipped += 1
        else:
            self.retrying += 1

    @property
    def any(self) -> bool:
        return bool(self.sent or self.retrying or self.failed or self.skipped)

    def describe(self) -> str:
        return (f"sent {self.sent}, to retry {self.retrying}, failed {self.failed}, "
                f"skipped {self.skipped}")


class Welcomes:
    """Queueing and sending welcomes for one config. Thread-safe: `serve`'s background
    tasks and its loop share one. The welcome is rendered once per language (the reader's
    when it is available, else [newsletter] language), kind (readers with a name, without)
    and latest issue, and kept: never once per reader."""

    def __init__(self, config: Config, transports: Callable[[], Transport] | None = None,
                 check_templates: bool = False) -> None:
        self.config = config
        # A broken override of the welcome's templates stops here.
        self.texts = WelcomeTexts(config, check=config.subscribers.welcome or check_templates)
        self.sign = message_signer(config)
        self.provider = message_provider(config)
        self._transports = transports or (lambda: make_transport(config))
        delivery = config.delivery
        self.policy = RetryPolicy(delivery.max_attempts, delivery.retry_base_seconds,
                                  delivery.retry_max_seconds,
                                  timedelta(hours=delivery.give_up_after_hours))
        self.lease = claim_lease(config)

    @cached_property
    def ledger(self) -> WelcomeLedger:
        return WelcomeLedger(engine_for(self.config.database_url))

    @cached_property
    def newcomers(self) -> Newcomers:
        return Newcomers(engine_for(self.config.database_url))

    # -- queueing -------------------------------------------------------------------------

    def queue(self, recipients: Iterable[Recipient]) -> list[Recipient]:
        """Queue a welcome for each reader who never had one; returns those queued. A row
        of an earlier holder of the reader's id (removed, the id reused) is deleted first:
        the reader it was for is gone, and it must not stand for this one."""
        wanted = {r.subscriber_id: r for r in recipients}
        had = self.ledger.welcomed(wanted)
        for key, email in list(had.items()):
            if not same_reader(email, wanted[key].email) \
                    and self.ledger.drop_stale(key, email):
                log.info("welcome row of a removed reader #%d dropped: the id is another "
                         "reader's now", key)
                del had[key]
        new = [r for key, r in wanted.items() if key not in had]
        gone = self.ledger.queue(new, clock.now(), tagged=tags_deliveries(self.config),
                                 still_listed=still_listed)
        return [r for r in new if r not in gone]

    def queue_address(self, address: str) -> Recipient | None:
        """Queue the welcome of the active reader at `address`; their Recipient, or None
        when there is no such reader."""
        _, normalized = normalize(address, allow_test=True)  # a stored address: find it
        found = self.newcomers.by_address(normalized)
        if found is not None:
            self.queue([found])
        return found

    def catch_up(self) -> int:
        """With [subscribers] welcome on: queue the welcome of every reader who arrived
        from the web in the last CATCH_UP and has none (their process died between the
        confirmation and the queueing). Returns how many."""
        if not self.config.subscribers.welcome:
            return 0
        queued = self.queue(self.newcomers.since(clock.now() - CATCH_UP, "web"))
        if queued:
            log.info("queued %d welcome(s) of readers who joined without one", len(queued))
        return len(queued)

    def queue_imported(self, addresses: list[str]) -> int:
        """Queue the welcome of the readers an import added (their normalized addresses, as
        the import reports them: its own, not a concurrent import's), those still active."""
        return len(self.queue(self.newcomers.active_at(addresses)))

    # -- sending --------------------------------------------------------------------------

    def send_due(self, subscriber_id: int | None = None,
                 should_stop: Callable[[], bool] | None = None,
                 on_result: Progress | None = None) -> WelcomeRun:
        """Send every welcome due now (only this reader's with `subscriber_id`), one
        connection, the relay's rate respected. Raises TransportUnavailable when the
        server cannot be reached (the row in hand is queued again) and RenderError for a
        broken template."""
        stop = should_stop or (lambda: False)
        run = WelcomeRun()
        limiter = RateLimiter(self.config.smtp.rate_per_second, self.config.smtp.max_per_hour)
        transport: Transport | None = None
        try:
            while not stop():
                batch = self.ledger.due(clock.now(), self.lease,
                                        self.config.delivery.batch_size, subscriber_id)
                claimed_any = False
                for row in batch:
                    if stop() or not limiter.wait(stop):
                        return run
                    if self._gone(row):
                        claimed_any = True  # the next look may find the id's new holder
                        self._counted(run, SKIPPED, on_result)
                        continue
                    claim = self.ledger.claim(row, clock.now(), self.lease,
                                              self._deliverable_to(row))
                    if claim is Claim.LEFT:
                        log.info("welcome to reader #%d not sent: no longer active",
                                 row.subscriber_id)
                        self._counted(run, SKIPPED, on_result)
                    if claim is not Claim.CLAIMED:
                        continue  # another sender has it, or the reader left
                    claimed_any = True
                    transport = transport or self._transports()
                    self._counted(run, self._send_claimed(transport, row), on_result)
                if not claimed_any:
                    return run
        finally:
            if transport is not None:
                transport.close()
        return run

    def _gone(self, row: WelcomeRow) -> bool:
        """Whether the reader the row was queued for is gone, their id someone else's now
        (or nobody's): the row is deleted, never sent, and the id's new holder is queued if
        they are due a welcome (the catch-up finds a web arrival)."""
        holder = self.newcomers.recipient(row.subscriber_id)
        if holder is not None and same_reader(row.email, holder.email):
            return False
        if not self.ledger.drop_stale(row.subscriber_id, row.email):
            return False  # claimed by another sender meanwhile: the claim decides
        log.info("welcome to reader #%d not sent: the reader is gone", row.subscriber_id)
        if holder is not None:
            self.catch_up()
        return True

    @staticmethod
    def _deliverable_to(row: WelcomeRow) -> Callable[[ColumnElement[int]], ColumnElement[bool]]:
        """The claim's condition: the reader may be mailed and still has the row's address
        (checked in the claim's own transaction)."""
        normalized = _normalized(row.email)
        return lambda subscriber_id: and_(deliverable_subscriber(subscriber_id),
                                          holds_address(subscriber_id, normalized))

    @staticmethod
    def _counted(run: WelcomeRun, state: str, on_result: Progress | None) -> None:
        run.count(state)
        if on_result is not None:
            on_result(state)

    def _send_claimed(self, transport: Transport, row: WelcomeRow) -> str:
        """Build, sign and hand over one claimed welcome; record the answer."""
        try:
            built = self._build(row)
            outcome = (built if isinstance(built, SendOutcome)
                       else transport.send(self._envelope_sender(row), row.email, built))
        except (TransportUnavailable, RenderError) as exc:
            now = clock.now()
            self.ledger.put_back(row, now, now + self.policy.delay(1), str(exc))
            raise
        state = self.ledger.record(row, outcome, clock.now(), self.policy)
        if state == SENT:
            log.info("welcome to reader #%d sent", row.subscriber_id)
        else:
            log.warning("welcome to reader #%d %s: %s %s", row.subscriber_id,
                        "failed" if state == FAILED else "to be retried", outcome.code,
                        outcome.reply[:200])
        return state

    def _build(self, row: WelcomeRow) -> bytes | SendOutcome:
        found = self.newcomers.recipient(row.subscriber_id)
        if found is None or not same_reader(row.email, found.email):
            # removed between the claim and now: never another reader's token on it
            return SendOutcome(DeliveryState.FAILED, 0, GONE_REPLY)
        recipient = Recipient(row.subscriber_id, row.email, row.name, found.token)
        rendered = self.texts.for_reader(bool(row.name), found.language)
        try:
            message = welcome_bytes(rendered, self.config.newsletter, recipient, clock.now())
            if self.provider is not None:  # the relay's configuration set or stream
                message = self.provider.lines(row.return_tag) + message
            return self.sign(message) if self.sign else message
        except (MessageError, ValueError, UnicodeError, DeliveryError) as exc:
            return SendOutcome(DeliveryState.FAILED, 0, f"could not build the message: {exc}")

    def _envelope_sender(self, row: WelcomeRow) -> str:
        bounces = self.config.bounces
        if bounces.address and row.return_tag:
            return verp_address(bounces.address, bounces.delimiter, row.return_tag)
        return self.config.newsletter.from_

    def counts(self) -> WelcomeCounts:
        return self.ledger.counts()

    def seconds_to_next(self) -> float:
        """How long `serve`'s loop may sleep: until the next retry or lease end, at least
        a second, at most LOOP_SECONDS."""
        wait = self.ledger.seconds_to_next_due(clock.now(), self.lease)
        return LOOP_SECONDS if wait is None else min(LOOP_SECONDS, max(1.0, wait))


def send_waiting_welcomes(config: Config, should_stop: Callable[[], bool] | None = None,
                          welcomes: Welcomes | None = None) -> WelcomeRun:
    """The catch-up, then every welcome due: what `serve`'s start and loop and the
    scheduler run. Failures are logged, never raised: they must not stop the caller."""
    try:
        welcomes = welcomes or Welcomes(config)
        welcomes.catch_up()
        run = welcomes.send_due(should_stop=should_stop)
    except AinewsError as exc:  # the server is down, a template is broken: rows wait
        log.warning("welcomes not sent: %s", exc)
        return WelcomeRun()
    if run.any:
        log.info("welcomes: %s", run.describe())
    return run


def welcome_counts(config: Config) -> WelcomeCounts:
    """For `ainews status`."""
    return WelcomeLedger(engine_for(config.database_url)).counts()


class WelcomeLoop:
    """`ainews serve`'s sender of waiting welcomes, in a thread: at start (what a crash
    left), then whenever the next one falls due. Leaving the block stops it after the
    message in flight."""

    def __init__(self, config: Config) -> None:
        self.welcomes = Welcomes(config)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="welcomes", daemon=True)
        self._join_seconds = 2 * config.smtp.timeout + 5

    def __enter__(self) -> WelcomeLoop:
        self.thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop.set()
        self.thread.join(timeout=self._join_seconds)

    def _run(self) -> None:
        while not self.stop.is_set():
            pause = LOOP_SECONDS
            try:
                send_waiting_welcomes(self.welcomes.config, self.stop.is_set, self.welcomes)
                pause = self.welcomes.seconds_to_next()
            except Exception:  # the database away for a moment: look again later
                log.exception("welcomes: the loop failed; trying again")
            self._sleep(pause)

    def _sleep(self, seconds: float) -> None:
        """Short sleeps, not Event.wait(timeout): a wait that relies on its timeout never
        returns under libfaketime (scripts/test-clocks), and the stop is seen within
        STOP_CHECK seconds either way."""
        deadline = time.monotonic() + seconds
        while not self.stop.is_set() and time.monotonic() < deadline:
            time.sleep(STOP_CHECK)
