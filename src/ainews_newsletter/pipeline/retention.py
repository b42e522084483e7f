"""Retention ([privacy], issue 29): what is kept about readers no longer than needed. One
function, `apply_retention`, used daily by the scheduler and by `ainews db prune`:

(a) feedback events older than keep_feedback_details_days keep their counts and their SMTP
    status but not their text: the diagnostic is cut to the status code it quotes (it may
    quote the address or the person's name), the source to its kind ("imap", "file", …: a
    file's path or a folder/UID can name the person too); the mail kept in the IMAP
    processed folder that long is deleted.
(b) ledger rows (deliveries, welcomes, and the feedback events' recipient) older than
    keep_addresses_in_ledger_days keep a keyed hash of the address instead of it (HMAC-SHA256
    with AINEWS_SECRET_KEY of the lower-cased address, "hashed:<hex>"), no name and no
    server reply. Counts are kept: reports count rows by state, issue and subscriber id. A
    bounce naming only the address can no longer find such a row, which after that long
    is what is wanted. Without the key this rule is skipped and said so.

Both are idempotent: a cut text cuts to itself, a hashed address is left alone."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, Table, and_, bindparam, func, or_, select, update

from ainews_newsletter import clock
from ainews_newsletter.config import Config
from ainews_newsletter.database import engine_for, ensure_schema
from ainews_newsletter.delivery.tables import deliveries, welcomes
from ainews_newsletter.errors import FeedbackError
from ainews_newsletter.feedback.events import feedback_events
from ainews_newsletter.subscribers.erased import HASHED, address_hash
from ainews_newsletter.subscribers.erased import PREFIX as ERASED_PREFIX

# One transaction per chunk: SQLite's write lock is never held for a whole pass.
_CHUNK = 2000
# An enhanced status code (RFC 3463) or else a basic reply code: all the diagnostic keeps.
_ENHANCED = re.compile(r"\b[245]\.\d{1,3}\.\d{1,3}\b")
_BASIC = re.compile(r"\b[245]\d\d\b")
_BARE_WORD = re.compile(r"[a-z][a-z0-9_-]{0,31}")
log = logging.getLogger("ainews.retention")


def secret_of(config: Config) -> str | None:
    value = config.secret_key.get_secret_value() if config.secret_key else ""
    return value or None


def cut_diagnostic(text: str) -> str:
    """What of a diagnostic names no person: its status code ("5.1.1", else "550"), or
    nothing."""
    found = _ENHANCED.search(text) or _BASIC.search(text)
    return found.group(0) if found else ""


def cut_source(text: str) -> str:
    """The kind of source without its path, folder or id: "imap:INBOX/7" → "imap", a file
    path → "file"; a bare word ("smtp", "-", "imap") stays."""
    if text == "-" or _BARE_WORD.fullmatch(text):
        return text
    kind, colon, _ = text.partition(":")
    if colon and _BARE_WORD.fullmatch(kind) and len(kind) > 1:  # not a Windows drive
        return kind
    return "file"


@dataclass
class RetentionReport:
    feedback_days: int
    ledger_days: int
    feedback_cut: int = 0
    mail_deleted: int | None = None  # None: no IMAP mailbox configured
    deliveries_hashed: int | None = None  # None: skipped (no AINEWS_SECRET_KEY)
    welcomes_hashed: int | None = None
    feedback_hashed: int | None = None
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # the mailbox could not be pruned

    def as_dict(self) -> dict[str, Any]:
        return {"keep_feedback_details_days": self.feedback_days,
                "keep_addresses_in_ledger_days": self.ledger_days,
                "feedback_details_cut": self.feedback_cut,
                "imap_messages_deleted": self.mail_deleted,
                "deliveries_hashed": self.deliveries_hashed,
                "welcomes_hashed": self.welcomes_hashed,
                "feedback_addresses_hashed": self.feedback_hashed,
                "warnings": self.warnings, "errors": self.errors}


def apply_retention(config: Config, with_mailbox: bool = True) -> RetentionReport:
    """Both rules, now (clock.now()). An IMAP mailbox that is configured but cannot be
    pruned is one line in `errors`; the database part is done all the same."""
    privacy = config.privacy
    report = RetentionReport(privacy.keep_feedback_details_days,
                             privacy.keep_addresses_in_ledger_days)
    now = clock.now()
    engine = engine_for(config.database_url)
    ensure_schema(engine)
    details_before = now - timedelta(days=privacy.keep_feedback_details_days)
    report.feedback_cut = _cut_feedback(engine, details_before)
    secret = secret_of(config)
    if secret is None:
        report.warnings.append("AINEWS_SECRET_KEY is not set: addresses in the ledger were "
                               "not replaced by keyed hashes (keep_addresses_in_ledger_days "
                               "skipped)")
    else:
        ledger_before = now - timedelta(days=privacy.keep_addresses_in_ledger_days)
        report.deliveries_hashed = _hash_rows(
            engine, deliveries, secret, ledger_before,
            func.coalesce(deliveries.c.sent_at, deliveries.c.updated_at))
        report.welcomes_hashed = _hash_rows(
            engine, welcomes, secret, ledger_before,
            func.coalesce(welcomes.c.sent_at, welcomes.c.updated_at))
        report.feedback_hashed = _hash_rows(
            engine, feedback_events, secret, ledger_before, feedback_events.c.received_at)
    if with_mailbox and config.bounces.imap_configured:
        try:
            report.mail_deleted = _delete_old_mail(config, details_before)
        except FeedbackError as exc:
            report.errors.append(str(exc))
    return report


def _maybe_uncut() -> ColumnElement[bool]:
    """Rows whose text may not be cut yet; a cut row is left out so the daily pass does not
    read the whole past again. A cut diagnostic is empty or a status code (no letters, no
    space, at most 9 characters); a cut source is a bare lower-case word (no path, folder or
    separator). lower() = upper() is the portable "has no letter" test."""
    diagnostic, source = feedback_events.c.diagnostic, feedback_events.c.source
    diagnostic_cut = and_(func.length(diagnostic) <= 9, ~diagnostic.contains(" "),
                          func.lower(diagnostic) == func.upper(diagnostic))
    source_cut = and_(func.length(source) <= 32, func.lower(source) == source,
                      *[~source.contains(mark, autoescape=True)
                        for mark in (":", "/", "\\", ".", " ", "@")])
    return or_(~diagnostic_cut, ~source_cut)


def _cut_feedback(engine: Engine, before: datetime) -> int:
    """Rule (a) on the database, by chunks of ids, each its own short transaction (SQLite's
    write lock is held for one chunk, not the whole pass: sends and webhooks go on)."""
    changed, after = 0, 0
    while True:
        with engine.begin() as connection:
            rows = connection.execute(
                select(feedback_events.c.id, feedback_events.c.diagnostic,
                       feedback_events.c.source)
                .where(feedback_events.c.received_at < before, feedback_events.c.id > after,
                       _maybe_uncut())
                .order_by(feedback_events.c.id).limit(_CHUNK)).all()
            if not rows:
                return changed
            after = rows[-1].id
            values = [{"b_id": row.id, "b_diagnostic": cut_diagnostic(row.diagnostic),
                       "b_source": cut_source(row.source)} for row in rows]
            values = [value for value, row in zip(values, rows, strict=True)
                      if (value["b_diagnostic"], value["b_source"])
                      != (row.diagnostic, row.source)]
            if values:
                connection.execute(
                    update(feedback_events)
                    .where(feedback_events.c.id == bindparam("b_id"))
                    .values(diagnostic=bindparam("b_diagnostic"),
                            source=bindparam("b_source")), values)
            changed += len(values)


def _hash_rows(engine: Engine, table: Table, secret: str, before: datetime, age: Any) -> int:
    """Rule (b) on one table: each old row not hashed (nor erased) yet gets the hash of its
    address; its name and server reply go (feedback events have neither: their text is rule
    (a)'s). By chunks of ids, one transaction each, one executemany per chunk."""
    scrubbed: dict[str, Any] = {}
    if "name" in table.c:
        scrubbed["name"] = None
    if "last_reply" in table.c:
        scrubbed["last_reply"] = None
    statement = (update(table).where(table.c.id == bindparam("b_id"))
                 .values(email=bindparam("b_email"), **scrubbed))
    done, after = 0, 0
    while True:
        with engine.begin() as connection:
            pending = connection.execute(
                select(table.c.id, table.c.email)
                .where(age < before, table.c.id > after, table.c.email != "",
                       ~table.c.email.startswith(HASHED),
                       ~table.c.email.startswith(ERASED_PREFIX))
                .order_by(table.c.id).limit(_CHUNK)).all()
            if not pending:
                return done
            after = pending[-1].id
            connection.execute(statement, [
                {"b_id": row.id, "b_email": address_hash(secret, row.email)}
                for row in pending])
            done += len(pending)


def _delete_old_mail(config: Config, before: datetime) -> int:
    from ainews_newsletter.feedback.imap import ImapMailbox
    from ainews_newsletter.pipeline.feedback import imap_settings

    settings = imap_settings(config)
    with ImapMailbox(settings) as mailbox:
        # BEFORE compares whole days of the server's INTERNALDATE, in the server's own
        # timezone: a day's margin so that a message is kept a day or two longer than the
        # setting, never deleted early.
        return mailbox.delete_older(settings.processed_folder,
                                    (before - timedelta(days=1)).date())
