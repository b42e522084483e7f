"""Keeping the list clean: sign-ups never confirmed expire ([subscribers] unconfirmed_days),
and the active readers among a set of ids (those the ledger found without a click lately).

An expired sign-up is removed like `subscribers remove` removes someone still on the list:
its row and memberships go, its history ends in a "removed" event (the "joined" it started
with is taken back in the growth report), and no suppression entry is made: its owner never
confirmed and may sign up again."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, select

from ainews_newsletter import clock
from ainews_newsletter.database import ensure_schema
from ainews_newsletter.models import SubscriberStatus
from ainews_newsletter.subscribers.history import record
from ainews_newsletter.subscribers.schema import memberships, subscribers

BATCH = 500
PENDING = SubscriberStatus.PENDING.value


@dataclass(frozen=True)
class Reader:
    """Who a hygiene command names: enough to show, and to act on by address."""

    id: int
    email: str
    name: str | None
    created_at: datetime
    updated_at: datetime  # for a pending row: its last sign-up

    def as_record(self) -> dict[str, object]:
        return {"email": self.email, "name": self.name,
                "created_at": self.created_at.isoformat(),
                "updated_at": self.updated_at.isoformat()}


def _readers(rows: Sequence[Any]) -> list[Reader]:
    return [Reader(row.id, row.email, row.name, row.created_at, row.updated_at) for row in rows]


_COLUMNS = (subscribers.c.id, subscribers.c.email, subscribers.c.name,
            subscribers.c.created_at, subscribers.c.updated_at)


def expire_pending(engine: Engine, days: int, source: str,
                   now: datetime | None = None) -> list[Reader]:
    """Remove every pending row whose last sign-up (updated_at) is more than `days` days
    old; returns them, oldest id first. Each delete is guarded by the same condition, so a
    confirmation (or a new sign-up) that lands between the read and the delete keeps its
    row; the event is written only for a row really deleted, in that transaction."""
    ensure_schema(engine)
    now = now or clock.now()
    cutoff = now - timedelta(days=days)
    stale = (subscribers.c.status == PENDING, subscribers.c.updated_at < cutoff)
    removed: list[Reader] = []
    last_id = 0
    while True:
        with engine.begin() as connection:
            rows = connection.execute(
                select(*_COLUMNS).where(subscribers.c.id > last_id, *stale)
                .order_by(subscribers.c.id).limit(BATCH)).all()
            for reader in _readers(rows):
                deleted = connection.execute(delete(subscribers).where(
                    subscribers.c.id == reader.id, *stale)).rowcount
                if not deleted:
                    continue
                # Gone with the row already where the foreign key cascades; not everywhere.
                connection.execute(delete(memberships)
                                   .where(memberships.c.subscriber_id == reader.id))
                record(connection, reader.id, "removed", source, at=now)
                removed.append(reader)
        if len(rows) < BATCH:
            return removed
        last_id = rows[-1].id


def active_readers(engine: Engine, ids: Collection[int]) -> list[Reader]:
    """The subscribers with these ids that are active now, oldest id first."""
    wanted = sorted(set(ids))
    found: list[Reader] = []
    with engine.connect() as connection:
        for start in range(0, len(wanted), BATCH):
            found += _readers(connection.execute(
                select(*_COLUMNS).where(subscribers.c.id.in_(wanted[start:start + BATCH]),
                                        subscribers.c.status == SubscriberStatus.ACTIVE.value)
                .order_by(subscribers.c.id)).all())
    return found
