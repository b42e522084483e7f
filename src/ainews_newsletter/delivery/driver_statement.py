"""The ledger's per-message statements run on the driver itself (claims.py's LedgerWriter:
sqlite3, and psycopg for PostgreSQL's claims), and the audience snapshot's batches on
sqlite3 (ledger.py): compiled by SQLAlchemy, executed by the driver, errors raised as
SQLAlchemy's."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    BindParameter,
    Connection,
    DateTime,
    Dialect,
    Insert,
    Table,
    Update,
    bindparam,
)
from sqlalchemy.exc import DBAPIError

from ainews_newsletter.database import UTCDateTime, as_sqlalchemy_error

# Per column type (named with its dialect): the last datetime converted for it, and the
# value its bind processor made of it (DriverStatement).
Converted = dict[str, tuple[Any, Any]]


def _shared_kind(bind_type: Any, dialect: Dialect) -> str | None:
    """The name under which statements may share a conversion: only the project's own
    UTCDateTime over SQLAlchemy's plain DateTime (a printed type leaves out settings such as
    SQLite's storage_format, so two types printing alike may convert differently); None
    for any other type, whose conversions stay the statement's own."""
    if type(bind_type) is UTCDateTime and type(bind_type.impl_instance) is DateTime:
        return f"{dialect.name} UTCDateTime"
    return None


class DriverStatement:
    """A statement compiled once into the driver's own SQL and parameter order, run on the
    driver's connection: per message, SQLAlchemy's execute (cache lookup, parameter
    processing, result wrapping) cost more than SQLite's work. Values still go through the
    columns' own bind processors, so what is stored is what SQLAlchemy would store."""

    def __init__(self, statement: Update | Insert, dialect: Dialect,
                 converted: Converted | None = None) -> None:
        compiled = statement.compile(dialect=dialect)
        assert compiled.positiontup is not None, "a positional paramstyle (sqlite3) is needed"
        self.sql = compiled.string
        binds = [compiled.binds[name] for name in compiled.positiontup]
        # Per name: the value bound in the statement itself (a state's name, say), else
        # None, as a template each call's values are laid over; the slots' values then
        # taken in order by one itemgetter (a name may fill several slots: `now`).
        self._defaults: dict[str, Any] = {bind.key: bind.effective_value for bind in binds}
        self._required = _required(binds)
        names = [bind.key for bind in binds]
        self._in_order: Callable[[dict[str, Any]], tuple[Any, ...]] = (
            itemgetter(*names) if len(names) > 1 else lambda merged: tuple(
                merged[name] for name in names))
        # The names whose column type has a bind processor (the datetimes), each converted
        # once per call, with their type's name. For a datetime, the last one converted is
        # kept per type (in `converted`, which a writer shares among its statements) with
        # what came out: a writer passes one `now` to each statement of a commit, and a
        # processor is a pure function of its value, so the same (immutable) object gives
        # the same text.
        types: dict[str, str] = {}
        shared: Converted = {} if converted is None else converted
        self._processed: list[tuple[str, Callable[[Any], Any], str, Converted, bool]] = []
        for bind in binds:
            # One name, one type (a name in several places, `now`, gets a copy of its
            # column's type at each): else a slot would get another slot's conversion.
            named = f"{type(bind.type).__module__} {bind.type!r}"
            assert types.setdefault(bind.key, named) == named, (
                f"{bind.key} is bound with two types")
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None and bind.key not in {n for n, *_ in self._processed}:
                kind = _shared_kind(bind.type, dialect)
                self._processed.append((bind.key, processor, kind or bind.key,
                                        shared if kind else {}, _keeps_none(processor)))

    def parameters(self, values: dict[str, Any]) -> tuple[Any, ...]:
        if self._required:  # asked at the first call only: the hot path stays as it was
            _check_given(self._required, values, self.sql)
            self._required = frozenset()
        merged = {**self._defaults, **values}
        for name, processor, kind, last, keeps_none in self._processed:
            value = merged[name]
            if value is None and keeps_none:
                continue
            seen = last.get(kind)
            if seen is not None and seen[0] is value:
                merged[name] = seen[1]
            else:
                converted = merged[name] = processor(value)
                if type(value) is datetime:  # immutable: the same object, the same text
                    last[kind] = (value, converted)
        return self._in_order(merged)


def _required(binds: Iterable[BindParameter[Any]]) -> frozenset[str]:
    """The names a caller must give: binds with no value of their own. Left out, a value
    would silently be NULL (an UPDATE whose WHERE then matches nothing, say)."""
    return frozenset(bind.key for bind in binds if bind.required)


def _check_given(required: frozenset[str], values: dict[str, Any], sql: str) -> None:
    missing = sorted(required - values.keys())
    if missing:  # a bug of ours, not a user's mistake
        raise TypeError(f"no value for {', '.join(missing)} in: {sql}")


def _keeps_none(processor: Callable[[Any], Any]) -> bool:
    """Whether a bind processor leaves None as it is (then None is not handed to it)."""
    try:
        return processor(None) is None
    except Exception:  # one that cannot take None is asked every time, as before
        return False


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
        self._required = _required(compiled.bind_names)

    def first(self, driver: Any, values: dict[str, Any]) -> Any:
        """The statement's first row (a named tuple), or None."""
        from psycopg import Error
        from psycopg.rows import namedtuple_row

        if self._required:  # the first call only, as DriverStatement
            _check_given(self._required, values, self.sql)
            self._required = frozenset()
        parameters = {name: (processor(value) if processor is not None else value)
                      for name, default, processor in self._slots
                      for value in (values.get(name, default),)}
        try:
            with driver.cursor(row_factory=namedtuple_row) as cursor:
                cursor.execute(self.sql, parameters, prepare=True)
                return cursor.fetchone()
        except Error as exc:
            raise DBAPIError.instance(self.sql, (), exc, Error, hide_parameters=True) from exc
