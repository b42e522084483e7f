"""Several relays (issue 31): which of [[smtp.relays]] took or refused each delivery
(deliveries.relay, its name; NULL = the one [smtp] relay, or rows from before). Added
nullable, so no table is rewritten (cheap on a large ledger, SQLite and PostgreSQL).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("relay", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("relay")
