"""The welcome ledger: one `welcomes` row per reader, ever (its unique subscriber_id), that
moves queued → sending → sent | failed; a 4xx puts it back in the queue with a retry time;
a reader who left before their welcome went gets it `skipped` (never sent, not a failure).
Its own kind of delivery, never an issue's: the archive, the feed, issue reports and
`send --resume` read `deliveries` and never see it.

A claim is one UPDATE … WHERE the row is still due, so of two senders racing for a row
(the web's background task and `serve`'s loop, the scheduler, an import) exactly one gets
it. A row left `sending` by a sender that died is due again once its claim is older than
the lease: the welcome is sent at least once, and a crash can duplicate at most the
messages in flight (one per sender), as with issues. On PostgreSQL the lease is counted by
the database's clock, as the issues' claims are: senders on several machines never judge one
another's claims by their own clocks."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    Interval,
    and_,
    delete,
    func,
    literal,
    or_,
    select,
    update,
)

from ainews_newsletter.database import ensure_schema, insert_ignoring_conflicts
from ainews_newsletter.delivery.claims import (
    NOT_ACTIVE_REPLY,
    Claim,
    RetryPolicy,
)
from ainews_newsletter.delivery.provider_ids import provider_message_id
from ainews_newsletter.delivery.returnpath import new_return_tag
from ainews_newsletter.delivery.row_updates import answerable, database_now, still_claimed
from ainews_newsletter.delivery.tables import welcomes
from ainews_newsletter.delivery.unlisted import StillListed, drop_unlisted
from ainews_newsletter.models import DeliveryState, Recipient, SendOutcome

QUEUED, SENDING = DeliveryState.QUEUED.value, DeliveryState.SENDING.value
SENT, FAILED = DeliveryState.SENT.value, DeliveryState.FAILED.value
SKIPPED = "skipped"  # the reader left (or was removed) before it went: never sent
_CHUNK = 500  # ids per IN (…): well under SQLite's parameter limit
# A condition on welcomes.subscriber_id: the reader may still be mailed (the subscribers
# room makes it; the pipeline plugs it in).
Deliverable = Callable[[ColumnElement[int]], ColumnElement[bool]]


@dataclass(frozen=True)
class WelcomeRow:
    id: int
    subscriber_id: int
    email: str
    name: str | None
    attempts: int  # before the claim being made
    return_tag: str | None
    created_at: datetime


@dataclass(frozen=True)
class WelcomeFailure:
    email: str
    code: int | None
    reply: str | None
    at: datetime


@dataclass(frozen=True)
class WelcomeCounts:
    queued: int = 0
    sending: int = 0
    sent: int = 0
    failed: int = 0
    retrying: int = 0  # of the queued: tried already (a 4xx, or the server was down)
    skipped: int = 0  # the reader left before it went: no failure
    last_failure: WelcomeFailure | None = None

    @property
    def total(self) -> int:
        return self.queued + self.sending + self.sent + self.failed + self.skipped

    def as_dict(self) -> dict[str, Any]:
        failure = self.last_failure
        return {"queued": self.queued, "sending": self.sending, "sent": self.sent,
                "failed": self.failed, "retrying": self.retrying, "skipped": self.skipped,
                "total": self.total,
                "last_failure": None if failure is None else {
                    "email": failure.email, "code": failure.code, "reply": failure.reply,
                    "at": failure.at.isoformat()}}


def _as_utc(value: datetime | str | None) -> datetime | None:
    """min() over a TypeDecorator column comes back raw (text on SQLite, naive on
    PostgreSQL)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _claim_time(now: datetime, database_clock: bool) -> datetime | ColumnElement[datetime]:
    """What a claim stamps: the database's clock on PostgreSQL, the process's on SQLite
    (one machine)."""
    return database_now() if database_clock else now


def _due(now: datetime, lease: timedelta, database_clock: bool = False) -> ColumnElement[bool]:
    """Queued and its retry time come, or claimed longer than `lease` ago by a sender that
    never recorded it (killed, or the machine went down), by the clock claims are stamped
    with."""
    lease_start = (database_now() - literal(lease, Interval()) if database_clock
                   else now - lease)
    return or_(and_(welcomes.c.state == QUEUED,
                    or_(welcomes.c.next_attempt_at.is_(None),
                        welcomes.c.next_attempt_at <= now)),
               and_(welcomes.c.state == SENDING, welcomes.c.updated_at <= lease_start))


class WelcomeLedger:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.database_clock = engine.dialect.name == "postgresql"
        ensure_schema(engine)

    def queue(self, recipients: Iterable[Recipient], now: datetime,
              tagged: bool = False, still_listed: StillListed | None = None,
              ) -> list[Recipient]:
        """A queued row for each reader who has none (one welcome per reader, ever: a row
        already there, in any state, is left alone). `tagged`: a VERP / provider tag each.
        `still_listed`: asked in the writing transaction, so a reader erased since they
        were read gets no row (delivery/unlisted.py); those are returned."""
        gone: list[Recipient] = []
        iterator = iter(recipients)
        while batch := list(islice(iterator, _CHUNK)):
            rows = [{"subscriber_id": r.subscriber_id, "email": r.email, "name": r.name,
                     "state": QUEUED, "attempts": 0, "created_at": now, "updated_at": now,
                     "return_tag": new_return_tag() if tagged else None} for r in batch]
            with self.engine.begin() as connection:
                insert_ignoring_conflicts(connection, welcomes, rows)
                if still_listed is not None:
                    gone += drop_unlisted(connection, welcomes, batch, still_listed, QUEUED)
        return gone

    def welcomed(self, subscriber_ids: Collection[int]) -> dict[int, str]:
        """Which of these readers have a welcome row (in any state), with the address the
        row was queued for (the caller tells a reader from an earlier holder of the id)."""
        found: dict[int, str] = {}
        ids = list(subscriber_ids)
        with self.engine.connect() as connection:
            for start in range(0, len(ids), _CHUNK):
                found.update((row.subscriber_id, row.email) for row in connection.execute(
                    select(welcomes.c.subscriber_id, welcomes.c.email)
                    .where(welcomes.c.subscriber_id.in_(ids[start:start + _CHUNK]))))
        return found

    def drop_stale(self, subscriber_id: int, email: str) -> bool:
        """Delete the row of a reader who is gone: SQLite hands a deleted highest id to the
        next reader, and the row (unique per id) would keep that reader from ever being
        welcomed. Not a row being sent right now. Whether one went."""
        with self.engine.begin() as connection:
            return bool(connection.execute(delete(welcomes).where(
                welcomes.c.subscriber_id == subscriber_id, welcomes.c.email == email,
                welcomes.c.state != SENDING)).rowcount)

    def due(self, now: datetime, lease: timedelta, limit: int,
            subscriber_id: int | None = None) -> list[WelcomeRow]:
        """Rows to send now, oldest first (only this reader's with `subscriber_id`)."""
        query = (select(welcomes).where(_due(now, lease, self.database_clock))
                 .order_by(welcomes.c.id).limit(limit))
        if subscriber_id is not None:
            query = query.where(welcomes.c.subscriber_id == subscriber_id)
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [WelcomeRow(id=row.id, subscriber_id=row.subscriber_id, email=row.email,
                           name=row.name, attempts=row.attempts, return_tag=row.return_tag,
                           created_at=row.created_at) for row in rows]

    def claim(self, row: WelcomeRow, now: datetime, lease: timedelta,
              deliverable: Deliverable | None = None) -> Claim:
        """Mark the row `sending`, committed before MAIL FROM, if it is still due, nobody
        claimed it since it was read (its attempt count is unchanged) and, with
        `deliverable`, its reader may still be mailed; a reader who left meanwhile gets
        the row recorded skipped (LEFT), never a welcome."""
        still = and_(welcomes.c.id == row.id, welcomes.c.attempts == row.attempts,
                     _due(now, lease, self.database_clock))
        claiming = update(welcomes).values(state=SENDING, attempts=row.attempts + 1,
                                           updated_at=_claim_time(now, self.database_clock))
        with self.engine.begin() as connection:
            admitted = still if deliverable is None else and_(
                still, deliverable(welcomes.c.subscriber_id))
            if connection.execute(claiming.where(admitted)).rowcount == 1:
                return Claim.CLAIMED
            if deliverable is None:
                return Claim.TAKEN
            left = connection.execute(update(welcomes).where(still).values(
                state=SKIPPED, last_code=0, last_reply=NOT_ACTIVE_REPLY, updated_at=now))
            return Claim.LEFT if left.rowcount == 1 else Claim.TAKEN

    def record(self, row: WelcomeRow, outcome: SendOutcome, now: datetime,
               policy: RetryPolicy) -> str:
        """Store the server's answer to a claimed row; returns the state it leads to
        (not written when another sender took the row over meanwhile, unless sent). A 4xx
        goes back to the queue with a retry time (backoff), or fails once max_attempts are
        used or give_up_after has passed since it was queued; a 5xx fails."""
        attempts = row.attempts + 1
        state, retry_at = outcome.state.value, None
        if outcome.state is DeliveryState.DEFERRED:
            retry_at = now + policy.delay(attempts)
            if attempts >= policy.max_attempts or retry_at > row.created_at + policy.give_up_after:
                state, retry_at = FAILED, None
            else:
                state = QUEUED
        sent = state == SENT
        with self.engine.begin() as connection:
            connection.execute(update(welcomes).where(
                welcomes.c.id == row.id, answerable(welcomes, attempts, sent)).values(
                state=state, last_code=outcome.code, last_reply=outcome.reply[:1000],
                next_attempt_at=retry_at, updated_at=now, sent_at=now if sent else None,
                provider_message_id=(provider_message_id(outcome.reply) or None) if sent
                else None))
        return state

    def put_back(self, row: WelcomeRow, now: datetime, retry_at: datetime,
                 reason: str) -> None:
        """Undo a claim whose message never went (the server was down): queued again for
        `retry_at`, the attempt not counted."""
        with self.engine.begin() as connection:
            connection.execute(update(welcomes).where(
                welcomes.c.id == row.id, still_claimed(welcomes, row.attempts + 1)).values(
                    state=QUEUED, attempts=row.attempts, next_attempt_at=retry_at,
                    last_code=0, last_reply=reason[:1000], updated_at=now))

    def seconds_to_next_due(self, now: datetime, lease: timedelta) -> float | None:
        """How long until the earliest row not due now becomes due (a retry time, or a
        claim's lease running out); None when nothing is waiting. Each is measured by the
        clock that judges it (`_due`): a retry time by the process's, a claim's lease on
        PostgreSQL by the database's. A database clock ahead of ours must not make
        `serve` sleep past a dead sender's lease (and one behind must not wake it early)."""
        claim_left: float | None
        with self.engine.connect() as connection:
            retry = connection.execute(select(func.min(welcomes.c.next_attempt_at)).where(
                welcomes.c.state == QUEUED)).scalar()
            if self.database_clock:
                # timestamp - timestamp is an interval: its seconds, by the server's clock
                left = func.extract("epoch", func.min(welcomes.c.updated_at).op("+")(
                    literal(lease, Interval())).op("-")(database_now()))
                seconds = connection.execute(select(left).where(
                    welcomes.c.state == SENDING)).scalar()
                claim_left = None if seconds is None else float(seconds)
            else:
                claimed = _as_utc(connection.execute(select(func.min(welcomes.c.updated_at))
                                                     .where(welcomes.c.state == SENDING)).scalar())
                claim_left = None if claimed is None else (claimed + lease - now).total_seconds()
        retry_at = _as_utc(retry)
        waits = [None if retry_at is None else (retry_at - now).total_seconds(),
                 claim_left]
        return min((wait for wait in waits if wait is not None), default=None)

    def counts(self) -> WelcomeCounts:
        with self.engine.connect() as connection:
            by_state = {str(state): int(count) for state, count in connection.execute(
                select(welcomes.c.state, func.count()).group_by(welcomes.c.state))}
            retrying = connection.execute(
                select(func.count()).select_from(welcomes).where(
                    welcomes.c.state == QUEUED, welcomes.c.last_reply.is_not(None))).scalar_one()
            failed = connection.execute(
                select(welcomes.c.email, welcomes.c.last_code, welcomes.c.last_reply,
                       welcomes.c.updated_at).where(welcomes.c.state == FAILED)
                .order_by(welcomes.c.updated_at.desc(), welcomes.c.id.desc()).limit(1)).first()
        return WelcomeCounts(
            queued=by_state.get(QUEUED, 0), sending=by_state.get(SENDING, 0),
            sent=by_state.get(SENT, 0), failed=by_state.get(FAILED, 0), retrying=int(retrying),
            skipped=by_state.get(SKIPPED, 0),
            last_failure=None if failed is None else WelcomeFailure(
                failed.email, failed.last_code, failed.last_reply, failed.updated_at))
