"""The subscriber store (SQLAlchemy Core). Every write is one transaction: a failure leaves
the list as it was. An unsubscribe is never undone by an import."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Row, func, insert, select, update
from sqlalchemy import delete as sql_delete

from ainews_newsletter import clock
from ainews_newsletter.database import ensure_tables
from ainews_newsletter.errors import SubscriberError
from ainews_newsletter.models import Recipient, Subscriber, SubscriberStatus
from ainews_newsletter.subscribers.addresses import normalize
from ainews_newsletter.subscribers.schema import metadata, subscribers
from ainews_newsletter.subscribers.tokens import new_token


@dataclass(frozen=True)
class ImportRow:
    line: int
    email: str
    name: str | None


@dataclass
class ImportSummary:
    imported: int = 0  # new rows
    updated: int = 0  # existing rows whose name changed
    unchanged: int = 0  # existing rows left as they were (including unsubscribed ones)
    duplicates: int = 0  # the same address again within the file

    def as_dict(self) -> dict[str, int]:
        return {"imported": self.imported, "updated": self.updated,
                "unchanged": self.unchanged, "duplicates": self.duplicates}


def _subscriber(row: Row[Any]) -> Subscriber:
    return Subscriber(
        id=row.id,
        email=row.email,
        email_normalized=row.email_normalized,
        name=row.name,
        status=SubscriberStatus(row.status),
        token=row.token,
        created_at=row.created_at,
        unsubscribed_at=row.unsubscribed_at,
        source=row.source,
    )


class SubscriberStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        ensure_tables(engine, metadata)

    def get(self, address: str) -> Subscriber | None:
        _, normalized = normalize(address)
        with self.engine.connect() as connection:
            row = connection.execute(
                select(subscribers).where(subscribers.c.email_normalized == normalized)
            ).first()
        return None if row is None else _subscriber(row)

    def require(self, address: str) -> Subscriber:
        found = self.get(address)
        if found is None:
            raise SubscriberError(f"no subscriber with address {address.strip()!r}")
        return found

    def add(self, address: str, name: str | None = None, source: str = "cli") -> Subscriber:
        given, normalized = normalize(address)
        now = clock.now()
        with self.engine.begin() as connection:
            existing = connection.execute(
                select(subscribers.c.status).where(subscribers.c.email_normalized == normalized)
            ).first()
            if existing is not None:
                raise SubscriberError(f"{given!r} is already on the list "
                                      f"(status {existing.status})")
            connection.execute(insert(subscribers).values(
                email=given, email_normalized=normalized, name=(name or "").strip() or None,
                status=SubscriberStatus.ACTIVE.value, token=new_token(), source=source,
                created_at=now, updated_at=now,
            ))
        return self.require(given)

    def remove(self, address: str) -> Subscriber:
        """Delete the row for good (the subscriber's data is gone; see `unsubscribe`)."""
        found = self.require(address)
        with self.engine.begin() as connection:
            connection.execute(sql_delete(subscribers).where(subscribers.c.id == found.id))
        return found

    def unsubscribe(self, address: str) -> Subscriber:
        """Keep the row, mark it unsubscribed: later imports cannot bring it back."""
        found = self.require(address)
        if found.status is not SubscriberStatus.UNSUBSCRIBED:
            now = clock.now()
            with self.engine.begin() as connection:
                connection.execute(update(subscribers).where(subscribers.c.id == found.id).values(
                    status=SubscriberStatus.UNSUBSCRIBED.value, unsubscribed_at=now,
                    updated_at=now))
        return self.require(address)

    def unsubscribe_token(self, token: str) -> Subscriber | None:
        """The one-click path: unsubscribe whoever holds `token`; idempotent."""
        with self.engine.connect() as connection:
            row = connection.execute(select(subscribers.c.email)
                                     .where(subscribers.c.token == token)).first()
        return None if row is None else self.unsubscribe(row.email)

    def count(self, status: SubscriberStatus | None = None) -> int:
        query = select(func.count()).select_from(subscribers)
        if status is not None:
            query = query.where(subscribers.c.status == status.value)
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def active_among(self, ids: Collection[int]) -> set[int]:
        """Which of these subscriber ids are still active (one query per sender batch)."""
        if not ids:
            return set()
        query = select(subscribers.c.id).where(
            subscribers.c.id.in_(list(ids)), subscribers.c.status == SubscriberStatus.ACTIVE.value)
        with self.engine.connect() as connection:
            return {row.id for row in connection.execute(query)}

    def iter_subscribers(self, status: SubscriberStatus | None = None,
                         batch_size: int = 1000) -> Iterator[Subscriber]:
        """All subscribers by id, fetched in batches (keyset pagination: constant memory)."""
        last_id = 0
        while True:
            query = select(subscribers).where(subscribers.c.id > last_id)
            if status is not None:
                query = query.where(subscribers.c.status == status.value)
            with self.engine.connect() as connection:
                rows = connection.execute(query.order_by(subscribers.c.id).limit(batch_size)).all()
            if not rows:
                return
            for row in rows:
                yield _subscriber(row)
            last_id = rows[-1].id

    def iter_recipients(self, batch_size: int = 1000) -> Iterator[Recipient]:
        """The active audience, streamed: what a send snapshots into its ledger."""
        for subscriber in self.iter_subscribers(SubscriberStatus.ACTIVE, batch_size):
            yield Recipient(subscriber_id=subscriber.id, email=subscriber.email,
                            name=subscriber.name, token=subscriber.token)

    def import_rows(self, rows: Iterable[ImportRow], source: str) -> ImportSummary:
        """Merge rows (already validated) into the list in one transaction: new addresses are
        added active, known ones get a missing name filled in, unsubscribed ones stay so."""
        summary = ImportSummary()
        seen: set[str] = set()
        now = clock.now()
        with self.engine.begin() as connection:
            for row in rows:
                given, normalized = normalize(row.email)
                if normalized in seen:
                    summary.duplicates += 1
                    continue
                seen.add(normalized)
                name = (row.name or "").strip() or None
                existing = connection.execute(
                    select(subscribers.c.id, subscribers.c.name)
                    .where(subscribers.c.email_normalized == normalized)).first()
                if existing is None:
                    connection.execute(insert(subscribers).values(
                        email=given, email_normalized=normalized, name=name,
                        status=SubscriberStatus.ACTIVE.value, token=new_token(),
                        source=source[:64], created_at=now, updated_at=now))
                    summary.imported += 1
                elif name is not None and existing.name != name:
                    connection.execute(update(subscribers)
                                       .where(subscribers.c.id == existing.id)
                                       .values(name=name, updated_at=now))
                    summary.updated += 1
                else:
                    summary.unchanged += 1
        return summary
