"""Merging imported rows into the store, a batch per transaction.

Rules, the same for every format:
- a new address is added with the row's status (or --status), to the chosen list;
- a known address is merged, never doubled: a missing name or new attributes are filled in,
  and a status may only move away from the list (active → unsubscribed, bounced, …), never
  back: an unsubscribe is never undone by an import;
- an address on the suppression list is rejected;
- a crash between batches leaves whole batches only, and running the import again reaches the
  same end state (every step is a merge);
- each arrival and each status change writes its subscriber event (history.py) in the
  batch's transaction, one INSERT … SELECT per kind of event."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from sqlalchemy import Connection, bindparam, func, select, update

from ainews_newsletter import clock
from ainews_newsletter.database import insert_ignoring_conflicts
from ainews_newsletter.errors import SubscriberError
from ainews_newsletter.models import SubscriberStatus
from ainews_newsletter.subscribers.bulk import bulk_insert, one_of
from ainews_newsletter.subscribers.history import (
    arrival_kinds,
    change_kind,
    event_source,
    record_by_address,
)
from ainews_newsletter.subscribers.schema import lists, memberships, subscribers, suppressions
from ainews_newsletter.subscribers.store import SubscriberStore
from ainews_newsletter.subscribers.tokens import new_token

BATCH_SIZE = 5000


@dataclass(frozen=True)
class ImportRow:
    line: int
    email: str  # stored form (validated)
    normalized: str
    name: str | None = None
    status: SubscriberStatus | None = None  # from the file, if it says
    attributes: dict[str, Any] | None = None
    lists: tuple[str, ...] = ()  # from our own export; empty: the list of the import


@dataclass(frozen=True)
class Rejected:
    line: int
    email: str
    reason: str


@dataclass
class ImportSummary:
    imported: int = 0  # new subscribers
    updated: int = 0  # known subscribers that changed (name, attributes, status)
    duplicates: int = 0  # the same address again, in the file or already stored unchanged
    rejected: int = 0
    rejects: list[Rejected] = field(default_factory=list)  # every one, in file order

    def as_dict(self) -> dict[str, int]:
        return {"imported": self.imported, "updated": self.updated,
                "duplicates": self.duplicates, "rejected": self.rejected}


def _merged_status(current: SubscriberStatus, incoming: SubscriberStatus) -> SubscriberStatus:
    if current.has_left:
        return current  # never back onto the list by import
    if incoming.has_left:
        return incoming
    if current is SubscriberStatus.PENDING and incoming is SubscriberStatus.ACTIVE:
        return incoming  # confirmed elsewhere
    return current


def _merge_batch(connection: Connection, batch: list[ImportRow], list_id: int,
                 status: SubscriberStatus | None, source: str, summary: ImportSummary,
                 list_ids: Callable[[tuple[str, ...]], list[int]],
                 list_explicit: bool) -> None:
    now = clock.now()
    unique: dict[str, ImportRow] = {}
    for row in batch:
        first = unique.get(row.normalized)
        if first is None:
            unique[row.normalized] = row
            continue
        summary.duplicates += 1
        # The same person twice in one file: fold the later row in by the same rules as
        # against the store, so an "unsubscribed" further down is never lost.
        merged = _merged_status(first.status or SubscriberStatus.ACTIVE,
                                row.status or SubscriberStatus.ACTIVE)
        unique[row.normalized] = ImportRow(
            first.line, first.email, first.normalized, first.name or row.name,
            merged if (first.status or row.status) else None,
            {**(row.attributes or {}), **(first.attributes or {})} or None,
            tuple(dict.fromkeys(first.lists + row.lists)))
    keys = list(unique)
    suppressed = dict(connection.execute(
        select(suppressions.c.email_normalized, suppressions.c.reason)
        .where(one_of(connection, suppressions.c.email_normalized, keys))).all())
    existing = {row.email_normalized: row for row in connection.execute(
        select(subscribers.c.id, subscribers.c.email_normalized, subscribers.c.name,
               subscribers.c.status, subscribers.c.attributes)
        .where(one_of(connection, subscribers.c.email_normalized, keys)))}
    new_rows: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    events: dict[str, list[str]] = {"joined": []}  # kind → normalized addresses
    for normalized, row in unique.items():
        # --status sets the status of arrivals, but never over a source saying they left.
        left = row.status is not None and row.status.has_left
        incoming = (row.status if left else status or row.status) or SubscriberStatus.ACTIVE
        if normalized in suppressed:
            summary.rejected += 1
            summary.rejects.append(Rejected(row.line, row.email, f"{row.email!r} is on the "
                                            f"suppression list ({suppressed[normalized]})"))
            continue
        known = existing.get(normalized)
        if known is None:
            new_rows.append({
                "email": row.email, "email_normalized": normalized, "name": row.name,
                "status": incoming.value, "attributes": row.attributes or None,
                "token": new_token(), "source": source[:64], "created_at": now,
                "updated_at": now,
                "confirmed_at": now if incoming is SubscriberStatus.ACTIVE else None,
                "unsubscribed_at": now if incoming is SubscriberStatus.UNSUBSCRIBED else None})
            for arrival in arrival_kinds(incoming):
                events.setdefault(arrival, []).append(normalized)
            continue
        current = SubscriberStatus(known.status)
        merged = _merged_status(current, incoming)
        name = known.name or row.name  # fill a missing name; never overwrite one
        attributes = {**(known.attributes or {}), **(row.attributes or {})} or None
        if (merged, name, attributes) == (current, known.name, known.attributes or None):
            summary.duplicates += 1
            continue
        summary.updated += 1
        change = change_kind(current, merged)
        if change is not None:
            events.setdefault(change, []).append(normalized)
        changes.append({"row_id": known.id, "new_status": merged.value, "new_name": name,
                        "new_attributes": attributes, "now": now,
                        "left_at": now if merged is not current and merged.has_left else None})
    bulk_insert(connection, subscribers, new_rows)
    summary.imported += len(new_rows)
    if changes:
        connection.execute(
            update(subscribers).where(subscribers.c.id == bindparam("row_id")).values(
                status=bindparam("new_status"), name=bindparam("new_name"),
                attributes=bindparam("new_attributes"), updated_at=bindparam("now"),
                unsubscribed_at=func.coalesce(bindparam("left_at"),
                                              subscribers.c.unsubscribed_at)),
            changes)
    wanted = [key for key in keys if key not in suppressed]
    ids = dict(connection.execute(select(subscribers.c.email_normalized, subscribers.c.id).where(
        one_of(connection, subscribers.c.email_normalized, wanted))).all())
    record_by_address(connection, events, event_source(source), now)
    bulk_insert(connection, memberships, [
        {"list_id": target, "subscriber_id": subscriber_id, "created_at": now}
        for normalized, subscriber_id in ids.items()
        # The lists our export names, plus the import's list when it was asked for by
        # --list, or when the row names none.
        for target in dict.fromkeys([
            *list_ids(unique[normalized].lists),
            *([list_id] if list_explicit or not unique[normalized].lists else [])])],
        ignore_conflicts=True)


def _list_resolver(store: SubscriberStore, connection: Connection,
                   ) -> Callable[[tuple[str, ...]], list[int]]:
    """List names from our export → ids, creating lists the target store lacks (an export
    restored into an empty store brings its lists along)."""
    cache: dict[str, int] = {}

    def resolve(names: tuple[str, ...]) -> list[int]:
        for name in names:
            if name not in cache:
                try:
                    cache[name] = store.list_id(connection, name)
                except SubscriberError:
                    insert_ignoring_conflicts(connection, lists, [
                        {"name": name[:100], "description": None, "created_at": clock.now()}])
                    cache[name] = store.list_id(connection, name)
        return [cache[name] for name in names]

    return resolve


def import_rows(store: SubscriberStore, rows: Iterable[ImportRow | Rejected],
                list_name: str | None = None, status: SubscriberStatus | None = None,
                source: str = "import", dry_run: bool = False,
                on_batch: Callable[[int], None] | None = None) -> ImportSummary:
    """Merge `rows` (already validated, rejects interleaved) batch by batch. With `dry_run`
    everything happens in one transaction that is rolled back: the counts are real, the
    store is untouched."""
    summary = ImportSummary()
    iterator: Iterator[ImportRow | Rejected] = iter(rows)
    outer = store.engine.connect() if dry_run else None
    transaction = outer.begin() if outer is not None else None
    try:
        while batch := list(islice(iterator, BATCH_SIZE)):
            good = [row for row in batch if isinstance(row, ImportRow)]
            for reject in (row for row in batch if isinstance(row, Rejected)):
                summary.rejected += 1
                summary.rejects.append(reject)
            if outer is not None:
                _merge_batch(outer, good, store.list_id(outer, list_name), status, source,
                             summary, _list_resolver(store, outer), list_name is not None)
            else:
                with store.engine.begin() as connection:
                    _merge_batch(connection, good, store.list_id(connection, list_name),
                                 status, source, summary, _list_resolver(store, connection),
                                 list_name is not None)
            if on_batch is not None:
                on_batch(len(batch))
    finally:
        if transaction is not None:
            transaction.rollback()
        if outer is not None:
            outer.close()
    summary.rejects.sort(key=lambda reject: reject.line)
    return summary
