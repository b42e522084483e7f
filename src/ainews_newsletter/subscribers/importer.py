"""Merging imported rows into the store, a batch per transaction.

Rules, the same for every format:
- a new address is added with the row's status (or --status), to the chosen list;
- a known address is merged, never doubled: a missing name, a missing language or new
  attributes are filled in (a language the reader has, perhaps chosen on the preferences
  page, is kept),
  and a status may only move away from the list (active → unsubscribed, bounced, …), never
  back: an unsubscribe is never undone by an import;
- an address on the suppression list is rejected;
- a crash between batches leaves whole batches only, and running the import again reaches the
  same end state (every step is a merge);
- each arrival and each status change writes its subscriber event (history.py) in the
  batch's transaction, one INSERT … SELECT per kind of event."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any, NamedTuple

from sqlalchemy import (
    Connection,
    Integer,
    bindparam,
    func,
    literal,
    update,
)

from ainews_newsletter import clock
from ainews_newsletter.database import insert_ignoring_conflicts, large_page_cache
from ainews_newsletter.errors import SubscriberError
from ainews_newsletter.models import SubscriberStatus
from ainews_newsletter.subscribers.arrivals import Arrival, insert_arrivals, new_tokens
from ainews_newsletter.subscribers.bulk import (
    Chosen,
    added_since,
    keyed,
    last_id,
    native,
)
from ainews_newsletter.subscribers.consent_records import Agreement, record_new
from ainews_newsletter.subscribers.erased import REFUSED, check_erase_key, erased_among, lift_erased
from ainews_newsletter.subscribers.history import (
    arrival_kinds,
    change_kind,
    event_source,
    record_by_address,
    record_chosen,
)
from ainews_newsletter.subscribers.schema import lists, memberships, subscribers, suppressions
from ainews_newsletter.subscribers.store import SubscriberStore

# Rows per transaction. Each batch rewrites the index pages its rows land on, and the
# unsubscribe tokens are random, so each row of a small batch touches its own page of the
# token index: at a million rows the commits (WAL writes and checkpoints) cost more than
# the inserts. A large batch touches most of those pages once per batch instead.
BATCH_SIZE = 50_000
KEPT_REJECTS = 100  # in ImportSummary.rejects; the command shows 20


class ImportRow(NamedTuple):
    """A validated row (a named tuple: a million of them are made per million-row file,
    far cheaper than a frozen dataclass)."""
    line: int
    email: str  # stored form (validated)
    normalized: str
    name: str | None = None
    status: SubscriberStatus | None = None  # from the file, if it says
    attributes: dict[str, Any] | None = None
    lists: tuple[str, ...] = ()  # from our own export; empty: the list of the import
    language: str | None = None  # canonical BCP 47, from a language or locale column


class Rejected(NamedTuple):  # a tuple: a file of junk makes one per row
    line: int
    email: str
    reason: str


@dataclass
class ImportSummary:
    imported: int = 0  # new subscribers
    updated: int = 0  # known subscribers that changed (name, attributes, status)
    duplicates: int = 0  # the same address again, in the file or already stored unchanged
    rejected: int = 0
    # The first KEPT_REJECTS, in file order; every one goes to import_rows' on_reject. A
    # file of a million junk rows must not hold a million reasons in memory (200 MB at
    # 500,000).
    rejects: list[Rejected] = field(default_factory=list)

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


def _fold(first: ImportRow, row: ImportRow) -> ImportRow:
    """The same person twice in one batch: fold the later row in by the same rules as
    against the store, so an "unsubscribed" further down is never lost."""
    merged = _merged_status(first.status or SubscriberStatus.ACTIVE,
                            row.status or SubscriberStatus.ACTIVE)
    return ImportRow(first.line, first.email, first.normalized, first.name or row.name,
                     merged if (first.status or row.status) else None,
                     {**(row.attributes or {}), **(first.attributes or {})} or None,
                     tuple(dict.fromkeys(first.lists + row.lists)),
                     first.language or row.language)


def _add_memberships(connection: Connection, list_id: int, chosen: Chosen,
                     now: datetime) -> None:
    """Put the subscriber rows `chosen` names on list `list_id`, one INSERT … SELECT: the
    database finds the ids, and an existing membership stays as it is."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    rows = chosen.select(literal(list_id, Integer), subscribers.c.id,
                         literal(now, memberships.c.created_at.type))
    connection.execute(dialect.insert(memberships).from_select(
        ["list_id", "subscriber_id", "created_at"], rows).on_conflict_do_nothing())


def _merge_batch(connection: Connection, batch: list[ImportRow], list_id: int,
                 status: SubscriberStatus | None, source: str, summary: ImportSummary,
                 list_ids: Callable[[tuple[str, ...]], list[int]],
                 list_explicit: bool, refused: list[Rejected],
                 added: list[str] | None = None, agreement: Agreement | None = None) -> None:
    now = clock.now()
    dialect = connection.dialect.name
    unique: dict[str, ImportRow] = {}
    for row in batch:
        first = unique.setdefault(row.normalized, row)
        if first is not row:
            summary.duplicates += 1
            unique[row.normalized] = _fold(first, row)
    keys = list(unique)
    suppressed: dict[str, str] = dict(connection.execute(
        keyed(connection, suppressions.c.email_normalized, keys)
        .select(suppressions.c.email_normalized, suppressions.c.reason)).all())
    existing = {row.email_normalized: row for row in connection.execute(
        keyed(connection, subscribers.c.email_normalized, keys)
        .select(subscribers.c.id, subscribers.c.email_normalized, subscribers.c.name,
                subscribers.c.status, subscribers.c.attributes, subscribers.c.language))}
    # New rows go to the driver as Arrival tuples (arrivals.py): the batch's one `now` is
    # converted once.
    stamp, origin = native(now, dialect), source[:64]
    tokens = iter(new_tokens(max(0, len(unique) - len(existing) - len(suppressed))))
    default = status or SubscriberStatus.ACTIVE  # a row that names no status
    new_rows: list[Arrival] = []
    changes: list[dict[str, Any]] = []
    # kind → normalized addresses, but the "joined" of every new row (written first)
    events: dict[str, list[str]] = {}
    members: dict[int, list[str]] = {list_id: []}  # list → normalized addresses
    new_plain: list[str] = []  # new rows naming no lists: to list `list_id`
    for normalized, row in unique.items():
        if suppressed and normalized in suppressed:
            refused.append(Rejected(row.line, row.email, f"{row.email!r} is on the "
                                            f"suppression list ({suppressed[normalized]})"))
            continue
        if row.lists:
            # The lists our export names, plus the import's list when it was asked for by
            # --list.
            for target in dict.fromkeys([*list_ids(row.lists),
                                         *([list_id] if list_explicit else [])]):
                members.setdefault(target, []).append(normalized)
        # --status sets the status of arrivals, but never over a source saying they left.
        incoming = default if row.status is None else (
            row.status if row.status.has_left else status or row.status)
        known = existing.get(normalized) if existing else None
        if not row.lists:
            (new_plain if known is None else members[list_id]).append(normalized)
        if known is None:
            new_rows.append((row.email, normalized, row.name or "", incoming.value,
                             native(row.attributes, dialect) if row.attributes else "",
                             next(tokens, None) or new_tokens(1)[0], row.language or ""))
            if incoming is SubscriberStatus.ACTIVE or incoming is SubscriberStatus.PENDING:
                if added is not None and incoming is SubscriberStatus.ACTIVE:
                    added.append(normalized)
            else:
                for arrival in arrival_kinds(incoming):
                    if arrival != "joined":
                        events.setdefault(arrival, []).append(normalized)
            continue
        current = SubscriberStatus(known.status)
        merged = _merged_status(current, incoming)
        name = known.name or row.name  # fill a missing name; never overwrite one
        attributes = {**(known.attributes or {}), **(row.attributes or {})} or None
        chosen = known.language or row.language  # fill a missing one; never overwrite one
        if (merged, name, attributes, chosen) == (current, known.name,
                                                  known.attributes or None, known.language):
            summary.duplicates += 1
            continue
        summary.updated += 1
        change = change_kind(current, merged)
        if change is not None:
            events.setdefault(change, []).append(normalized)
        changes.append({"row_id": known.id, "new_status": merged.value, "new_name": name,
                        "new_attributes": attributes, "new_language": chosen, "now": now,
                        "left_at": now if merged is not current and merged.has_left else None})
    before = last_id(connection, subscribers) if new_rows else 0
    insert_arrivals(connection, new_rows, origin, stamp)
    summary.imported += len(new_rows)
    # The new rows as the statements below select them: a range of ids on SQLite, their
    # addresses elsewhere (bulk.added_since).
    new = added_since(connection, subscribers, before, len(new_rows)) if new_rows else None
    if new is None and new_rows:
        new = keyed(connection, subscribers.c.email_normalized, [row[1] for row in new_rows])
    if new is not None:  # every arrival joined, whatever its status (history.arrival_kinds)
        record_chosen(connection, "joined", new, event_source(source), now)
        if agreement is not None:  # the new ones only: the others keep theirs
            record_new(connection, new, agreement, now)
        if len(new_plain) == len(new_rows):
            _add_memberships(connection, list_id, new, now)
        else:
            members[list_id].extend(new_plain)
    if changes:
        connection.execute(
            update(subscribers).where(subscribers.c.id == bindparam("row_id")).values(
                status=bindparam("new_status"), name=bindparam("new_name"),
                attributes=bindparam("new_attributes"), language=bindparam("new_language"),
                updated_at=bindparam("now"),
                unsubscribed_at=func.coalesce(bindparam("left_at"),
                                              subscribers.c.unsubscribed_at)),
            changes)
    record_by_address(connection, events, event_source(source), now)
    for target, addresses in members.items():
        if addresses:
            _add_memberships(connection, target,
                             keyed(connection, subscribers.c.email_normalized, addresses), now)


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


def _without_erased(connection: Connection, key: str, rows: list[ImportRow], force: bool,
                    refused: list[Rejected]) -> list[ImportRow]:
    """The rows whose address was not erased; the others are refused ("erased on request"),
    or, forced, kept with their marks lifted."""
    erased = erased_among(connection, key, [row.normalized for row in rows])
    if not erased:
        return rows
    if force:
        lift_erased(connection, key, erased)
        return rows
    refused.extend(Rejected(row.line, row.email, f"{row.email!r} was {REFUSED} "
                            "(--force-erased imports it anyway)")
                   for row in rows if row.normalized in erased)
    return [row for row in rows if row.normalized not in erased]


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector off while importing: a batch is tens of thousands of live
    tuples, which each automatic collection walks again, and a row makes no cycles of its
    own. A batch's statements do (SQLAlchemy's clauses, holding the batch's parameters):
    `import_rows` collects the young objects after each batch, when the rows are gone."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def import_rows(store: SubscriberStore, rows: Iterable[ImportRow | Rejected],
                list_name: str | None = None, status: SubscriberStatus | None = None,
                source: str = "import", dry_run: bool = False,
                on_batch: Callable[[int], None] | None = None,
                on_reject: Callable[[Rejected], None] | None = None,
                on_added: Callable[[list[str]], None] | None = None,
                agreement: Agreement | None = None,
                force_erased: bool = False) -> ImportSummary:
    """Merge `rows` (already validated, rejects interleaved) batch by batch, a transaction
    each. With `dry_run` everything happens in one transaction that is rolled back: the
    counts are real, the store is untouched. `on_added` gets, after each batch commits, the
    normalized addresses of the active readers it added (this import's own: `import
    --welcome` welcomes exactly those, not a concurrent import's). `agreement` is the
    consent record of each new subscriber (active ones confirmed at the import). An erased
    address is refused unless `force_erased` (which lifts its mark)."""
    summary = ImportSummary()
    iterator: Iterator[ImportRow | Rejected] = iter(rows)
    if not force_erased:
        with store.engine.connect() as connection:
            check_erase_key(connection, store.erase_key)
    with (store.engine.connect() as connection, large_page_cache(connection),
          _collector_paused()):
        outer = connection.begin() if dry_run else None
        try:
            while batch := list(islice(iterator, BATCH_SIZE)):
                good = [row for row in batch if isinstance(row, ImportRow)]
                refused = [row for row in batch if isinstance(row, Rejected)]
                added: list[str] | None = [] if on_added is not None else None
                with nullcontext() if outer is not None else connection.begin():
                    if store.erase_key is not None:
                        good = _without_erased(connection, store.erase_key, good,
                                               force_erased, refused)
                    _merge_batch(connection, good, store.list_id(connection, list_name),
                                 status, source, summary, _list_resolver(store, connection),
                                 list_name is not None, refused, added, agreement)
                if on_added is not None and added and outer is None:
                    on_added(added)
                # Batches come in file order, so sorting each batch's (the suppressed ones
                # are found after the rest) puts them all in file order.
                refused.sort(key=lambda reject: reject.line)
                summary.rejected += len(refused)
                summary.rejects.extend(refused[:KEPT_REJECTS - len(summary.rejects)])
                if on_reject is not None:
                    for reject in refused:
                        on_reject(reject)
                if on_batch is not None:
                    on_batch(len(batch))
                del batch, good
                gc.collect(1)
        finally:
            if outer is not None:
                outer.rollback()
    return summary
