"""The feedback loop: a VERP tag per delivery (unique, so a bounce names exactly one row), an
index on the delivery's subscriber (bounces that name only a recipient), and one row per bounce,
complaint or auto-reply event. `subscribers.hard_bounces` stays, unused: the policy counts
events now, and dropping a column rebuilds the table on SQLite, whose DROP TABLE would
cascade into every list membership.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ainews_newsletter.migrations.online import (
    add_unique_constraint_concurrently,
    create_index_concurrently,
    on_postgresql,
)

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if on_postgresql():
        # The ledger can be big: its two indexes are built without blocking the senders'
        # writes (migrations/online.py); the nullable column costs no rewrite.
        with op.get_context().autocommit_block():
            op.execute("ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS return_tag "
                       "VARCHAR(32)")
            add_unique_constraint_concurrently("uq_delivery_return_tag", "deliveries",
                                               ["return_tag"])
            create_index_concurrently("ix_delivery_subscriber", "deliveries",
                                      ["subscriber_id"])
    else:
        # SQLite cannot add a UNIQUE constraint to a table: batch mode copies the ledger
        # into a new one (BENCHMARKS.md: what that costs on a big ledger).
        with op.batch_alter_table("deliveries") as batch:
            batch.add_column(sa.Column("return_tag", sa.String(32), nullable=True))
            batch.create_unique_constraint("uq_delivery_return_tag", ["return_tag"])
            batch.create_index("ix_delivery_subscriber", ["subscriber_id"])
    op.create_table(
        "feedback_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("dedup_key", sa.String(200), nullable=False),
        sa.Column("received_at", sa.DateTime, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("diagnostic", sa.Text, nullable=False),
        sa.Column("feedback_type", sa.String(64), nullable=True),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("matched_by", sa.String(16), nullable=False),
        sa.Column("delivery_id", sa.Integer, nullable=True),
        sa.Column("issue_id", sa.Integer, nullable=True),
        sa.Column("subscriber_id", sa.Integer, nullable=True),
        sa.Column("sent_at", sa.DateTime, nullable=True),
        sa.Column("effect", sa.String(32), nullable=False),
        sa.UniqueConstraint("dedup_key", name="uq_feedback_event_key"),
    )
    op.create_index("ix_feedback_subscriber", "feedback_events", ["subscriber_id", "kind"])
    op.create_index("ix_feedback_received", "feedback_events", ["received_at"])
    op.create_index("ix_feedback_issue", "feedback_events", ["issue_id", "kind"])


def downgrade() -> None:
    op.drop_table("feedback_events")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_index("ix_delivery_subscriber")
        batch.drop_constraint("uq_delivery_return_tag", type_="unique")
        batch.drop_column("return_tag")
