"""The delivery ledger: one frozen issue row per (list, period) and one row per
(issue, subscriber) that moves queued → sending → sent | deferred | failed.

Every state change is its own committed transaction, so after a crash the ledger says
exactly who got the issue, and a second send of the same issue never mails them again.
The tables are in `tables`, the per-message claim and record in `claims`, the audience
snapshot in `snapshot`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from ainews_newsletter import translations
from ainews_newsletter.database import ensure_schema
from ainews_newsletter.delivery.claims import (
    NOT_ACTIVE_REPLY,
    DeliverableCheck,
    Delivery,
    LedgerWriter,
)
from ainews_newsletter.delivery.reconnect import Reconnect, where
from ainews_newsletter.delivery.snapshot import AudienceSnapshot
from ainews_newsletter.delivery.tables import (
    deliveries,
    issue_links,
    issue_posts,
    issue_renderings,
    issues,
)
from ainews_newsletter.models import (
    DeliveryCounts,
    DeliveryState,
    Period,
    PostRef,
    Recipient,
    RenderedIssue,
)


@dataclass(frozen=True)
class IssueRecord:
    id: int
    list_id: str
    rendered: RenderedIssue
    created_at: datetime
    snapshot_at: datetime | None
    language: str = translations.SOURCE  # of `rendered`; issues from before 0010 are English


def _issue_record(row: Any) -> IssueRecord:
    tz = ZoneInfo(row.timezone)
    period = Period(key=row.period_key, start=row.period_start.astimezone(tz),
                    end=row.period_end.astimezone(tz))
    rendered = RenderedIssue(period=period, subject=row.subject, preheader=row.preheader,
                             html=row.html, text=row.text,
                             unsubscribe_placeholder=row.unsubscribe_placeholder,
                             post_count=row.post_count)
    return IssueRecord(id=row.id, list_id=row.list_id, rendered=rendered,
                       created_at=row.created_at, snapshot_at=row.snapshot_at,
                       language=row.language or translations.SOURCE)


def _aggregate_time(value: datetime | str) -> datetime:
    """max() over a TypeDecorator column comes back raw (a string on SQLite, naive on
    PostgreSQL): as aware UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class Ledger(AudienceSnapshot):
    def __init__(self, engine: Engine, reconnect_seconds: float = 120) -> None:
        self.engine = engine
        # A send's writes wait out a database that went away ([storage] reconnect_seconds).
        self.reconnect = Reconnect(reconnect_seconds, where(engine.url))
        ensure_schema(engine)

    @property
    def leases_claims(self) -> bool:
        """Whether a dead sender's claims are retaken after a lease on the database's clock
        (PostgreSQL, senders on several machines) rather than as soon as no sender is alive
        (SQLite's sender lock, see presence.py)."""
        return self.engine.dialect.name == "postgresql"

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
                         carried: Sequence[PostRef], now: datetime,
                         links: Sequence[str] = (),
                         language: str = translations.SOURCE,
                         renderings: Mapping[str, RenderedIssue] | None = None,
                         ) -> IssueRecord | None:
        """Like `create_issue`, but None when the period was frozen already (by another
        process, say): the caller learns it lost the race instead of joining in. `links`:
        with click counts on, the issue's counted links (numbered from 1), frozen with it.
        `language`: the language `rendered` is in ([newsletter] language); `renderings`:
        the issue in its readers' further languages, frozen in the same transaction (no
        crash can leave the issue without them, and nothing renders them later)."""
        period = rendered.period
        try:
            with self.engine.begin() as connection:
                inserted = connection.execute(issues.insert().values(
                    list_id=list_id, period_key=period.key, period_start=period.start,
                    period_end=period.end, timezone=str(period.start.tzinfo),
                    subject=rendered.subject, preheader=rendered.preheader, html=rendered.html,
                    text=rendered.text, unsubscribe_placeholder=rendered.unsubscribe_placeholder,
                    post_count=rendered.post_count, created_at=now, language=language))
                assert inserted.inserted_primary_key is not None
                issue_id = inserted.inserted_primary_key[0]
                if carried:
                    connection.execute(issue_posts.insert(), [
                        {"issue_id": issue_id, "guid": ref.guid, "url": ref.url,
                         "title": ref.title} for ref in carried])
                if links:
                    connection.execute(issue_links.insert(), [
                        {"issue_id": issue_id, "position": number, "url": url}
                        for number, url in enumerate(links, start=1)])
                if renderings:
                    connection.execute(issue_renderings.insert(), [
                        {"issue_id": issue_id, "language": other, "subject": r.subject,
                         "preheader": r.preheader, "html": r.html, "text": r.text,
                         "unsubscribe_placeholder": r.unsubscribe_placeholder,
                         "created_at": now} for other, r in renderings.items()])
        except IntegrityError:
            return None
        return self.find_issue(list_id, period.key)

    def issue_links(self, issue_id: int) -> list[str]:
        """The issue's counted links, link 1 first; empty when clicks were not counted."""
        with self.engine.connect() as connection:
            return list(connection.execute(
                select(issue_links.c.url).where(issue_links.c.issue_id == issue_id)
                .order_by(issue_links.c.position)).scalars())

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

    # -- audience snapshot: snapshot.py (AudienceSnapshot) ------------------------------

    # -- sending --------------------------------------------------------------------------

    def due(self, issue_id: int, now: datetime, limit: int,
            share: tuple[int, int] | None = None) -> list[Delivery]:
        """Rows ready to send, oldest first. With `share` (k, n), only rows whose id is k
        modulo n: parallel connections of one sender take disjoint rows instead of racing
        for the same ones (the claim would stop a double send, but not the wasted work).

        One query per due state, each an index range in id order: the single OR-query it
        replaces made SQLite read and sort every row of the issue per batch, a cost that
        grows with the issue."""
        columns = (deliveries.c.id, deliveries.c.subscriber_id, deliveries.c.email,
                   deliveries.c.name, deliveries.c.token, deliveries.c.attempts,
                   deliveries.c.return_tag, deliveries.c.language)
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
        rows.sort(key=lambda row: row[0])  # by id; unpacked, not read by name (3x the cost)
        return [Delivery(id=id_, attempts=attempts, return_tag=tag, recipient=Recipient(
            subscriber_id=subscriber, email=email, name=name, token=token, language=language))
            for id_, subscriber, email, name, token, attempts, tag, language in rows[:limit]]

    @contextmanager
    def writer(self,
               deliverable: DeliverableCheck | None = None) -> Iterator[LedgerWriter]:
        """One connection kept for a sender's per-message writes."""
        # SQLite is a file, never "away" (its "locked" has the busy timeout): no retries
        # wrapped around its per-message writes, the hot path of a send.
        reconnect = None if self.engine.dialect.name == "sqlite" else self.reconnect
        with self.engine.connect() as connection:
            yield LedgerWriter(connection, deliverable, reconnect)

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

    def last_issue_sent_to(self, subscriber_id: int) -> int | None:
        """The issue of the newest message that reached this subscriber (state sent), or
        None: what an unsubscribe is put down to, since the unsubscribe link is per reader,
        not per issue. The subscriber index keeps it to their few rows."""
        with self.engine.connect() as connection:
            found = connection.execute(
                select(deliveries.c.issue_id).where(
                    deliveries.c.subscriber_id == subscriber_id,
                    deliveries.c.state == DeliveryState.SENT.value)
                .order_by(deliveries.c.sent_at.desc(), deliveries.c.id.desc()).limit(1)).scalar()
        return None if found is None else int(found)

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
