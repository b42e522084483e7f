"""The statements that claim and record delivery rows (claims.py runs them), built once at
import: constructing a SQLAlchemy statement costs more than SQLite takes to run it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Interval,
    Select,
    Table,
    Update,
    and_,
    bindparam,
    case,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    update,
)

from ainews_newsletter.database import UTCDateTime
from ainews_newsletter.delivery.redaction import ERASED_PREFIX
from ainews_newsletter.delivery.tables import deliveries
from ainews_newsletter.models import DeliveryState

# The reply recorded for a row skipped because the subscriber left after the snapshot.
NOT_ACTIVE_REPLY = "not sent: no longer an active subscriber"
# PostgreSQL: a SELECT of the subscriber with this id, locked FOR SHARE, if they may still be
# sent to (the subscribers room builds it; claims.DeliverableCheck carries it).
LockedReader = Callable[[ColumnElement[int]], Select[Any]]


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
def still_claimed(table: Table, claimed_attempts: Any) -> ColumnElement[bool]:
    """The row as a sender's claim left it: still `sending`, with the attempt count that
    claim wrote (deliveries and welcomes alike). A put-back goes only to such a row: a
    sender whose claim was taken over (its lease ran out, or a lone SQLite sender gave it
    back) and that answers late must not turn the newer claim's `sending` or `sent` into
    anything else."""
    return and_(table.c.state == DeliveryState.SENDING.value,
                table.c.attempts == claimed_attempts)


def answerable(table: Table, claimed_attempts: Any,
               is_sent: ColumnElement[bool] | bool) -> ColumnElement[bool]:
    """Where an answer is written: to the claim it answers (`still_claimed`), except a 250:
    a message the relay took is sent, whoever holds the row now (the newer claim put back
    or deferred, its reader left, a 5xx): written over anything but an earlier `sent`, it
    saves the copy the row would otherwise get again. `is_sent`: a condition on a bound
    state (a statement built once), or a bool when the state is known already."""
    claimed = still_claimed(table, claimed_attempts)
    if is_sent is False:
        return claimed
    not_sent_yet = table.c.state != DeliveryState.SENT.value
    return or_(claimed, not_sent_yet if is_sent is True else and_(is_sent, not_sent_yet))


STILL_CLAIMED = still_claimed(deliveries, bindparam("claimed_attempts"))
_NEW_STATE = bindparam("new_state", type_=deliveries.c.state.type)
ANSWERABLE = answerable(deliveries, bindparam("claimed_attempts"),
                        _NEW_STATE == DeliveryState.SENT.value)  # noqa: SIM300 (SQL)
RECORD = (update(deliveries)
           .where(deliveries.c.id == bindparam("row_id"), ANSWERABLE)
           .values(state=_NEW_STATE, last_code=bindparam("code"),
                   # Erased while it was on its way: the reply may quote the address.
                   last_reply=case((deliveries.c.email.startswith(ERASED_PREFIX),
                                    bindparam("erased_reply")), else_=bindparam("reply")),
                   next_attempt_at=bindparam("next_at", type_=UTCDateTime()),
                   updated_at=NOW, sent_at=bindparam("sent", type_=UTCDateTime())))
# A message sent with the relay's id in its reply: the same, and the id kept. Apart, so that
# a relay that names no id costs nothing more per message (not even the index's update).
RECORD_SENT_WITH_ID = RECORD.values(provider_message_id=bindparam("provider_id"))
# Through one of [[smtp.relays]]: naming it (apart: one [smtp] relay writes as before).
RECORD_RELAY = RECORD.values(relay=bindparam("relay_name"))
RECORD_RELAY_SENT_WITH_ID = RECORD_SENT_WITH_ID.values(relay=bindparam("relay_name"))


_RETURNED = (deliveries.c.id, deliveries.c.subscriber_id, deliveries.c.email,
             deliveries.c.name, deliveries.c.token, deliveries.c.attempts,
             deliveries.c.return_tag, deliveries.c.language)


# LIMIT 1 written out, not bound: PostgreSQL keeps one plan for a prepared statement (psycopg
# prepares it by its sixth run) only when that plan expects one row; with the limit a
# parameter it planned the claim afresh at every execution, most of its cost.
ONE: ColumnElement[int] = literal_column("1", Integer)


def _claim_lowest(*conditions: ColumnElement[bool]) -> Update:
    """PostgreSQL: mark `sending` the lowest-id row meeting `conditions` that no other
    sender holds (FOR UPDATE SKIP LOCKED), by the database's clock; returns the row."""
    lowest = (select(deliveries.c.id).where(*conditions).order_by(deliveries.c.id)
              .limit(ONE).with_for_update(skip_locked=True).scalar_subquery())
    return (update(deliveries).where(deliveries.c.id == lowest)
            .values(state=DeliveryState.SENDING.value, attempts=deliveries.c.attempts + 1,
                    updated_at=database_now())
            .returning(*_RETURNED, literal(True).label("admitted")))


# The three claims of `claim_next`, built once: the lowest queued row above `after`, the
# lowest deferred row due at `now`, the lowest row whose claim outlived `lease`.
_IN_ISSUE = deliveries.c.issue_id == bindparam("issue")
QUEUED_ABOVE = (_IN_ISSUE, deliveries.c.state == DeliveryState.QUEUED.value,
                deliveries.c.id > bindparam("after"))
DEFERRED_DUE = (_IN_ISSUE, deliveries.c.state == DeliveryState.DEFERRED.value,
                deliveries.c.next_attempt_at <= NOW)
LEASE_EXPIRED = (_IN_ISSUE, _lease_expired(bindparam("lease", type_=Interval())))
CLAIM_QUEUED = _claim_lowest(*QUEUED_ABOVE)
CLAIM_DEFERRED = _claim_lowest(*DEFERRED_DUE)
CLAIM_EXPIRED = _claim_lowest(*LEASE_EXPIRED)


def claim_lowest_admitted(conditions: tuple[ColumnElement[bool], ...],
                          reader: LockedReader) -> Update:
    """PostgreSQL: `_claim_lowest` with the check that the reader may still be sent to
    folded in, one statement and so one round trip. The lowest row meeting `conditions`
    that no other sender holds is locked (SKIP LOCKED), then its subscriber FOR SHARE until
    the statement commits, so an unsubscribe lands either before the check or after the
    claim. A reader who may not is not claimed but recorded failed at once (`admitted`
    false), as the claim followed by that record did before: the attempt counted, the
    reply NOT_ACTIVE_REPLY, nothing sent."""
    candidate = (select(deliveries.c.id, deliveries.c.subscriber_id).where(*conditions)
                 .order_by(deliveries.c.id).limit(ONE)
                 .with_for_update(skip_locked=True).cte("candidate"))
    allowed = reader(candidate.c.subscriber_id).cte("allowed")
    verdict = select(candidate.c.id, select(allowed).exists().label("admitted")).cte("verdict")
    admitted = verdict.c.admitted

    def kept(column: ColumnElement[Any], otherwise: Any) -> ColumnElement[Any]:
        return case((admitted, column), else_=otherwise)

    return (update(deliveries).where(deliveries.c.id == verdict.c.id)
            .values(state=kept(literal(DeliveryState.SENDING.value),
                               DeliveryState.FAILED.value),
                    attempts=deliveries.c.attempts + 1,
                    updated_at=kept(database_now(), NOW),
                    last_code=kept(deliveries.c.last_code, 0),
                    last_reply=kept(deliveries.c.last_reply, NOT_ACTIVE_REPLY),
                    next_attempt_at=kept(deliveries.c.next_attempt_at, null()),
                    sent_at=kept(deliveries.c.sent_at, null()))
            .returning(*_RETURNED, admitted))


def after_record(claim: Update, record: Update) -> Update:
    """PostgreSQL: `claim` with `record` (an answer) in the same statement, as a
    data-modifying WITH query: one round trip and one commit for the answer and the next
    row's claim. The two must never touch the same row (PostgreSQL does not say which of
    two updates of one row in one statement wins): the answered row is mostly `sending`,
    which the queued claim passes over, but a late 250 is written to a row another sender
    put back in the queue (ANSWERABLE), so the claim leaves the answered row out by id.
    Claiming nothing then, the caller's next claim runs after this commit."""
    return (claim.where(deliveries.c.id != bindparam("row_id"))
            .add_cte(record.returning(deliveries.c.id).cte("recorded")))

