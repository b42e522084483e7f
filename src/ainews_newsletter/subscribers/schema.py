"""Tables of the subscribers room (SQLAlchemy Core). The migrations in migrations/versions
build them; tests/test_migrations.py checks the two agree."""

from __future__ import annotations

from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, MetaData, String, Table, Text

from ainews_newsletter.database import UTCDateTime

metadata = MetaData()

subscribers = Table(
    "subscribers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), nullable=False),  # as given (ASCII form of an IDN domain)
    Column("email_normalized", String(320), nullable=False, unique=True),
    Column("name", Text, nullable=True),
    Column("status", String(16), nullable=False, index=True),
    Column("attributes", JSON, nullable=True),
    Column("token", String(64), nullable=False, unique=True),
    Column("source", String(64), nullable=True),  # cli, import:<file>, web, demo
    # Unused since 0004 (feedback events are counted instead); kept because dropping it
    # rebuilds the table on SQLite, and that DROP TABLE cascades into the memberships.
    Column("hard_bounces", Integer, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("confirmed_at", UTCDateTime(), nullable=True),
    Column("unsubscribed_at", UTCDateTime(), nullable=True),
    # The reader's own language (a BCP 47 tag); NULL: the newsletter's ([newsletter] language).
    Column("language", String(35), nullable=True),
)

lists = Table(
    "lists",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("description", Text, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
)

memberships = Table(
    "memberships",
    metadata,
    Column("list_id", Integer, ForeignKey("lists.id", ondelete="CASCADE"), primary_key=True),
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"),
           primary_key=True, index=True),
    Column("created_at", UTCDateTime(), nullable=False),
)

# Addresses never to send to. Keyed by address, not by subscriber, so it survives `remove`.
suppressions = Table(
    "suppressions",
    metadata,
    Column("email_normalized", String(320), primary_key=True),
    Column("reason", String(32), nullable=False),  # unsubscribed, bounced, complained, manual
    Column("created_at", UTCDateTime(), nullable=False),
)

# Every change of a subscriber, for reports (growth per week, unsubscribes per issue). No
# foreign key: the history outlives a removed row ("removed" is itself an event).
subscriber_events = Table(
    "subscriber_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("subscriber_id", Integer, nullable=False),
    # joined, confirmed, unsubscribed, bounced, complained, resubscribed, removed
    Column("kind", String(16), nullable=False),
    # cli, import, web, one-click, bounce, complaint, demo, backfill (from 0005's columns)
    Column("source", String(32), nullable=False),
    Column("issue_id", Integer, nullable=True),  # the issue it is attributed to, if any
    Column("at", UTCDateTime(), nullable=False),
    Index("ix_subscriber_events_kind_at", "kind", "at"),
    Index("ix_subscriber_events_subscriber", "subscriber_id"),
    Index("ix_subscriber_events_issue", "issue_id", "kind"),
)

# Confirmation mails sent, one row each, so `[web] confirmations_per_address_per_day` holds
# across restarts and processes: counted per mailbox (plus-tags dropped: web/security.py
# mailbox_key) over the last day; rows older than a day are pruned as new ones come.
confirmation_mails = Table(
    "confirmation_mails",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("mailbox", String(320), nullable=False),
    Column("sent_at", UTCDateTime(), nullable=False),
    Index("ix_confirmation_mails_mailbox_sent", "mailbox", "sent_at"),
    Index("ix_confirmation_mails_sent", "sent_at"),
)

# How each reader agreed (issue 29: proof of consent), one row per subscriber, deleted with
# the row. `how`: web, import, cli, demo; `source`: the form's page or origin, the import's
# file and detected format, …; `ip`: as [privacy] store_ip keeps it; `consent_text`: a
# version or hash of the words the form showed. Rows that existed before 0009 carry
# how = "before-records" and what the subscriber row knew.
consents = Table(
    "consents",
    metadata,
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"),
           primary_key=True),
    Column("how", String(16), nullable=False),
    Column("source", Text, nullable=True),
    Column("ip", String(64), nullable=True),
    Column("user_agent", Text, nullable=True),
    Column("consent_text", String(128), nullable=True),
    Column("given_at", UTCDateTime(), nullable=False),
    Column("confirmed_at", UTCDateTime(), nullable=True),
)
