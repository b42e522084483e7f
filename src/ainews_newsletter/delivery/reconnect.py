"""Waiting out a database that went away (PostgreSQL restarted, a failover): which errors
mean "away", and the bounded wait-and-retry the ledger's writes go through during a send.

Only a lost or refused connection counts. SQLite's "database is locked" does not (it has
its own busy timeout), nor does a constraint, a full disk or a statement timeout: retrying
those would only delay the error the operator needs to see."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from ainews_newsletter.errors import DeliveryError
from ainews_newsletter.storage_faults import database_away

log = logging.getLogger("ainews.delivery")
T = TypeVar("T")

FIRST_WAIT = 0.5  # seconds before the first retry, doubled each time up to LONGEST_WAIT
LONGEST_WAIT = 10.0
def where(url: URL) -> str:
    """The database named for the operator: host (or socket folder), port and name."""
    host = url.host or str(url.query.get("host") or "localhost")
    port = url.port or url.query.get("port")
    return f"{host}{f':{port}' if port else ''}/{url.database or ''}"


class DatabaseAway(DeliveryError):
    """The database stayed unreachable for reconnect_seconds: the send stops, resumable."""


class Reconnect:
    """Retries a unit of work while the database is away, waiting 0.5 s, 1 s, 2 s … (at
    most 10 s) between tries, for up to `seconds` from the first failure; then DatabaseAway.
    Once it has given up, later work is tried once and not waited for (the send is stopping
    and only records what it still can)."""

    def __init__(self, seconds: float, database: str,
                 sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.seconds, self.database = seconds, database
        self._sleep, self._monotonic = sleep, monotonic
        self.gave_up = False
        # Said once per outage, however many connections (threads) meet it.
        self._away = False
        self._said = threading.Lock()

    def run(self, work: Callable[[], T], connection: Connection | None = None) -> T:
        """`work`'s result. Work retried must be safe to run again after a failed commit
        that may have happened: each caller's writes set absolute values (state, attempts)
        or re-read what they change. `connection`: a kept connection, made usable again
        (invalidated, rolled back) before the next try."""
        deadline: float | None = None
        wait = FIRST_WAIT
        while True:
            try:
                if connection is not None and connection.invalidated:
                    connection.rollback()  # else: "can't reconnect until rolled back"
                result = work()
            except DBAPIError as exc:
                if not database_away(exc):
                    raise
                if connection is not None:
                    _reset(connection)
                now = self._monotonic()
                if deadline is None:
                    deadline = now + self.seconds
                    if not self.gave_up and self._news(away=True):
                        log.warning("the database at %s is unreachable (%s); retrying for "
                                    "up to %g s", self.database, _first_line(exc),
                                    self.seconds)
                if self.gave_up or now >= deadline:
                    self.gave_up = True
                    raise DatabaseAway(
                        f"the database at {self.database} has been unreachable for "
                        f"{self.seconds:g} s ({_first_line(exc)})") from None
                self._sleep(min(wait, max(0.0, deadline - now)))
                wait = min(wait * 2, LONGEST_WAIT)
            else:
                if deadline is not None and self._news(away=False):  # seen to go: back
                    log.warning("the database at %s is back; going on", self.database)
                return result

    def _news(self, away: bool) -> bool:
        """Whether the database's being away (or back) is news to say."""
        with self._said:
            news, self._away = self._away != away, away
        return news


def _reset(connection: Connection) -> None:
    """A kept connection whose server went away: dropped (the pool's next checkout makes a
    new one, pre-pinged) and its transaction ended, so the next statement reconnects."""
    if not connection.invalidated:
        connection.invalidate()
    with contextlib.suppress(DBAPIError):  # nothing to roll back on a connection gone
        connection.rollback()


def _first_line(exc: BaseException) -> str:
    original = exc.orig if isinstance(exc, DBAPIError) else exc
    return (str(original).strip().splitlines() or [type(original).__name__])[0]
