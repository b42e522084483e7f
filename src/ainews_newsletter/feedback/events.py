"""Every bounce, complaint and auto-reply we hear of, one row per (message, recipient), and
the counts the policy and the reports read from them. A row is written once: the same
message read again (a second `ingest` of one file, IMAP handing it over twice) finds its key
taken and adds nothing."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from ainews_newsletter.database import UTCDateTime, ensure_schema, erase_lock
from ainews_newsletter.feedback.findings import FeedbackKind

metadata = MetaData()
# Keys per statement of a batch: bounded IN lists and INSERTs, whatever the body held.
_CHUNK = 500

feedback_events = Table(
    "feedback_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("dedup_key", String(200), nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("email", String(320), nullable=False),  # as the report gave it ("" if redacted)
    Column("status", String(32), nullable=False),
    Column("action", String(32), nullable=False),
    Column("diagnostic", Text, nullable=False),
    Column("feedback_type", String(64), nullable=True),
    Column("source", Text, nullable=False),  # a file, "imap:INBOX", "smtp" (RCPT time), "-"
    Column("matched_by", String(16), nullable=False),  # tag, token, message-id, recipient, -
    Column("delivery_id", Integer, nullable=True),
    Column("issue_id", Integer, nullable=True),
    Column("subscriber_id", Integer, nullable=True),
    # When the message it is about left: the soft-bounce window counts from here, so a
    # backlog of old bounces ingested today does not look recent.
    Column("sent_at", UTCDateTime(), nullable=True),
    Column("effect", String(32), nullable=False),  # what it changed: bounced, counted, none…
    # The provider whose webhook reported it ("ses", "sendgrid", …); NULL: it came by mail.
    Column("provider", String(16), nullable=True),
    # The event's own time as the provider wrote it (not parsed: providers differ, and a
    # match never depends on it); NULL for mail.
    Column("reported_at", String(64), nullable=True),
    UniqueConstraint("dedup_key", name="uq_feedback_event_key"),
    Index("ix_feedback_subscriber", "subscriber_id", "kind"),
    Index("ix_feedback_received", "received_at"),
    Index("ix_feedback_issue", "issue_id", "kind"),
)


def event_key(*parts: str) -> str:
    """A fixed-length key for what makes an event the same event (the message's Message-ID
    or content hash, and the recipient)."""
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class FeedbackEvent:
    dedup_key: str
    received_at: datetime
    kind: FeedbackKind
    email: str
    status: str
    action: str
    diagnostic: str
    feedback_type: str | None
    source: str
    matched_by: str
    delivery_id: int | None
    issue_id: int | None
    subscriber_id: int | None
    sent_at: datetime | None = None
    effect: str = "none"
    id: int | None = None
    provider: str | None = None  # a provider's webhook reported it; None: by mail
    reported_at: str | None = None  # the provider's time of the event, as it wrote it

    @property
    def columns(self) -> dict[str, Any]:
        values = {column.name: getattr(self, column.name) for column in feedback_events.c
                  if column.name != "id"}
        values["kind"] = self.kind.value
        # Whatever a report says must fit its column (PostgreSQL refuses, SQLite would not):
        # a hostile or broken report must not block the mailbox behind it.
        for name in ("email", "status", "action", "feedback_type", "matched_by", "effect",
                     "provider", "reported_at"):
            column = feedback_events.c[name].type
            length = getattr(column, "length", None)
            if values[name] is not None and length is not None:
                values[name] = values[name][:length]
        values["diagnostic"] = self.diagnostic[:2000]  # a whole returned body is not a reason
        return values


def _event(row: Any) -> FeedbackEvent:
    values = dict(row._mapping)
    values["kind"] = FeedbackKind(values["kind"])
    return FeedbackEvent(**values)


# Called in the writing transaction, under the erase lock (database.erase_lock), before
# the events are stored: what to store instead (pipeline/erasure.py unnames the events of
# readers erased meanwhile). Looking any earlier would leave a gap an erase could commit in.
Prepare = Callable[[Connection, list[FeedbackEvent]], list[FeedbackEvent]]


class EventLog:
    def __init__(self, engine: Engine) -> None:
        ensure_schema(engine)
        self.engine = engine

    def record(self, event: FeedbackEvent, prepare: Prepare | None = None,
               ) -> tuple[FeedbackEvent, bool]:
        """Store the event unless its key is known. Returns the stored event (the earlier
        one when it was a repeat) and whether it is new. `prepare`: see Prepare."""
        try:
            with self.engine.begin() as connection:
                if prepare is not None:
                    erase_lock(connection, exclusive=False)
                    (event,) = prepare(connection, [event])
                inserted = connection.execute(feedback_events.insert().values(event.columns))
                assert inserted.inserted_primary_key is not None
                return replace(event, id=inserted.inserted_primary_key[0]), True
        except IntegrityError:
            earlier = self.by_key(event.dedup_key)
            if earlier is None:
                raise
            return earlier, False

    def record_many(self, events: Sequence[FeedbackEvent], prepare: Prepare | None = None,
                    ) -> list[tuple[FeedbackEvent, bool]]:
        """Store a batch (a webhook body's events) in one transaction, each event once by
        its key: INSERT … ON CONFLICT DO NOTHING, RETURNING the keys it stored, so a key
        taken before, by another request meanwhile, or earlier in the same batch is known
        as such. Returns, in order, the stored event (the earlier one for a repeat) and
        whether it is new. `prepare`: see Prepare."""
        if not events:
            return []
        from sqlalchemy.dialects import postgresql, sqlite

        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        statement = (dialect.insert(feedback_events).on_conflict_do_nothing()
                     .returning(feedback_events.c.id, feedback_events.c.dedup_key))
        stored: dict[str, FeedbackEvent] = {}
        new_ids: dict[str, int] = {}
        with self.engine.begin() as connection:
            if prepare is not None:
                erase_lock(connection, exclusive=False)
                events = prepare(connection, list(events))
            first: dict[str, FeedbackEvent] = {}
            for event in events:
                first.setdefault(event.dedup_key, event)
            keys = list(first)
            for start in range(0, len(keys), _CHUNK):
                rows = [first[key].columns for key in keys[start:start + _CHUNK]]
                for row in connection.execute(statement, rows):
                    new_ids[row.dedup_key] = int(row.id)
            earlier = [key for key in keys if key not in new_ids]
            for start in range(0, len(earlier), _CHUNK):
                for row in connection.execute(select(feedback_events).where(
                        feedback_events.c.dedup_key.in_(earlier[start:start + _CHUNK]))):
                    stored[row.dedup_key] = _event(row)
        for key, row_id in new_ids.items():
            stored[key] = replace(first[key], id=row_id)
        result: list[tuple[FeedbackEvent, bool]] = []
        seen: set[str] = set()  # a second event with a key, later in the batch: a repeat
        for event in events:
            key = event.dedup_key
            result.append((stored[key], key in new_ids and key not in seen))
            seen.add(key)
        return result

    def unapplied(self, limit: int = 1000) -> list[FeedbackEvent]:
        """Events tied to a subscriber that the policy never looked at (a crash between
        storing and acting): the next ingest or send finishes them."""
        kinds = (FeedbackKind.HARD.value, FeedbackKind.SOFT.value,
                 FeedbackKind.COMPLAINT.value, FeedbackKind.UNSUBSCRIBE.value)
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(feedback_events).where(feedback_events.c.effect == "none",
                                              feedback_events.c.subscriber_id.is_not(None),
                                              feedback_events.c.kind.in_(kinds))
                .order_by(feedback_events.c.id).limit(limit)).all()
        return [_event(row) for row in rows]

    def by_key(self, key: str) -> FeedbackEvent | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(feedback_events)
                                     .where(feedback_events.c.dedup_key == key)).first()
        return None if row is None else _event(row)

    def set_effect(self, event_id: int, effect: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(update(feedback_events).where(feedback_events.c.id == event_id)
                               .values(effect=effect))

    def failures(self, subscriber_id: int, kind: FeedbackKind,
                 since: datetime | None = None) -> int:
        """How many distinct issues `kind` events name for this subscriber (since `since`):
        one bad week counts once, however many messages said so. The welcome mail (no
        issue) counts as one more."""
        issue = func.coalesce(feedback_events.c.issue_id, 0)  # issue ids start at 1
        query = (select(func.count(func.distinct(issue)))
                 .where(feedback_events.c.subscriber_id == subscriber_id,
                        feedback_events.c.kind == kind.value))
        if since is not None:
            when = func.coalesce(feedback_events.c.sent_at, feedback_events.c.received_at)
            query = query.where(when >= since)
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def events(self, since: datetime | None = None, limit: int | None = None,
               subscriber_id: int | None = None) -> Iterator[FeedbackEvent]:
        """Oldest first (newest first when `limit` asks for the latest few)."""
        query = select(feedback_events)
        if since is not None:
            query = query.where(feedback_events.c.received_at >= since)
        if subscriber_id is not None:
            query = query.where(feedback_events.c.subscriber_id == subscriber_id)
        if limit is not None:
            query = query.order_by(feedback_events.c.id.desc()).limit(limit)
        else:
            query = query.order_by(feedback_events.c.id)
        with self.engine.connect() as connection:
            for row in connection.execute(query):
                yield _event(row)

    def last_failure(self, subscriber_id: int) -> FeedbackEvent | None:
        """The newest hard, soft or complaint event of a subscriber (`subscribers show`)."""
        kinds = (FeedbackKind.HARD.value, FeedbackKind.SOFT.value,
                 FeedbackKind.COMPLAINT.value)
        with self.engine.connect() as connection:
            row = connection.execute(
                select(feedback_events).where(feedback_events.c.subscriber_id == subscriber_id,
                                              feedback_events.c.kind.in_(kinds))
                .order_by(feedback_events.c.id.desc()).limit(1)).first()
        return None if row is None else _event(row)

    def kinds_for_deliveries(self, delivery_ids: list[int]) -> dict[int, str]:
        """The newest event kind per delivery (`status --state` shows why one failed)."""
        if not delivery_ids:
            return {}
        found: dict[int, str] = {}
        with self.engine.connect() as connection:
            for start in range(0, len(delivery_ids), 500):  # bounded IN lists
                rows = connection.execute(
                    select(feedback_events.c.delivery_id, feedback_events.c.kind)
                    .where(feedback_events.c.delivery_id.in_(delivery_ids[start:start + 500]))
                    .order_by(feedback_events.c.id)).all()
                found.update({int(row.delivery_id): row.kind for row in rows})
        return found

    def subscribers_with(self, issue_id: int, kinds: tuple[FeedbackKind, ...]) -> int:
        """Distinct subscribers of one issue with an event of any of `kinds`."""
        query = (select(func.count(func.distinct(feedback_events.c.subscriber_id)))
                 .where(feedback_events.c.issue_id == issue_id,
                        feedback_events.c.kind.in_([kind.value for kind in kinds])))
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def by_provider(self, issue_id: int) -> dict[str, dict[str, int]]:
        """Events per reporter ("mail" for bounces that came by mail) and kind, for one
        issue (`ainews report`)."""
        query = (select(feedback_events.c.provider, feedback_events.c.kind, func.count())
                 .where(feedback_events.c.issue_id == issue_id)
                 .group_by(feedback_events.c.provider, feedback_events.c.kind))
        found: dict[str, dict[str, int]] = {}
        with self.engine.connect() as connection:
            for provider, kind, count in connection.execute(query).all():
                found.setdefault(provider or "mail", {})[kind] = int(count)
        return found

    def subscribers_by_kind(self, issue_id: int) -> dict[FeedbackKind, int]:
        """Distinct subscribers per kind of event for one issue (`ainews status`)."""
        query = (select(feedback_events.c.kind,
                        func.count(func.distinct(feedback_events.c.subscriber_id)))
                 .where(feedback_events.c.issue_id == issue_id)
                 .group_by(feedback_events.c.kind))
        with self.engine.connect() as connection:
            return {FeedbackKind(kind): int(count)
                    for kind, count in connection.execute(query).all()}
