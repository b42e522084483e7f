"""Finding the delivery a bounce or complaint is about: by the VERP tag of its return path
(or of a provider's metadata header), by the relay's id for the message, by the unsubscribe
token and Message-ID of the returned copy, or by the address it was sent to. Only messages
that really left count (state sent, or failed after a server's answer): a forged report
about an address we never mailed matches nothing. A welcome (welcome_mail.py) is found too,
by its tag or the relay's id, as a delivery of no issue: a reader whose first mail from us
bounces or is reported as spam is treated like any other."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from ainews_newsletter.config import NewsletterConfig
from ainews_newsletter.database import ensure_schema
from ainews_newsletter.delivery.message import message_id
from ainews_newsletter.delivery.tables import deliveries, issues, welcomes
from ainews_newsletter.delivery.welcome_mail import MESSAGE_KEY as WELCOME_KEY
from ainews_newsletter.models import DeliveryState

# Keys per query of the batch lookups: bounded IN lists on both databases.
CHUNK = 500
# Our Message-ID without its <> (message.message_id): the digest names the reader.
_OUR_MESSAGE_ID = re.compile(r"[a-z0-9-]+\.([0-9a-f]{24})@[^@\s]+")

# A message that reached a server: sent, or refused by it (a DSN may follow a 250 from a
# relay, and a refusal recorded failed can also come back as a DSN from a relay).
_REACHED = (DeliveryState.SENT.value, DeliveryState.FAILED.value)


@dataclass(frozen=True)
class SentDelivery:
    id: int | None  # None: a welcome (its own ledger, not a delivery of an issue)
    issue_id: int | None
    issue_key: str  # WELCOME_KEY for a welcome
    subscriber_id: int
    email: str
    sent_at: datetime | None
    tagged: bool  # it left with a VERP return path: a genuine bounce names its tag


_COLUMNS = (deliveries.c.id, deliveries.c.issue_id, issues.c.period_key,
            deliveries.c.subscriber_id, deliveries.c.email, deliveries.c.sent_at,
            deliveries.c.return_tag)


def _sent(row: Any) -> SentDelivery:
    return SentDelivery(id=row.id, issue_id=row.issue_id, issue_key=row.period_key,
                        subscriber_id=row.subscriber_id, email=row.email, sent_at=row.sent_at,
                        tagged=row.return_tag is not None)


_WELCOME_COLUMNS = (welcomes.c.subscriber_id, welcomes.c.email, welcomes.c.sent_at,
                    welcomes.c.return_tag)


def _welcome(row: Any) -> SentDelivery:
    return SentDelivery(id=None, issue_id=None, issue_key=WELCOME_KEY,
                        subscriber_id=row.subscriber_id, email=row.email, sent_at=row.sent_at,
                        tagged=row.return_tag is not None)


class DeliveryLookup:
    def __init__(self, engine: Engine, newsletter: NewsletterConfig) -> None:
        ensure_schema(engine)
        self.engine = engine
        self.newsletter = newsletter

    def _query(self) -> Any:
        # Every list in the database: tags and tokens are unique, and a reader who left
        # one list by bouncing has a dead address for all of them.
        return (select(*_COLUMNS).join(issues, issues.c.id == deliveries.c.issue_id)
                .where(deliveries.c.state.in_(_REACHED)))

    def by_tag(self, tag: str) -> SentDelivery | None:
        with self.engine.connect() as connection:
            row = connection.execute(self._query()
                                     .where(deliveries.c.return_tag == tag)).first()
        return _sent(row) if row is not None else self.by_tags([tag]).get(tag)

    def _welcomes_by(self, column: Any, keys: list[str]) -> dict[Any, SentDelivery]:
        """Welcomes that left (state sent) whose `column` is one of `keys`, by that value."""
        found: dict[Any, SentDelivery] = {}
        with self.engine.connect() as connection:
            for start in range(0, len(keys), CHUNK):
                query = (select(*_WELCOME_COLUMNS, column)
                         .where(welcomes.c.state == DeliveryState.SENT.value,
                                column.in_(keys[start:start + CHUNK])))
                for row in connection.execute(query):
                    found[row[-1]] = _welcome(row)
        return found

    def _by_column(self, column: Any, keys: Iterable[str]) -> dict[Any, SentDelivery]:
        """Deliveries whose `column` is one of `keys`, by that value: one indexed query per
        chunk of keys (a webhook body may name thousands)."""
        wanted = list(dict.fromkeys(key for key in keys if key))
        found: dict[Any, SentDelivery] = {}
        with self.engine.connect() as connection:
            for start in range(0, len(wanted), CHUNK):
                query = self._query().add_columns(column).where(
                    column.in_(wanted[start:start + CHUNK]))
                for row in connection.execute(query.order_by(deliveries.c.id)):
                    found[row[-1]] = _sent(row)  # the newest wins, should a key repeat
        return found

    def by_tags(self, tags: Iterable[str]) -> dict[str, SentDelivery]:
        """The deliveries (and welcomes) whose return tag is one of `tags` (a provider's
        metadata header brings it back), by tag."""
        return self._with_welcomes(deliveries.c.return_tag, welcomes.c.return_tag, tags)

    def by_provider_message_ids(self, ids: Iterable[str]) -> dict[str, SentDelivery]:
        """The deliveries (and welcomes) the relay accepted under one of `ids`
        (provider_ids.py), by id."""
        return self._with_welcomes(deliveries.c.provider_message_id,
                                   welcomes.c.provider_message_id, ids)

    def _with_welcomes(self, column: Any, welcome_column: Any,
                       keys: Iterable[str]) -> dict[str, SentDelivery]:
        wanted = list(dict.fromkeys(key for key in keys if key))
        found = self._by_column(column, wanted)
        missing = [key for key in wanted if key not in found]
        if missing:
            found.update(self._welcomes_by(welcome_column, missing))
        return found

    def by_message_ids(self, message_ids: Iterable[str]) -> dict[str, SentDelivery]:
        """The deliveries whose Message-ID (with or without its <>) is one of `message_ids`,
        by the Message-ID as given: found through the reader's digest in it, then checked
        whole (list, issue and domain). Rows from before 0007 keep no digest: not found."""
        by_digest: dict[str, list[str]] = {}
        for given in message_ids:
            found = _OUR_MESSAGE_ID.fullmatch(given.strip().strip("<>").lower())
            if found is not None:
                by_digest.setdefault(found.group(1), []).append(given)
        result: dict[str, SentDelivery] = {}
        for digest, delivery in self._by_column(deliveries.c.message_digest,
                                                by_digest).items():
            ours = self.message_id_of(delivery)
            for given in by_digest[digest]:
                if f"<{given.strip().strip('<>')}>".lower() == ours.lower():
                    result[given] = delivery
        return result

    def by_token(self, token: str, message_ids: tuple[str, ...]) -> SentDelivery | None:
        """The delivery whose unsubscribe token the returned copy carries: the one whose
        Message-ID it also carries, else the newest to that subscriber."""
        with self.engine.connect() as connection:
            rows = connection.execute(self._query().where(deliveries.c.token == token)
                                      .order_by(deliveries.c.id.desc()).limit(100)).all()
        found = [_sent(row) for row in rows]
        for candidate in found:
            if self.message_id_of(candidate) in message_ids:
                return candidate
        return found[0] if found else None

    def to_subscriber(self, subscriber_id: int, email_normalized: str,
                      message_ids: tuple[str, ...], since: datetime) -> SentDelivery | None:
        """A delivery to this subscriber whose Message-ID the report carries, else the
        newest one sent since `since`. Only deliveries to the same address: SQLite hands a
        removed subscriber's id to the next one, whose deliveries these are not."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                self._query().where(deliveries.c.subscriber_id == subscriber_id)
                .order_by(deliveries.c.id.desc()).limit(100)).all()
        found = [_sent(row) for row in rows if row.email.lower() == email_normalized]
        for candidate in found:
            if self.message_id_of(candidate) in message_ids:
                return candidate
        for candidate in found:
            if candidate.sent_at is not None and candidate.sent_at >= since:
                return candidate
        return None

    def message_id_of(self, delivery: SentDelivery) -> str:
        return message_id(self.newsletter, delivery.issue_key, delivery.subscriber_id)


def tokens_in(urls: tuple[str, ...], newsletter: NewsletterConfig) -> list[str]:
    """Unsubscribe tokens in the List-Unsubscribe URLs of a returned copy, read back the way
    delivery/message.py writes them (…/unsubscribe/<token>, mailto:…?subject=unsubscribe
    <token>); links to other sites are ignored."""
    from urllib.parse import parse_qs, unquote, urlsplit

    found: list[str] = []
    prefix = f"{newsletter.base_url}/unsubscribe/"
    for url in urls:
        url = url.strip().strip("<>")
        if url.startswith(prefix):
            found.append(unquote(url[len(prefix):].split("?", 1)[0].split("/", 1)[0]))
        elif url.lower().startswith("mailto:"):
            subject = parse_qs(urlsplit(url).query).get("subject", [""])[0]
            words = subject.split()
            if len(words) == 2 and words[0].lower() == "unsubscribe":
                found.append(words[1])
    return [token for token in found if token]
