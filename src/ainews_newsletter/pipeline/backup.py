"""`ainews db backup`: a consistent copy of the database while it is in use.

SQLite: the online backup API into FILE.partial, renamed to FILE once whole, so a backup that
failed (a full disk, a killed process) never leaves a file that looks like a backup.
PostgreSQL: `pg_dump --format=custom` in a snapshot this module holds open, so the counts it
prints are those of the dump itself."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.engine import URL, make_url

from ainews_newsletter.database import engine_for, sqlite_path
from ainews_newsletter.errors import AinewsError

# What `db backup` says how to do when pg_dump is missing (Debian, Ubuntu; the PostgreSQL
# project's own packages name it the same way).
PG_DUMP_PACKAGE = "postgresql-client"


class BackupError(AinewsError):
    """The backup could not be taken; FILE is left as it was (absent or the older copy)."""


@dataclass
class BackupReport:
    path: Path
    database: str  # "sqlite" or "postgresql"
    size: int
    schema: str | None
    subscribers: int
    deliveries: dict[str, int] = field(default_factory=dict)

    @property
    def unsent(self) -> int:
        """Rows a send still had to do in the copy: restored, the copy sends to them again,
        also to those the send reached after the backup."""
        return sum(count for state, count in self.deliveries.items()
                   if state in ("queued", "sending", "deferred"))

    def as_dict(self) -> dict[str, Any]:
        return {"file": str(self.path), "database": self.database, "bytes": self.size,
                "schema": self.schema, "subscribers": self.subscribers,
                "deliveries": dict(self.deliveries), "unsent": self.unsent}


def take_backup(url: str, target: Path, force: bool = False) -> BackupReport:
    """Copy the database at `url` into `target`; refuses to replace a file unless `force`."""
    target = target.expanduser()
    if target.is_dir():
        raise BackupError(f"{target} is a folder: give the backup's file name")
    if target.exists() and not force:
        raise BackupError(f"{target} exists: add --force to replace it")
    if not target.parent.is_dir():
        raise BackupError(f"{target.parent} does not exist: create the folder first")
    database_file = sqlite_path(url)
    if database_file is not None:
        return _sqlite_backup(database_file, target)
    if make_url(url).get_backend_name() != "postgresql":
        raise BackupError("db backup knows SQLite files and PostgreSQL; this database is "
                          "neither")
    return _postgres_backup(url, target)


def _partial(target: Path) -> Path:
    return target.with_name(target.name + ".partial")


# -- SQLite --------------------------------------------------------------------------------

def _sqlite_backup(database_file: Path, target: Path) -> BackupReport:
    if not database_file.is_file():
        raise BackupError(f"no database at {database_file}: nothing to back up")
    if target.resolve() == database_file.resolve():
        raise BackupError(f"{target} is the database itself: give another file")
    partial = _partial(target)
    source = sqlite3.connect(database_file, timeout=10)
    try:
        partial.unlink(missing_ok=True)  # what an earlier, failed backup left
        copy = sqlite3.connect(partial)
        try:
            # One step, not pages with pauses between them: SQLite restarts a paged backup
            # each time another connection writes to the source, and a send writes many
            # times a second, so a paged copy of a busy ledger might never end. Our files are
            # in WAL mode (database.py), where one step is a reader holding one snapshot:
            # the send goes on writing meanwhile (into the WAL), and the copy is that
            # snapshot, consistent to the row.
            source.backup(copy, pages=-1)
            # The copy on its own: one file, no -wal beside it to lose when it is moved.
            copy.execute("PRAGMA journal_mode=DELETE").fetchall()
            report = _sqlite_report(copy, target)
        finally:
            copy.close()
        _sync(partial)
        os.replace(partial, target)
    except (sqlite3.Error, OSError) as exc:
        _discard(partial)
        raise BackupError(f"backup of {database_file} failed, {target} not written: "
                          f"{_first_line(exc)}") from None
    finally:
        source.close()
    report.size = target.stat().st_size
    return report


def _sqlite_report(copy: sqlite3.Connection, target: Path) -> BackupReport:
    tables = {row[0] for row in copy.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    schema = (copy.execute("SELECT version_num FROM alembic_version").fetchone() or [None])[0] \
        if "alembic_version" in tables else None
    subscribers = (copy.execute("SELECT count(*) FROM subscribers").fetchone()[0]
                   if "subscribers" in tables else 0)
    deliveries = (dict(copy.execute(
        "SELECT state, count(*) FROM deliveries GROUP BY state ORDER BY state").fetchall())
        if "deliveries" in tables else {})
    return BackupReport(target, "sqlite", 0, schema, subscribers, deliveries)


def _sync(path: Path) -> None:
    """The copy's bytes on disk before its name says it is whole."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _discard(partial: Path) -> None:
    with contextlib.suppress(OSError):
        partial.unlink(missing_ok=True)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else exc.__class__.__name__


# -- PostgreSQL ----------------------------------------------------------------------------

def pg_dump_arguments(url: URL, target: Path) -> list[str]:
    """pg_dump's arguments for `url`: its connection as a libpq conninfo string, so pg_dump
    connects as the application does (sslmode, sslrootcert, several hosts, a socket folder
    in `host`, libpq's own default database), without the password: that goes in
    PGPASSWORD (`pg_password`)."""
    from psycopg.conninfo import make_conninfo

    params: dict[str, str] = {}
    for key, value in url.query.items():
        if key != "password":
            params[key] = ",".join(value) if isinstance(value, tuple) else str(value)
    for key, part in (("host", url.host), ("port", url.port), ("user", url.username),
                      ("dbname", url.database)):
        if part:
            params[key] = str(part)
    return ["--format=custom", "--no-password", f"--file={target}",
            f"--dbname={make_conninfo(**params)}"]


def pg_password(url: URL) -> str | None:
    """The password pg_dump needs, from the URL or its query."""
    if url.password is not None:
        return str(url.password)
    value = url.query.get("password")
    return value[0] if isinstance(value, tuple) else value


def _postgres_backup(url: str, target: Path) -> BackupReport:
    parsed = make_url(url)
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        command = " ".join(["pg_dump", *pg_dump_arguments(parsed, target)])
        raise BackupError(f"pg_dump is not installed: install {PG_DUMP_PACKAGE} (apt-get "
                          f"install {PG_DUMP_PACKAGE}), or run where it is: {command}")
    partial = _partial(target)
    _discard(partial)
    environment = dict(os.environ)
    password = pg_password(parsed)
    if password is not None:
        environment["PGPASSWORD"] = password  # never on the command line
    with engine_for(url).connect().execution_options(
            isolation_level="REPEATABLE READ") as connection:
        # pg_dump takes the snapshot this transaction exports: the counts below are those of
        # the dump, not of a moment before or after it.
        snapshot = connection.execute(text("SELECT pg_export_snapshot()")).scalar_one()
        report = _postgres_report(connection, target)
        try:
            finished = subprocess.run(
                [pg_dump, *pg_dump_arguments(parsed, partial), f"--snapshot={snapshot}"],
                env=environment, capture_output=True, text=True, check=False)
        except OSError as exc:
            raise BackupError(f"pg_dump could not start: {exc.strerror}") from None
        connection.rollback()
    if finished.returncode != 0:
        _discard(partial)
        said = [line for line in finished.stderr.splitlines() if line.strip()]
        raise BackupError(f"pg_dump failed, {target} not written: "
                          f"{said[-1] if said else f'exit code {finished.returncode}'}")
    try:
        _sync(partial)
        os.replace(partial, target)
    except OSError as exc:
        _discard(partial)
        raise BackupError(f"{target} not written: {exc.strerror}") from None
    report.size = target.stat().st_size
    return report


def _postgres_report(connection: Connection, target: Path) -> BackupReport:
    tables = set(connection.execute(text(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")).scalars())
    schema = (connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
              if "alembic_version" in tables else None)
    subscribers = (connection.execute(text("SELECT count(*) FROM subscribers")).scalar_one()
                   if "subscribers" in tables else 0)
    deliveries: dict[str, int] = {}
    if "deliveries" in tables:
        deliveries = {str(state): int(count) for state, count in connection.execute(text(
            "SELECT state, count(*) FROM deliveries GROUP BY state ORDER BY state"))}
    return BackupReport(target, "postgresql", 0, schema, int(subscribers), deliveries)
