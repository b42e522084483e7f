"""Readers who have just arrived, as the welcome mail needs them: who joined or confirmed
from a given source (web, import) since a moment, read from their history (history.py), and
one reader by id with the token their unsubscribe link carries."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, Engine, and_, exists, or_, select

from ainews_newsletter.database import ensure_schema
from ainews_newsletter.models import Recipient, SubscriberStatus
from ainews_newsletter.subscribers.names import clean_name
from ainews_newsletter.subscribers.schema import subscriber_events, subscribers, suppressions

# The events after which someone receives the newsletter: a sign-up with or without
# confirmation ("joined" as active, or "confirmed"), and a return ("resubscribed").
ARRIVALS = ("joined", "confirmed", "resubscribed")
_CHUNK = 500  # addresses per IN (…): well under SQLite's parameter limit


def _made_active_from(source: str) -> ColumnElement[bool]:
    """The event made the reader active from `source`: a confirmation or a return from
    there, or a "joined" that made them active at once (single opt-in; an import of an
    active row). A "joined" of a sign-up that waited as pending is not one: whoever
    confirmed it later (the web, `ainews subscribers`, an import) wrote a "confirmed" of
    their own, and that one says where the reader came from."""
    events = subscriber_events
    later = subscriber_events.alias("later")
    return and_(events.c.source == source,
                or_(events.c.kind != "joined",
                    ~exists().where(later.c.subscriber_id == events.c.subscriber_id,
                                    later.c.kind == "confirmed",
                                    later.c.at >= subscribers.c.created_at)))


class Newcomers:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        ensure_schema(engine)

    def since(self, moment: datetime, source: str,
              kinds: tuple[str, ...] = ARRIVALS) -> list[Recipient]:
        """Readers with a `kinds` event from `source` (an event source: "web", "import")
        that made them active, at or after `moment`, who may be mailed now (active, not
        suppressed), by id. Only events since the row was made: SQLite hands a deleted
        highest id to the next reader, whose welcome a removed reader's event must not
        decide. Driven by the events' (kind, at) index: cheap to ask every minute on a
        large list."""
        query = (select(subscribers.c.id, subscribers.c.email, subscribers.c.name,
                        subscribers.c.token)
                 .join(subscriber_events, subscriber_events.c.subscriber_id == subscribers.c.id)
                 .where(subscriber_events.c.kind.in_(kinds),
                        subscriber_events.c.at >= moment,
                        _made_active_from(source),
                        subscriber_events.c.at >= subscribers.c.created_at,
                        subscribers.c.status == SubscriberStatus.ACTIVE.value,
                        ~exists().where(suppressions.c.email_normalized
                                        == subscribers.c.email_normalized))
                 .distinct().order_by(subscribers.c.id))
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [Recipient(row.id, row.email, clean_name(row.name), row.token) for row in rows]

    def recipient(self, subscriber_id: int) -> Recipient | None:
        """The reader with this id as a message needs them, whatever their status (the
        claim decides whether they may be mailed), with their language (their welcome's);
        None if the row is gone."""
        with self.engine.connect() as connection:
            row = connection.execute(
                select(subscribers.c.id, subscribers.c.email, subscribers.c.name,
                       subscribers.c.token, subscribers.c.language)
                .where(subscribers.c.id == subscriber_id)).first()
        return None if row is None else Recipient(row.id, row.email, clean_name(row.name),
                                                  row.token, row.language)

    def active_at(self, addresses: list[str]) -> list[Recipient]:
        """The active readers at these normalized addresses, by id (a suppression is the
        claim's to find)."""
        found: list[Recipient] = []
        with self.engine.connect() as connection:
            for start in range(0, len(addresses), _CHUNK):
                found.extend(Recipient(row.id, row.email, clean_name(row.name), row.token)
                             for row in connection.execute(
                    select(subscribers.c.id, subscribers.c.email, subscribers.c.name,
                           subscribers.c.token)
                    .where(subscribers.c.email_normalized.in_(
                        addresses[start:start + _CHUNK]),
                           subscribers.c.status == SubscriberStatus.ACTIVE.value)))
        return sorted(found, key=lambda recipient: recipient.subscriber_id)

    def by_address(self, normalized: str) -> Recipient | None:
        """An active reader by normalized address; else None (a suppression is the
        claim's to find, in its own transaction)."""
        with self.engine.connect() as connection:
            row = connection.execute(
                select(subscribers.c.id, subscribers.c.email, subscribers.c.name,
                       subscribers.c.token)
                .where(subscribers.c.email_normalized == normalized,
                       subscribers.c.status == SubscriberStatus.ACTIVE.value)).first()
        return None if row is None else Recipient(row.id, row.email, clean_name(row.name),
                                                  row.token)
