"""Index builds on PostgreSQL that do not stop the newsletter writing (CREATE INDEX
CONCURRENTLY), for the migrations that index a big table (deliveries: one row per reader and
issue, millions after a year). A plain CREATE INDEX holds a lock that blocks every INSERT and
UPDATE of the table until the whole index is built: a send would stand still meanwhile.

CONCURRENTLY cannot run inside a transaction: the callers run these inside
`op.get_context().autocommit_block()`, which commits the migrations before it. So each step
here may be run again after a failed attempt (a build that failed leaves an INVALID index
behind, which is dropped and built again; a valid one is kept)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from alembic import op
from sqlalchemy import text


def on_postgresql() -> bool:
    return bool(op.get_bind().dialect.name == "postgresql")


def _index_valid(name: str) -> bool | None:
    """True: a valid index `name` exists; False: an invalid one; None: none."""
    found = op.get_bind().execute(text(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE c.relname = :name AND pg_table_is_visible(c.oid)"), {"name": name}).first()
    return None if found is None else bool(found[0])


def _constraint_exists(name: str) -> bool:
    return op.get_bind().execute(text(
        "SELECT 1 FROM pg_constraint WHERE conname = :name"), {"name": name}).first() is not None


@contextmanager
def _no_lock_timeout() -> Iterator[None]:
    """Without the upgrade's lock_timeout (database.py): a concurrent build or drop waits
    for the transactions open when it starts (a long pg_dump's too) but blocks no writer
    meanwhile, so it may wait; the timeout is for the steps whose lock does block them."""
    saved = op.get_bind().execute(text("SHOW lock_timeout")).scalar()
    op.execute("SET lock_timeout = 0")
    try:
        yield
    finally:
        op.get_bind().execute(text("SELECT set_config('lock_timeout', :saved, false)"),
                              {"saved": str(saved)})


def create_index_concurrently(name: str, table: str, columns: list[str],
                              unique: bool = False) -> None:
    """CREATE [UNIQUE] INDEX CONCURRENTLY, unless a valid index of that name is there."""
    valid = _index_valid(name)
    if valid:
        return
    with _no_lock_timeout():
        if valid is False:  # what an interrupted build left: unusable, and in the way
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
        op.execute(f"CREATE {'UNIQUE ' if unique else ''}INDEX CONCURRENTLY {name} ON "
                   f"{table} ({', '.join(columns)})")


def add_unique_constraint_concurrently(name: str, table: str, columns: list[str]) -> None:
    """A UNIQUE constraint whose index is built CONCURRENTLY first: ADD CONSTRAINT … USING
    INDEX then only renames it into the constraint (a brief lock, no scan of the table)."""
    if _constraint_exists(name):
        return
    create_index_concurrently(name, table, columns, unique=True)
    op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} UNIQUE USING INDEX {name}")


def drop_index_concurrently(name: str) -> None:
    with _no_lock_timeout():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
