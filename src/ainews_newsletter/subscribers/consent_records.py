"""Proof of consent (issue 29): one record per subscriber of how and when they agreed — the
way in ("web", "import", "cli", "demo"; "before-records" for rows older than the records),
where (our page, /embed, another site's origin, the imported file and its format), the IP
address as [privacy] store_ip keeps it, optionally the user agent, a hash of the consent
wording the form showed, and when the sign-up was confirmed.

A new sign-up of a subscriber who has a record replaces it (the latest agreement is the one
that counts); the record goes with the subscriber row (ON DELETE CASCADE)."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    case,
    func,
    literal,
    null,
    select,
    update,
)

from ainews_newsletter.models import SubscriberStatus
from ainews_newsletter.subscribers.bulk import Chosen
from ainews_newsletter.subscribers.schema import consents, subscribers

BEFORE_RECORDS = "before-records"
USER_AGENT_CHARS = 300


@dataclass(frozen=True)
class Agreement:
    """What a way in knows of a sign-up before the row exists: how, where, from what
    address and browser, and which wording was shown."""

    how: str
    source: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    consent_text: str | None = None


@dataclass(frozen=True)
class ConsentRecord:
    subscriber_id: int
    email: str
    how: str
    source: str | None
    ip: str | None
    user_agent: str | None
    consent_text: str | None
    given_at: datetime
    confirmed_at: datetime | None

    def as_record(self) -> dict[str, Any]:
        """The JSON form (`subscribers show --json`, `export --consent --format json`)."""
        return {"email": self.email, "how": self.how, "source": self.source, "ip": self.ip,
                "user_agent": self.user_agent, "consent_text": self.consent_text,
                "given_at": self.given_at.isoformat(),
                "confirmed_at": self.confirmed_at.isoformat() if self.confirmed_at else None}

    def describe(self) -> str:
        """One line for people (`subscribers show`)."""
        if self.how == BEFORE_RECORDS:
            text = f"imported before consent records (source {self.source or 'unknown'})"
        else:
            text = f"{self.how}, from {self.source or 'unknown'}"
        text += f", given {self.given_at:%Y-%m-%d %H:%M} UTC"
        text += (f", confirmed {self.confirmed_at:%Y-%m-%d %H:%M} UTC" if self.confirmed_at
                 else ", not confirmed")
        if self.ip:
            text += f", IP {self.ip}"
        if self.consent_text:
            text += f", consent text {self.consent_text}"
        return text


def kept_ip(host: str | None, store_ip: str) -> str | None:
    """The address [privacy] store_ip keeps: none; the network (/24 of IPv4, /48 of IPv6,
    e.g. "203.0.113.0/24"); or the address itself. Not an IP address (a test client's
    "testclient", a Unix socket): nothing."""
    if store_ip == "none" or not host:
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # a dual-stack socket's view of an IPv4 client
    if store_ip == "full":
        return str(address)
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def kept_user_agent(user_agent: str | None, store: bool) -> str | None:
    return user_agent[:USER_AGENT_CHARS] if store and user_agent else None


def text_hash(wording: str) -> str:
    """A short, stable name for a consent wording: the first 16 hex digits of its SHA-256,
    whitespace runs folded (re-indenting a template does not change what a reader read)."""
    folded = " ".join(wording.split())
    return hashlib.sha256(folded.encode()).hexdigest()[:16]


def _upsert(connection: Connection, row: dict[str, Any]) -> None:
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(consents).values(**row)
    connection.execute(statement.on_conflict_do_update(
        index_elements=[consents.c.subscriber_id],
        set_={name: statement.excluded[name] for name in row if name != "subscriber_id"}))


def _connection(target: Connection | Engine) -> Any:
    """A transaction of the caller's connection as it is, or one of its own on an engine."""
    return target.begin() if isinstance(target, Engine) else _Using(target)


class _Using:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def __enter__(self) -> Connection:
        return self.connection

    def __exit__(self, *_: object) -> None:
        return None


def record(target: Connection | Engine, subscriber_id: int, agreement: Agreement,
           given_at: datetime, confirmed_at: datetime | None = None) -> None:
    """Write (or replace) the subscriber's record."""
    with _connection(target) as connection:
        _upsert(connection, {
            "subscriber_id": subscriber_id, "how": agreement.how[:16],
            "source": agreement.source, "ip": agreement.ip,
            "user_agent": agreement.user_agent, "consent_text": agreement.consent_text,
            "given_at": given_at, "confirmed_at": confirmed_at})


def confirmed(target: Connection | Engine, subscriber_id: int, at: datetime) -> None:
    """The confirmation link was followed: the record's confirmation time, once (a link
    followed twice keeps the first)."""
    with _connection(target) as connection:
        connection.execute(update(consents).where(
            consents.c.subscriber_id == subscriber_id, consents.c.confirmed_at.is_(None))
            .values(confirmed_at=at))


def record_new(connection: Connection, new: Chosen, agreement: Agreement,
               at: datetime) -> None:
    """The records of a batch of new subscribers (an import): the subscriber rows `new`
    names (bulk.Chosen), one INSERT … SELECT (the database finds the ids). Those that
    arrived active are confirmed at `at`; a subscriber with a record keeps it."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    at_type = consents.c.given_at.type
    rows = new.select(subscribers.c.id, literal(agreement.how[:16]),
                      literal(agreement.source, consents.c.source.type), literal(at, at_type),
                      case((subscribers.c.status == SubscriberStatus.ACTIVE.value,
                            literal(at, at_type)), else_=null()))
    connection.execute(dialect.insert(consents).from_select(
        ["subscriber_id", "how", "source", "given_at", "confirmed_at"], rows)
        .on_conflict_do_nothing())


def _select() -> Any:
    return select(consents, subscribers.c.email).join(
        subscribers, subscribers.c.id == consents.c.subscriber_id)


def _typed(row: Any) -> ConsentRecord:
    return ConsentRecord(row.subscriber_id, row.email, row.how, row.source, row.ip,
                         row.user_agent, row.consent_text, row.given_at, row.confirmed_at)


def read(engine: Engine, subscriber_id: int) -> ConsentRecord | None:
    with engine.connect() as connection:
        row = connection.execute(_select().where(
            consents.c.subscriber_id == subscriber_id)).first()
    return None if row is None else _typed(row)


def every(engine: Engine, batch: int = 5000) -> Iterator[ConsentRecord]:
    """Every record, oldest subscriber first, read in batches (constant memory)."""
    after = 0
    while True:
        with engine.connect() as connection:
            rows = connection.execute(_select().where(consents.c.subscriber_id > after)
                                      .order_by(consents.c.subscriber_id).limit(batch)).all()
        if not rows:
            return
        for row in rows:
            yield _typed(row)
        after = rows[-1].subscriber_id


def count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(consents)).scalar()
                   or 0)

