"""Knowing whether another sender is alive, for SQLite (one machine), without clocks.

Every sender holds a shared lock on `<database>.send-lock` while it has messages in flight.
A sender that can take that lock exclusively knows no other sender is running, so rows left
`sending` come from a dead process and can be resent at once (at-least-once). Timestamps
cannot tell this: a wall clock that steps back (NTP, a restored VM, a process started under
a fake clock) makes a dead run's claims look newer than a live one's.

Looking and acting happen under a second lock, `<database>.send-gate`: flock cannot turn an
exclusive lock into a shared one atomically (and a refused conversion drops the lock held),
and without the gate a sender starting in that gap would also think itself alone and take
back rows a live sender holds.

PostgreSQL senders may run on several machines: they rely on a lease measured by the
database's clock instead (see `LedgerWriter.claim_next`)."""

from __future__ import annotations

import fcntl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

OnAlone = Callable[[], None]


class SenderPresence:
    """This sender's shared lock, and the check "am I alone now?"."""

    def __init__(self, lock: IO[str] | None, gate_path: Path | None) -> None:
        self._lock = lock
        self._gate_path = gate_path
        self._holding = lock is not None

    @contextmanager
    def _gate(self) -> Iterator[None]:
        assert self._gate_path is not None
        with self._gate_path.open("a") as gate:
            fcntl.flock(gate, fcntl.LOCK_EX)  # held for microseconds by whoever has it
            try:
                yield
            finally:
                fcntl.flock(gate, fcntl.LOCK_UN)

    def step_aside(self) -> None:
        """Drop the shared lock while this sender has nothing in flight (waiting for another
        sender's messages), so two waiting senders do not each keep the other from seeing
        that the rows' real owner is gone."""
        if self._lock is not None and self._holding:
            with self._gate():
                fcntl.flock(self._lock, fcntl.LOCK_UN)
                self._holding = False

    def check_alone(self, on_alone: OnAlone) -> bool:
        """Whether no other sender holds the lock; if so `on_alone` runs before anyone else
        can start (release the dead runs' claims there) and this sender holds the shared
        lock again. Not alone: the lock is as it was. Without a lock file (PostgreSQL)
        always False."""
        if self._lock is None:
            return False
        with self._gate():
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if self._holding:  # a refused conversion dropped our shared lock (Linux)
                    fcntl.flock(self._lock, fcntl.LOCK_SH)
                return False
            try:
                on_alone()
            finally:
                fcntl.flock(self._lock, fcntl.LOCK_SH)  # let later senders in, as not alone
                self._holding = True
        return True


@contextmanager
def sender_presence(database_file: Path | None) -> Iterator[SenderPresence]:
    """Announce this sender (a shared lock held until the end) and yield its presence. The
    lock files are named after the resolved path, so a symlink to the database is the same
    database."""
    if database_file is None:
        yield SenderPresence(None, None)
        return
    real = database_file.resolve()
    lock_path = real.with_name(real.name + ".send-lock")
    gate_path = real.with_name(real.name + ".send-gate")
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)  # waits while someone alone releases dead claims
        try:
            yield SenderPresence(lock, gate_path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
