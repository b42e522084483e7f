"""The shared SQLAlchemy engine. A leaf: subscribers and delivery each define their own
tables but must share one engine (one SQLite file, one PostgreSQL database)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    DateTime,
    Dialect,
    Engine,
    Table,
    create_engine,
    event,
    func,
    inspect,
    or_,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    OperationalError,
    ProgrammingError,
    StatementError,
)
from sqlalchemy.types import TypeDecorator

from ainews_newsletter import migrations
from ainews_newsletter.errors import ConfigError
from ainews_newsletter.migrations import SCHEMA_HEAD

_engines: dict[str, Engine] = {}
# The Python functions an SQLite statement calls, for its runner to register on the
# connection: name → (arity, the function, deterministic).
SqlFunctions = dict[str, tuple[int, Callable[..., Any], bool]]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the sender read while the CLI writes an unsubscribe; busy_timeout makes a
    # writer wait for the other instead of failing with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Each connection's page cache fills up to its size as a big database is read, and a
    # send keeps several connections: 8 MiB each holds a send's working set (the rows it
    # claims and records, in id order), where 64 MiB each grew a million-reader send past
    # 150 MB. An import asks for more on its own connection (large_page_cache).
    cursor.execute(f"PRAGMA cache_size=-{PAGE_CACHE_KIB}")
    cursor.close()


PAGE_CACHE_KIB = 8192
LARGE_PAGE_CACHE_KIB = 65536


@contextmanager
def large_page_cache(connection: Connection) -> Iterator[None]:
    """64 MiB of page cache on this (SQLite) connection while the block runs: a million-row
    import keeps more of its indexes in memory, which shortens it (BENCHMARKS.md says by how
    much); the pooled connection then goes back to the usual size."""
    driver = connection.connection.driver_connection
    if connection.dialect.name != "sqlite" or driver is None:
        yield
        return
    # On the driver: SQLAlchemy would begin a transaction around the pragma.
    driver.execute(f"PRAGMA cache_size=-{LARGE_PAGE_CACHE_KIB}")
    try:
        yield
    finally:
        # A connection SQLAlchemy closed on a failure cannot be set back (nor reused): the
        # failure, not the setting, is what the caller must see.
        with suppress(sqlite3.Error):
            driver.execute(f"PRAGMA cache_size=-{PAGE_CACHE_KIB}")


def same_address(connection: Connection, column: ColumnElement[Any],
                 key: ColumnElement[Any], forms: set[str]) -> ColumnElement[bool]:
    """Rows whose `column` is one of `forms` (lower-case addresses) in any letter case.
    SQL's lower() folds A-Z everywhere, but letters beyond ASCII only on PostgreSQL with a
    Unicode ctype (SQLite's and a C-locale PostgreSQL's leave "Ü" as it is): the rare
    stored values with such letters are read and folded here, and found by their `key`."""
    if connection.dialect.name == "sqlite":
        beyond_ascii = column.op("GLOB")("*[^\x01-\x7f]*")  # a character outside ASCII
    else:
        beyond_ascii = column.op("~")("[^\\x01-\\x7F]")
    keys = [row[0] for row in connection.execute(select(key, column).where(beyond_ascii))
            if str(row[1]).lower() in forms]
    matched = func.lower(column).in_(forms)
    return or_(matched, key.in_(keys)) if keys else matched


# The erase holds this alone; the writers of rows that may name a reader (feedback events)
# hold it together, and read whether their reader was erased only once they hold it. So
# an erase is never between such a writer's look and its write: either it committed
# before the look (and the writer hashes), or it waits and then finds the new rows.
_ERASE_LOCK_KEY = 0x61696E65  # "aine"


def erase_lock(connection: Connection, exclusive: bool) -> None:
    """Take the erase lock for the rest of this transaction. PostgreSQL: an advisory
    transaction lock (exclusive for the erase, shared for writers). SQLite has one writer
    at a time: a write that changes nothing takes the write lock at once, so what the
    transaction reads next is what every committed erase left."""
    if connection.dialect.name == "postgresql":
        function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        connection.execute(text(f"SELECT {function}(:key)"), {"key": _ERASE_LOCK_KEY})
    else:
        connection.execute(text(
            "UPDATE alembic_version SET version_num = version_num WHERE 0"))


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL, or None (another database, or SQLite in memory)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"storage.url: cannot parse database URL {url!r}") from None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def engine_for(url: str) -> Engine:
    """One engine per URL per process, created on first use."""
    if url in _engines:
        return _engines[url]
    database_file = sqlite_path(url)
    if database_file is not None or make_url(url).get_backend_name() == "sqlite":
        if database_file is not None:
            database_file.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, hide_parameters=True)
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        try:
            # hide_parameters: an error's text (logged, or kept in schedule_runs.detail) does
            # not repeat the statement's values, such as a reader's address (the database's
            # own DETAIL line may still quote a key).
            # A connection attempt to a server that moved or drops packets (a failover)
            # gives up after 10 s, not the system's SYN timeout, so [storage]
            # reconnect_seconds bounds the wait; a URL's own connect_timeout wins.
            extra = ({} if "connect_timeout" in make_url(url).query
                     else {"connect_args": {"connect_timeout": 10}})
            engine = create_engine(url, pool_pre_ping=True, hide_parameters=True, **extra)
        except (ArgumentError, ImportError) as exc:
            raise ConfigError(f"storage.url: {exc}") from None
    _engines[url] = engine
    return engine


_migrated: set[int] = set()
_migrate_lock = threading.Lock()


def schema_version(engine: Engine) -> str | None:
    """The migration the database is at, or None for an empty database."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade_schema(engine: Engine) -> tuple[str | None, str]:
    """Run every migration the database lacks; returns (version before, version after)."""
    from alembic import command
    from alembic.config import Config as AlembicConfig

    before = schema_version(engine)
    settings = AlembicConfig()
    settings.set_main_option("script_location", str(Path(migrations.__file__).parent))
    for attempt in range(3):
        try:
            if engine.dialect.name == "postgresql":
                _upgrade_postgres(engine, settings)
            else:
                with engine.begin() as connection:
                    settings.attributes["connection"] = connection
                    command.upgrade(settings, "head")
            break
        except (OperationalError, ProgrammingError) as exc:
            # Two processes starting on a fresh database both migrate; the loser's "already
            # exists" is harmless: look again, and the second look finds the schema current.
            if "already exists" not in str(exc) or attempt == 2:
                raise
    return before, schema_version(engine) or SCHEMA_HEAD


_MIGRATE_LOCK_KEY = 0x6D696772  # "migr"
# How long a process waits for another's upgrade: a big ledger's index builds take minutes
# (BENCHMARKS.md, "Upgrading a big database").
_MIGRATE_WAIT_SECONDS = 3600
# A migration step that waits longer than this for its table lock (queued behind a long
# transaction, a pg_dump's say) gives way and is tried again a second later: while it
# waits, every write of a running send would queue behind it. SQLSTATE 55P03.
_STEP_LOCK_TIMEOUT = "5s"
_STEP_TRIES = 120


def _upgrade_postgres(engine: Engine, settings: Any) -> None:
    """Alembic holds the transactions itself (one per migration), so that the index builds
    that must not block the senders (CONCURRENTLY) run outside any. Those commit part of a
    migration before the rest: two processes upgrading at once take turns (a session lock,
    held across the commits), and the second finds the schema current. A step gives way
    when its table lock does not come within _STEP_LOCK_TIMEOUT, and is tried again."""
    import time

    from alembic import command

    with engine.connect() as connection:
        _take_migrate_lock(connection)
        failed = True
        try:
            connection.execute(text(f"SET lock_timeout = '{_STEP_LOCK_TIMEOUT}'"))
            connection.commit()
            for attempt in range(1, _STEP_TRIES + 1):
                settings.attributes["connection"] = connection
                try:
                    command.upgrade(settings, "head")  # goes on from the last step done
                    break
                except OperationalError as exc:
                    if (getattr(exc.orig, "sqlstate", None) != "55P03"
                            or attempt == _STEP_TRIES):
                        raise
                    connection.rollback()
                    time.sleep(1.0)
            failed = False
        finally:
            try:
                connection.rollback()  # whatever a failed migration left open
                connection.execute(text("RESET lock_timeout"))  # the pooled connection's
                connection.execute(text("SELECT pg_advisory_unlock(:key)"),
                                   {"key": _MIGRATE_LOCK_KEY})
                connection.commit()
            except Exception:
                if not failed:  # else the migration's own error is the one to see
                    raise


def _take_migrate_lock(connection: Connection) -> None:
    """Wait for the migration lock by asking again, not by blocking in pg_advisory_lock: a
    CREATE INDEX CONCURRENTLY of the process holding it waits for every open transaction,
    the blocked call's too (a deadlock); between the tries this one has none open."""
    import time

    deadline = time.monotonic() + _MIGRATE_WAIT_SECONDS
    while True:
        taken = connection.execute(text("SELECT pg_try_advisory_lock(:key)"),
                                   {"key": _MIGRATE_LOCK_KEY}).scalar()
        connection.commit()
        if taken:
            return
        if time.monotonic() > deadline:
            raise ConfigError(f"storage.url: another process has been upgrading the schema "
                              f"for over {_MIGRATE_WAIT_SECONDS // 60} minutes; look at "
                              "what it is doing, or try again once it is done")
        time.sleep(0.5)


def ensure_schema(engine: Engine) -> None:
    """Bring the database to the newest schema, once per engine and process. The common case
    (already current) costs one query."""
    with _migrate_lock:
        if id(engine) in _migrated:
            return
        if schema_version(engine) != SCHEMA_HEAD:
            upgrade_schema(engine)
        _migrated.add(id(engine))


def insert_ignoring_conflicts(connection: Connection, table: Table,
                              rows: list[dict[str, Any]]) -> None:
    """INSERT … ON CONFLICT DO NOTHING on SQLite and PostgreSQL (the rooms' idempotent
    writes: audience snapshots, memberships, suppressions)."""
    if not rows:
        return
    # Imported here: the PostgreSQL dialect module pulls in asyncio and more, which a quick
    # `ainews subscribers count` should not pay for.
    from sqlalchemy.dialects import postgresql, sqlite

    name = connection.dialect.name
    if name not in ("postgresql", "sqlite"):
        raise ConfigError(f"storage.url: database {name!r} is not supported (use SQLite or "
                          "PostgreSQL)")
    dialect = postgresql if name == "postgresql" else sqlite
    connection.execute(dialect.insert(table).on_conflict_do_nothing(), rows)


def dispose_all() -> None:
    """Close every pooled connection (tests, the end of `ainews demo`, and every command's
    normal exit: cli/app.py)."""
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()
    _migrated.clear()


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend: SQLite has no time zones, so values are stored
    as naive UTC and handed back aware. Refuses naive input, which would be ambiguous."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@contextmanager
def as_sqlalchemy_error(sql: str, parameters: tuple[Any, ...]) -> Iterator[None]:
    """The driver's errors ("database is locked", "disk is full") as SQLAlchemy would have
    raised them: every caller, and the CLI's one-line error, knows those."""
    try:
        yield
    except sqlite3.Error as exc:
        raise sqlalchemy_error(sql, parameters, exc) from exc


def sqlalchemy_error(sql: str, parameters: tuple[Any, ...],
                     exc: sqlite3.Error) -> StatementError:
    """The driver's error as SQLAlchemy's (as_sqlalchemy_error's, for a caller that cannot
    afford a context manager per statement)."""
    # Without the values (as the engines' hide_parameters): they name readers, and an
    # error's text reaches the log and the scheduler's run records.
    return DBAPIError.instance(sql, parameters, exc, sqlite3.Error, hide_parameters=True)
