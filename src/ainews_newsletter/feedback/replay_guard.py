"""Tokens a provider's signed request carries once (Mailgun's `token`): a request whose
token was seen before is a replay, refused even though its signature is good. Each token is
kept for a day, far past the signature's accepted age, then pruned."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Column, Engine, Index, String, Table, delete, select
from sqlalchemy.exc import IntegrityError

from ainews_newsletter.database import UTCDateTime, ensure_schema
from ainews_newsletter.feedback.events import metadata  # one schema for the feedback room

webhook_tokens = Table(
    "webhook_tokens",
    metadata,
    Column("token", String(200), primary_key=True),  # "<provider>:<token>"
    Column("seen_at", UTCDateTime(), nullable=False),
    Index("ix_webhook_tokens_seen", "seen_at"),
)

KEEP = timedelta(days=1)


def token_seen(engine: Engine, provider: str, token: str) -> bool:
    """Whether a request with this token was handled already (a replay)."""
    ensure_schema(engine)
    with engine.connect() as connection:
        return connection.execute(select(webhook_tokens.c.token).where(
            webhook_tokens.c.token == _key(provider, token))).first() is not None


def _key(provider: str, token: str) -> str:
    return f"{provider}:{token}"[:200]


def remember_token(engine: Engine, provider: str, token: str, now: datetime) -> bool:
    """Store the token once its request's events are stored (so a request that failed on the
    way, answered 503, is accepted when the provider retries it); False when it was stored
    before, by a copy of the request handled at the same moment."""
    ensure_schema(engine)
    key = _key(provider, token)
    try:
        with engine.begin() as connection:
            connection.execute(webhook_tokens.insert().values(token=key, seen_at=now))
    except IntegrityError:
        return False
    with engine.begin() as connection:
        connection.execute(delete(webhook_tokens).where(webhook_tokens.c.seen_at < now - KEEP))
    return True
