"""The audience snapshot: a send copies its readers into the ledger once, one queued row per
reader, before the first message (ledger.py's Ledger has these methods).

Two ways, the same rows. `snapshot` takes the readers as Python objects and writes them in
batches (PostgreSQL, and any caller with its own readers). `copy_audience` (SQLite) has the
database copy each batch itself, one INSERT … SELECT from the subscriber list's own query:
no reader passes through Python objects, and since reading and writing are one statement
under SQLite's write lock, no erase can commit between them (delivery/unlisted.py's gap
does not exist). It was most of the time between freezing an issue and its first message
(issue 32). The values SQL cannot make (the Message-ID's digest, the rendering a
language gets, the random return tags) come from the same Python as the other way's, as
SQL functions of the statement: `_RowValues`."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager, suppress
from functools import partial
from itertools import islice
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, Select, func, literal, null, select, true, update
from sqlalchemy.exc import DBAPIError

from ainews_newsletter import language_tags, translations
from ainews_newsletter.database import SqlFunctions, insert_ignoring_conflicts
from ainews_newsletter.delivery.driver_statement import insert_by_driver
from ainews_newsletter.delivery.message import message_digest
from ainews_newsletter.delivery.reconnect import Reconnect
from ainews_newsletter.delivery.returnpath import new_return_tags
from ainews_newsletter.delivery.tables import deliveries, issues
from ainews_newsletter.delivery.unlisted import StillListed, drop_unlisted
from ainews_newsletter.models import DeliveryCounts, DeliveryState, Recipient

if TYPE_CHECKING:
    from datetime import datetime

# The subscriber list's next readers for a copy in the database: (connection, the last id
# copied, how many) → a statement of (subscriber_id, email, name, token, language) in id
# order, as the list's iter_recipients reads them, and the SQL functions it calls
# (subscribers/queries.py's audience).
Audience = Callable[[Connection, int, int], tuple[Select[Any], SqlFunctions]]

QUEUED = DeliveryState.QUEUED.value
# The columns a snapshot writes, in the order `copy_audience` selects them.
COPIED = ("issue_id", "subscriber_id", "email", "name", "token", "state", "attempts",
          "updated_at", "return_tag", "message_digest", "language")


class _RowValues:
    """The per-reader values both ways compute the same way: the Message-ID's digest (with
    [newsletter] list_identifier), and the language on the row (the rendering the reader's
    language gets, None for the issue's own; asked once per distinct language)."""

    def __init__(self, key: str | None, list_identifier: str | None,
                 languages: Collection[str], own_language: str) -> None:
        self.key, self.list_identifier = key, list_identifier
        self.languages, self.own_language = languages, own_language
        self._editions: dict[str | None, str | None] = {}  # a reader's language → row's

    def digest(self, subscriber_id: int) -> str | None:
        if self.key is None or self.list_identifier is None:
            return None
        return message_digest(self.list_identifier, self.key, subscriber_id)

    def edition(self, language: str | None) -> str | None:
        if language not in self._editions:
            self._editions[language] = language_tags.edition_for(
                language, self.own_language, self.languages)
        return self._editions[language]


class _BatchCalls:
    """The Python functions one copy statement calls, registered on its connection while it
    runs. sqlite3 turns anything a function raises (a bug, Ctrl-C) into a bare "user-defined
    function raised exception": the first one raised is kept and raised in its place. Also
    ainews_reader, which passes each reader's id through and notes the largest: the last
    reader the batch covered, without running the audience's query a second time."""

    def __init__(self, functions: SqlFunctions) -> None:
        self.functions = {name: (arity, self._kept(function), deterministic)
                          for name, (arity, function, deterministic) in functions.items()}
        self.functions["ainews_reader"] = (1, self._kept(self._reader), False)
        self.failure: BaseException | None = None
        self.last_reader: int | None = None

    def _reader(self, subscriber_id: int) -> int:
        self.last_reader = max(self.last_reader or 0, subscriber_id)
        return subscriber_id

    def _kept(self, function: Callable[..., Any]) -> Callable[..., Any]:
        def kept(*arguments: Any) -> Any:
            try:
                return function(*arguments)
            except BaseException as exc:
                self.failure = self.failure or exc
                raise

        return kept

    @contextmanager
    def registered(self, connection: Connection) -> Iterator[None]:
        driver = connection.connection.driver_connection
        assert driver is not None, "a SQLite connection has its sqlite3 connection"
        for name, (arity, function, deterministic) in self.functions.items():
            driver.create_function(name, arity, function, deterministic=deterministic)
        try:
            yield
        except DBAPIError:
            if self.failure is not None:
                raise self.failure from None
            raise
        finally:
            # The pooled connection keeps no function of this batch (Python 3.11's sqlite3
            # cannot delete one: set to None it fails when called); a failure to unset one
            # (the connection closed by the failure) never hides the failure itself.
            with suppress(sqlite3.Error):
                for name, (arity, _, _) in self.functions.items():
                    driver.create_function(name, arity, None)


class AudienceSnapshot:
    """Ledger's snapshot methods (the ledger supplies the engine, reconnect and counts)."""

    engine: Engine
    reconnect: Reconnect

    def counts(self, issue_id: int) -> DeliveryCounts:
        raise NotImplementedError

    @property
    def copies_audience(self) -> bool:
        """Whether `copy_audience` may be used: SQLite (its functions are Python's)."""
        return self.engine.dialect.name == "sqlite"

    def _row_values(self, issue_id: int, list_identifier: str | None,
                    languages: Collection[str], own_language: str) -> _RowValues:
        key = None
        if list_identifier is not None:
            with self.engine.connect() as connection:
                key = connection.execute(select(issues.c.period_key)
                                         .where(issues.c.id == issue_id)).scalar_one()
        return _RowValues(key, list_identifier, languages, own_language)

    def snapshot(self, issue_id: int, recipients: Iterable[Recipient], now: datetime,
                 batch_size: int = 500, tagged: bool = False,
                 list_identifier: str | None = None,
                 still_listed: StillListed | None = None,
                 languages: Collection[str] = (),
                 own_language: str = translations.SOURCE) -> int:
        """Copy the audience into the ledger once. Batches are idempotent (a re-run after a
        crash mid-snapshot adds only the missing rows); `snapshot_at` marks it complete.
        `tagged`: each row gets a tag (a VERP return path, a provider's metadata header).
        `list_identifier` ([newsletter] list_identifier): each row keeps its Message-ID's
        digest, so an event quoting the Message-ID finds it (DeliveryLookup).
        `still_listed`: asked in each batch's transaction, so a reader erased since the
        audience was read gets no row (delivery/unlisted.py).
        `languages`: the languages other than the issue's that have a rendering (catalogs
        shipped or the operator's); a reader whose language (or its base language) is one
        of them has it on their row, every other row's language is NULL (the issue's own
        rendering; `own_language` is the issue's): see `language_tags.edition_for`."""
        values = self._row_values(issue_id, list_identifier, languages, own_language)
        iterator = iter(recipients)
        while batch := list(islice(iterator, batch_size)):
            tags: list[str | None] = (list(new_return_tags(len(batch))) if tagged
                                      else [None] * len(batch))
            rows = [{
                "issue_id": issue_id, "subscriber_id": r.subscriber_id, "email": r.email,
                "name": r.name, "token": r.token, "state": QUEUED,
                "attempts": 0, "updated_at": now, "return_tag": tag,
                "message_digest": values.digest(r.subscriber_id),
                "language": values.edition(r.language)}
                for r, tag in zip(batch, tags, strict=True)]
            self.reconnect.run(partial(self._add_batch, issue_id, rows, batch, still_listed))
        self.reconnect.run(lambda: self._snapshot_done(issue_id, now))
        return self.counts(issue_id).total

    def copy_audience(self, issue_id: int, audience: Audience, now: datetime,
                      batch_size: int = 500, tagged: bool = False,
                      list_identifier: str | None = None,
                      languages: Collection[str] = (),
                      own_language: str = translations.SOURCE) -> int:
        """`snapshot`'s rows, copied by the database (SQLite): each batch one INSERT …
        SELECT of the next `batch_size` readers `audience` gives, in its own transaction
        (idempotent likewise: ON CONFLICT DO NOTHING); `snapshot_at` marks it complete."""
        values = self._row_values(issue_id, list_identifier, languages, own_language)
        after: int | None = 0
        while after is not None:
            after = self.reconnect.run(partial(self._copy_batch, issue_id, audience, after,
                                               batch_size, now, tagged, values))
        self.reconnect.run(lambda: self._snapshot_done(issue_id, now))
        return self.counts(issue_id).total

    def _copy_batch(self, issue_id: int, audience: Audience, after: int, batch_size: int,
                    now: datetime, tagged: bool, values: _RowValues) -> int | None:
        """One batch of `copy_audience`, in one transaction; returns the last reader's id
        it covered (None: there was none left)."""
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        with self.engine.begin() as connection:
            readers_of, needed = audience(connection, after, batch_size)
            readers = readers_of.subquery()
            tags = iter(new_return_tags(batch_size) if tagged else ())
            calls = _BatchCalls({**needed,
                                 "ainews_digest": (1, values.digest, True),
                                 "ainews_edition": (1, values.edition, True),
                                 "ainews_return_tag": (0, partial(next, tags), False)})
            copied = (select(
                literal(issue_id), func.ainews_reader(readers.c.subscriber_id),
                readers.c.email, readers.c.name, readers.c.token, literal(QUEUED),
                literal(0), literal(now, deliveries.c.updated_at.type),
                func.ainews_return_tag() if tagged else null(),
                func.ainews_digest(readers.c.subscriber_id),
                func.ainews_edition(readers.c.language))
                # WHERE: SQLite reads ON CONFLICT after a bare FROM as a join's ON.
                .where(true()).order_by(readers.c.subscriber_id))
            with calls.registered(connection):
                connection.execute(sqlite_insert(deliveries).from_select(COPIED, copied)
                                   .on_conflict_do_nothing())
            return calls.last_reader

    def _add_batch(self, issue_id: int, rows: list[dict[str, Any]], batch: list[Recipient],
                   still_listed: StillListed | None) -> None:
        """One batch of the snapshot, in one transaction; again after a lost connection it
        adds only what the first try did not commit (ON CONFLICT DO NOTHING)."""
        with self.engine.begin() as connection:
            if not insert_by_driver(connection, deliveries, rows):
                insert_ignoring_conflicts(connection, deliveries, rows)
            if still_listed is not None:
                drop_unlisted(connection, deliveries, batch, still_listed, QUEUED,
                              issue_id=issue_id)

    def _snapshot_done(self, issue_id: int, now: datetime) -> None:
        with self.engine.begin() as connection:
            connection.execute(update(issues).where(issues.c.id == issue_id)
                               .values(snapshot_at=now))
