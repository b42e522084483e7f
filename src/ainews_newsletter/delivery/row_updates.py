"""The statements that claim and record delivery rows (claims.py runs them), built once at
import: constructing a SQLAlchemy statement costs more than SQLite takes to run it."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    Interval,
    Update,
    and_,
    bindparam,
    case,
    func,
    or_,
    select,
    update,
)

from ainews_newsletter.database import UTCDateTime
from ainews_newsletter.delivery.redaction import ERASED_PREFIX
from ainews_newsletter.delivery.tables import deliveries
from ainews_newsletter.models import DeliveryState


def is_due(now: datetime | ColumnElement[datetime]) -> ColumnElement[bool]:
    """Queued rows, and deferred rows whose retry time has come. Rows left `sending` are
    not due here: on SQLite a sender that finds itself alone gives them back
    (`release_claims`); on PostgreSQL `claim_next` adds the lease."""
    return or_(
        deliveries.c.state == DeliveryState.QUEUED.value,
        and_(deliveries.c.state == DeliveryState.DEFERRED.value,
             deliveries.c.next_attempt_at <= now),
    )


def database_now() -> ColumnElement[datetime]:
    """The database server's clock, as naive UTC like the stored times (PostgreSQL). Every
    sender of a scaled-out send compares claims against this one clock, never its own."""
    return func.timezone("UTC", func.now())


def _lease_expired(lease: ColumnElement[timedelta]) -> ColumnElement[bool]:
    """A row claimed longer ago than `lease` by the database's clock: its sender is presumed
    dead, and at-least-once means the row goes again."""
    return and_(deliveries.c.state == DeliveryState.SENDING.value,
                deliveries.c.updated_at < database_now() - lease)


# The two statements run for every message, built once: constructing a SQLAlchemy statement
# costs more than SQLite takes to run it.
NOW = bindparam("now", type_=UTCDateTime())
CLAIM = (update(deliveries)
          .where(deliveries.c.id == bindparam("row_id"), is_due(NOW))
          .values(state=DeliveryState.SENDING.value, attempts=bindparam("new_attempts"),
                  updated_at=NOW))
RECORD = (update(deliveries)
           .where(deliveries.c.id == bindparam("row_id"))
           .values(state=bindparam("new_state"), last_code=bindparam("code"),
                   # Erased while it was on its way: the reply may quote the address.
                   last_reply=case((deliveries.c.email.startswith(ERASED_PREFIX),
                                    bindparam("erased_reply")), else_=bindparam("reply")),
                   next_attempt_at=bindparam("next_at", type_=UTCDateTime()),
                   updated_at=NOW, sent_at=bindparam("sent", type_=UTCDateTime())))
# A message sent with the relay's id in its reply: the same, and the id kept. Apart, so that
# a relay that names no id costs nothing more per message (not even the index's update).
RECORD_SENT_WITH_ID = RECORD.values(provider_message_id=bindparam("provider_id"))
# Through one of [[smtp.relays]]: naming it (apart: one [smtp] relay writes as before).
RECORD_RELAY = RECORD.values(relay=bindparam("relay"))
RECORD_RELAY_SENT_WITH_ID = RECORD_SENT_WITH_ID.values(relay=bindparam("relay"))


def _claim_lowest(*conditions: ColumnElement[bool]) -> Update:
    """PostgreSQL: mark `sending` the lowest-id row meeting `conditions` that no other
    sender holds (FOR UPDATE SKIP LOCKED), by the database's clock; returns the row."""
    lowest = (select(deliveries.c.id).where(*conditions).order_by(deliveries.c.id).limit(1)
              .with_for_update(skip_locked=True).scalar_subquery())
    return (update(deliveries).where(deliveries.c.id == lowest)
            .values(state=DeliveryState.SENDING.value, attempts=deliveries.c.attempts + 1,
                    updated_at=database_now())
            .returning(deliveries.c.id, deliveries.c.subscriber_id, deliveries.c.email,
                       deliveries.c.name, deliveries.c.token, deliveries.c.attempts,
                       deliveries.c.return_tag, deliveries.c.language))


# The three claims of `claim_next`, built once: the lowest queued row above `after`, the
# lowest deferred row due at `now`, the lowest row whose claim outlived `lease`.
_IN_ISSUE = deliveries.c.issue_id == bindparam("issue")
CLAIM_QUEUED = _claim_lowest(_IN_ISSUE, deliveries.c.state == DeliveryState.QUEUED.value,
                              deliveries.c.id > bindparam("after"))
CLAIM_DEFERRED = _claim_lowest(_IN_ISSUE,
                                deliveries.c.state == DeliveryState.DEFERRED.value,
                                deliveries.c.next_attempt_at <= NOW)
CLAIM_EXPIRED = _claim_lowest(_IN_ISSUE, _lease_expired(bindparam("lease", type_=Interval())))
