"""The delivery ledger: one frozen issue row per (list, period) and one row per
(issue, subscriber) that moves queued → sending → sent | deferred | failed.

Every state change is its own committed transaction, so after a crash the ledger says
exactly who got the issue, and a second send of the same issue never mails them again."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Engine,
    ForeignKey,
    Index,
    Integer,
    Interval,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from ainews_newsletter.database import UTCDateTime, ensure_schema, insert_ignoring_conflicts
from ainews_newsletter.models import (
    DeliveryCounts,
    DeliveryState,
    Period,
    PostRef,
    Recipient,
    RenderedIssue,
    SendOutcome,
)

metadata = MetaData()
# The reply recorded for a row skipped because the subscriber left after the snapshot.
NOT_ACTIVE_REPLY = "not sent: no longer an active subscriber"

issues = Table(
    "issues",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("list_id", String(255), nullable=False),
    Column("period_key", String(64), nullable=False),
    Column("period_start", UTCDateTime(), nullable=False),
    Column("period_end", UTCDateTime(), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("subject", Text, nullable=False),
    Column("preheader", Text, nullable=False),
    Column("html", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("unsubscribe_placeholder", String(255), nullable=False),
    Column("post_count", Integer, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("snapshot_at", UTCDateTime(), nullable=True),  # set once the audience is copied
    # One issue per list and period, enforced by the database, not by a process.
    UniqueConstraint("list_id", "period_key", name="uq_issue_list_period"),
)

# The posts each issue carried, so a later issue never carries them again.
issue_posts = Table(
    "issue_posts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("issue_id", Integer, ForeignKey("issues.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("guid", Text, nullable=True),
    Column("url", Text, nullable=False),  # canonical form
    Column("title", Text, nullable=False),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("issue_id", Integer, ForeignKey("issues.id", ondelete="CASCADE"), nullable=False),
    # A snapshot of the recipient: the subscriber row may change or vanish after the send.
    Column("subscriber_id", Integer, nullable=False),
    Column("email", String(320), nullable=False),
    Column("name", Text, nullable=True),
    Column("token", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime(), nullable=True),
    Column("last_code", Integer, nullable=True),
    Column("last_reply", Text, nullable=True),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("sent_at", UTCDateTime(), nullable=True),
    UniqueConstraint("issue_id", "subscriber_id", name="uq_delivery_issue_subscriber"),
    Index("ix_delivery_issue_state", "issue_id", "state"),
)


@dataclass(frozen=True)
class IssueRecord:
    id: int
    list_id: str
    rendered: RenderedIssue
    created_at: datetime
    snapshot_at: datetime | None


@dataclass(frozen=True)
class Delivery:
    id: int
    recipient: Recipient
    attempts: int


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    base_seconds: int
    max_seconds: int
    give_up_after: timedelta = timedelta(hours=24)  # counted from the audience snapshot

    def delay(self, attempts: int) -> timedelta:
        """Exponential backoff: base, 2 * base, 4 * base … capped at max."""
        return timedelta(seconds=min(self.max_seconds, self.base_seconds * 2 ** (attempts - 1)))


def _issue_record(row: Any) -> IssueRecord:
    tz = ZoneInfo(row.timezone)
    period = Period(key=row.period_key, start=row.period_start.astimezone(tz),
                    end=row.period_end.astimezone(tz))
    rendered = RenderedIssue(period=period, subject=row.subject, preheader=row.preheader,
                             html=row.html, text=row.text,
                             unsubscribe_placeholder=row.unsubscribe_placeholder,
                             post_count=row.post_count)
    return IssueRecord(id=row.id, list_id=row.list_id, rendered=rendered,
                       created_at=row.created_at, snapshot_at=row.snapshot_at)


def _aggregate_time(value: datetime | str) -> datetime:
    """max() over a TypeDecorator column comes back raw (a string on SQLite, naive on
    PostgreSQL): as aware UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _is_due(now: datetime | ColumnElement[datetime]) -> ColumnElement[bool]:
    """Queued rows, and deferred rows whose retry time has come. Rows left `sending` are
    not due here: on SQLite a sender that finds itself alone gives them back
    (`release_claims`); on PostgreSQL `claim_next` adds the lease."""
    return or_(
        deliveries.c.state == DeliveryState.QUEUED.value,
        and_(deliveries.c.state == DeliveryState.DEFERRED.value,
             deliveries.c.next_attempt_at <= now),
    )


def _database_now() -> ColumnElement[datetime]:
    """The database server's clock, as naive UTC like the stored times (PostgreSQL). Every
    sender of a scaled-out send compares claims against this one clock, never its own."""
    return func.timezone("UTC", func.now())


def _lease_expired(lease: ColumnElement[timedelta]) -> ColumnElement[bool]:
    """A row claimed longer ago than `lease` by the database's clock: its sender is presumed
    dead, and at-least-once means the row goes again."""
    return and_(deliveries.c.state == DeliveryState.SENDING.value,
                deliveries.c.updated_at < _database_now() - lease)


# The two statements run for every message, built once: constructing a SQLAlchemy statement
# costs more than SQLite takes to run it.
_NOW = bindparam("now", type_=UTCDateTime())
_CLAIM = (update(deliveries)
          .where(deliveries.c.id == bindparam("row_id"), _is_due(_NOW))
          .values(state=DeliveryState.SENDING.value, attempts=bindparam("new_attempts"),
                  updated_at=_NOW))
_RECORD = (update(deliveries)
           .where(deliveries.c.id == bindparam("row_id"))
           .values(state=bindparam("new_state"), last_code=bindparam("code"),
                   last_reply=bindparam("reply"),
                   next_attempt_at=bindparam("next_at", type_=UTCDateTime()),
                   updated_at=_NOW, sent_at=bindparam("sent", type_=UTCDateTime())))


def _answer(delivery: Delivery, outcome: SendOutcome, now: datetime, policy: RetryPolicy,
            started: datetime | None) -> tuple[DeliveryState, datetime | None]:
    """The state a server's answer leads to: a 4xx becomes deferred with backoff, or failed
    once max_attempts is used up or the next try would fall after give_up_after (counted
    from `started`); and when the next try is due."""
    attempts = delivery.attempts + 1
    if outcome.state is not DeliveryState.DEFERRED:
        return outcome.state, None
    next_attempt = now + policy.delay(attempts)
    too_late = started is not None and next_attempt > started + policy.give_up_after
    if attempts >= policy.max_attempts or too_late:
        return DeliveryState.FAILED, None
    return DeliveryState.DEFERRED, next_attempt


class LedgerWriter:
    """A sender connection's writes to its rows, each committed before it returns, on one
    connection kept for the whole send (a pool checkout per message cost a fifth of the
    time per message)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        # PostgreSQL can hand each sender the next row nobody else holds; SQLite has one
        # writer at a time, and there the read-then-claim of a batch is faster.
        self.skips_locked = connection.dialect.name == "postgresql"

    @contextmanager
    def _committed(self) -> Iterator[None]:
        """One transaction on the kept connection: committed on leaving, rolled back on any
        error (a half-written claim must not ride along with the next commit)."""
        try:
            yield
        except BaseException:
            self.connection.rollback()
            raise
        self.connection.commit()

    def claim_next(self, issue_id: int, now: datetime, lease: timedelta) -> Delivery | None:
        """PostgreSQL: take the oldest due row that no other sender holds, or whose claim is
        older than `lease`, and mark it `sending`, in one committed statement (UPDATE …
        WHERE id = (SELECT … FOR UPDATE SKIP LOCKED)). Several `ainews send` processes, on
        several machines, then share one issue without waiting for, or racing over, each
        other's rows. The claim time is the database's: hosts' clocks may disagree. None
        when nothing is due."""
        lease_param = bindparam("lease", lease, type_=Interval())
        next_due = (select(deliveries.c.id)
                    .where(deliveries.c.issue_id == issue_id,
                           or_(_is_due(now), _lease_expired(lease_param)))
                    .order_by(deliveries.c.id).limit(1)
                    .with_for_update(skip_locked=True).scalar_subquery())
        statement = (update(deliveries).where(deliveries.c.id == next_due)
                     .values(state=DeliveryState.SENDING.value,
                             attempts=deliveries.c.attempts + 1, updated_at=_database_now())
                     .returning(deliveries.c.id, deliveries.c.subscriber_id,
                                deliveries.c.email, deliveries.c.name, deliveries.c.token,
                                deliveries.c.attempts))
        with self._committed():
            row = self.connection.execute(statement).first()
        if row is None:
            return None
        # `attempts` counts this claim already; a Delivery carries the count before it.
        return Delivery(id=row.id, attempts=row.attempts - 1, recipient=Recipient(
            subscriber_id=row.subscriber_id, email=row.email, name=row.name, token=row.token))

    def _claim(self, delivery: Delivery, now: datetime) -> bool:
        result = self.connection.execute(_CLAIM, {
            "row_id": delivery.id, "now": now, "new_attempts": delivery.attempts + 1})
        return result.rowcount == 1

    def claim(self, delivery: Delivery, now: datetime) -> bool:
        """SQLite: mark the row `sending`, committed before MAIL FROM, if it is still due.
        The check and the write are one UPDATE, so of two senders racing for a row exactly
        one wins; False means another sender has it."""
        with self._committed():
            return self._claim(delivery, now)

    def record(self, delivery: Delivery, outcome: SendOutcome, now: datetime,
               policy: RetryPolicy, started: datetime | None = None,
               then_claim: Delivery | None = None) -> tuple[DeliveryState, bool]:
        """Store the server's answer (see `_answer`), committed at once. With `then_claim`
        the next row's claim goes in the same commit: its `sending` is still committed
        before its MAIL FROM, and a send costs one commit per message instead of two.
        Returns the state written and whether the next row was claimed."""
        state, next_attempt = _answer(delivery, outcome, now, policy, started)
        claimed = False
        with self._committed():
            self.connection.execute(_RECORD, {
                "row_id": delivery.id, "new_state": state.value, "code": outcome.code,
                "reply": outcome.reply[:1000], "next_at": next_attempt, "now": now,
                "sent": now if state is DeliveryState.SENT else None})
            if then_claim is not None:
                claimed = self._claim(then_claim, now)
        return state, claimed

    def requeue(self, delivery: Delivery, now: datetime) -> None:
        """Undo a claim when the message never went (server down, send stopped). Resending
        it later is what the at-least-once contract asks for."""
        with self._committed():
            self.connection.execute(update(deliveries).where(
                deliveries.c.id == delivery.id).values(
                    state=DeliveryState.QUEUED.value, attempts=delivery.attempts,
                    updated_at=now))


class Ledger:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        ensure_schema(engine)

    # -- issues ---------------------------------------------------------------------------

    def find_issue(self, list_id: str, period_key: str) -> IssueRecord | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(issues).where(
                issues.c.list_id == list_id, issues.c.period_key == period_key)).first()
        return None if row is None else _issue_record(row)

    def sent_issues(self, list_id: str, limit: int = 100) -> list[IssueRecord]:
        """Issues whose send has started, newest first: the public archive."""
        query = (select(issues).where(issues.c.list_id == list_id,
                                      issues.c.snapshot_at.is_not(None))
                 .order_by(issues.c.period_start.desc(), issues.c.id.desc()).limit(limit))
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [_issue_record(row) for row in rows]

    def latest_issue(self) -> IssueRecord | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(issues).order_by(issues.c.id.desc()).limit(1)).first()
        return None if row is None else _issue_record(row)

    def create_issue(self, list_id: str, rendered: RenderedIssue, carried: Sequence[PostRef],
                     now: datetime) -> IssueRecord:
        """Freeze the rendered issue and the posts it carries. If another process froze this
        period first, theirs wins and is returned: the unique key makes a second issue for
        the period impossible."""
        self.try_create_issue(list_id, rendered, carried, now)
        found = self.find_issue(list_id, rendered.period.key)
        assert found is not None, "issue row vanished right after insert"
        return found

    def try_create_issue(self, list_id: str, rendered: RenderedIssue,
                         carried: Sequence[PostRef], now: datetime) -> IssueRecord | None:
        """Like `create_issue`, but None when the period was frozen already (by another
        process, say): the caller learns it lost the race instead of joining in."""
        period = rendered.period
        try:
            with self.engine.begin() as connection:
                inserted = connection.execute(issues.insert().values(
                    list_id=list_id, period_key=period.key, period_start=period.start,
                    period_end=period.end, timezone=str(period.start.tzinfo),
                    subject=rendered.subject, preheader=rendered.preheader, html=rendered.html,
                    text=rendered.text, unsubscribe_placeholder=rendered.unsubscribe_placeholder,
                    post_count=rendered.post_count, created_at=now))
                assert inserted.inserted_primary_key is not None
                issue_id = inserted.inserted_primary_key[0]
                if carried:
                    connection.execute(issue_posts.insert(), [
                        {"issue_id": issue_id, "guid": ref.guid, "url": ref.url,
                         "title": ref.title} for ref in carried])
        except IntegrityError:
            return None
        return self.find_issue(list_id, period.key)

    def _sent_issues(self, list_id: str) -> Any:
        """Issues of the list whose send has started (the audience was snapshotted)."""
        return select(issues.c.id).where(issues.c.list_id == list_id,
                                         issues.c.snapshot_at.is_not(None))

    def carried_posts(self, list_id: str, except_period: str | None = None,
                      ) -> list[tuple[str, PostRef]]:
        """(issue key, post) for every post a sent issue of the list carried."""
        query = (select(issues.c.period_key, issue_posts.c.guid, issue_posts.c.url,
                        issue_posts.c.title)
                 .join(issues, issues.c.id == issue_posts.c.issue_id)
                 .where(issue_posts.c.issue_id.in_(self._sent_issues(list_id))))
        if except_period is not None:
            query = query.where(issues.c.period_key != except_period)
        with self.engine.connect() as connection:
            rows = connection.execute(query.order_by(issues.c.id)).all()
        return [(row.period_key, PostRef(guid=row.guid, url=row.url, title=row.title))
                for row in rows]

    def issue_number(self, list_id: str, period_key: str) -> int:
        """The number an issue for `period_key` has or would get: its place among the list's
        issues by creation, counting from 1."""
        with self.engine.connect() as connection:
            own = connection.execute(select(issues.c.id).where(
                issues.c.list_id == list_id, issues.c.period_key == period_key)).scalar()
            earlier = select(func.count()).select_from(issues).where(issues.c.list_id == list_id)
            if own is not None:
                earlier = earlier.where(issues.c.id < own)
            return int(connection.execute(earlier).scalar_one()) + 1

    def last_sent_period_end(self, list_id: str) -> datetime | None:
        query = select(func.max(issues.c.period_end)).where(issues.c.id.in_(
            self._sent_issues(list_id)))
        with self.engine.connect() as connection:
            value = connection.execute(query).scalar()
        return None if value is None else _aggregate_time(value)

    # -- audience snapshot ----------------------------------------------------------------

    def snapshot(self, issue_id: int, recipients: Iterable[Recipient], now: datetime,
                 batch_size: int = 500) -> int:
        """Copy the audience into the ledger once. Batches are idempotent (a re-run after a
        crash mid-snapshot adds only the missing rows); `snapshot_at` marks it complete."""
        iterator = iter(recipients)
        while batch := list(islice(iterator, batch_size)):
            rows = [{"issue_id": issue_id, "subscriber_id": r.subscriber_id, "email": r.email,
                     "name": r.name, "token": r.token, "state": DeliveryState.QUEUED.value,
                     "attempts": 0, "updated_at": now} for r in batch]
            with self.engine.begin() as connection:
                insert_ignoring_conflicts(connection, deliveries, rows)
        with self.engine.begin() as connection:
            connection.execute(update(issues).where(issues.c.id == issue_id)
                               .values(snapshot_at=now))
        return self.counts(issue_id).total

    # -- sending --------------------------------------------------------------------------

    def due(self, issue_id: int, now: datetime, limit: int,
            share: tuple[int, int] | None = None) -> list[Delivery]:
        """Rows ready to send, oldest first. With `share` (k, n), only rows whose id is k
        modulo n: parallel connections of one sender take disjoint rows instead of racing
        for the same ones (the claim would stop a double send, but not the wasted work).

        One query per due state, each an index range in id order: the single OR-query it
        replaces made SQLite read and sort every row of the issue per batch, 0.15 s a batch
        at a million readers."""
        columns = (deliveries.c.id, deliveries.c.subscriber_id, deliveries.c.email,
                   deliveries.c.name, deliveries.c.token, deliveries.c.attempts)
        conditions = (
            deliveries.c.state == DeliveryState.QUEUED.value,
            and_(deliveries.c.state == DeliveryState.DEFERRED.value,
                 deliveries.c.next_attempt_at <= now),
        )
        rows: list[Any] = []
        with self.engine.connect() as connection:
            for condition in conditions:
                query = (select(*columns)
                         .where(deliveries.c.issue_id == issue_id, condition)
                         .order_by(deliveries.c.id).limit(limit))
                if share is not None:
                    query = query.where(deliveries.c.id % share[1] == share[0])
                rows += connection.execute(query).all()
        rows.sort(key=lambda row: row.id)
        return [Delivery(id=row.id, attempts=row.attempts, recipient=Recipient(
            subscriber_id=row.subscriber_id, email=row.email, name=row.name, token=row.token))
            for row in rows[:limit]]

    @contextmanager
    def writer(self) -> Iterator[LedgerWriter]:
        """One connection kept for a sender's per-message writes."""
        with self.engine.connect() as connection:
            yield LedgerWriter(connection)

    def release_claims(self, now: datetime) -> int:
        """SQLite, called only by a sender that knows it is alone: every row still `sending`
        was claimed by a process that is gone, which may or may not have sent it; it goes
        back to the queue (at-least-once). Its attempt stays counted. Returns how many."""
        with self.engine.begin() as connection:
            result = connection.execute(
                update(deliveries).where(deliveries.c.state == DeliveryState.SENDING.value)
                .values(state=DeliveryState.QUEUED.value, updated_at=now))
        return int(result.rowcount)

    def sending_count(self, issue_id: int) -> int:
        """Rows of the issue claimed and not yet recorded (an index range, cheap to poll)."""
        with self.engine.connect() as connection:
            return int(connection.execute(
                select(func.count()).select_from(deliveries).where(
                    deliveries.c.issue_id == issue_id,
                    deliveries.c.state == DeliveryState.SENDING.value)).scalar_one())

    def claims_expire_at(self, issue_id: int, lease: timedelta) -> datetime | None:
        """PostgreSQL: when the issue's newest `sending` claim passes its lease, by the
        database's clock (as aware UTC); None when nothing of it is `sending`."""
        with self.engine.connect() as connection:
            value = connection.execute(
                select(func.max(deliveries.c.updated_at)).where(
                    deliveries.c.issue_id == issue_id,
                    deliveries.c.state == DeliveryState.SENDING.value)).scalar()
        return None if value is None else _aggregate_time(value) + lease

    def requeue_failed(self, issue_id: int, now: datetime) -> int:
        """`send --retry-failed`: failed rows go back to the queue with a fresh count of
        attempts. Rows failed because the subscriber left stay failed."""
        with self.engine.begin() as connection:
            result = connection.execute(
                update(deliveries)
                .where(deliveries.c.issue_id == issue_id,
                       deliveries.c.state == DeliveryState.FAILED.value,
                       or_(deliveries.c.last_reply.is_(None),
                           deliveries.c.last_reply != NOT_ACTIVE_REPLY))
                .values(state=DeliveryState.QUEUED.value, attempts=0, next_attempt_at=None,
                        updated_at=now))
        return int(result.rowcount)

    def unfinished_issues(self, list_id: str) -> list[IssueRecord]:
        """Issues of the list whose send started and still has rows to send, oldest first."""
        pending = (DeliveryState.QUEUED.value, DeliveryState.DEFERRED.value,
                   DeliveryState.SENDING.value)
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(issues).where(issues.c.list_id == list_id,
                                     issues.c.snapshot_at.is_not(None),
                                     issues.c.id.in_(select(deliveries.c.issue_id).where(
                                         deliveries.c.state.in_(pending))))
                .order_by(issues.c.id)).all()
        return [_issue_record(row) for row in rows]

    # -- reporting ------------------------------------------------------------------------

    def counts(self, issue_id: int) -> DeliveryCounts:
        with self.engine.connect() as connection:
            key = connection.execute(select(issues.c.period_key)
                                     .where(issues.c.id == issue_id)).scalar_one()
            rows = connection.execute(
                select(deliveries.c.state, func.count()).where(deliveries.c.issue_id == issue_id)
                .group_by(deliveries.c.state)).all()
        by_state = {state: int(count) for state, count in rows}
        return DeliveryCounts(
            issue=key,
            total=sum(by_state.values()),
            **{state.value: by_state.get(state.value, 0) for state in DeliveryState},
        )
