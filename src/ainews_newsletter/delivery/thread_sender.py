"""The send loop with connections as threads of this process: take due ledger rows, claim
each (`sending`, committed), hand it to the transport, record the answer. Stops cleanly,
leaving rows queued, if the transport goes away.

`deliver`, the way into a send, runs it here, or (`workers` > 1) in worker processes that
build and send while this process alone claims and records (process_sender.py)."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping

from ainews_newsletter import clock
from ainews_newsletter.config import NewsletterConfig
from ainews_newsletter.delivery.claims import Claim, Claimed, Delivery, LedgerWriter
from ainews_newsletter.delivery.ledger import IssueRecord, Ledger
from ainews_newsletter.delivery.message import IssueMessages
from ainews_newsletter.delivery.outgoing import Outgoing
from ainews_newsletter.delivery.pacing import ErrorWatch, RateLimiter, StopRequested
from ainews_newsletter.delivery.process_sender import deliver_by_processes
from ainews_newsletter.delivery.send_context import Hooks, SendContext, SendSettings
from ainews_newsletter.delivery.transports import (
    ConnectionSurplus,
    Transport,
    TransportUnavailable,
)
from ainews_newsletter.models import DeliveryCounts, DeliveryState, RenderedIssue, SendOutcome

log = logging.getLogger("ainews.delivery")


class _ConnectionThread:
    """One connection's loop in this process: claim a due row, send it, record the answer,
    until none is left or `stop` says so."""

    def __init__(self, context: SendContext, transport: Transport, writer: LedgerWriter,
                 stop: StopRequested) -> None:
        self.context, self.transport, self.writer, self.stop = context, transport, writer, stop

    def run(self, share: tuple[int, int] | None) -> bool:
        """Send the rows of `share` (every row: None); True when the connection retired
        (no relay had a place for it) with rows of its share perhaps still due."""
        c = self.context
        try:
            if self.writer.skips_locked:
                self._run_claiming_one_by_one()
                return False
            while not self.stop() and (batch := c.ledger.due(
                    c.issue.id, clock.now(), c.settings.batch_size, share)):
                self._send_batch(batch)
        except ConnectionSurplus as exc:  # the row in hand is back in the queue
            log.info("a connection ends: %s", exc)
            return True
        return False

    def _send_batch(self, batch: list[Delivery]) -> None:
        """SQLite: a batch read at once, each row claimed just before it goes."""
        c = self.context
        ahead: Claim | None = None  # the row in hand's claim, made in the previous commit
        for index, delivery in enumerate(batch):
            if ahead is Claim.LEFT:  # its reader left: recorded and counted already
                ahead = None
                continue
            if ahead is not Claim.CLAIMED:
                if self.stop() or not c.limiter.wait(self.stop):  # wait before claiming:
                    return  # a stop while waiting leaves the row queued, not `sending`
                claim = self.writer.claim(delivery, clock.now())
                if claim is Claim.LEFT:
                    c.count(DeliveryState.FAILED)
                if claim is not Claim.CLAIMED:
                    continue  # another sender took it, or the reader left
            following = batch[index + 1] if index + 1 < len(batch) else None
            ahead = self._send_and_record(delivery, following)

    def _run_claiming_one_by_one(self) -> None:
        """PostgreSQL: claim the next row no other sender holds (SKIP LOCKED), send it,
        record it; repeat. Several processes share the issue this way. When the next row may
        go at once, its claim rides in the answer's statement (`_send_and_claim_next`)."""
        c = self.context
        ahead: Claimed | None = None  # claimed with the previous answer
        while True:
            if ahead is None:
                if self.stop() or not c.limiter.wait(self.stop):
                    return
                ahead = self.writer.claim_next(c.issue.id, clock.now(), c.settings.claim_lease)
                if ahead is None:
                    return
                if ahead.left:  # recorded failed by the claim: never sent
                    c.count(DeliveryState.FAILED)
            claimed, ahead = ahead, None
            if not claimed.left:
                ahead = self._send_and_claim_next(claimed.delivery)

    def _send_and_claim_next(self, delivery: Delivery) -> Claimed | None:
        """PostgreSQL: send one claimed row and record the answer, with the next row's claim
        in the same statement when it may go at once (no stop, no rate wait). Returns that
        row (None: not claimed, or nothing was due)."""
        c = self.context
        outcome = self._send_one(delivery)
        now = clock.now()
        if self.stop() or not c.limiter.try_acquire():
            state, _ = self.writer.record(delivery, outcome, now, c.settings.policy,
                                          started=c.issue.snapshot_at)
            ahead = None
        else:
            state, ahead = self.writer.record_then_claim_next(
                delivery, outcome, now, c.settings.policy, c.issue.snapshot_at, c.issue.id,
                c.settings.claim_lease)
        try:
            c.refused(delivery, state, outcome)
            c.count(state)
            if ahead is not None and ahead.left:
                c.count(DeliveryState.FAILED)
            c.watch.record(outcome)
        except BaseException:
            if ahead is not None and not ahead.left:  # paused: it never went
                self.writer.requeue(ahead.delivery, clock.now())
            raise
        return ahead

    def _send_one(self, delivery: Delivery) -> SendOutcome:
        try:
            return self.context.outgoing.send(self.transport, delivery)
        except TransportUnavailable:
            self.writer.requeue(delivery, clock.now())
            raise

    def _send_and_record(self, delivery: Delivery,
                         following: Delivery | None) -> Claim | None:
        """Send one claimed row and record the answer. When the `following` row may go at
        once (no stop, no rate wait) its claim rides in this row's commit: one commit per
        message instead of two. Returns what became of that claim (None: not tried)."""
        c = self.context
        outcome = self._send_one(delivery)
        now = clock.now()
        ahead = (following
                 if following is not None and not self.stop() and c.limiter.try_acquire()
                 else None)
        state, claim_ahead = self.writer.record(
            delivery, outcome, now, c.settings.policy, started=c.issue.snapshot_at,
            then_claim=ahead)
        claimed_ahead = claim_ahead is Claim.CLAIMED
        try:
            c.refused(delivery, state, outcome)
            c.count(state)
            if claim_ahead is Claim.LEFT:
                c.count(DeliveryState.FAILED)
            c.watch.record(outcome)
        except BaseException:
            if claimed_ahead and following is not None:  # paused: it never went
                self.writer.requeue(following, clock.now())
            raise
        return claim_ahead


Share = tuple[int, int] | None  # which rows a connection sends: (k, n) = id % n == k


class _Shares:
    """The shares of a round, taken one at a time by its connections; a connection that
    retires gives its share back for another to send."""

    def __init__(self, shares: list[Share]) -> None:
        self._waiting = deque(shares)
        self._lock = threading.Lock()
        self.retired = 0  # connections that retired

    def take(self) -> tuple[bool, Share]:
        with self._lock:
            return (True, self._waiting.popleft()) if self._waiting else (False, None)

    def give_back(self, share: Share) -> None:
        with self._lock:
            self._waiting.append(share)
            self.retired += 1

    def left(self) -> list[Share]:
        return list(self._waiting)


def _run_connection(context: SendContext, transport: Transport, stop: StopRequested,
                    shares: _Shares) -> None:
    """One connection: shares taken in turn until none is left, or it retires."""
    with context.ledger.writer(context.hooks.deliverable) as writer:
        try:
            connection = _ConnectionThread(context, transport, writer, stop)
            while not stop():
                taken, share = shares.take()
                if not taken:
                    return
                if connection.run(share):
                    shares.give_back(share)
                    return
        finally:
            transport.close()


def _deliver_by_threads(context: SendContext, transports: Callable[[], Transport],
                        connections: int) -> None:
    """The connections as threads, in rounds. A connection that retires (no relay had a
    place for it, relay_chain.py) gives its share back to the others, who take it once
    their own is done; what is left when all have ended is a round of its own. No wait
    for a place is ever needed, and no row is left behind."""
    requested = context.hooks.should_stop or (lambda: False)
    waiting: list[Share] = ([None] if connections <= 1
                            else [(k, connections) for k in range(connections)])
    while waiting and not requested():
        shares = _Shares(waiting)
        started = _round_of_threads(context, transports, requested, shares,
                                    in_threads=connections > 1)
        if shares.retired == started:  # nobody sent: waiting would be for ever
            raise TransportUnavailable("no relay has a place for any connection")
        waiting = shares.left()


def _round_of_threads(context: SendContext, transports: Callable[[], Transport],
                      requested: StopRequested, shares: _Shares, in_threads: bool) -> int:
    """A connection per share of the round, as threads (the one connection of a send of
    one here, in this thread; a thread's join lets a second Ctrl-C wait for the message in
    flight to be recorded); returns how many were started."""
    count = len(shares.left())
    if not in_threads:
        _run_connection(context, transports(), requested, shares)
        return 1
    failed = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            _run_connection(context, transports(), lambda: requested() or failed.is_set(),
                            shares)
        except BaseException as exc:  # handed to the caller below
            errors.append(exc)
            failed.set()

    threads = [threading.Thread(target=run, name=f"smtp-{k}") for k in range(count)]
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
    return count


def deliver(issue: IssueRecord, ledger: Ledger, transports: Callable[[], Transport],
            newsletter: NewsletterConfig, settings: SendSettings,
            hooks: Hooks | None = None, connections: int = 1,
            workers: int = 1,
            editions: Mapping[str, RenderedIssue] | None = None) -> DeliveryCounts:
    """Send every due row of `issue` over `connections` parallel connections (sharing the
    rate limit and the error watch); returns the counts afterwards. With `workers` > 1 the
    connections are spread over that many worker processes, which build and send while
    this process claims and records (one interpreter lock per worker instead of one for
    all); else each connection is a thread here, with its own transport from `transports`.
    Raises TransportUnavailable (after requeueing the row in hand) if the server cannot be
    reached, SendPaused if it refuses too much. When `should_stop` turns true each
    connection finishes and records the message in hand, so a stopped send leaves nothing
    in `sending`. `editions`: the issue rendered in the other languages its rows name
    (a row whose language has none gets the issue's own rendering).

    Every skeleton is built here, before any worker is forked: one per language."""

    def messages(rendered: RenderedIssue, language: str) -> IssueMessages:
        return IssueMessages(rendered, newsletter, issue.created_at, settings.clicks,
                             settings.provider, language)

    context = SendContext(
        issue,
        Outgoing(messages(issue.rendered, issue.language), newsletter.from_, settings.signer,
                 settings.verp,
                 {language: messages(rendered, language)
                  for language, rendered in (editions or {}).items()}),
        ledger, settings, hooks or Hooks(),
        RateLimiter(settings.rate_per_second, settings.max_per_hour),
        ErrorWatch(settings.error_threshold, settings.error_window))
    if workers > 1 and connections > 1:
        deliver_by_processes(context, transports, connections, workers)
    else:
        _deliver_by_threads(context, transports, connections)
    return ledger.counts(issue.id)
