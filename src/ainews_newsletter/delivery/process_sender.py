"""A send spread over worker processes. Each worker builds messages and holds SMTP
connections; the process that started them is the only one that touches the ledger.

Why: Python runs one thread at a time per process, so four connections as threads of one
process send little more than one (BENCHMARKS.md, "Sending"). As processes they use every
core, while the ledger keeps a single writer, SQLite's cheap case (several writers would
queue on its lock, sleeping each time they meet).

The guarantee is unchanged: a row is committed `sending` before it is handed to a worker (so
before its MAIL FROM), and recorded as soon as the worker reports the server's answer. Per
connection at most two rows are out, the one on the wire and the next, claimed ahead so the
worker never waits for the ledger: it builds that next message at once, but hands it over
only when the parent says the previous answer is recorded, and only if no stop was asked.
So after a kill -9 of the parent at most the message on the wire per connection goes out
unrecorded: the duplicates the contract allows, as with threads.

The parent records every answer that arrived at once in one commit, then tells each worker
"recorded" together with its next row in one message: under load the commits grow fewer,
not the waits longer. Workers inherit the sender lock (presence.py) with the fork, so a new
sender does not take their rows back while they finish.

What runs inside a worker, and the records that cross the pipe: worker_process.py.

Workers are forked, not spawned: they start in milliseconds with the issue, the message
skeleton and the settings already in memory, and need nothing pickled but each row."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import selectors
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection
from typing import NamedTuple

from ainews_newsletter import clock
from ainews_newsletter.delivery.claims import Claim, Delivery, LedgerWriter
from ainews_newsletter.delivery.pacing import SendPaused
from ainews_newsletter.delivery.send_context import SendContext
from ainews_newsletter.delivery.transports import Transport, TransportUnavailable
from ainews_newsletter.delivery.worker_process import (
    BROKEN,
    RETIRED,
    SKIPPED,
    STOP_SIGNALS,
    UNAVAILABLE,
    Answer,
    Order,
    RecordReader,
    RowToSend,
    StopFlag,
    dumps,
    run_worker,
)
from ainews_newsletter.errors import DeliveryError
from ainews_newsletter.models import DeliveryState, SendOutcome

log = logging.getLogger("ainews.delivery")
AHEAD = 2  # rows out per connection: the one on the wire and the next
# After an unexpected error, how long the answers still coming are waited for (a message
# on the wire ends within the SMTP timeout); then the workers are killed.
DRAIN_SECONDS = 60.0
_STATE = {state.value: state for state in DeliveryState}  # an answer's kind, as its state
GONE_WORKER = ("a sending worker process ended unexpectedly; run the send again to "
               "finish (`ainews send --resume`)")


@dataclass(eq=False)
class _WorkerConnection:
    """One SMTP connection in some worker: its pipe and the rows out on it, in order."""

    pipe: Connection
    reader: RecordReader
    out: deque[Delivery] = field(default_factory=deque)
    ahead: Delivery | None = None  # while an answer is recorded: the row claimed with it
    unreplied: bool = False  # an answer taken, the worker not yet told it is recorded
    retired: bool = False  # no relay had a place for it: it is handed no more rows


class _RecordedAnswer(NamedTuple):
    """An answer recorded, for the hooks that run after the commit (a named tuple: made
    once per message, cheaper than a frozen dataclass)."""

    delivery: Delivery
    state: DeliveryState
    outcome: SendOutcome
    left_ahead: bool  # the row claimed ahead turned out to be a reader who left


class _Dispatcher:
    """Claims rows, hands them to the workers, records the answers: the ledger's writer."""

    def __init__(self, context: SendContext, writer: LedgerWriter,
                 connections: list[_WorkerConnection], stop: StopFlag) -> None:
        self.context, self.writer, self.connections, self.stop = (context, writer, connections,
                                                                  stop)
        self.selector = selectors.DefaultSelector()
        for connection in connections:
            self.selector.register(connection.pipe, selectors.EVENT_READ, connection)
        self.unclaimed: deque[Delivery] = deque()  # SQLite: due rows read ahead
        self.exhausted = False  # no due row was left when one was asked for
        self.error: BaseException | None = None  # why the send stops early
        requested = context.hooks.should_stop
        self.requested: Callable[[], bool] = requested or (lambda: False)

    @property
    def stopping(self) -> bool:
        """Whether to claim no more: an error, or a stop asked (SIGTERM, Ctrl-C), in which
        case what is out is finished and recorded."""
        if self.error is not None or self.stop.is_set():  # (asked a few times a message)
            return True
        if self.requested():
            self.stop.set()  # the workers skip the rows they have not begun
            return True
        return False

    def run(self) -> None:
        try:
            self._hand_out_and_record()
        except BaseException as exc:  # a second Ctrl-C, or the ledger failing: stop handing
            self._halt(exc)  # out rows, record what comes back, then let it through
            self._release_waiting()
            self._drain()
            raise
        finally:
            self.selector.close()
        if self.error is not None:
            raise self.error

    def _halt(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self.stop.set()

    def _hand_out_and_record(self) -> None:
        for connection in self.connections:
            self._hand_out_rows(connection)
        # Until nothing is out and nothing more may go: a connection may sit empty for a
        # while (the rate limit's next slot, the hourly quota) while rows are still due.
        while (any(connection.out for connection in self.connections)
               or not (self.stopping or self.exhausted)):
            self._take_answers(self._answer_timeout())
            for connection in self.connections:
                self._hand_out_rows(connection)

    def _release_waiting(self) -> None:
        """After an unexpected error: tell every worker waiting to hear its answer was
        recorded to go on (the stop flag is set, so it skips what it has and answers)."""
        for connection in self.connections:
            if connection.unreplied:
                connection.unreplied = False
                with contextlib.suppress(OSError):
                    connection.pipe.send((True, None))

    def _drain(self) -> None:
        """After an unexpected error: take the answers still coming, best effort and for
        DRAIN_SECONDS at most (the ledger itself may be what failed)."""
        deadline = time.monotonic() + DRAIN_SECONDS
        try:
            while (any(connection.out for connection in self.connections)
                   and time.monotonic() < deadline):
                self._take_answers(1.0)
                self._release_waiting()
        except BaseException:  # the first error is the one to report
            return

    def _answer_timeout(self) -> float:
        """How long to wait for answers: until the rate limit frees a slot when a
        connection waits for one, else up to a second (to notice a stop asked meanwhile)."""
        limiter = self.context.limiter
        if (not self.stopping and not self.exhausted and limiter.limits  # (before the walk)
                and any(len(connection.out) < AHEAD for connection in self.connections)):
            return min(1.0, max(0.001, limiter.seconds_to_wait()))
        return 1.0

    def _hand_out_rows(self, connection: _WorkerConnection) -> None:
        """Claim rows for `connection` and send them to its worker, until AHEAD are out on
        it, the rate limit says wait, nothing is due, or the send stops."""
        while (len(connection.out) < AHEAD and not connection.retired and not self.stopping
               and not self.exhausted and self.context.limiter.try_acquire()):
            delivery = self._claim_one()
            if delivery is None:
                self.exhausted = True
                return
            connection.out.append(delivery)
            self._send_order(connection, (False, RowToSend.wire(delivery)), delivery)
            if self.stopping:
                return

    def _send_order(self, connection: _WorkerConnection, order: Order,
                    row: Delivery | None) -> None:
        """Send a worker its order; if it is gone, the row in the order (which never went)
        is put back, and the send stops (its rows before stay `sending`, resent later)."""
        try:
            connection.pipe.send_bytes(dumps(order))
        except OSError:
            if row is not None:
                connection.out.remove(row)
                self.writer.requeue(row, clock.now())
            self._halt(DeliveryError(GONE_WORKER))

    def _claim_one(self) -> Delivery | None:
        """The next row, committed `sending`; None when nothing is due."""
        c = self.context
        if self.writer.skips_locked:  # PostgreSQL: the next row no other sender holds
            while (claimed := self.writer.claim_next(c.issue.id, clock.now(),
                                                     c.settings.claim_lease)) is not None:
                if not claimed.left:
                    return claimed.delivery
                c.count(DeliveryState.FAILED)
            return None
        while (delivery := self._next_unclaimed()) is not None:
            claim = self.writer.claim(delivery, clock.now())
            if claim is Claim.CLAIMED:
                return delivery
            if claim is Claim.LEFT:
                c.count(DeliveryState.FAILED)
        return None

    def _next_unclaimed(self, now: datetime | None = None) -> Delivery | None:
        if not self.unclaimed:  # read at the claim's own time: a row due by then is claimable
            c = self.context
            self.unclaimed.extend(c.ledger.due(c.issue.id, now or clock.now(),
                                               c.settings.batch_size))
        return self.unclaimed.popleft() if self.unclaimed else None

    def _take_answers(self, timeout: float) -> None:
        """Every answer that has arrived (waiting up to `timeout` for the first), recorded
        in one commit; then each worker hears "recorded" with its next row, and the hooks
        run (after the commit: a hook may write to the database itself)."""
        answered: list[tuple[_WorkerConnection, Answer]] = []
        for key, _ in self.selector.select(timeout):
            connection: _WorkerConnection = key.data
            if not connection.out:  # nothing out, so nothing to say: its worker has ended
                self.selector.unregister(connection.pipe)
                self._halt(DeliveryError(GONE_WORKER))
                continue
            try:
                answered.append((connection, Answer._make(connection.reader.read())))
                connection.unreplied = True
            except (EOFError, OSError):
                # The worker died (killed, out of memory) with rows out: whether the one on
                # the wire went is unknown, so they stay `sending`; the next send resends.
                connection.out.clear()
                self._halt(DeliveryError(GONE_WORKER))
        if not answered:
            return
        # Each answer is for the first row out on its connection; matched before anything
        # is written, so that a failed commit leaves every connection's rows as they are at
        # the worker.
        matched: list[tuple[_WorkerConnection, Delivery, Answer]] = []
        for connection, answer in answered:
            delivery = connection.out.popleft()
            assert delivery.id == answer.row_id, "a worker answered out of order"
            matched.append((connection, delivery, answer))
        # One time for the whole commit (the clock is read once, not per statement).
        results = self.writer.atomically(lambda: self._record_answers(matched, clock.now()))
        for result in results:  # before the next rows go: a pause keeps them back
            try:
                self.context.watch.record(result.outcome)
            except SendPaused as exc:
                self._halt(exc)
        stopping = self.stopping  # a stop asked meanwhile is set before anyone goes on
        for connection, _ in answered:
            ahead, connection.ahead = connection.ahead, None
            if ahead is not None and stopping:
                connection.out.remove(ahead)  # stopped meanwhile: it never went
                self.writer.requeue(ahead, clock.now())
                ahead = None
            connection.unreplied = False
            row = None if ahead is None else RowToSend.wire(ahead)
            self._send_order(connection, (True, row), ahead)
        for result in results:
            self._after_commit(result)

    def _record_answers(self, matched: list[tuple[_WorkerConnection, Delivery, Answer]],
                        now: datetime) -> list[_RecordedAnswer]:
        """Write the answers (in the writer's one commit). Run again from scratch when the
        database went away meanwhile, and the rows' answers are never lost: until they are
        recorded their workers wait, holding the next row back."""
        results: list[_RecordedAnswer] = []
        try:
            for connection, delivery, answer in matched:
                result = self._record_answer(connection, delivery, answer, now)
                if result is not None:
                    results.append(result)
        except BaseException:  # rolled back: the rows claimed ahead were not claimed
            for connection, _, _ in matched:
                if connection.ahead is not None:
                    connection.out.remove(connection.ahead)
                    connection.ahead = None
            raise
        return results

    def _record_answer(self, connection: _WorkerConnection, delivery: Delivery,
                       answer: Answer, now: datetime) -> _RecordedAnswer | None:
        """Write one answer (inside the shared commit), the connection's next row claimed
        in the same commit when it may go now, as in the threaded sender."""
        kind, text = answer.kind, answer.text
        if kind in (SKIPPED, UNAVAILABLE, BROKEN, RETIRED):
            self.writer.requeue(delivery, now)  # it never went, or may not have
            if kind == RETIRED:
                self._retire(connection, text)
            elif kind == UNAVAILABLE:
                self._halt(TransportUnavailable(text))
            elif kind == BROKEN:
                self._halt(DeliveryError(f"a sending worker failed: {text}"))
            return None
        c = self.context
        outcome = SendOutcome(_STATE[kind], answer.code, text, answer.relay)
        if self.writer.skips_locked:
            # PostgreSQL: the answers alone in the shared commit; the next rows are claimed
            # outside it (_hand_out_rows). A claim waits on its reader's row lock, and one
            # failing there (a deadlock with an erase, a lock timeout) would roll back every
            # answer of the batch, messages already sent, to go out again.
            state, _ = self.writer.record(delivery, outcome, now, c.settings.policy,
                                          started=c.issue.snapshot_at)
            return _RecordedAnswer(delivery, state, outcome, False)
        may_go = (len(connection.out) < AHEAD and not connection.retired
                  and not self.stopping and not self.exhausted and c.limiter.try_acquire())
        ahead = self._next_unclaimed(now) if may_go else None
        state, claim = self.writer.record(delivery, outcome, now, c.settings.policy,
                                          started=c.issue.snapshot_at, then_claim=ahead)
        if claim is Claim.CLAIMED and ahead is not None:
            connection.ahead = ahead
            connection.out.append(ahead)
        return _RecordedAnswer(delivery, state, outcome, claim is Claim.LEFT)

    def _retire(self, connection: _WorkerConnection, why: str) -> None:
        """No relay has a place for `connection`: it gets no more rows, and its row, back
        in the queue, is read again by the others (`exhausted` may have been set before
        the row went back). Should every connection retire, the send stops rather than
        wait for ever."""
        if not connection.retired:
            log.info("a connection ends: %s", why)
        connection.retired = True
        self.exhausted = False
        if all(other.retired for other in self.connections):
            self._halt(TransportUnavailable(why))

    def _after_commit(self, result: _RecordedAnswer) -> None:
        c = self.context
        if result.left_ahead:
            c.count(DeliveryState.FAILED)
        c.refused(result.delivery, result.state, result.outcome)
        c.count(result.state)


def deliver_by_processes(context: SendContext, transports: Callable[[], Transport],
                         connections: int, workers: int) -> None:
    """Send the issue's due rows over `connections` spread across `workers` forked
    processes (at most one per connection). Raises what stopped the send early, after
    every answer still coming was recorded."""
    workers = max(1, min(workers, connections))
    fork = multiprocessing.get_context("fork")
    pairs = [fork.Pipe(duplex=True) for _ in range(connections)]
    ours = [mine for mine, _ in pairs]
    theirs = [other for _, other in pairs]
    stop = StopFlag(fork.RawValue("b", 0))
    processes = []
    for number in range(workers):
        pipes = theirs[number::workers]
        foreign = ours + [pipe for pipe in theirs if pipe not in pipes]
        processes.append(fork.Process(
            target=run_worker, name=f"ainews-send-{number + 1}", daemon=True,
            args=(pipes, foreign, context.outgoing, transports, stop, os.getpid(), number,
                  workers, connections)))
    started = []
    try:
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:  # a Ctrl-C now runs the parent's handler once the workers are all started
            for process in processes:
                process.start()
                started.append(process)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        for pipe in theirs:
            pipe.close()
        with context.ledger.writer(context.hooks.deliverable) as writer:
            _Dispatcher(context, writer, [_WorkerConnection(pipe, RecordReader(pipe))
                                          for pipe in ours], stop).run()
    finally:
        stop.set()
        for pipe in ours:
            with contextlib.suppress(OSError):  # a worker already gone
                pipe.send(None)
            pipe.close()
        deadline = time.monotonic() + DRAIN_SECONDS
        for worker in started:  # each ends after the message in hand, if it has one
            worker.join(max(0.0, deadline - time.monotonic()))
            if worker.is_alive():  # stuck (a server that never answers): no more waiting
                worker.kill()
                worker.join()
