"""Alembic migrations for every table (subscribers and delivery). A leaf: it imports nothing
of ours. `database.ensure_schema` runs them on start; `ainews db upgrade` runs them by hand."""

# The newest migration in versions/ (tests/test_migrations.py keeps them in step). Here, not
# in database.py, so that a quick count can check it without importing SQLAlchemy.
SCHEMA_HEAD = "0011"
