"""The send loop with connections as threads of this process: take due ledger rows, claim
each (`sending`, committed), hand it to the transport, record the answer. Stops cleanly,
leaving rows queued, if the transport goes away.

`deliver`, the way into a send, runs it here, or (`workers` > 1) in worker processes that
build and send while this process alone claims and records (process_sender.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from ainews_newsletter import clock
from ainews_newsletter.config import NewsletterConfig
from ainews_newsletter.delivery.claims import Claim, Delivery, LedgerWriter
from ainews_newsletter.delivery.ledger import IssueRecord, Ledger
from ainews_newsletter.delivery.message import IssueMessages
from ainews_newsletter.delivery.outgoing import Outgoing
from ainews_newsletter.delivery.pacing import ErrorWatch, RateLimiter, StopRequested
from ainews_newsletter.delivery.process_sender import deliver_by_processes
from ainews_newsletter.delivery.send_context import Hooks, SendContext, SendSettings
from ainews_newsletter.delivery.transports import Transport, TransportUnavailable
from ainews_newsletter.models import DeliveryCounts, DeliveryState, RenderedIssue, SendOutcome


class _ConnectionThread:
    """One connection's loop in this process: claim a due row, send it, record the answer,
    until none is left or `stop` says so."""

    def __init__(self, context: SendContext, transport: Transport, writer: LedgerWriter,
                 stop: StopRequested) -> None:
        self.context, self.transport, self.writer, self.stop = context, transport, writer, stop

    def run(self, share: tuple[int, int] | None) -> None:
        c = self.context
        if self.writer.skips_locked:
            self._run_claiming_one_by_one()
            return
        while not self.stop() and (batch := c.ledger.due(
                c.issue.id, clock.now(), c.settings.batch_size, share)):
            self._send_batch(batch)

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
        record it; repeat. Several processes share the issue this way."""
        c = self.context
        while not self.stop() and c.limiter.wait(self.stop):
            claimed = self.writer.claim_next(c.issue.id, clock.now(), c.settings.claim_lease)
            if claimed is None:
                return
            if claimed.left:
                c.count(DeliveryState.FAILED)
                continue
            self._send_and_record(claimed.delivery, None)

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


def _run_connection(context: SendContext, transport: Transport, stop: StopRequested,
                    share: tuple[int, int] | None) -> None:
    with context.ledger.writer(context.hooks.deliverable) as writer:
        try:
            _ConnectionThread(context, transport, writer, stop).run(share)
        finally:
            transport.close()


def _deliver_by_threads(context: SendContext, transports: Callable[[], Transport],
                        connections: int) -> None:
    requested = context.hooks.should_stop or (lambda: False)
    if connections <= 1:
        _run_connection(context, transports(), requested, None)
        return
    failed = threading.Event()
    errors: list[BaseException] = []

    def run(share: tuple[int, int]) -> None:
        try:
            _run_connection(context, transports(), lambda: requested() or failed.is_set(),
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
