"""Reading the subscriber list (SQLAlchemy Core): one subscriber, the lists, many
subscribers in batches, and who a send goes to (active and not suppressed), including the
check a send's claim makes in its own transaction. The writes are in store.py, whose
SubscriberStore is this plus them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Self

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    and_,
    exists,
    func,
    or_,
    select,
)

from ainews_newsletter import clock
from ainews_newsletter.config import Config
from ainews_newsletter.database import (
    SqlFunctions,
    engine_for,
    ensure_schema,
    insert_ignoring_conflicts,
)
from ainews_newsletter.errors import SubscriberError
from ainews_newsletter.models import Recipient, Subscriber, SubscriberStatus
from ainews_newsletter.subscribers.addresses import normalize
from ainews_newsletter.subscribers.erased import erased_mark
from ainews_newsletter.subscribers.names import clean_name
from ainews_newsletter.subscribers.schema import lists, memberships, subscribers, suppressions


@dataclass(frozen=True)
class ListInfo:
    name: str
    description: str | None
    members: int
    active: int


def _subscriber(row: Any, list_names: tuple[str, ...] = ()) -> Subscriber:
    return Subscriber(
        id=row.id, email=row.email, email_normalized=row.email_normalized,
        name=clean_name(row.name),
        status=SubscriberStatus(row.status), token=row.token, created_at=row.created_at,
        unsubscribed_at=row.unsubscribed_at, source=row.source,
        attributes=dict(row.attributes or {}), confirmed_at=row.confirmed_at, lists=list_names,
        language=row.language)


class SubscriberQueries:
    """The subscriber list's reads. `list_id` creates the default list on first use (so
    that it always shows); nothing else here writes."""

    # AINEWS_SECRET_KEY, which an erased address's mark is keyed with; None: marks cannot
    # be recognised (and `erase` refuses to run).
    erase_key: str | None = None

    def __init__(self, engine: Engine, default_list: str = "newsletter",
                 allow_test: bool = False) -> None:
        self.engine = engine
        self.default_list = default_list
        self.allow_test = allow_test  # [subscribers] allow_test_domains: .test addresses
        ensure_schema(engine)

    @classmethod
    def open(cls, config: Config) -> Self:
        """The store of a configuration: its database, its default list, its rules."""
        opened = cls(engine_for(config.database_url), config.subscribers.default_list,
                     config.subscribers.allow_test_domains)
        # Erased addresses are known by their keyed mark (subscribers/erased.py).
        opened.erase_key = config.secret_key.get_secret_value() if config.secret_key else None
        return opened

    # -- lists ----------------------------------------------------------------------------

    def list_id(self, connection: Connection, name: str | None) -> int:
        """The id of list `name` (the default list when None). The default list is created
        on first use; any other must exist (`ainews subscribers lists add`)."""
        wanted = name or self.default_list
        found = connection.execute(select(lists.c.id).where(lists.c.name == wanted)).scalar()
        if found is not None:
            return int(found)
        if wanted != self.default_list:
            raise SubscriberError(f"no list named {wanted!r} (create it with `ainews "
                                  f"subscribers lists add {wanted}`)")
        insert_ignoring_conflicts(connection, lists, [{
            "name": wanted, "description": "the default list", "created_at": clock.now()}])
        return int(connection.execute(select(lists.c.id).where(lists.c.name == wanted))
                   .scalar_one())

    def lists(self) -> list[ListInfo]:
        with self.engine.begin() as connection:
            self.list_id(connection, None)  # the default list always shows
            member_count = (select(func.count()).select_from(memberships)
                            .where(memberships.c.list_id == lists.c.id).scalar_subquery())
            active_count = (select(func.count()).select_from(
                memberships.join(subscribers, subscribers.c.id == memberships.c.subscriber_id))
                .where(memberships.c.list_id == lists.c.id,
                       subscribers.c.status == SubscriberStatus.ACTIVE.value)
                .scalar_subquery())
            rows = connection.execute(select(lists.c.name, lists.c.description,
                                             member_count.label("members"),
                                             active_count.label("active"))
                                      .order_by(lists.c.name)).all()
        return [ListInfo(row.name, row.description, int(row.members), int(row.active))
                for row in rows]

    # -- one subscriber -------------------------------------------------------------------

    def _lists_of(self, connection: Connection, subscriber_id: int) -> tuple[str, ...]:
        rows = connection.execute(
            select(lists.c.name).join(memberships, memberships.c.list_id == lists.c.id)
            .where(memberships.c.subscriber_id == subscriber_id).order_by(lists.c.name)).all()
        return tuple(row.name for row in rows)

    def get(self, address: str) -> Subscriber | None:
        _, normalized = normalize(address, allow_test=True)  # finding a row: any stored address
        with self.engine.connect() as connection:
            row = connection.execute(
                select(subscribers).where(subscribers.c.email_normalized == normalized)).first()
            return None if row is None else _subscriber(row, self._lists_of(connection, row.id))

    def require(self, address: str) -> Subscriber:
        found = self.get(address)
        if found is None:
            raise SubscriberError(f"no subscriber with address {address.strip()!r}")
        return found

    def suppression(self, address: str) -> str | None:
        """Why the address is suppressed, or None."""
        _, normalized = normalize(address, allow_test=True)  # finding a row: any stored address
        with self.engine.connect() as connection:
            reason = connection.execute(select(suppressions.c.reason).where(
                suppressions.c.email_normalized == normalized)).scalar()
            if reason is None and self.erase_key is not None:
                # The mark's reason: "erased", or "erased:complained" and the like.
                reason = connection.execute(select(suppressions.c.reason).where(
                    suppressions.c.email_normalized == erased_mark(
                        self.erase_key, normalized))).scalar()
        return None if reason is None else str(reason)

    def by_token(self, token: str) -> Subscriber | None:
        """The subscriber whose unsubscribe/preferences link carries `token`."""
        with self.engine.connect() as connection:
            row = connection.execute(select(subscribers.c.email)
                                     .where(subscribers.c.token == token)).first()
        return None if row is None else self.get(row.email)

    # -- many subscribers -----------------------------------------------------------------

    def _filtered(self, query: Select[Any], connection: Connection,
                  status: SubscriberStatus | None, list_name: str | None,
                  search: str | None = None) -> Select[Any]:
        if status is not None:
            query = query.where(subscribers.c.status == status.value)
        if list_name is not None:
            list_id = self.list_id(connection, list_name)
            query = query.where(exists().where(memberships.c.list_id == list_id,
                                               memberships.c.subscriber_id == subscribers.c.id))
        if search:
            escaped = (search.lower().replace("\\", "\\\\").replace("%", "\\%")
                       .replace("_", "\\_"))
            pattern = f"%{escaped}%"
            query = query.where(or_(subscribers.c.email_normalized.like(pattern, escape="\\"),
                                    func.lower(subscribers.c.name).like(pattern, escape="\\")))
        return query

    def count(self, status: SubscriberStatus | None = None, list_name: str | None = None) -> int:
        with self.engine.begin() as connection:
            query = self._filtered(select(func.count()).select_from(subscribers), connection,
                                   status, list_name)
            return int(connection.execute(query).scalar_one())

    def iter_subscribers(self, status: SubscriberStatus | None = None,
                         list_name: str | None = None, search: str | None = None,
                         batch_size: int = 1000, with_lists: bool = False,
                         ) -> Iterator[Subscriber]:
        """Subscribers by id, fetched in batches (keyset pagination: constant memory)."""
        last_id = 0
        while True:
            with self.engine.begin() as connection:
                query = self._filtered(select(subscribers).where(subscribers.c.id > last_id),
                                       connection, status, list_name, search)
                rows = connection.execute(query.order_by(subscribers.c.id)
                                          .limit(batch_size)).all()
                names = self._lists_by_subscriber(connection, [row.id for row in rows]) \
                    if with_lists else {}
            if not rows:
                return
            for row in rows:
                yield _subscriber(row, names.get(row.id, ()))
            last_id = rows[-1].id

    def _lists_by_subscriber(self, connection: Connection, ids: list[int],
                             ) -> dict[int, tuple[str, ...]]:
        found: dict[int, list[str]] = {}
        query = (select(memberships.c.subscriber_id, lists.c.name)
                 .join(lists, lists.c.id == memberships.c.list_id)
                 .where(memberships.c.subscriber_id.in_(ids)).order_by(lists.c.name))
        for row in connection.execute(query):
            found.setdefault(row.subscriber_id, []).append(row.name)
        return {key: tuple(value) for key, value in found.items()}

    def iter_recipients(self, list_name: str | None = None,
                        batch_size: int = 1000) -> Iterator[Recipient]:
        """The audience of a list, streamed: what a send snapshots into its ledger."""
        last_id = 0
        while True:
            with self.engine.begin() as connection:
                list_id = self.list_id(connection, list_name)
                query = (select(subscribers.c.id, subscribers.c.email, subscribers.c.name,
                                subscribers.c.token, subscribers.c.language)
                         .join(memberships, and_(memberships.c.subscriber_id == subscribers.c.id,
                                                 memberships.c.list_id == list_id))
                         .where(subscribers.c.id > last_id, _deliverable_condition())
                         .order_by(subscribers.c.id).limit(batch_size))
                rows = connection.execute(query).all()
            if not rows:
                return
            for row in rows:
                yield Recipient(subscriber_id=row.id, email=row.email, name=clean_name(row.name),
                                token=row.token, language=row.language)
            last_id = rows[-1].id

    def audience(self, connection: Connection, after: int, limit: int,
                 list_name: str | None = None) -> tuple[Select[Any], SqlFunctions]:
        """The next `limit` readers of the list with an id above `after`, in id order, as a
        statement for the database to run itself (a send's snapshot on SQLite copies them
        into its ledger with one INSERT … SELECT): what iter_recipients reads, the name
        cleaned the same way, as columns subscriber_id, email, name, token, language. With
        the SQL functions it calls, for the caller to register on the connection while it
        runs (name → arity, function, deterministic): clean_name as ainews_clean_name."""
        assert connection.dialect.name == "sqlite", "SQLite only"
        list_id = self.list_id(connection, list_name)
        statement = (select(subscribers.c.id.label("subscriber_id"), subscribers.c.email,
                            func.ainews_clean_name(subscribers.c.name).label("name"),
                            subscribers.c.token, subscribers.c.language)
                     .join(memberships, and_(memberships.c.subscriber_id == subscribers.c.id,
                                             memberships.c.list_id == list_id))
                     .where(subscribers.c.id > after, _deliverable_condition())
                     .order_by(subscribers.c.id).limit(limit))
        return statement, {"ainews_clean_name": (1, clean_name, True)}

    def count_test_addresses(self) -> int:
        """Active subscribers under .test: left from staging, they must not get a real
        issue once [subscribers] allow_test_domains is off (the lint gate says so)."""
        under_test = or_(subscribers.c.email_normalized.like("%.test"),
                         subscribers.c.email_normalized.like("%@test"))
        with self.engine.connect() as connection:
            return int(connection.execute(
                select(func.count()).select_from(subscribers)
                .where(subscribers.c.status == SubscriberStatus.ACTIVE.value, under_test))
                .scalar_one())

    def count_recipients(self, list_name: str | None = None) -> int:
        with self.engine.begin() as connection:
            list_id = self.list_id(connection, list_name)
            query = (select(func.count()).select_from(subscribers)
                     .join(memberships, and_(memberships.c.subscriber_id == subscribers.c.id,
                                             memberships.c.list_id == list_id))
                     .where(_deliverable_condition()))
            return int(connection.execute(query).scalar_one())

    def count_recipients_by_language(self, list_name: str | None = None,
                                     ) -> dict[str | None, int]:
        """The audience of a list by the language each reader chose (None: none)."""
        with self.engine.begin() as connection:
            list_id = self.list_id(connection, list_name)
            query = (select(subscribers.c.language, func.count()).select_from(subscribers)
                     .join(memberships, and_(memberships.c.subscriber_id == subscribers.c.id,
                                             memberships.c.list_id == list_id))
                     .where(_deliverable_condition()).group_by(subscribers.c.language))
            return {language: int(count)
                    for language, count in connection.execute(query).all()}


def _deliverable_condition() -> Any:
    """Active and not on the suppression list."""
    return and_(subscribers.c.status == SubscriberStatus.ACTIVE.value,
                ~exists().where(suppressions.c.email_normalized
                                == subscribers.c.email_normalized))


def deliverable_subscriber(subscriber_id: ColumnElement[int]) -> ColumnElement[bool]:
    """A condition for another table's statement (the ledger's claim): the subscriber with
    this id may be sent to."""
    return exists().where(subscribers.c.id == subscriber_id, _deliverable_condition())


def holds_address(subscriber_id: ColumnElement[int], normalized: str) -> ColumnElement[bool]:
    """A condition for another table's statement: the subscriber with this id still has
    this (normalized) address. SQLite hands a deleted highest id to the next reader."""
    return exists().where(subscribers.c.id == subscriber_id,
                          subscribers.c.email_normalized == normalized)


def deliverable_reader(subscriber_id: ColumnElement[int]) -> Select[tuple[int]]:
    """PostgreSQL, for the ledger's claim: the subscriber with this id, if they may be sent
    to, locked FOR SHARE until the claim commits, so an unsubscribe (an UPDATE of that row)
    lands either before the check or after the claim (see `LedgerWriter`)."""
    return (select(subscribers.c.id)
            .where(subscribers.c.id == subscriber_id, _deliverable_condition())
            .with_for_update(read=True, of=subscribers))


def still_listed(connection: Connection, ids: Sequence[int]) -> set[tuple[int, str]]:
    """Which of these readers are still on the list, as (id, address): asked by a writer of
    queued rows in its own transaction (delivery/unlisted.py says why). On PostgreSQL the
    rows are locked FOR KEY SHARE until that transaction ends, so an erase (a DELETE) waits
    for it or is waited for; in id order, and not FOR SHARE, which would also block every
    UPDATE of a reader (an import, an unsubscribe) and could deadlock with one."""
    if not ids:
        return set()
    query = (select(subscribers.c.id, subscribers.c.email).where(subscribers.c.id.in_(ids))
             .order_by(subscribers.c.id))
    if connection.dialect.name == "postgresql":
        query = query.with_for_update(read=True, key_share=True)
    return {(row.id, row.email) for row in connection.execute(query)}

