"""Alembic migrations for every table (subscribers and delivery). A leaf: it imports nothing
of ours. `database.ensure_schema` runs them on start; `ainews db upgrade` runs them by hand."""
