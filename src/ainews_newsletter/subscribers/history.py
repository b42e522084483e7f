"""A subscriber's history: one `subscriber_events` row per change (joined, confirmed,
unsubscribed, bounced, complained, resubscribed, removed), written by the store in the same
transaction as the change itself, so a rolled-back change leaves no event and a committed
one always has its event. The read side (`SubscriberHistory`) is what reports count."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Select,
    String,
    func,
    insert,
    literal,
    null,
    select,
)

from ainews_newsletter import clock
from ainews_newsletter.database import ensure_schema
from ainews_newsletter.models import SubscriberStatus
from ainews_newsletter.subscribers.bulk import Chosen, keyed
from ainews_newsletter.subscribers.schema import subscriber_events, subscribers

# "removed": deleted while on the list (the list shrinks); "erased": the record of someone
# who had left already, deleted (the list does not change; their suppression stays).
KINDS = ("joined", "confirmed", "unsubscribed", "bounced", "complained", "resubscribed",
         "removed", "erased")


@dataclass(frozen=True)
class SubscriberEvent:
    kind: str
    source: str
    issue_id: int | None
    at: datetime

    def as_record(self) -> dict[str, object]:
        return {"kind": self.kind, "source": self.source, "issue_id": self.issue_id,
                "at": self.at.isoformat()}


@dataclass(frozen=True)
class Attribution:
    """Who asked for a change and the issue it is put down to (an unsubscribe's)."""
    source: str
    issue_id: int | None = None


def event_source(source: str) -> str:
    """The event source of a row's `source` column: "import:list.csv" is an import like any
    other (the file name is on the row already); cli, web and demo stay as they are."""
    return source.split(":", 1)[0][:32] or "cli"


def change_kind(before: SubscriberStatus, after: SubscriberStatus) -> str | None:
    """The event a status change is, or None when it is none worth counting (no change, or
    back to pending)."""
    if before is after or after is SubscriberStatus.PENDING:
        return None
    if after is SubscriberStatus.ACTIVE:
        # Pending → active is the opt-in; from a status that had left, it is a return.
        return "confirmed" if before is SubscriberStatus.PENDING else "resubscribed"
    return after.value  # unsubscribed, bounced, complained


def arrival_kinds(status: SubscriberStatus) -> tuple[str, ...]:
    """The events of a row that arrives with `status`: it joined, and one that arrives as
    having left (an import of someone's old unsubscribe) left at once, so the growth of the
    list never counts them as a gain (the same two events 0005's backfill gives such rows)."""
    return ("joined", status.value) if status.has_left else ("joined",)


def record(connection: Connection, subscriber_id: int, kind: str, source: str,
           issue_id: int | None = None, at: datetime | None = None) -> None:
    """One event, in the caller's transaction."""
    assert kind in KINDS, kind
    connection.execute(insert(subscriber_events).values(
        subscriber_id=subscriber_id, kind=kind, source=source[:32], issue_id=issue_id,
        at=at or clock.now()))


def arrived(connection: Connection, subscriber_id: int, status: SubscriberStatus,
            source: str, at: datetime) -> None:
    """The events of a new row (see `arrival_kinds`), its source from the row's."""
    for kind in arrival_kinds(status):
        record(connection, subscriber_id, kind, event_source(source), at=at)


def count_statement(kind: str, start: datetime, end: datetime) -> Select[Any]:
    """How many `kind` events fall in [start, end): a range on ix_subscriber_events_kind_at."""
    return (select(func.count()).select_from(subscriber_events)
            .where(subscriber_events.c.kind == kind, subscriber_events.c.at >= start,
                   subscriber_events.c.at < end))


def record_by_address(connection: Connection, addresses_by_kind: dict[str, list[str]],
                      source: str, at: datetime) -> None:
    """An import batch's events: for each kind, one INSERT … SELECT of the ids of those
    normalized addresses. The database finds the ids itself, faster on SQLite than handing
    the driver one parameter row per event."""
    for kind, addresses in addresses_by_kind.items():
        if addresses:
            record_chosen(connection, kind,
                          keyed(connection, subscribers.c.email_normalized, addresses),
                          source, at)


def record_chosen(connection: Connection, kind: str, chosen: Chosen, source: str,
                  at: datetime) -> None:
    """A `kind` event for each subscriber row `chosen` names, one INSERT … SELECT (an
    import batch's new rows: bulk.added_since)."""
    assert kind in KINDS, kind
    rows = chosen.select(subscribers.c.id, literal(kind, String), literal(source[:32], String),
                         null(), literal(at, subscriber_events.c.at.type))
    connection.execute(insert(subscriber_events).from_select(
        ["subscriber_id", "kind", "source", "issue_id", "at"], rows))


class SubscriberHistory:
    """Counting and listing events, for reports and `subscribers show`."""

    def __init__(self, engine: Engine) -> None:
        ensure_schema(engine)
        self.engine = engine

    def counts_between(self, start: datetime, end: datetime) -> dict[str, int]:
        """Events per kind in [start, end), every kind present (0 when none). One query per
        kind, each a range on the (kind, at) index: a count over all kinds at once would
        have to read every event of the period's rows in the table's order, not the index's."""
        with self.engine.connect() as connection:
            return {kind: int(connection.execute(count_statement(kind, start, end)).scalar_one())
                    for kind in KINDS}

    def unsubscribes_for_issue(self, issue_id: int) -> int:
        """How many subscribers unsubscribed with this issue as the one put down for it
        (distinct: someone who left, came back and left again counts once)."""
        with self.engine.connect() as connection:
            return int(connection.execute(
                select(func.count(func.distinct(subscriber_events.c.subscriber_id)))
                .where(subscriber_events.c.issue_id == issue_id,
                       subscriber_events.c.kind == "unsubscribed")).scalar_one())

    def events_for(self, subscriber_id: int) -> list[SubscriberEvent]:
        """A subscriber's events, oldest first. SQLite hands the id of the newest row again
        once that row is deleted, so events up to a "removed" belong to someone before them:
        a row that exists has never been removed."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(subscriber_events.c.kind, subscriber_events.c.source,
                       subscriber_events.c.issue_id, subscriber_events.c.at)
                .where(subscriber_events.c.subscriber_id == subscriber_id)
                .order_by(subscriber_events.c.id)).all()
        events = [SubscriberEvent(row.kind, row.source, row.issue_id, row.at) for row in rows]
        removed = [index for index, event in enumerate(events)
                   if event.kind in ("removed", "erased")]
        return events[removed[-1] + 1:] if removed else events
