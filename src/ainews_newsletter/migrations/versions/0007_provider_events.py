"""Hearing relay providers' webhooks: per delivery, the relay's id for the message (from its
250 reply; what a provider's events name it by) and the reader's part of our Message-ID
(an event quoting the Message-ID finds its row), both indexed; per feedback event, the
provider that reported it (NULL: a bounce or complaint that came by mail); and the tokens
of signed webhook requests already seen (Mailgun's: a replayed request is refused). Plain ADD
COLUMNs, nullable, and one new table: no table is rebuilt, on SQLite either.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ainews_newsletter.migrations.online import create_index_concurrently, on_postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if on_postgresql():  # the ledger's indexes without blocking its writers (online.py)
        with op.get_context().autocommit_block():
            op.execute("ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS provider_message_id "
                       "VARCHAR(255)")
            op.execute("ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS message_digest "
                       "VARCHAR(24)")
            create_index_concurrently("ix_delivery_provider_message_id", "deliveries",
                                      ["provider_message_id"])
            create_index_concurrently("ix_delivery_message_digest", "deliveries",
                                      ["message_digest"])
    else:
        op.add_column("deliveries", sa.Column("provider_message_id", sa.String(255),
                                              nullable=True))
        op.add_column("deliveries", sa.Column("message_digest", sa.String(24), nullable=True))
        op.create_index("ix_delivery_provider_message_id", "deliveries",
                        ["provider_message_id"])
        op.create_index("ix_delivery_message_digest", "deliveries", ["message_digest"])
    op.add_column("feedback_events", sa.Column("provider", sa.String(16), nullable=True))
    op.add_column("feedback_events", sa.Column("reported_at", sa.String(64), nullable=True))
    op.create_table("webhook_tokens",
                    sa.Column("token", sa.String(200), primary_key=True),
                    sa.Column("seen_at", sa.DateTime, nullable=False))
    op.create_index("ix_webhook_tokens_seen", "webhook_tokens", ["seen_at"])


def downgrade() -> None:
    op.drop_index("ix_webhook_tokens_seen", table_name="webhook_tokens")
    op.drop_table("webhook_tokens")
    with op.batch_alter_table("feedback_events") as batch:
        batch.drop_column("reported_at")
        batch.drop_column("provider")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_index("ix_delivery_message_digest")
        batch.drop_index("ix_delivery_provider_message_id")
        batch.drop_column("message_digest")
        batch.drop_column("provider_message_id")
