"""`ainews db check`: is the database whole, and is its schema the one this ainews needs?

Reads only: it never migrates (a database at an older schema is reported, not upgraded)
and never writes."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from ainews_newsletter.database import engine_for, sqlite_path
from ainews_newsletter.migrations import SCHEMA_HEAD

_SHOWN = 5  # integrity_check may list thousands of broken pages: the first few say enough


@dataclass
class CheckReport:
    database: str  # what was checked: a file's path, or the PostgreSQL database's name
    schema: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"database": self.database, "ok": self.ok, "schema": self.schema,
                "newest_schema": SCHEMA_HEAD, "problems": list(self.problems)}


def declared_tables() -> set[str]:
    """The tables the code reads and writes at SCHEMA_HEAD."""
    from ainews_newsletter.delivery.tables import metadata as ledger
    from ainews_newsletter.feedback import replay_guard  # noqa: F401 (its table joins in)
    from ainews_newsletter.feedback.events import metadata as feedback
    from ainews_newsletter.subscribers.schema import metadata as subscribers

    # The scheduler's history table is declared in schedule/, an entry point the pipeline
    # may not import: named here (tests/test_db_backup.py keeps the two in step).
    return {"schedule_runs"} | {name for metadata in (subscribers, ledger, feedback)
                                for name in metadata.tables}


def schema_problem(version: str | None) -> str | None:
    """What is wrong with a database at `version` for this code, or None."""
    if version == SCHEMA_HEAD:
        return None
    if version is None:
        return ("no schema: the database is empty (`ainews db upgrade` creates the tables; "
                "or this is not the newsletter's database)")
    if version > SCHEMA_HEAD:  # "0011" > "0010": the revisions are numbered, same width
        return (f"schema {version} is newer than this ainews knows (it knows up to "
                f"{SCHEMA_HEAD}): upgrade ainews to the version that wrote it")
    return f"schema {version} is older than this ainews needs ({SCHEMA_HEAD}): run " \
           "`ainews db upgrade`"


def check_database(url: str, file: Path | None = None) -> CheckReport:
    """Check the database at `url`, or the SQLite file `file` (a backup) instead."""
    database_file = file if file is not None else sqlite_path(url)
    if database_file is not None:
        return _check_sqlite(database_file)
    if make_url(url).get_backend_name() != "postgresql":
        return CheckReport(url, problems=["db check knows SQLite files and PostgreSQL"])
    return _check_postgres(url)


def _tables_missing(present: set[str], version: str | None) -> list[str]:
    if version != SCHEMA_HEAD:
        return []  # an older schema lacks tables by design: the version says so already
    missing = sorted(declared_tables() - present)
    return [f"tables missing at schema {SCHEMA_HEAD}: {', '.join(missing)}"] if missing else []


def _check_sqlite(path: Path) -> CheckReport:
    report = CheckReport(str(path))
    if not path.is_file():
        report.problems.append(f"no database at {path}")
        return report
    try:
        # Read-only: checking never creates a database or changes its pages. A WAL file
        # read with no other connection open still gets its -wal and -shm side files
        # (SQLite's reader needs the shared-memory index; `immutable` would skip the locks a
        # running send relies on), which SQLite removes at the next clean close.
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error as exc:
        report.problems.append(f"cannot open {path}: {exc}")
        return report
    try:
        result = [str(row[0]) for row in connection.execute("PRAGMA integrity_check")]
        if result != ["ok"]:
            more = f" (and {len(result) - _SHOWN} more)" if len(result) > _SHOWN else ""
            report.problems.extend(f"integrity: {line}" for line in result[:_SHOWN])
            if more:
                report.problems[-1] += more
        broken = connection.execute("PRAGMA foreign_key_check").fetchall()
        by_table: dict[tuple[str, str], int] = {}
        for table, _rowid, parent, _index in broken:
            by_table[(table, parent)] = by_table.get((table, parent), 0) + 1
        report.problems.extend(
            f"foreign keys: {count} row(s) of {table} name a missing {parent} row"
            for (table, parent), count in sorted(by_table.items()))
        tables = {row[0] for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "alembic_version" in tables:
            row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
            report.schema = row[0] if row else None
        problem = schema_problem(report.schema)
        if problem:
            report.problems.append(problem)
        report.problems.extend(_tables_missing(tables, report.schema))
    except sqlite3.DatabaseError as exc:
        # "file is not a database", "database disk image is malformed": what a page
        # overwritten by something else gives before integrity_check can even list it.
        report.problems.append(f"integrity: {exc} ({path})")
    finally:
        connection.close()
    return report


def _check_postgres(url: str) -> CheckReport:
    parsed = make_url(url)
    report = CheckReport(f"postgresql database {parsed.database}")
    try:
        with engine_for(url).connect() as connection:
            tables = set(inspect(connection).get_table_names())
            if "alembic_version" in tables:
                report.schema = connection.execute(
                    text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError as exc:
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        report.problems.append(f"cannot read the database: {first[0] if first else exc}")
        return report
    problem = schema_problem(report.schema)
    if problem:
        report.problems.append(problem)
    report.problems.extend(_tables_missing(tables, report.schema))
    return report
