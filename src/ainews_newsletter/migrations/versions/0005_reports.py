"""Reports: a history of subscriber changes (backfilled from what the columns already know),
the links each issue carried, and opt-in clicks.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subscriber_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("subscriber_id", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("issue_id", sa.Integer, nullable=True),
        sa.Column("at", sa.DateTime, nullable=False),
    )
    # What the columns already know: when each row joined, confirmed, left. (A bounce or
    # complaint time is the row's last update: the closest the old schema kept.)
    for kind, when, condition in (
            ("joined", "created_at", "1 = 1"),
            ("confirmed", "confirmed_at", "confirmed_at IS NOT NULL"),
            # Older imports set unsubscribed_at for any who left: by status, not by date.
            ("unsubscribed", "unsubscribed_at",
             "status = 'unsubscribed' AND unsubscribed_at IS NOT NULL"),
            ("bounced", "updated_at", "status = 'bounced'"),
            ("complained", "updated_at", "status = 'complained'")):
        op.execute(f"INSERT INTO subscriber_events (subscriber_id, kind, source, at) "
                   f"SELECT id, '{kind}', 'backfill', {when} FROM subscribers WHERE {condition}")
    # The backfill only reads `subscribers` (it blocks none of its writers) and fills a
    # table nobody writes yet: its indexes are built after it, in one pass each, faster
    # than growing them row by row during the INSERTs.
    op.create_index("ix_subscriber_events_kind_at", "subscriber_events", ["kind", "at"])
    op.create_index("ix_subscriber_events_subscriber", "subscriber_events", ["subscriber_id"])
    op.create_index("ix_subscriber_events_issue", "subscriber_events", ["issue_id", "kind"])
    op.create_table(
        "issue_links",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("issue_id", sa.Integer, sa.ForeignKey("issues.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.UniqueConstraint("issue_id", "position", name="uq_issue_link_position"),
    )
    op.create_table(
        "clicks",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("issue_id", sa.Integer, nullable=False),
        sa.Column("delivery_id", sa.Integer, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("scanner", sa.Boolean, nullable=False),
    )
    op.create_index("ix_clicks_issue_position", "clicks", ["issue_id", "position"])
    op.create_index("ix_clicks_delivery", "clicks", ["delivery_id"])


def downgrade() -> None:
    op.drop_table("clicks")
    op.drop_table("issue_links")
    op.drop_table("subscriber_events")
