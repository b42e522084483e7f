"""A reader with something stored in every table that can hold them (for the erase tests):
a delivery whose server reply quotes the address, a bounce naming it in its diagnostic and
source, clicks, a welcome mail, a consent record, history, a suppression, a confirmation
mail; and another reader who must come through the erase untouched."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import Engine, delete, insert
from sqlalchemy.engine import make_url

from ainews_newsletter import clock
from ainews_newsletter.config import Config
from ainews_newsletter.database import engine_for, ensure_schema, sqlite_path
from ainews_newsletter.delivery.tables import clicks, deliveries, issues, welcomes
from ainews_newsletter.feedback.events import feedback_events
from ainews_newsletter.subscribers.schema import confirmation_mails, consents
from ainews_newsletter.subscribers.store import SubscriberStore

KEY = "erase-tests-secret-key-0123456789"
ADDRESS = "Zelda.Quirkworth+news@example.com"
NAME = "Zelphinia Quirkworth"
OTHER = "ordinary.reader@example.com"
OTHER_NAME = "Ordinary Reader"


@dataclass(frozen=True)
class Seeded:
    person: int
    other: int
    issue: int


def seed(engine: Engine, unsubscribe: bool = True) -> Seeded:
    ensure_schema(engine)
    store = SubscriberStore(engine)
    person = store.add(ADDRESS, name=NAME)
    other = store.add(OTHER, name=OTHER_NAME)
    now = clock.now()
    with engine.begin() as connection:
        for subscriber_id, who, name in ((person.id, ADDRESS, NAME), (other.id, OTHER, OTHER_NAME)):
            connection.execute(delete(consents).where(consents.c.subscriber_id == subscriber_id))
            connection.execute(insert(consents).values(
                subscriber_id=subscriber_id, how="web", source=f"https://example.org/?ref={who}",
                ip="192.0.2.0", user_agent=f"Mail for {name}", consent_text="v1",
                given_at=now, confirmed_at=now))
        issue = connection.execute(insert(issues).values(
            list_id="newsletter", period_key="2026-W47", period_start=now - timedelta(days=7),
            period_end=now, timezone="UTC", subject="AI news", preheader="p", html="<p>h</p>",
            text="t", unsubscribe_placeholder="{{unsubscribe}}", post_count=1,
            created_at=now, snapshot_at=now)).inserted_primary_key[0]
        mine = connection.execute(insert(deliveries).values(
            issue_id=issue, subscriber_id=person.id, email=ADDRESS, name=NAME,
            token=person.token, state="sent", attempts=1, last_code=250,
            last_reply=f"250 2.0.0 Ok: queued for <{ADDRESS.lower()}> ({NAME})",
            updated_at=now, sent_at=now, return_tag="tagperson")).inserted_primary_key[0]
        theirs = connection.execute(insert(deliveries).values(
            issue_id=issue, subscriber_id=other.id, email=OTHER, name=OTHER_NAME,
            token=other.token, state="sent", attempts=1, last_code=250,
            last_reply="250 2.0.0 Ok", updated_at=now, sent_at=now,
            return_tag="tagother")).inserted_primary_key[0]
        for delivery_id in (mine, theirs):
            connection.execute(insert(clicks).values(issue_id=issue, delivery_id=delivery_id,
                                                     position=1, at=now, scanner=False))
        connection.execute(insert(welcomes).values(
            subscriber_id=person.id, email=ADDRESS, name=NAME, state="failed", attempts=1,
            last_code=550, last_reply=f"550 5.1.1 {ADDRESS.upper()} unknown", created_at=now,
            updated_at=now))
        local = ADDRESS.split("@")[0]
        connection.execute(insert(feedback_events).values(
            dedup_key="event-person", received_at=now, kind="soft", email=ADDRESS,
            status="5.2.2", action="failed",
            diagnostic=f"smtp; 552 5.2.2 {quote(ADDRESS)}: mailbox of {local} ({NAME}) full",
            source=f"/var/mail/returned/{ADDRESS}.eml", matched_by="tag",
            delivery_id=mine, issue_id=issue, subscriber_id=person.id, sent_at=now,
            effect="counted"))
        connection.execute(insert(feedback_events).values(
            dedup_key="event-other", received_at=now, kind="soft", email=OTHER,
            status="5.2.2", action="failed", diagnostic=f"552 5.2.2 {OTHER} mailbox full",
            source="imap:INBOX", matched_by="tag", delivery_id=theirs, issue_id=issue,
            subscriber_id=other.id, sent_at=now, effect="counted"))
        connection.execute(insert(confirmation_mails).values(
            mailbox=ADDRESS.lower().replace("+news", ""), sent_at=now))
    if unsubscribe:
        store.unsubscribe(ADDRESS)  # a history event and a suppression of the address
    return Seeded(person.id, other.id, int(issue))


def an_issue(engine: Engine, period: str = "2026-W48") -> int:
    """An issue to hang deliveries on."""
    ensure_schema(engine)
    now = clock.now()
    with engine.begin() as connection:
        return int(connection.execute(insert(issues).values(
            list_id="newsletter", period_key=period, period_start=now - timedelta(days=7),
            period_end=now, timezone="UTC", subject="AI news", preheader="p", html="<p>h</p>",
            text="t", unsubscribe_placeholder="{{unsubscribe}}", post_count=1,
            created_at=now, snapshot_at=now)).inserted_primary_key[0])


def a_delivery(engine: Engine, issue: int, subscriber_id: int, email: str, state: str,
               reply: str | None = None) -> int:
    now = clock.now()
    with engine.begin() as connection:
        return int(connection.execute(insert(deliveries).values(
            issue_id=issue, subscriber_id=subscriber_id, email=email, name=None,
            token=f"token-{subscriber_id}-{state}", state=state, attempts=0,
            last_reply=reply, updated_at=now,
            return_tag=f"tag{subscriber_id}{state}")).inserted_primary_key[0])


def _forms(*words: str) -> list[bytes]:
    """Every way the bytes of `words` may sit in a file: UTF-8 and UTF-16 (both orders), as
    typed, lower and upper case."""
    found = []
    for word in words:
        for variant in {word, word.lower(), word.upper()}:
            for encoding in ("utf-8", "utf-16-le", "utf-16-be"):
                found.append(variant.encode(encoding))
    return found


def hits(data: bytes, *words: str) -> list[bytes]:
    lowered = data.lower()
    return [form for form in _forms(*words) if form in data or form.lower() in lowered]


def database_bytes(config: Config) -> bytes:
    """SQLite: the file and its WAL after a checkpoint; PostgreSQL: a pg_dump's text."""
    engine = engine_for(config.database_url)
    path = sqlite_path(config.database_url)
    if path is not None:
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        engine.dispose()
        wal = path.with_name(path.name + "-wal")
        return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    url = make_url(config.database_url)
    binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_dump"))
    assert binaries, "pg_dump is missing"
    dumped = subprocess.run(
        [str(binaries[-1]), "-h", str(url.query["host"]), "-p", str(url.query["port"]),
         "-U", str(url.username), "-d", str(url.database), "--no-owner"],
        check=True, capture_output=True)
    return dumped.stdout
