"""Sign-ups from the operator's site: the welcome mail, one per reader (its own kind of
delivery, never an issue's), and the confirmation mails sent, so the per-mailbox daily limit
is counted in the database and survives a restart. Two new tables, nothing rebuilt.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "welcomes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("subscriber_id", sa.Integer, nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.Text, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime, nullable=True),
        sa.Column("last_code", sa.Integer, nullable=True),
        sa.Column("last_reply", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("sent_at", sa.DateTime, nullable=True),
        sa.Column("return_tag", sa.String(32), nullable=True),
        sa.Column("provider_message_id", sa.String(255), nullable=True),
        sa.UniqueConstraint("subscriber_id", name="uq_welcome_subscriber"),
        sa.UniqueConstraint("return_tag", name="uq_welcome_return_tag"),
    )
    op.create_index("ix_welcome_state", "welcomes", ["state"])
    op.create_table(
        "confirmation_mails",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("mailbox", sa.String(320), nullable=False),
        sa.Column("sent_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_confirmation_mails_mailbox_sent", "confirmation_mails",
                    ["mailbox", "sent_at"])
    op.create_index("ix_confirmation_mails_sent", "confirmation_mails", ["sent_at"])


def downgrade() -> None:
    op.drop_index("ix_confirmation_mails_sent", table_name="confirmation_mails")
    op.drop_index("ix_confirmation_mails_mailbox_sent", table_name="confirmation_mails")
    op.drop_table("confirmation_mails")
    op.drop_index("ix_welcome_state", table_name="welcomes")
    op.drop_table("welcomes")
