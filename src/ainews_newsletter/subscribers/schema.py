"""Tables of the subscribers room (SQLAlchemy Core)."""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table, Text

from ainews_newsletter.database import UTCDateTime

metadata = MetaData()

subscribers = Table(
    "subscribers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), nullable=False),  # as the subscriber typed it
    Column("email_normalized", String(320), nullable=False, unique=True),
    Column("name", Text, nullable=True),
    Column("status", String(16), nullable=False, index=True),
    Column("token", String(64), nullable=False, unique=True),
    Column("source", String(64), nullable=True),  # cli, import:<file>, web
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("unsubscribed_at", UTCDateTime(), nullable=True),
)
