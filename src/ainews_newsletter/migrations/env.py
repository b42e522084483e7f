"""Alembic environment: always run with a connection handed over by database.ensure_schema."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
# PostgreSQL: one transaction per migration, so that a table one of them alters is locked
# only while that migration runs (and those that build an index CONCURRENTLY commit
# what came before them anyway: migrations/online.py).
context.configure(connection=connection, target_metadata=None,
                  render_as_batch=connection.dialect.name == "sqlite",
                  transaction_per_migration=connection.dialect.name == "postgresql")
with context.begin_transaction():
    context.run_migrations()
