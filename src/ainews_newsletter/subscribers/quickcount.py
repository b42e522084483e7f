"""Counting subscribers in a SQLite file with the standard library: `ainews subscribers count`
loads and checks the whole config as every command does, then asks this rather than pay
for importing SQLAlchemy, which costs more than the rest (BENCHMARKS.md, "Start-up"). The
same question as `SubscriberStore.count` (tests/subscribers/test_quickcount.py asks both);
whenever this one cannot be sure of its answer (the schema is not the newest, the list does
not exist, the file is missing or locked) it returns None and the store answers instead."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ainews_newsletter.migrations import SCHEMA_HEAD


def quick_count(database: Path, status: str | None, list_name: str | None) -> int | None:
    """Subscribers with `status` (any when None) on list `list_name` (any list, or none,
    when None); None when the store must answer."""
    if not database.is_file():
        return None
    try:
        # Read-only: a count never creates, migrates or writes anything.
        connection = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True,
                                     timeout=2)
    except sqlite3.Error:
        return None
    try:
        version = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        if version is None or version[0] != SCHEMA_HEAD:
            return None
        sql = "SELECT count(*) FROM subscribers AS s WHERE 1 = 1"
        parameters: list[object] = []
        if status is not None:
            sql += " AND s.status = ?"
            parameters.append(status)
        if list_name is not None:
            found = connection.execute("SELECT id FROM lists WHERE name = ?",
                                       (list_name,)).fetchone()
            if found is None:
                return None  # the store says there is no such list (or makes the default)
            sql += (" AND EXISTS (SELECT 1 FROM memberships AS m WHERE m.list_id = ? "
                    "AND m.subscriber_id = s.id)")
            parameters.append(found[0])
        return int(connection.execute(sql, parameters).fetchone()[0])
    except sqlite3.Error:
        return None
    finally:
        connection.close()
