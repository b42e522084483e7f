"""Count hard bounces per subscriber: [delivery] bounce_limit of them mark the subscriber
bounced.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Cheap on a big list: PostgreSQL 11 and later store a constant default in the catalog
    # (no rewrite of the table, the lock held for a moment); SQLite's ADD COLUMN changes
    # only the schema text (batch mode does not rebuild the table for it).
    with op.batch_alter_table("subscribers") as batch:
        batch.add_column(sa.Column("hard_bounces", sa.Integer, nullable=False,
                                   server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_column("hard_bounces")
