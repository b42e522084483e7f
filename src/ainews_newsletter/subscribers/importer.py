"""Merging imported rows into the store, a batch per transaction.

The rules are the same for every format and both databases (batch_plan.py): new addresses
added, known ones merged and never doubled, an unsubscribe never undone, suppressed and
erased addresses refused, an event for each arrival and status change. Besides:
- a crash between batches leaves whole batches only, and running the import again reaches
  the same end state (every step is a merge);
- on SQLite each batch is staged first (staging.py: by the process reading the file, or
  here) and merged from there (staged_merge.py); on PostgreSQL the rows are merged from
  memory (`_merge_batch`)."""

from __future__ import annotations

import gc
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from datetime import datetime
from itertools import islice
from typing import Any, NamedTuple

from sqlalchemy import Connection

from ainews_newsletter import clock
from ainews_newsletter.database import (
    as_sqlalchemy_error,
    insert_ignoring_conflicts,
    large_page_cache,
)
from ainews_newsletter.errors import SubscriberError
from ainews_newsletter.models import SubscriberStatus
from ainews_newsletter.subscribers.arrivals import Arrival, insert_arrivals, new_tokens
from ainews_newsletter.subscribers.batch_plan import BatchPlan, Known, plan_rows, write_plan
from ainews_newsletter.subscribers.bulk import added_since, keyed, last_id, native
from ainews_newsletter.subscribers.consent_records import Agreement
from ainews_newsletter.subscribers.erased import check_erase_key, erased_among, lift_erased
from ainews_newsletter.subscribers.import_rules import (
    KEPT_REJECTS,
    ImportRow,
    ImportSummary,
    Rejected,
    arriving,
    refused_as_erased,
)
from ainews_newsletter.subscribers.schema import lists, subscribers, suppressions
from ainews_newsletter.subscribers.staged_merge import lock_for_writing, merge_staged
from ainews_newsletter.subscribers.staging import (
    STAGE_SCHEMA,
    STAGED,
    TEMPORARY,
    StagedBatch,
    copy_here,
    stage_here,
)
from ainews_newsletter.subscribers.store import SubscriberStore

__all__ = ["BATCH_SIZE", "KEPT_REJECTS", "ImportRow", "ImportSummary", "Rejected", "Staged",
           "import_rows"]

# Rows per transaction. Each batch rewrites the index pages its rows land on, and the
# unsubscribe tokens are random, so each row of a small batch touches its own page of the
# token index: at a million rows the commits (WAL writes and checkpoints) cost more than
# the inserts. A large batch touches most of those pages once per batch instead.
BATCH_SIZE = 50_000


class Staged(NamedTuple):
    """Batches staged by the process reading the file (read_ahead.py), in file order."""

    batches: Iterable[StagedBatch]


def _merge_batch(connection: Connection, rows: list[ImportRow], plan: BatchPlan,
                 status: SubscriberStatus | None, source: str, summary: ImportSummary,
                 list_ids: Callable[[tuple[str, ...]], list[int]], list_explicit: bool,
                 agreement: Agreement | None, now: datetime) -> None:
    """A batch from memory (PostgreSQL): what its rows meet, found by address, and its new
    rows handed to the driver as Arrival tuples (arrivals.py)."""
    dialect = connection.dialect.name
    unique, duplicates = arriving(rows, status)
    summary.duplicates += duplicates
    keys = [row.normalized for row, _incoming in unique]
    suppressed: dict[str, str] = dict(connection.execute(
        keyed(connection, suppressions.c.email_normalized, keys)
        .select(suppressions.c.email_normalized, suppressions.c.reason)).all())
    existing = {row.email_normalized: Known(row.id, row.name, row.status, row.attributes,
                                            row.language) for row in connection.execute(
        keyed(connection, subscribers.c.email_normalized, keys)
        .select(subscribers.c.id, subscribers.c.email_normalized, subscribers.c.name,
                subscribers.c.status, subscribers.c.attributes, subscribers.c.language))}
    plan_rows(plan, ((row, incoming, existing.get(row.normalized),
                      suppressed.get(row.normalized)) for row, incoming in unique),
              summary, list_ids, list_explicit, now)
    tokens = new_tokens(len(plan.new_rows))
    new_rows: list[Arrival] = [
        (row.email, row.normalized, row.name or None, incoming.value,
         native(row.attributes, dialect) if row.attributes else None, token,
         row.language or None) for (row, incoming), token in zip(plan.new_rows, tokens,
                                                               strict=True)]
    before = last_id(connection, subscribers) if new_rows else 0
    insert_arrivals(connection, new_rows, source[:64], native(now, dialect))
    summary.imported += len(new_rows)
    # The new rows as the statements below select them: a range of ids on SQLite, their
    # addresses elsewhere (bulk.added_since).
    new = added_since(connection, subscribers, before, len(new_rows)) if new_rows else None
    if new is None and new_rows:
        new = keyed(connection, subscribers.c.email_normalized, [row[1] for row in new_rows])
    write_plan(connection, plan, new, plan.new_plain, source, now, agreement)


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
    refused.extend(refused_as_erased(row.line, row.email)
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


def _batches(rows: Iterable[ImportRow | Rejected]) -> Iterator[list[ImportRow | Rejected]]:
    iterator = iter(rows)
    while batch := list(islice(iterator, BATCH_SIZE)):
        yield batch


@contextmanager
def _attached(connection: Connection, batch: StagedBatch | None) -> Iterator[None]:
    """A staged batch's file attached to the connection while the block runs (outside any
    transaction: SQLite attaches no file inside one), then detached and removed; nothing
    to do for a batch in memory (None)."""
    driver: Any = connection.connection.driver_connection
    if batch is None:
        yield
        return
    attach = f"ATTACH DATABASE ? AS {STAGE_SCHEMA}"
    with as_sqlalchemy_error(attach, ()):  # e.g. a locked or full disk: the CLI's line
        driver.execute(attach, (batch.path,))
    detach = f"DETACH DATABASE {STAGE_SCHEMA}"
    try:
        yield
    except BaseException:
        # Detached after a failure too (else the pooled connection keeps the file, and the
        # next import's ATTACH fails), never hiding the failure itself.
        with suppress(sqlite3.Error):
            driver.execute(detach)
        raise
    else:
        with as_sqlalchemy_error(detach, ()):
            driver.execute(detach)
    finally:
        with suppress(OSError):  # read_ahead's close removes the folder in any case
            os.unlink(batch.path)


def import_rows(store: SubscriberStore, rows: Iterable[ImportRow | Rejected] | Staged,
                list_name: str | None = None, status: SubscriberStatus | None = None,
                source: str = "import", dry_run: bool = False,
                on_batch: Callable[[int], None] | None = None,
                on_reject: Callable[[Rejected], None] | None = None,
                on_added: Callable[[list[str]], None] | None = None,
                agreement: Agreement | None = None,
                force_erased: bool = False) -> ImportSummary:
    """Merge `rows` (already validated, rejects interleaved; or staged by the process
    reading the file, SQLite only) batch by batch, a transaction each. With `dry_run`
    everything happens in one transaction that is rolled back: the counts are real, the
    store is untouched. `on_added` gets, after each batch commits, the normalized addresses
    of the active readers it added (this import's own: `import --welcome` welcomes exactly
    those, not a concurrent import's). `agreement` is the consent record of each new
    subscriber (active ones confirmed at the import). An erased address is refused unless
    `force_erased` (which lifts its mark). `status` is --status (import_rules.arriving_status);
    staged rows had it applied when they were staged."""
    summary = ImportSummary()
    if not force_erased:
        with store.engine.connect() as connection:
            check_erase_key(connection, store.erase_key)
    with (store.engine.connect() as connection, large_page_cache(connection),
          _collector_paused()):
        on_sqlite = connection.dialect.name == "sqlite"
        if isinstance(rows, Staged) and not on_sqlite:
            raise ValueError("staged batches are for an SQLite store")
        driver: Any = connection.connection.driver_connection
        outer = connection.begin() if dry_run else None
        batches: Iterable[StagedBatch | list[ImportRow | Rejected]] = (
            rows.batches if isinstance(rows, Staged) else _batches(rows))
        try:
            for batch in batches:
                staged = batch if isinstance(batch, StagedBatch) else None
                if staged is not None:
                    good: list[ImportRow] = []
                    refused = [Rejected(*fields) for fields in staged.rejects]
                    summary.duplicates += staged.duplicates
                    items = staged.items
                else:
                    good = [row for row in batch if isinstance(row, ImportRow)]
                    refused = [row for row in batch if isinstance(row, Rejected)]
                    items = len(batch)
                # A dry run's one transaction cannot attach a file: it copies the rows.
                with (_attached(connection, staged if outer is None else None),
                      nullcontext() if outer is not None else connection.begin()):
                    plan = BatchPlan(store.list_id(connection, list_name), refused,
                                     [] if on_added is not None else None)
                    resolver, now = _list_resolver(store, connection), clock.now()
                    if on_sqlite:
                        lock_for_writing(connection)
                        table = TEMPORARY
                        if staged is not None and outer is None:
                            table = f"{STAGE_SCHEMA}.{STAGED}"
                        elif staged is not None:
                            copy_here(connection, staged.path)
                        else:
                            summary.duplicates += stage_here(connection, good, status)
                        merge_staged(connection, table, plan, summary, resolver,
                                     list_name is not None, source, agreement,
                                     store.erase_key, force_erased, now)
                    else:
                        if store.erase_key is not None:
                            good = _without_erased(connection, store.erase_key, good,
                                                   force_erased, refused)
                        _merge_batch(connection, good, plan, status, source, summary,
                                     resolver, list_name is not None, agreement, now)
                if on_added is not None and plan.added and outer is None:
                    on_added(plan.added)
                # Batches come in file order, so sorting each batch's (the suppressed ones
                # are found after the rest) puts them all in file order.
                refused.sort(key=lambda reject: reject.line)
                summary.rejected += len(refused)
                summary.rejects.extend(refused[:KEPT_REJECTS - len(summary.rejects)])
                if on_reject is not None:
                    for reject in refused:
                        on_reject(reject)
                if on_batch is not None:
                    on_batch(items)
                del batch, good, plan
                gc.collect(1)
        finally:
            if outer is not None:
                outer.rollback()
            if on_sqlite and driver is not None and not driver.in_transaction:
                with suppress(sqlite3.Error):  # not to hide the failure that ended it
                    driver.execute(f"DROP TABLE IF EXISTS {TEMPORARY}")
    return summary
