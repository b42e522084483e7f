"""Bulk inserts for imports, straight to the database driver.

At a million rows SQLAlchemy's per-row parameter processing costs several times the
insert itself, so the import's hot insert (new subscribers) hands the driver tuples (named
tuples are tuples to it); memberships, history events and consent records are INSERT …
SELECT statements that find the ids themselves, from the rows a `Chosen` names (`keyed`:
by address; `added_since`: the rows just inserted). Values are converted here the way the
column types would: aware datetimes to naive UTC (SQLite: SQLAlchemy's text format), dicts
to JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    ARRAY,
    Column,
    ColumnElement,
    Connection,
    FromClause,
    Select,
    String,
    Table,
    any_,
    bindparam,
    func,
    literal_column,
    select,
    true,
)

SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"  # what SQLAlchemy's SQLite DateTime stores


def native(value: Any, dialect: str) -> Any:
    """A value as the driver takes it for a column of its type (see the module's doc)."""
    if isinstance(value, datetime):
        naive = value.astimezone(UTC).replace(tzinfo=None)
        return naive.strftime(SQLITE_DATETIME) if dialect == "sqlite" else naive
    if isinstance(value, dict):
        if dialect == "sqlite":
            return json.dumps(value)
        from psycopg.types.json import Json

        return Json(value)
    return value


def one_of(connection: Connection, column: ColumnElement[Any], keys: list[str],
           ) -> ColumnElement[bool]:
    """`column IN keys` as a single parameter: a plain IN of 5,000 values makes SQLAlchemy
    render 5,000 bind names per query, which costs more than running the query."""
    if connection.dialect.name == "sqlite":
        values: Select[Any] = select(literal_column("value")).select_from(
            func.json_each(bindparam("keys_json", json.dumps(keys))))
        return column.in_(values)
    return column == any_(bindparam("keys_array", keys, type_=ARRAY(String)))


class Chosen(NamedTuple):
    """Some rows of a table as a SELECT reads them: FROM `source` WHERE `condition`."""

    source: FromClause
    condition: ColumnElement[bool]

    def select(self, *columns: Any) -> Select[Any]:
        return select(*columns).select_from(self.source).where(self.condition)


def keyed(connection: Connection, column: Column[Any], keys: list[str]) -> Chosen:
    """The rows of `column`'s table whose `column` is one of `keys`, each once: the keys
    as one parameter (a JSON array on SQLite, an array on PostgreSQL) joined to the table
    on `column`. A join, not `column IN (…)`: SQLite first copies an IN list into a
    temporary index of its own, which costs several times the lookups (50,000 keys)."""
    unique = list(dict.fromkeys(keys))  # a key given twice must not give its row twice
    if connection.dialect.name == "sqlite":
        given = func.json_each(bindparam("keys_json", json.dumps(unique), unique=True)
                               ).table_valued("value")
    else:
        given = func.unnest(bindparam("keys_array", unique, type_=ARRAY(String), unique=True)
                            ).table_valued("value").render_derived()
    return Chosen(given.join(column.table, column == given.c.value), true())


def last_id(connection: Connection, table: Table) -> int:
    """The table's largest id so far (0 when empty), read before a bulk insert for
    `added_since`."""
    return int(connection.execute(select(func.max(table.c.id))).scalar() or 0)


def added_since(connection: Connection, table: Table, before: int,
                count: int) -> Chosen | None:
    """`id > before`: the `count` rows this transaction has just inserted into `table`,
    `before` being `last_id` read in the same transaction before the insert, or None where
    that cannot be told. On SQLite a new row's id is the largest one plus one (unless the
    largest possible id is taken). `before` may be read before this transaction holds the
    write lock, so another connection may insert or delete in between: the check after the
    insert, under the lock, is what makes the shortcut safe (our rows are D+1…D+count, D
    the largest id just before our insert, so the largest id grew by exactly `count` from
    `before` only if D is `before`), and it must stay. Statements that select the new rows
    by this range read a run of the table instead of looking each address up in its index.
    PostgreSQL hands ids out to concurrent transactions from one sequence: None."""
    if connection.dialect.name != "sqlite" or count == 0:
        return None
    if last_id(connection, table) - before != count:
        return None
    return Chosen(table, table.c.id > before)


def insert_tuples(connection: Connection, table: Table, columns: Sequence[str],
                  values: Sequence[tuple[Any, ...]], ignore_conflicts: bool = False) -> None:
    """INSERT rows given as tuples in `columns`' order, each value already as the driver
    takes it (`native`), in one executemany."""
    if not values:
        return
    unknown = [column for column in columns if column not in table.c]
    if unknown:
        raise ValueError(f"{table.name} has no column(s) {unknown}")
    placeholder = "?" if connection.dialect.name == "sqlite" else "%s"
    sql = (f"INSERT INTO {table.name} ({', '.join(columns)}) "
           f"VALUES ({', '.join([placeholder] * len(columns))})"
           + (" ON CONFLICT DO NOTHING" if ignore_conflicts else ""))
    connection.exec_driver_sql(sql, values)
