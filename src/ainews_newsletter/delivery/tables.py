"""The ledger's tables (SQLAlchemy Core): one frozen issue row per (list, period), the posts
each issue carried, and one delivery row per (issue, subscriber). The migrations in
migrations/versions build them; tests/test_migrations.py checks the two agree."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from ainews_newsletter.database import UTCDateTime

metadata = MetaData()

issues = Table(
    "issues",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("list_id", String(255), nullable=False),
    Column("period_key", String(64), nullable=False),
    Column("period_start", UTCDateTime(), nullable=False),
    Column("period_end", UTCDateTime(), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("subject", Text, nullable=False),
    Column("preheader", Text, nullable=False),
    Column("html", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("unsubscribe_placeholder", String(255), nullable=False),
    Column("post_count", Integer, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("snapshot_at", UTCDateTime(), nullable=True),  # set once the audience is copied
    # The language of html/text/subject above; NULL on issues from before 0010 (English).
    Column("language", String(35), nullable=True),
    # One issue per list and period, enforced by the database, not by a process.
    UniqueConstraint("list_id", "period_key", name="uq_issue_list_period"),
)

# An issue rendered once more per further language of its audience (issue 30): never per
# reader. The issue row holds the rendering in its own language.
issue_renderings = Table(
    "issue_renderings",
    metadata,
    Column("issue_id", Integer, ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True),
    Column("language", String(35), primary_key=True),
    Column("subject", Text, nullable=False),
    Column("preheader", Text, nullable=False),
    Column("html", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("unsubscribe_placeholder", String(255), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

# The posts each issue carried, so a later issue never carries them again.
issue_posts = Table(
    "issue_posts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("issue_id", Integer, ForeignKey("issues.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("guid", Text, nullable=True),
    Column("url", Text, nullable=False),  # canonical form
    Column("title", Text, nullable=False),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("issue_id", Integer, ForeignKey("issues.id", ondelete="CASCADE"), nullable=False),
    # A snapshot of the recipient: the subscriber row may change or vanish after the send.
    Column("subscriber_id", Integer, nullable=False),
    Column("email", String(320), nullable=False),
    Column("name", Text, nullable=True),
    Column("token", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime(), nullable=True),
    Column("last_code", Integer, nullable=True),
    Column("last_reply", Text, nullable=True),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("sent_at", UTCDateTime(), nullable=True),
    # The VERP tag in this message's return path (bounces+<tag>@…): random, so a bounce
    # names its delivery without revealing who it was for. NULL on rows from before 0004.
    Column("return_tag", String(32), nullable=True),
    # The relay's id for the message, from its 250 reply ("Ok: queued as …"): what a
    # provider's webhook event names it by. NULL: not sent, or the relay gave none.
    Column("provider_message_id", String(255), nullable=True),
    # The reader's part of the Message-ID (message.message_digest): an event quoting our
    # Message-ID finds the row by it. NULL on rows from before 0007.
    Column("message_digest", String(24), nullable=True),
    # The reader's language when the audience was copied: which rendering they get. NULL:
    # the issue's own (rows from before 0010, readers without a language).
    Column("language", String(35), nullable=True),
    # Which of [[smtp.relays]] took or refused the message last (its name); NULL: the one
    # [smtp] relay, or not answered yet (migration 0011).
    Column("relay", String(255), nullable=True),
    UniqueConstraint("issue_id", "subscriber_id", name="uq_delivery_issue_subscriber"),
    UniqueConstraint("return_tag", name="uq_delivery_return_tag"),
    Index("ix_delivery_issue_state_id", "issue_id", "state", "id"),
    # A bounce that names only its recipient is matched through the subscriber.
    Index("ix_delivery_subscriber", "subscriber_id"),
    Index("ix_delivery_provider_message_id", "provider_message_id"),
    Index("ix_delivery_message_digest", "message_digest"),
)

# Click tracking ([tracking] clicks, opt-in): the links an issue carried, numbered, so a
# click token names (delivery, position) and never a URL from the request.
issue_links = Table(
    "issue_links",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("issue_id", Integer, ForeignKey("issues.id", ondelete="CASCADE"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("url", Text, nullable=False),
    UniqueConstraint("issue_id", "position", name="uq_issue_link_position"),
)

clicks = Table(
    "clicks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("issue_id", Integer, nullable=False),
    Column("delivery_id", Integer, nullable=False),
    Column("position", Integer, nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    # A security scanner's fetch (HEAD, or a burst over many links right after delivery):
    # counted apart from people's.
    Column("scanner", Boolean, nullable=False),
    Index("ix_clicks_issue_position", "issue_id", "position"),
    Index("ix_clicks_delivery", "delivery_id"),
)

# The welcome mail ([subscribers] welcome): its own kind of delivery, one per reader and
# never an issue's (not in the archive, the feed, issue reports or `send --resume`). The
# unique subscriber_id is what makes it go once: a row is queued right after the
# confirmation commits (not in its transaction) and sent; a crash in between is covered by
# the catch-up (pipeline/welcome.py), and a row left queued or claimed goes at the next
# `serve` start or scheduler round.
welcomes = Table(
    "welcomes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("subscriber_id", Integer, nullable=False),
    Column("email", String(320), nullable=False),  # a snapshot, as in deliveries
    Column("name", Text, nullable=True),
    Column("state", String(16), nullable=False),  # queued, sending, sent, failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime(), nullable=True),
    Column("last_code", Integer, nullable=True),
    Column("last_reply", Text, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("sent_at", UTCDateTime(), nullable=True),
    Column("return_tag", String(32), nullable=True),
    Column("provider_message_id", String(255), nullable=True),
    UniqueConstraint("subscriber_id", name="uq_welcome_subscriber"),
    UniqueConstraint("return_tag", name="uq_welcome_return_tag"),
    Index("ix_welcome_state", "state"),
)
