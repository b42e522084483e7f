"""An import batch staged in an SQLite table, for the writer to copy with INSERT … SELECT.

On SQLite, handing the driver a million new rows one parameter set at a time (seven values
each) was a third of a million-row import's time, all of it in the one process that
writes. Staged, a batch's rows are written by whoever reads the file: the reading process
(read_ahead.py) writes each batch into an SQLite file of its own, while the writer is busy
with the batch before; the writer ATTACHes the file and copies the new rows into the store
in one statement (staged_merge.py), which binds nothing per row. A batch read in the
writer's own process (a small file, another program's rows) is staged the same way into a
temporary table of its connection, so every SQLite import takes the same path.

A staged row is a person once (repeats in the batch folded: import_rules.each_once), with
the status it arrives with and the token it gets if new, every value as the store keeps it
(JSON text, NULL for a missing name, attributes, lists or language)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Connection

from ainews_newsletter.models import SubscriberStatus
from ainews_newsletter.subscribers.arrivals import new_tokens
from ainews_newsletter.subscribers.bulk import native
from ainews_newsletter.subscribers.import_rules import (
    ImportRow,
    Rejected,
    arriving_status,
    each_once,
)

STAGED = "rows"  # the table in a batch's own file (attached as STAGE_SCHEMA)
STAGE_SCHEMA = "stage"
TEMPORARY = "temp.import_stage"  # the table on the writer's own connection
_COLUMNS = ("line, email, normalized, name, status, attributes, lists, language, token, "
            "repeats")
# `repeats`: the rows folded into this one, [[line, email], …] (JSON), or NULL: an erased
# address is refused at every line it is on (staged_merge._erased).
_DEFINITION = ("(seq INTEGER PRIMARY KEY, line INTEGER NOT NULL, email TEXT NOT NULL, "
               "normalized TEXT NOT NULL, name TEXT, status TEXT NOT NULL, attributes TEXT, "
               "lists TEXT, language TEXT, token TEXT NOT NULL, repeats TEXT)")
_INSERT = f"INSERT INTO {{table}} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


class StagedBatch(NamedTuple):
    """One batch as the reading process hands it over: where its rows are, and what the
    writer must count and report for it."""

    path: str  # the batch's SQLite file
    items: int  # rows of the file it held, rejected ones included (progress)
    duplicates: int  # rows folded into an earlier one of the batch
    rejects: list[tuple[Any, ...]]  # Rejected's fields, in file order


def _values(batch: Sequence[ImportRow], status: SubscriberStatus | None,
            ) -> tuple[list[tuple[Any, ...]], int]:
    rows, repeats = each_once(batch)
    folded: dict[str, list[tuple[int, str]]] = {}
    for repeat in repeats:
        folded.setdefault(repeat.normalized, []).append((repeat.line, repeat.email))
    tokens = new_tokens(len(rows))
    dumps = json.dumps
    return [(row.line, row.email, row.normalized, row.name or None,
             arriving_status(row.status, status).value,
             native(row.attributes, "sqlite") if row.attributes else None,  # as stored
             dumps(list(row.lists)) if row.lists else None, row.language or None, token,
             dumps(folded[row.normalized]) if folded and row.normalized in folded else None)
            for row, token in zip(rows, tokens, strict=True)], len(repeats)


def write_batch(path: Path, batch: Sequence[ImportRow | Rejected],
                status: SubscriberStatus | None) -> StagedBatch:
    """Stage `batch` into a new SQLite file at `path` (no journal, no syncing: the file
    is scratch, rewritten from the import file if anything fails)."""
    good = [row for row in batch if type(row) is ImportRow]
    rejects = [tuple(row) for row in batch if type(row) is not ImportRow]
    values, duplicates = _values(good, status)
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=OFF")
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute(f"CREATE TABLE {STAGED} {_DEFINITION}")
        connection.execute("BEGIN")
        connection.executemany(_INSERT.format(table=STAGED), values)
        connection.execute("COMMIT")
    finally:
        connection.close()
    return StagedBatch(str(path), len(batch), duplicates, rejects)


def stage_here(connection: Connection, batch: Sequence[ImportRow],
               status: SubscriberStatus | None) -> int:
    """Stage `batch` into the TEMPORARY table of the writer's own connection (made empty
    first), in the writer's transaction; returns the duplicates folded away. Through
    SQLAlchemy, so a failure (a full temporary folder) is one it knows."""
    values, duplicates = _values(batch, status)
    _fresh_temporary(connection, values)
    return duplicates


def copy_here(connection: Connection, path: str) -> None:
    """A staged file's rows into the TEMPORARY table, where a file cannot be attached:
    inside a transaction (a dry run holds one across all batches). The file is removed
    once read: a dry run keeps no more batch files than an import."""
    source = sqlite3.connect(path)
    try:
        rows = source.execute(f"SELECT {_COLUMNS} FROM {STAGED} ORDER BY seq").fetchall()
    finally:
        source.close()
    Path(path).unlink()
    _fresh_temporary(connection, rows)


def _fresh_temporary(connection: Connection, rows: list[tuple[Any, ...]]) -> None:
    """The TEMPORARY table holding `rows` alone."""
    connection.exec_driver_sql(f"CREATE TABLE IF NOT EXISTS {TEMPORARY} {_DEFINITION}")
    connection.exec_driver_sql(f"DELETE FROM {TEMPORARY}")
    if rows:  # SQLAlchemy takes an empty list for "no parameters", not for no rows
        connection.exec_driver_sql(_INSERT.format(table=TEMPORARY), rows)
