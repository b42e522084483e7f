"""Claiming and recording delivery rows: the two statements a send runs per message (on
PostgreSQL one: the answer and the next row's claim together), and the check, in the claim
itself, that the reader may still get the issue. The retry policy: retry_policy.py; the
values claims take and give: claim_types.py."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    Update,
    update,
)
from sqlalchemy.exc import DBAPIError

from ainews_newsletter.database import as_sqlalchemy_error, sqlalchemy_error
from ainews_newsletter.delivery.claim_types import Claim, Claimed, DeliverableCheck, Delivery
from ainews_newsletter.delivery.driver_statement import (
    Converted,
    DriverStatement,
    PsycopgStatement,
)
from ainews_newsletter.delivery.reconnect import Reconnect
from ainews_newsletter.delivery.retry_policy import RetryPolicy, answer_statement
from ainews_newsletter.delivery.row_updates import (
    CLAIM,
    CLAIM_DEFERRED,
    CLAIM_EXPIRED,
    CLAIM_QUEUED,
    DEFERRED_DUE,
    LEASE_EXPIRED,
    NOT_ACTIVE_REPLY,
    QUEUED_ABOVE,
    RECORD,
    RECORD_RELAY,
    RECORD_RELAY_SENT_WITH_ID,
    RECORD_SENT_WITH_ID,
    STILL_CLAIMED,
    after_record,
    claim_lowest_admitted,
)
from ainews_newsletter.delivery.tables import deliveries
from ainews_newsletter.models import DeliveryState, Recipient, SendOutcome
from ainews_newsletter.storage_faults import database_away

T = TypeVar("T")

__all__ = ["NOT_ACTIVE_REPLY", "Claim", "Claimed", "DeliverableCheck", "Delivery",
           "LedgerWriter", "RetryPolicy"]


class LedgerWriter:
    """A sender connection's writes to its rows, each committed before it returns, on one
    connection kept for the whole send (a pool checkout per message was a large share of
    each message's cost).

    With `deliverable`, every claim asks, in its own transaction, whether the subscriber
    may still be sent to: an unsubscribe committed before the claim is always honoured, and
    one committed after it can only meet the message already on its way. The check is part
    of the claim's UPDATE: on SQLite under its write lock; on PostgreSQL with the subscriber
    row read FOR SHARE in the same statement.

    On PostgreSQL the connection runs in autocommit, and each claim, record or both
    (`record_then_claim_next`) is one statement, so one round trip and its own commit (a
    BEGIN and a COMMIT would be two more round trips each); `together` opens a transaction
    explicitly.

    With `reconnect`, each write (or `atomically`'s block) that fails because the database
    went away is tried again once it is back (reconnect.py): every write here sets absolute
    values (a state, an attempt count) on rows named by id, so a commit that did happen
    before the connection was lost is only repeated, never counted twice."""

    def __init__(self, connection: Connection,
                 deliverable: DeliverableCheck | None = None,
                 reconnect: Reconnect | None = None) -> None:
        self.connection = connection
        self.deliverable = deliverable
        self.reconnect = reconnect
        # Built once per writer: the claim of a row whose reader may still get it.
        self._claim_admitted = (CLAIM.where(deliverable.clause(deliveries.c.subscriber_id))
                                if deliverable is not None else CLAIM)
        # PostgreSQL can hand each sender the next row nobody else holds; SQLite has one
        # writer at a time, and there the read-then-claim of a batch is faster.
        self.skips_locked = connection.dialect.name == "postgresql"
        # PostgreSQL: claim_next's three claims (queued above a row, deferred and due, lease
        # run out), each with the reader's check when there is one; and, per statement that
        # records an answer, that record with the first claim (`record_then_claim_next`).
        self._claims: tuple[Update, Update, Update] = (CLAIM_QUEUED, CLAIM_DEFERRED,
                                                       CLAIM_EXPIRED)
        if self.skips_locked and deliverable is not None:
            queued, deferred, expired = (
                claim_lowest_admitted(conditions, deliverable.locked_reader)
                for conditions in (QUEUED_ABOVE, DEFERRED_DUE, LEASE_EXPIRED))
            self._claims = (queued, deferred, expired)
        self._recorded_claims: dict[Update, Update] = {}
        self._on_driver: dict[Update, PsycopgStatement] = {}  # the claims, run on psycopg
        if self.skips_locked:
            self._autocommit()
        # SQLite: the per-message statements go straight to the driver (PostgreSQL's cost is
        # the round trip, which SQLAlchemy does not add to).
        self._driver: Any = None
        self._depth = 0  # nesting of `together`
        self._claimed_up_to = 0  # PostgreSQL: the id of the last queued row claimed here
        driver = connection.connection.driver_connection
        # Only with sqlite3's own transactions (BEGIN before the first write, ended by
        # commit()): in autocommit each statement would commit alone, and `together` and
        # the claim riding in the record's commit would silently stop being one commit.
        if connection.dialect.name == "sqlite" and getattr(driver, "isolation_level",
                                                           None) is not None:
            dialect = connection.dialect
            self._driver = driver
            converted: Converted = {}  # one `now` per commit, converted once
            self._raw = {statement: DriverStatement(statement, dialect, converted)
                         for statement in (self._claim_admitted, CLAIM, RECORD,
                                           RECORD_SENT_WITH_ID, RECORD_RELAY,
                                           RECORD_RELAY_SENT_WITH_ID)}

    def _execute(self, statement: Update, values: dict[str, Any]) -> int:
        """Run one of the per-message statements; returns the rows it changed."""
        if self._driver is None:
            return int(self.connection.execute(statement, values).rowcount)
        raw = self._raw[statement]
        parameters = raw.parameters(values)
        try:  # not as_sqlalchemy_error: a context manager costs more than the rest here
            return int(self._driver.execute(raw.sql, parameters).rowcount)
        except sqlite3.Error as exc:
            raise sqlalchemy_error(raw.sql, parameters, exc) from exc

    def _autocommit(self) -> None:
        """PostgreSQL: each statement its own commit (see the class). Set again after a
        reconnect, whose new connection starts in SQLAlchemy's default; the pool resets it
        when the writer's connection goes back."""
        driver: Any = self.connection.connection.driver_connection
        if not driver.autocommit:
            self.connection.execution_options(isolation_level="AUTOCOMMIT")

    def _retried(self, work: Callable[[], T]) -> T:
        """`work` (one commit), tried again while the database is away; inside `together`
        the outer block is what is retried."""
        if self.reconnect is None or self._depth:
            return work()
        if not self.skips_locked:
            return self.reconnect.run(work, self.connection)

        def afresh() -> T:
            self._autocommit()
            return work()

        return self.reconnect.run(afresh, self.connection)

    def atomically(self, work: Callable[[], T]) -> T:
        """`work`'s writes in one commit (`together`), the whole block run again if the
        database went away meanwhile: `work` must start from scratch each time."""

        def once() -> T:
            with self.together():
                return work()

        return self._retried(once)

    @contextmanager
    def together(self) -> Iterator[None]:
        """Several writes in one commit, made on leaving (rolled back together on an
        error): the worker-process sender records every answer that arrived at once in one
        commit. Nothing written inside may be acted on before the block ends. On PostgreSQL
        (autocommit) the block begins its transaction explicitly, and the connection's
        commit or rollback, which end it, do nothing after a lone statement."""
        with self._committed():
            if self.skips_locked and not self._depth:  # autocommit: one transaction here
                self.connection.exec_driver_sql("BEGIN")
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1

    @contextmanager
    def _committed(self) -> Iterator[None]:
        """One transaction on the kept connection: committed on leaving, rolled back on any
        error (a half-written claim must not ride along with the next commit). On SQLite
        the driver's own commit, which also ends what SQLAlchemy began on the connection.
        Inside `together`, the outer block commits."""
        if self._depth:
            yield
            return
        try:
            yield
        except BaseException:
            self.connection.rollback()
            if self._driver is not None:
                self._driver.rollback()
            raise
        if self._driver is not None and not self.connection.in_transaction():
            with as_sqlalchemy_error("COMMIT", ()):
                self._driver.commit()
        else:
            self.connection.commit()

    def claim_next(self, issue_id: int, now: datetime, lease: timedelta) -> Claimed | None:
        """PostgreSQL: take the oldest queued row that no other sender holds (else a deferred
        row now due, else one whose claim is older than `lease`) and mark it `sending`, in
        one committed statement (UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED)).
        Several `ainews send` processes, on several machines, then share one issue without
        waiting for, or racing over, each other's rows. The claim time is the database's:
        hosts' clocks may disagree. None when nothing is due.

        Queued rows are looked for above the last one this writer claimed (then, once none
        is left there, from the start: rows put back, or another sender's): PostgreSQL's
        planner takes the primary key for "lowest id", and from the start that walk passed
        every row already sent, so a claim cost more the further the send had got.
        Deferred and lease-expired rows are few, each its own statement.

        Retried while the database is away. A claim committed just before the connection
        was lost (its answer never came back) stays `sending` until its lease runs out, and
        then goes like any row of a dead sender's."""
        return self._retried(lambda: self._claim_next(issue_id, now, lease))

    def _claim_next(self, issue_id: int, now: datetime, lease: timedelta,
                    above_tried: bool = False) -> Claimed | None:
        values = {"issue": issue_id, "now": now, "lease": lease}
        queued, deferred, expired = self._claims
        starts = (0,) if above_tried else tuple(dict.fromkeys((self._claimed_up_to, 0)))
        for after in starts:
            claimed = self._queued_claimed(self._claim_first(queued, {**values,
                                                                      "after": after}))
            if claimed is not None:
                return claimed
        for statement in (deferred, expired):
            claimed = self._claim_first(statement, values)
            if claimed is not None:
                return claimed
        return None

    def _claim_first(self, statement: Update, values: dict[str, Any]) -> Claimed | None:
        raw = self._on_driver.get(statement)
        if raw is None:
            raw = self._on_driver[statement] = PsycopgStatement(statement,
                                                                self.connection.dialect)
        with self._committed():
            row = raw.first(self.connection.connection.driver_connection, values)
        return None if row is None else self._claimed(row)

    def _claimed(self, row: Any) -> Claimed:
        """The row a claim returned; a reader who left was recorded failed by it."""
        # `attempts` counts this claim already; a Delivery carries the count before it.
        delivery = Delivery(id=row.id, attempts=row.attempts - 1, recipient=Recipient(
            subscriber_id=row.subscriber_id, email=row.email, name=row.name,
            token=row.token, language=row.language), return_tag=row.return_tag)
        return Claimed(delivery, not row.admitted)

    def _queued_claimed(self, claimed: Claimed | None) -> Claimed | None:
        """A queued row's claim: the next ones are looked for above it."""
        if claimed is not None:  # (a row put back below does not move it back)
            self._claimed_up_to = max(self._claimed_up_to, claimed.delivery.id)
        return claimed

    def _record_left(self, delivery: Delivery, now: datetime) -> None:
        self._execute(RECORD, {
            "row_id": delivery.id, "claimed_attempts": delivery.attempts + 1,
            "new_state": DeliveryState.FAILED.value, "code": 0,
            "reply": NOT_ACTIVE_REPLY, "erased_reply": NOT_ACTIVE_REPLY, "next_at": None,
            "now": now, "sent": None})

    def _claim(self, delivery: Delivery, now: datetime) -> Claim:
        params = {"row_id": delivery.id, "now": now, "new_attempts": delivery.attempts + 1}
        if self._execute(self._claim_admitted, params) == 1:
            return Claim.CLAIMED
        if self.deliverable is None:
            return Claim.TAKEN
        # Not claimed: another sender has it, or its reader left. Claiming it without the
        # reader's condition tells which (the rare path: a second statement).
        if self._execute(CLAIM, params) != 1:
            return Claim.TAKEN
        self._record_left(delivery, now)
        return Claim.LEFT

    def claim(self, delivery: Delivery, now: datetime) -> Claim:
        """SQLite: mark the row `sending`, committed before MAIL FROM, if it is still due
        and its subscriber may still get it. The check and the write are one UPDATE, so of
        two senders racing for a row exactly one wins (TAKEN for the other)."""

        def claim() -> Claim:
            with self._committed():
                return self._claim(delivery, now)

        return self._retried(claim)

    def record(self, delivery: Delivery, outcome: SendOutcome, now: datetime,
               policy: RetryPolicy, started: datetime | None = None,
               then_claim: Delivery | None = None) -> tuple[DeliveryState, Claim | None]:
        """Store the server's answer (retry_policy.answer_statement), committed at once.
        With `then_claim` (SQLite) the next row's claim goes in the same commit: its
        `sending` is still committed before its MAIL FROM, and a send costs one commit per
        message instead of two (inside `together`, its block commits and is retried).
        Returns the state written and what became of the next row's claim."""
        state, statement, values = answer_statement(
            delivery.id, delivery.attempts, outcome, now, policy, started)

        def written() -> Claim | None:
            self._execute(statement, values)
            return None if then_claim is None else self._claim(then_claim, now)

        def record() -> Claim | None:
            with self._committed():
                return written()

        return state, written() if self._depth else self._retried(record)

    def record_then_claim_next(self, delivery: Delivery, outcome: SendOutcome, now: datetime,
                               policy: RetryPolicy, started: datetime | None, issue_id: int,
                               lease: timedelta) -> tuple[DeliveryState, Claimed | None]:
        """PostgreSQL: `record`, and `claim_next` in the same statement, so one round trip
        and one commit per message (the SQLite sender's `then_claim`): the next row is still
        committed `sending` before its MAIL FROM. Returns the state written and the row
        claimed (None: nothing is due). Only when no queued row is left above the last one
        claimed here do the other claims follow, each its own statement.

        Retried while the database is away: the answer's values are absolute, so repeating
        a record that did commit changes nothing, and a claim whose answer was lost stays
        `sending` until its lease runs out (see `claim_next`)."""
        state, statement, values = answer_statement(
            delivery.id, delivery.attempts, outcome, now, policy, started)
        combined = self._recorded_claims.get(statement)
        if combined is None:
            combined = self._recorded_claims[statement] = after_record(self._claims[0],
                                                                       statement)
        values = {**values, "issue": issue_id, "after": self._claimed_up_to}

        def record() -> Claimed | None:
            return self._queued_claimed(self._claim_first(combined, values))

        try:
            claimed = self._retried(record)
        except DBAPIError as exc:
            if database_away(exc):
                raise
            # The claim's part failed (it waits on the reader's row: a deadlock with an
            # erase, a lock or statement timeout) and took the answer with it: the answer
            # alone, so a message already sent is not sent again; then the claim, alone.
            self.record(delivery, outcome, now, policy, started)
            return state, self._retried(lambda: self._claim_next(issue_id, now, lease))
        if claimed is None:
            claimed = self._retried(lambda: self._claim_next(issue_id, now, lease,
                                                             above_tried=True))
        return state, claimed

    def requeue(self, delivery: Delivery, now: datetime) -> None:
        """Undo a claim when the message never went (server down, send stopped). Resending
        it later is what the at-least-once contract asks for."""

        def requeue() -> None:
            with self._committed():
                self.connection.execute(update(deliveries).where(
                    deliveries.c.id == delivery.id, STILL_CLAIMED).values(
                        state=DeliveryState.QUEUED.value, attempts=delivery.attempts,
                        updated_at=now), {"claimed_attempts": delivery.attempts + 1})

        self._retried(requeue)
