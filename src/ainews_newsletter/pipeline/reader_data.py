"""A reader's own data (issue 29, "Download my data"): everything kept about one subscriber,
gathered from every room that keeps something (the subscriber row, lists, history, consent,
the delivery ledger, the welcome, feedback events, clicks), as one JSON-ready dict. The web
page /preferences/<token>/data and `ainews subscribers data EMAIL` both hand out this.

SQLite gives the id of a deleted newest row to the next one, so a row keyed by subscriber_id
alone may be a former reader's: deliveries and the welcome must also carry this reader's
address (or, once the retention replaced it, its keyed hash), and feedback events must be
about one of those deliveries or that address."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, or_, select

from ainews_newsletter.config import Config
from ainews_newsletter.database import engine_for, same_address
from ainews_newsletter.delivery.tables import clicks, deliveries, issue_links, issues, welcomes
from ainews_newsletter.feedback.events import feedback_events
from ainews_newsletter.models import Subscriber
from ainews_newsletter.pipeline.issue import open_subscribers
from ainews_newsletter.pipeline.retention import secret_of
from ainews_newsletter.subscribers.erased import address_hash
from ainews_newsletter.subscribers.history import SubscriberHistory
from ainews_newsletter.subscribers.schema import consents

FORMAT = "ainews-reader-data/1"


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def reader_data(config: Config, subscriber: Subscriber) -> dict[str, Any]:
    """Everything about `subscriber` (a row read just before), nothing of anyone else."""
    engine = engine_for(config.database_url)
    addresses = {subscriber.email.lower(), subscriber.email_normalized.lower()}
    secret = secret_of(config)
    if secret is not None:  # rows the retention already hashed are still theirs
        addresses |= {address_hash(secret, address) for address in list(addresses)}
    with engine.connect() as connection:
        sent = _deliveries(connection, subscriber.id, addresses)
        welcome = _welcome(connection, subscriber.id, addresses)
        delivery_ids = [row["id"] for row in sent]
        data = {
            "format": FORMAT,
            "profile": {
                "email": subscriber.email, "name": subscriber.name,
                "status": subscriber.status.value, "attributes": subscriber.attributes,
                "source": subscriber.source, "created_at": _time(subscriber.created_at),
                "confirmed_at": _time(subscriber.confirmed_at),
                "unsubscribed_at": _time(subscriber.unsubscribed_at)},
            "lists": list(subscriber.lists),
            "history": [event.as_record()
                        for event in SubscriberHistory(engine).events_for(subscriber.id)],
            "consent": _consent(connection, subscriber.id),
            "deliveries": sent,
            "welcome": welcome,
            "feedback": _feedback(connection, subscriber.id, delivery_ids, addresses),
            "clicks": _clicks(connection, delivery_ids),
        }
    for row in sent:
        del row["id"]  # the ledger's own numbering means nothing to the reader
    return data


def reader_data_by_token(config: Config, token: str) -> dict[str, Any] | None:
    subscriber = open_subscribers(config).by_token(token)
    return None if subscriber is None else reader_data(config, subscriber)


def reader_data_by_address(config: Config, address: str) -> dict[str, Any]:
    """SubscriberError (one line) when nobody has that address."""
    return reader_data(config, open_subscribers(config).require(address))


def _consent(connection: Connection, subscriber_id: int) -> dict[str, Any] | None:
    row = connection.execute(select(consents).where(
        consents.c.subscriber_id == subscriber_id)).first()
    if row is None:
        return None
    return {"how": row.how, "source": row.source, "ip": row.ip, "user_agent": row.user_agent,
            "consent_text": row.consent_text, "given_at": _time(row.given_at),
            "confirmed_at": _time(row.confirmed_at)}


def _deliveries(connection: Connection, subscriber_id: int,
                addresses: set[str]) -> list[dict[str, Any]]:
    rows = connection.execute(
        select(deliveries.c.id, deliveries.c.email, deliveries.c.name, deliveries.c.state,
               deliveries.c.attempts, deliveries.c.last_code, deliveries.c.last_reply,
               deliveries.c.sent_at, deliveries.c.updated_at, issues.c.period_key,
               issues.c.list_id, issues.c.subject)
        .join(issues, issues.c.id == deliveries.c.issue_id)
        .where(deliveries.c.subscriber_id == subscriber_id,
               same_address(connection, deliveries.c.email, deliveries.c.id, addresses))
        .order_by(deliveries.c.id)).all()
    return [{"id": row.id, "issue": row.period_key, "list": row.list_id,
             "subject": row.subject, "email": row.email, "name": row.name,
             "outcome": row.state, "attempts": row.attempts, "last_code": row.last_code,
             "last_reply": row.last_reply, "sent_at": _time(row.sent_at),
             "updated_at": _time(row.updated_at)} for row in rows]


def _welcome(connection: Connection, subscriber_id: int,
             addresses: set[str]) -> dict[str, Any] | None:
    row = connection.execute(select(welcomes).where(
        welcomes.c.subscriber_id == subscriber_id,
        same_address(connection, welcomes.c.email, welcomes.c.id, addresses))).first()
    if row is None:
        return None
    return {"email": row.email, "name": row.name, "outcome": row.state,
            "attempts": row.attempts, "last_code": row.last_code, "last_reply": row.last_reply,
            "created_at": _time(row.created_at), "sent_at": _time(row.sent_at)}


def _feedback(connection: Connection, subscriber_id: int, delivery_ids: list[int],
              addresses: set[str]) -> list[dict[str, Any]]:
    theirs = [same_address(connection, feedback_events.c.email, feedback_events.c.id, addresses)]
    if delivery_ids:
        theirs.append(feedback_events.c.delivery_id.in_(delivery_ids))
    rows = connection.execute(
        select(feedback_events, issues.c.period_key)
        .outerjoin(issues, issues.c.id == feedback_events.c.issue_id)
        .where(feedback_events.c.subscriber_id == subscriber_id, or_(*theirs))
        .order_by(feedback_events.c.id)).all()
    return [{"kind": row.kind, "issue": row.period_key, "email": row.email,
             "status": row.status, "action": row.action, "diagnostic": row.diagnostic,
             "feedback_type": row.feedback_type, "source": row.source,
             "provider": row.provider, "effect": row.effect,
             "received_at": _time(row.received_at)} for row in rows]


def _clicks(connection: Connection, delivery_ids: list[int]) -> list[dict[str, Any]]:
    if not delivery_ids:
        return []
    rows = connection.execute(
        select(clicks.c.at, clicks.c.scanner, clicks.c.position, issues.c.period_key,
               issue_links.c.url)
        .join(issues, issues.c.id == clicks.c.issue_id)
        .outerjoin(issue_links, (issue_links.c.issue_id == clicks.c.issue_id)
                   & (issue_links.c.position == clicks.c.position))
        .where(clicks.c.delivery_id.in_(delivery_ids))
        .order_by(clicks.c.id)).all()
    return [{"issue": row.period_key, "link": row.url, "at": _time(row.at),
             "by_scanner": row.scanner} for row in rows]

