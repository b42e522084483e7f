"""Languages (issue 30): a reader's own language (subscribers.language, NULL = the
newsletter's), the language each delivery row was snapshotted with, the language of an
issue's main rendering (issues.language, NULL on issues from before = English), and one more
rendering per further language of the issue's audience (issue_renderings). Columns are
added nullable, so no table is rewritten (cheap on a large ledger, SQLite and PostgreSQL).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("subscribers", sa.Column("language", sa.String(35), nullable=True))
    op.add_column("deliveries", sa.Column("language", sa.String(35), nullable=True))
    op.add_column("issues", sa.Column("language", sa.String(35), nullable=True))
    op.create_table(
        "issue_renderings",
        sa.Column("issue_id", sa.Integer, sa.ForeignKey("issues.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("language", sa.String(35), primary_key=True),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("preheader", sa.Text, nullable=False),
        sa.Column("html", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("unsubscribe_placeholder", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("issue_renderings")
    with op.batch_alter_table("issues") as batch:
        batch.drop_column("language")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("language")
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_column("language")
