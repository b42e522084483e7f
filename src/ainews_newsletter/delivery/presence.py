"""Knowing whether another sender is alive, for SQLite (one machine).

Every sender holds a shared lock on `<database>.send-lock` while it sends. A sender that can
take the lock exclusively at start knows no other sender is running, so rows left `sending`
come from a dead process and can be resent at once (at-least-once) instead of after the
claim timeout. PostgreSQL senders may run on several machines: they rely on the timeout."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def sender_presence(database_file: Path | None) -> Iterator[bool]:
    """Yields True when this sender started alone. Holds a shared lock until the end."""
    if database_file is None:
        yield False
        return
    lock_path = database_file.with_name(database_file.name + ".send-lock")
    with lock_path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            alone = True
            fcntl.flock(handle, fcntl.LOCK_SH)  # let later senders in, as non-alone
        except BlockingIOError:
            alone = False
            fcntl.flock(handle, fcntl.LOCK_SH)
        try:
            yield alone
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
