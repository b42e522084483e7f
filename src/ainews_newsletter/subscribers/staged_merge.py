"""Merging a staged import batch (staging.py) into an SQLite store, in the batch's
transaction.

The rules are batch_plan's, applied in Python only to the rows that need them: those that
meet a stored subscriber or a suppression, name lists of their own, arrive as having left,
or (import --welcome) arrive active. The rest, most of a big file, are new readers
added by one INSERT … SELECT in file order, binding nothing per row. The write lock is
taken first, so nothing another connection writes can come between what the rows met and
what is written."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime

from sqlalchemy import Connection

from ainews_newsletter.models import SubscriberStatus
from ainews_newsletter.subscribers.batch_plan import BatchPlan, Known, Met, plan_rows, write_plan
from ainews_newsletter.subscribers.bulk import Chosen, added_since, keyed, last_id, native
from ainews_newsletter.subscribers.consent_records import Agreement
from ainews_newsletter.subscribers.erased import erased_among, lift_erased
from ainews_newsletter.subscribers.import_rules import (
    ImportRow,
    ImportSummary,
    Rejected,
    refused_as_erased,
)
from ainews_newsletter.subscribers.schema import subscribers, suppressions

# Rows of the batch not to add (a JSON array parameter): erased, known or suppressed.
_NOT_SKIPPED = "r.normalized NOT IN (SELECT value FROM json_each(?))"
_LEFT = ", ".join(f"'{status.value}'" for status in SubscriberStatus if status.has_left)


def sqlite_text(value: str) -> str:
    """`value` as an SQLite string literal: SQLite's only escape is a doubled quote (no
    backslashes). A NUL cannot be in a statement's text: dropped (no file name has one)."""
    return "'" + value.replace("\x00", "").replace("'", "''") + "'"


def lock_for_writing(connection: Connection) -> None:
    """Take the database's write lock now (the driver begins a transaction only at the
    first write, after the batch's reads), unless a transaction is open already (a dry
    run's, across batches)."""
    driver = connection.connection.driver_connection
    if driver is not None and not driver.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")  # "database is locked" as SQLAlchemy's


def _erased(connection: Connection, source: str, key: str, force: bool,
            refused: list[Rejected], summary: ImportSummary) -> list[str]:
    """The batch's erased addresses to leave out (none when `force`: their marks are
    lifted); each refused at every line it is on, its repeats then no duplicates."""
    staged = [row[0] for row in connection.exec_driver_sql(
        f"SELECT normalized FROM {source}")]
    erased = erased_among(connection, key, staged)
    if not erased:
        return []
    if force:
        lift_erased(connection, key, erased)
        return []
    for line, email, repeats in connection.exec_driver_sql(
            f"SELECT line, email, repeats FROM {source} r WHERE normalized IN "
            "(SELECT value FROM json_each(?)) ORDER BY seq", (json.dumps(sorted(erased)),)
            ).fetchall():
        again = json.loads(repeats) if repeats else []
        summary.duplicates -= len(again)  # counted when folded, refused now
        refused.extend(refused_as_erased(at, address) for at, address in [(line, email),
                                                                            *again])
    return sorted(erased)


def _met(connection: Connection, source: str, skipped: list[str], want_added: bool,
         ) -> Iterator[Met]:
    """The staged rows the rules must see, in file order, with what each meets."""
    special = (f"s.id IS NOT NULL OR p.reason IS NOT NULL OR r.lists IS NOT NULL OR "
               f"r.status IN ({_LEFT})" + (" OR r.status = 'active'" if want_added else ""))
    loads = json.loads
    for (line, email, normalized, name, status, attributes, lists, language, known_id,
         known_name, known_status, known_attributes, known_language, reason
         ) in connection.exec_driver_sql(
            f"SELECT r.line, r.email, r.normalized, r.name, r.status, r.attributes, r.lists, "
            f"r.language, s.id, s.name, s.status, s.attributes, s.language, p.reason "
            f"FROM {source} r "
            f"LEFT JOIN {subscribers.name} s ON s.email_normalized = r.normalized "
            f"LEFT JOIN {suppressions.name} p ON p.email_normalized = r.normalized "
            f"WHERE ({special}) AND {_NOT_SKIPPED} ORDER BY r.seq", (json.dumps(skipped),)
            ).fetchall():  # whole: the rules may write (a list named for the first time)
        row = ImportRow(line, email, normalized, name, None,
                        loads(attributes) if attributes else None,
                        tuple(loads(lists)) if lists else (), language)
        known = None if known_id is None else Known(
            known_id, known_name, known_status,
            loads(known_attributes) if known_attributes else None, known_language)
        yield row, SubscriberStatus(status), known, reason


def merge_staged(connection: Connection, source: str, plan: BatchPlan,
                 summary: ImportSummary, list_ids: Callable[[tuple[str, ...]], list[int]],
                 list_explicit: bool, origin: str, agreement: Agreement | None,
                 erase_key: str | None, force_erased: bool, now: datetime) -> None:
    """Merge the batch staged in table `source` (staging.py) into the store; the caller
    holds the transaction and has taken the write lock (`lock_for_writing`)."""
    skipped = ([] if erase_key is None else
               _erased(connection, source, erase_key, force_erased, plan.refused, summary))
    plan_rows(plan, _met(connection, source, skipped, plan.added is not None), summary,
              list_ids, list_explicit, now)
    not_new = json.dumps(skipped + plan.skipped)
    new_plain = [] if plan.new_listed == 0 else [row[0] for row in connection.exec_driver_sql(
        f"SELECT normalized FROM {source} r WHERE r.lists IS NULL AND {_NOT_SKIPPED} "
        "ORDER BY r.seq", (not_new,))]
    before = last_id(connection, subscribers)
    at, named = sqlite_text(native(now, "sqlite")), sqlite_text(origin[:64])
    active, left = SubscriberStatus.ACTIVE.value, SubscriberStatus.UNSUBSCRIBED.value
    added = connection.exec_driver_sql(
        f"INSERT INTO {subscribers.name} (email, email_normalized, name, status, "
        "attributes, token, language, source, created_at, updated_at, confirmed_at, "
        "unsubscribed_at) "
        f"SELECT r.email, r.normalized, r.name, r.status, r.attributes, r.token, r.language, "
        f"{named}, {at}, {at}, CASE r.status WHEN '{active}' THEN {at} END, "
        f"CASE r.status WHEN '{left}' THEN {at} END "
        f"FROM {source} r WHERE {_NOT_SKIPPED} ORDER BY r.seq", (not_new,)).rowcount
    summary.imported += added
    new: Chosen | None = None
    if added:
        # The ids after `before`, unless SQLite chose ids at random (the largest one is
        # taken): then by address, the staged ones that were not skipped.
        new = added_since(connection, subscribers, before, added) or keyed(
            connection, subscribers.c.email_normalized, [row[0] for row in
            connection.exec_driver_sql(f"SELECT normalized FROM {source} r "
                                       f"WHERE {_NOT_SKIPPED}", (not_new,))])
    write_plan(connection, plan, new, new_plain, origin, now, agreement)
