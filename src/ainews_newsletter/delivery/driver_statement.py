"""The ledger's per-message statements run on the driver itself (claims.py's LedgerWriter:
sqlite3, and psycopg for PostgreSQL's claims), and the audience snapshot's batches on
sqlite3 (ledger.py): compiled by SQLAlchemy, executed by the driver, errors raised as
SQLAlchemy's."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Dialect, Insert, Table, Update, bindparam
from sqlalchemy.exc import DBAPIError


class DriverStatement:
    """A statement compiled once into the driver's own SQL and parameter order, run on the
    driver's connection: per message, SQLAlchemy's execute (cache lookup, parameter
    processing, result wrapping) cost more than SQLite's work. Values still go through the
    columns' own bind processors, so what is stored is what SQLAlchemy would store."""

    def __init__(self, statement: Update | Insert, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        assert compiled.positiontup is not None, "a positional paramstyle (sqlite3) is needed"
        self.sql = compiled.string
        binds = [compiled.binds[name] for name in compiled.positiontup]
        # Per slot: its name, the value bound in the statement itself (a state's name, say)
        # and the column type's processor.
        self._slots: list[tuple[str, Any, Callable[[Any], Any] | None]] = [
            (bind.key, bind.effective_value,
             bind.type.dialect_impl(dialect).bind_processor(dialect)) for bind in binds]

    def parameters(self, values: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(
            (processor(value) if processor is not None else value)
            for name, default, processor in self._slots
            for value in (values.get(name, default),))


@contextmanager
def as_sqlalchemy_error(sql: str, parameters: tuple[Any, ...]) -> Iterator[None]:
    """The driver's errors ("database is locked", "disk is full") as SQLAlchemy would have
    raised them: every caller, and the CLI's one-line error, knows those."""
    try:
        yield
    except sqlite3.Error as exc:
        # Without the values (as the engines' hide_parameters): they name readers, and an
        # error's text reaches the log and the scheduler's run records.
        raise DBAPIError.instance(sql, parameters, exc, sqlite3.Error,
                                  hide_parameters=True) from exc


def insert_by_driver(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> bool:
    """A batch's INSERT … ON CONFLICT DO NOTHING into `table` run by sqlite3 itself, in the
    transaction SQLAlchemy began on `connection` (sqlite3 begins it at the first write):
    SQLAlchemy's per-row parameter handling cost more than SQLite's work. False where this
    does not apply (PostgreSQL, sqlite3 in autocommit, no rows), for the caller to insert
    the usual way."""
    driver = connection.connection.driver_connection
    if (not rows or driver is None or connection.dialect.name != "sqlite"
            or getattr(driver, "isolation_level", None) is None):
        return False
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    statement = DriverStatement(
        sqlite_insert(table).values({key: bindparam(key) for key in rows[0]})
        .on_conflict_do_nothing(), connection.dialect)
    parameters = [statement.parameters(row) for row in rows]
    with as_sqlalchemy_error(statement.sql, parameters[0]):
        driver.executemany(statement.sql, parameters)
    return True


class PsycopgStatement:
    """PostgreSQL: a RETURNING statement compiled once and run on psycopg itself, prepared on
    the server from its first run (the claims, one per message: SQLAlchemy's execute cost
    about as much Python as the rest of a message's ledger work). Values go through the
    columns' bind processors, as with DriverStatement."""

    def __init__(self, statement: Update, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        self._slots: list[tuple[str, Any, Callable[[Any], Any] | None]] = [
            (name, bind.effective_value,
             bind.type.dialect_impl(dialect).bind_processor(dialect))
            for bind, name in compiled.bind_names.items()]

    def first(self, driver: Any, values: dict[str, Any]) -> Any:
        """The statement's first row (a named tuple), or None."""
        from psycopg import Error
        from psycopg.rows import namedtuple_row

        parameters = {name: (processor(value) if processor is not None else value)
                      for name, default, processor in self._slots
                      for value in (values.get(name, default),)}
        try:
            with driver.cursor(row_factory=namedtuple_row) as cursor:
                cursor.execute(self.sql, parameters, prepare=True)
                return cursor.fetchone()
        except Error as exc:
            raise DBAPIError.instance(self.sql, (), exc, Error, hide_parameters=True) from exc
