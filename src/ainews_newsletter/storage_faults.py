"""What a failure of the database or its disk means, in one line an operator can act on.

A leaf, and light: the CLI's last-resort error handler, the web's sign-ups and the send's
reconnects ask it without importing SQLAlchemy or the rooms (safe_url imports it, only on
the way to an error message). It reads an exception,
the chain under it (SQLAlchemy's `.orig`, `__cause__`, `__context__`) and, for SQLite, the
free space of the database's folder."""

from __future__ import annotations

import errno
import os
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

# SQLite's primary result code for "database or disk is full" (sqlite3.h).
_SQLITE_FULL = 13
# PostgreSQL's SQLSTATE disk_full (class 53, insufficient resources).
_PG_DISK_FULL = "53100"
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
# SQLite reports some writes that ran out of space (growing the -shm file, a journal
# opened on a full disk) as a plain "disk I/O error"; with less than this left beside the
# database, that is the disk being full.
_NEARLY_NOTHING = 64 * 1024

# SQLSTATE classes of a connection lost or refused: 08 connection exception, 57P operator
# intervention (57P01 admin shutdown: `pg_ctl restart -m fast`; 57P02 crash; 57P03 "the
# database system is starting up").
_AWAY_STATES = ("08", "57P")

# The default for what stayed: every change is its own transaction somewhere.
ROLLED_BACK = "the change that failed was rolled back, everything stored before it stays"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and every one under it, each once."""
    seen: set[int] = set()
    pending = [exc]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for under in (getattr(current, "orig", None), current.__cause__, current.__context__):
            if isinstance(under, BaseException):
                pending.append(under)


def sqlite_folder(database_url: str | None) -> Path | None:
    """The folder of a SQLite database file named by `database_url` (sqlite:///path), or
    None for another database, SQLite in memory, or no URL. Parsed by hand, like
    config/locate.py does, so that a failure report needs no SQLAlchemy."""
    if not database_url or not database_url.startswith("sqlite"):
        return None
    _, _, rest = database_url.partition(":///")
    path = rest.split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path).parent


def _server_side(database_url: str | None) -> bool:
    return bool(database_url) and not str(database_url).startswith("sqlite")


def _folder_is_full(folder: Path | None) -> bool:
    if folder is None:
        return False
    try:
        stats = os.statvfs(folder)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < _NEARLY_NOTHING


def _reason_if_full(exc: BaseException, folder: Path | None) -> tuple[str, Path | None] | None:
    """(what the error said, the folder it was writing in, if it names one) when `exc`
    itself says the disk is full."""
    if isinstance(exc, OSError) and exc.errno in _NO_SPACE:
        written = Path(os.fsdecode(exc.filename)).parent if exc.filename else None
        return exc.strerror or os.strerror(exc.errno or errno.ENOSPC), written
    if isinstance(exc, sqlite3.Error):
        text = str(exc).splitlines()[0] if str(exc) else "database or disk is full"
        if getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL or "disk is full" in text:
            return text, None
        if "disk I/O error" in text and _folder_is_full(folder):
            return f"{text}, no space left", None
    if (getattr(exc, "sqlstate", None) == _PG_DISK_FULL
            or getattr(exc, "pgcode", None) == _PG_DISK_FULL
            or "No space left on device" in str(exc)):
        lines = str(exc).strip().splitlines()
        return (lines[0] if lines else "disk full"), None
    return None


def disk_full(exc: BaseException, database_url: str | None = None) -> bool:
    """Whether `exc` (or an error under it) says the disk is full: the database's own
    (SQLITE_FULL, PostgreSQL's disk_full) or a file's (ENOSPC, over quota). The web server
    answers 503 for it; the CLI says `storage_failure`'s line."""
    folder = sqlite_folder(database_url)
    return any(_reason_if_full(error, folder) is not None for error in _chain(exc))


def safe_url(database_url: str) -> str:
    """The URL with its password replaced by ***, for a message on a terminal or in a log:
    as SQLAlchemy reads it (a "/" or "@" in the password included), a `password` in the
    query too; one it cannot read is not shown at all."""
    from sqlalchemy.engine import make_url  # only on the way to an error message

    try:
        url = make_url(database_url)
    except Exception:
        return "the configured database (its URL cannot be read)"
    if url.password is None and "password" not in url.query:
        return database_url  # nothing to hide: shown as written
    if "password" in url.query:
        url = url.update_query_dict({"password": "***"})
    shown = url.render_as_string(hide_password=True)
    scheme, _, rest = shown.partition("://")
    netloc, slash, tail = rest.partition("/")
    if netloc.count("@") > 1:  # an "@" left unencoded in the password: hide all of it
        netloc = f"{netloc.split(':', 1)[0]}:***@{netloc.rsplit('@', 1)[1]}"
    return f"{scheme}://{netloc}{slash}{tail}"


def database_away(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot be reached right now (its connection was lost
    or refused), as opposed to refusing what was asked (a lock, a constraint, a timeout, a
    syntax error: those keep their own words). Read without importing SQLAlchemy or the
    driver: a connection SQLAlchemy marked invalid, or psycopg's OperationalError without
    a SQLSTATE (the client library's own: refused, "server closed the connection") or in
    the classes of a lost connection."""
    if getattr(exc, "connection_invalidated", False):
        return True
    original = getattr(exc, "orig", None) or exc
    psycopg = sys.modules.get("psycopg")  # imported by whoever connected to PostgreSQL
    if psycopg is not None and isinstance(original, psycopg.OperationalError):
        state = getattr(original, "sqlstate", None)
        return state is None or str(state).startswith(_AWAY_STATES)
    # SQLite: a database file that cannot be opened (its folder gone or not writable).
    return isinstance(original, sqlite3.OperationalError) and "unable to open" in str(original)


def _first_line(exc: BaseException) -> str:
    for error in _chain(exc):
        if error is not exc and str(error).strip():  # the driver's words, not SQLAlchemy's
            return str(error).strip().splitlines()[0]
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else exc.__class__.__name__


def _is_operational(exc: BaseException) -> bool:
    """SQLAlchemy's OperationalError (the database refused or went away), recognised by
    name: importing SQLAlchemy to check would cost every quick command that fails."""
    return any(cls.__name__ == "OperationalError" and cls.__module__ == "sqlalchemy.exc"
               for cls in type(exc).__mro__)


def storage_failure(exc: BaseException, database_url: str | None,
                    stayed: str = ROLLED_BACK) -> str | None:
    """The one line (without "error: ") for a failure of storage, or None when `exc` is not
    one. A full disk names the folder holding the SQLite file (or the folder of the file
    that could not be written), or the database server's disk; `stayed` says what the
    command leaves behind. A database that cannot be used at all (PostgreSQL down, a
    connection refused) names its URL without the password."""
    folder = sqlite_folder(database_url)
    for error in _chain(exc):
        found = _reason_if_full(error, folder)
        if found is None:
            continue
        reason, written = found
        if written is None and _server_side(database_url) and not isinstance(error, OSError):
            where = "the database server's disk is full"
            advice = "free space on the database server and run the command again"
        else:
            holding = written or folder or Path.cwd()
            where = f"the disk holding {holding} is full"
            advice = "free space and run the command again"
        return f"{where} ({reason}); {advice} — nothing was half-written: {stayed}"
    if _is_operational(exc) and database_away(exc):
        shown = safe_url(database_url) if database_url else "the configured database"
        return (f"cannot use the database {shown}: {_first_line(exc)}; check that it is "
                "running and reachable (and [storage] url), then run the command again — "
                f"nothing was half-written: {stayed}")
    return None
