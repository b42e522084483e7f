"""Proof of consent: one record per subscriber of how and when they agreed (issue 29). The
rows already there get one saying what the subscriber row knew (how "before-records", its
source, created_at and confirmed_at): "imported before consent records". One new table.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consents",
        sa.Column("subscriber_id", sa.Integer,
                  sa.ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("how", sa.String(16), nullable=False),
        sa.Column("source", sa.Text, nullable=True),
        sa.Column("ip", sa.String(64), nullable=True),
        sa.Column("user_agent", sa.Text, nullable=True),
        sa.Column("consent_text", sa.String(128), nullable=True),
        sa.Column("given_at", sa.DateTime, nullable=False),
        sa.Column("confirmed_at", sa.DateTime, nullable=True),
    )
    op.execute("INSERT INTO consents (subscriber_id, how, source, given_at, confirmed_at) "
               "SELECT id, 'before-records', source, created_at, confirmed_at "
               "FROM subscribers")


def downgrade() -> None:
    op.drop_table("consents")
