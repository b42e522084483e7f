"""Erasing a reader on request (issue 29): the person is removed everywhere, and what must
stay for the counts stays without anything that names them. It spans three rooms (the
list, the ledger, the feedback events), so it lives here; the CLI (`ainews subscribers
erase`) and the reader's own page (`/preferences/{token}/erase`) both call `erase`.

Per address, in one transaction:
- the subscriber row, its memberships and consent record, the clicks of its deliveries,
  its welcome mail row and its confirmation-mail throttle rows are deleted;
- its history rows stay (they hold the subscriber id, a kind and a time; growth is counted
  from them) and get the same last event `remove` writes;
- its delivery rows and feedback events stay for the reports, with the address replaced by
  the keyed mark (subscribers/erased.py), the name cleared, and the free text that may quote
  the address (a server's reply, a report's diagnostic, where a report came from) replaced
  by a neutral placeholder that keeps the SMTP code;
- rows not sent yet (queued, deferred) are failed: a send never reaches an erased reader
  (a row claimed before the erase is already on its way, as with an unsubscribe);
- on the suppression list only the mark stays (reason "erased", or "erased:complained" and
  the like for an address that had been suppressed for more than an unsubscribe).
Nothing that names the address is a no-op, so erasing twice is harmless.

On SQLite the transaction runs with secure_delete (freed bytes are zeroed, not left in the
file) and is followed by a WAL checkpoint, so the old pages do not linger in the -wal file.
Free space that other connections left before (where SQLite was built without secure_delete
on) may still hold an old copy of the row: the CLI erase then searches the file for the
address and full names, and rebuilds it with VACUUM if any is found (the web erase
does not: it would run inside the request)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, delete, or_, select, text, update
from sqlalchemy.exc import DBAPIError

from ainews_newsletter import clock
from ainews_newsletter.config import Config
from ainews_newsletter.database import (
    engine_for,
    ensure_schema,
    erase_lock,
    insert_ignoring_conflicts,
    same_address,
    sqlite_path,
)
from ainews_newsletter.delivery.redaction import ERASED_PREFIX, ERASED_TEXT, scrubbed
from ainews_newsletter.delivery.tables import clicks, deliveries, welcomes
from ainews_newsletter.errors import SubscriberError
from ainews_newsletter.feedback.events import FeedbackEvent, Prepare, feedback_events
from ainews_newsletter.models import DeliveryState, SubscriberStatus
from ainews_newsletter.subscribers.addresses import normalize
from ainews_newsletter.subscribers.erased import (
    address_hash,
    erased_among,
    erased_mark,
    record_key_check,
    replace_key_check,
    require_key,
    require_same_key,
)
from ainews_newsletter.subscribers.history import record
from ainews_newsletter.subscribers.schema import (
    confirmation_mails,
    consents,
    memberships,
    subscribers,
    suppressions,
)

NOT_SENT_REPLY = "not sent: erased on request"
log = logging.getLogger("ainews.erasure")
_NOT_SENT = (DeliveryState.QUEUED.value, DeliveryState.DEFERRED.value)


@dataclass(frozen=True)
class Erased:
    """What erasing one address did. `found`: anything named it (False: nothing to do)."""

    address: str
    subscriber: bool
    deliveries: int
    not_sent: int
    feedback_events: int
    clicks: int
    welcomes: int
    # The SQLite file afterwards (CLI only): "" nothing to do, "vacuumed", or
    # "vacuum failed: ..." (the erase itself is committed either way).
    file: str = ""

    @property
    def found(self) -> bool:
        return self.subscriber or bool(self.deliveries or self.feedback_events
                                       or self.welcomes)

    def as_record(self) -> dict[str, Any]:
        return {**asdict(self), "found": self.found}


def erase(config: Config, addresses: Sequence[str], source: str = "cli",
          new_key: bool = False) -> list[Erased]:
    """Erase each address (see the module's docstring). ConfigError without
    AINEWS_SECRET_KEY, or with another key than earlier erases used (unless `new_key`),
    before anything changes."""
    key = check_erase_allowed(config, new_key)
    engine = engine_for(config.database_url)
    done: list[Erased] = []
    words: set[str] = set()
    for address in addresses:
        erased, named = _erase_one(engine, key, address, source, new_key)
        done.append(erased)
        words |= named
    _checkpoint(engine)
    if source != "cli":
        # Not inside a web request: the file scan reads the whole database and VACUUM
        # rewrites it. secure_delete and the checkpoint above cover this erase's own rows.
        if sqlite_path(str(engine.url)) is not None:
            log.info("erase from %s: the file is not searched for older free space "
                     "(`ainews subscribers erase` does it)", source)
        return done
    try:
        file = _vacuum_if_left(engine, words)
    except DBAPIError as error:
        log.error("erase committed, but VACUUM failed: %s", error)
        file = f"vacuum failed: {error.orig}"
    return [replace(item, file=file) for item in done]


def check_erase_allowed(config: Config, new_key: bool = False) -> str:
    """The key an erase will use, or ConfigError: none set, or not the one earlier erases
    used (unless `new_key`). Changes nothing: the CLI asks it before its prompt, and each
    erase asks again inside its own transaction."""
    key = require_key(config.secret_key.get_secret_value() if config.secret_key else None)
    engine = engine_for(config.database_url)
    ensure_schema(engine)
    with engine.connect() as connection:
        require_same_key(connection, key, new_key)
    return key


def _normalized(address: str) -> str:
    try:
        return normalize(address, allow_test=True)[1]
    except SubscriberError:
        # Not a valid address now (the rules may have changed since it was stored): the
        # ledger may still hold it as it was typed.
        return address.strip().lower()


def _erase_one(engine: Engine, key: str, address: str, source: str, new_key: bool = False,
               ) -> tuple[Erased, set[str]]:
    """What it did, and the words that named the person (the address, their names)."""
    normalized = _normalized(address)
    mark = erased_mark(key, normalized)
    now = clock.now()
    with engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            # Deleted and rewritten rows leave their old bytes in the page unless this is on.
            connection.exec_driver_sql("PRAGMA secure_delete = ON")
        # Alone from here to the commit: no writer of feedback events looks in between,
        # and a second erase with another key sees this one's fingerprint.
        erase_lock(connection, exclusive=True)
        replacing = require_same_key(connection, key, new_key)
        row = connection.execute(select(subscribers.c.id, subscribers.c.status,
                                        subscribers.c.email).where(
            subscribers.c.email_normalized == normalized)).first()
        # Ledger rows are matched by their own stored address (as written, or as retention
        # hashed it), never by subscriber id alone: SQLite hands a deleted highest id to the
        # next reader, so an old id of this person may now be someone else's.
        forms = {address_hash(key, normalized), normalized, address.strip().lower(),
                 *([row.email.lower()] if row is not None else [])}
        # What the file scan looks for: the address, the full names, and the local part
        # where it is long enough not to match ordinary words.
        local = normalized.partition("@")[0]
        named = {normalized, *_names(connection, forms, row.id if row is not None else None),
                 *([local] if len(local) >= 6 else [])}
        if row is not None:
            left = SubscriberStatus(row.status).has_left
            record(connection, row.id, "erased" if left else "removed", source, at=now)
            connection.execute(delete(consents).where(consents.c.subscriber_id == row.id))
            connection.execute(delete(memberships).where(
                memberships.c.subscriber_id == row.id))
            connection.execute(delete(subscribers).where(subscribers.c.id == row.id))
        mailbox_local, _, domain = normalized.partition("@")
        connection.execute(delete(confirmation_mails).where(confirmation_mails.c.mailbox.in_(
            {normalized, f"{mailbox_local.split('+', 1)[0]}@{domain}"})))
        counts = _ledger(connection, forms, mark, now)
        feedback = _feedback(connection, forms, counts["delivery_ids"], mark)
        earlier = connection.execute(select(suppressions.c.reason).where(
            suppressions.c.email_normalized == normalized)).scalar()
        connection.execute(delete(suppressions).where(
            suppressions.c.email_normalized == normalized))
        insert_ignoring_conflicts(connection, suppressions, [{
            "email_normalized": mark, "reason": _mark_reason(earlier, row), "created_at": now}])
        if replacing:
            replace_key_check(connection, key, now)
        else:
            record_key_check(connection, key, now)
    return Erased(address=address.strip(), subscriber=row is not None,
                  deliveries=len(counts["delivery_ids"]), not_sent=counts["not_sent"],
                  feedback_events=feedback, clicks=counts["clicks"],
                  welcomes=counts["welcomes"]), named


def _mark_reason(earlier: str | None, row: Any) -> str:
    """"erased", or "erased:<reason>" for an address that complained, bounced or was
    suppressed by hand: the erase must not turn those into someone a stranger's sign-up may
    mail (subscribers/signups.may_be_sent_a_confirmation reads it). Someone who merely
    unsubscribed (or was active) may come back through double opt-in."""
    if earlier is None and row is not None and row.status in (
            SubscriberStatus.COMPLAINED.value, SubscriberStatus.BOUNCED.value):
        earlier = str(row.status)
    if earlier in (None, "unsubscribed", "erased") or str(earlier).startswith("erased"):
        return "erased"
    return f"erased:{earlier}"[:32]


def _names(connection: Connection, forms: set[str], current: int | None) -> set[str]:
    found: set[str] = set()
    if current is not None:
        found.update(name for name in connection.execute(select(subscribers.c.name).where(
            subscribers.c.id == current)).scalars() if name)
    for table in (deliveries, welcomes):
        found.update(name for name in connection.execute(
            select(table.c.name).distinct().where(
                same_address(connection, table.c.email, table.c.id, forms),
                table.c.name.is_not(None))).scalars()
            if name)
    return found


def _ledger(connection: Connection, forms: set[str], mark: str, now: Any) -> dict[str, Any]:
    named = same_address(connection, deliveries.c.email, deliveries.c.id, forms)
    rows = connection.execute(select(deliveries.c.id, deliveries.c.state,
                                     deliveries.c.last_reply).where(named)).all()
    not_sent = 0
    for found in rows:
        scrub = {"email": mark, "name": None, "last_reply": scrubbed(found.last_reply)}
        if found.state in _NOT_SENT:
            # The state in the WHERE: a sender's claim between our read and this write wins
            # (that message is on its way, as with an unsubscribe); it is scrubbed below.
            failed = connection.execute(update(deliveries).where(
                deliveries.c.id == found.id, deliveries.c.state == found.state).values(
                    {**scrub, "state": DeliveryState.FAILED.value, "last_reply": NOT_SENT_REPLY,
                     "next_attempt_at": None, "updated_at": now})).rowcount
            if failed == 1:
                not_sent += 1
                continue
        connection.execute(update(deliveries).where(deliveries.c.id == found.id)
                           .values(**scrub))
    delivery_ids = [found.id for found in rows]
    removed_clicks = connection.execute(delete(clicks).where(
        clicks.c.delivery_id.in_(delivery_ids))).rowcount if delivery_ids else 0
    removed_welcomes = connection.execute(delete(welcomes).where(
        same_address(connection, welcomes.c.email, welcomes.c.id, forms))).rowcount
    return {"delivery_ids": delivery_ids, "not_sent": not_sent, "clicks": int(removed_clicks),
            "welcomes": int(removed_welcomes)}


def _feedback(connection: Connection, forms: set[str], delivery_ids: list[int],
              mark: str) -> int:
    # An event tied to one of this person's deliveries is theirs whatever address it names.
    named = or_(same_address(connection, feedback_events.c.email, feedback_events.c.id, forms),
                feedback_events.c.delivery_id.in_(delivery_ids))
    rows = connection.execute(select(feedback_events.c.id, feedback_events.c.diagnostic)
                              .where(named)).all()
    for found in rows:
        connection.execute(update(feedback_events).where(feedback_events.c.id == found.id)
                           .values(email=mark, diagnostic=scrubbed(found.diagnostic) or "",
                                   source=ERASED_TEXT))
    return len(rows)


def _checkpoint(engine: Engine) -> None:
    """SQLite: copy the WAL into the file and truncate it, so the pages from before the
    erase are not left in the -wal file. Best effort: a reader holding an old snapshot makes
    it partial, and the next checkpoint finishes it."""
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as connection:
        connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))


def unnamer(config: Config) -> Prepare | None:
    """What the feedback event writers call in their own transaction (feedback/events.py
    Prepare), so reports that arrive after their reader was erased (a late bounce, a
    provider's event, a refusal of the message that was on its way) are stored as the erase
    left the others: the mark for the address, no free text. An event matched to an erased
    delivery (by its VERP tag) counts too, whatever recipient it names (none, or a
    forwarding address): its diagnostic may still quote the erased one. Two indexed reads
    per batch. None without AINEWS_SECRET_KEY (nothing can have been erased)."""
    key = config.secret_key.get_secret_value() if config.secret_key else None
    if not key:
        return None

    def unnamed(connection: Connection, events: list[FeedbackEvent]) -> list[FeedbackEvent]:
        named = {event.email.strip().lower() for event in events if event.email}
        tied = {event.delivery_id for event in events if event.delivery_id is not None}
        if not (named or tied):
            return events
        erased = erased_among(connection, key, named)
        marks: dict[int, str] = {row.id: row.email for row in connection.execute(
            select(deliveries.c.id, deliveries.c.email).where(
                deliveries.c.id.in_(tied), deliveries.c.email.startswith(ERASED_PREFIX)))
        } if tied else {}
        if not erased and not marks:
            return events
        return [_unnamed(event, key, erased, marks) for event in events]

    return unnamed


def _unnamed(event: FeedbackEvent, key: str, erased: set[str],
             marks: dict[int, str]) -> FeedbackEvent:
    address = event.email.strip().lower()
    if address in erased:
        mark = erased_mark(key, address)
    elif event.delivery_id is not None and event.delivery_id in marks:
        mark = marks[event.delivery_id]
    else:
        return event
    # No subscriber either: SQLite may hand the erased reader's id to the next reader, who
    # must not inherit this report (the policy and the failure counts go by that id).
    return replace(event, email=mark, diagnostic=scrubbed(event.diagnostic) or "",
                   source=ERASED_TEXT, subscriber_id=None)


_CHUNK = 8 << 20


def _vacuum_if_left(engine: Engine, words: set[str]) -> str:
    """SQLite: if the file still holds any of these words (free space a connection without
    secure_delete left behind before the erase: some SQLite builds have it off), rebuild it
    with VACUUM, which writes only live rows. The scan reads the file once; VACUUM is the
    rare, slow path."""
    path = sqlite_path(str(engine.url))
    forms = {variant.encode("utf-8") for word in words if len(word) >= 3
             for variant in (word, word.lower(), word.upper())}
    if path is None or not forms or not _in_file(path, forms):
        return ""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM")
    _checkpoint(engine)
    return "vacuumed"


def _in_file(path: Path, forms: set[bytes]) -> bool:
    overlap = max(len(form) for form in forms)
    tail = b""
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            window = tail + chunk
            lowered = window.lower()
            if any(form in window or form in lowered for form in forms):
                return True
            tail = window[-overlap:]
    return False
