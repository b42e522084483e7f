"""Issue 31: on PostgreSQL the migrations build the ledger's indexes CONCURRENTLY (a send
goes on writing meanwhile), and an index build that failed halfway, which leaves an INVALID
index behind, is built again by the next upgrade."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import IntegrityError

from ainews_newsletter import migrations
from ainews_newsletter.database import SCHEMA_HEAD, engine_for, schema_version, upgrade_schema

NOW = "2026-11-23 08:00:00"


def _at(engine: Engine, revision: str) -> None:
    settings = AlembicConfig()
    settings.set_main_option("script_location", str(Path(migrations.__file__).parent))
    with engine.begin() as connection:  # the suite's own server: start from nothing
        connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    with engine.connect() as connection:
        settings.attributes["connection"] = connection
        command.upgrade(settings, revision)


def _ledger_rows(engine: Engine, count: int) -> None:
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO issues (id, list_id, period_key, period_start, period_end, timezone, "
            "subject, preheader, html, text, unsubscribe_placeholder, post_count, created_at) "
            f"VALUES (1, 'newsletter', '2026-W47', '{NOW}', '{NOW}', 'UTC', 's', 'p', 'h', "
            f"'t', 'x', 1, '{NOW}')"))
        connection.execute(text(
            "INSERT INTO deliveries (issue_id, subscriber_id, email, token, state, attempts, "
            "updated_at) SELECT 1, n, 'r' || n || '@example.com', 't' || n, 'sent', 1, "
            f"'{NOW}' FROM generate_series(1, {count}) AS n"))


def test_the_ledger_indexes_are_built_concurrently(postgres_url: str) -> None:
    engine = engine_for(postgres_url)
    _at(engine, "0003")
    _ledger_rows(engine, 50)
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", seen)
    try:
        assert upgrade_schema(engine) == ("0003", SCHEMA_HEAD)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    on_ledger = [s for s in statements if "INDEX" in s and " ON deliveries" in s]
    assert sorted(on_ledger) == sorted([
        "CREATE UNIQUE INDEX CONCURRENTLY uq_delivery_return_tag ON deliveries (return_tag)",
        "CREATE INDEX CONCURRENTLY ix_delivery_subscriber ON deliveries (subscriber_id)",
        "CREATE INDEX CONCURRENTLY ix_delivery_issue_state_id ON deliveries "
        "(issue_id, state, id)",
        "CREATE INDEX CONCURRENTLY ix_delivery_provider_message_id ON deliveries "
        "(provider_message_id)",
        "CREATE INDEX CONCURRENTLY ix_delivery_message_digest ON deliveries "
        "(message_digest)"])
    with engine.connect() as connection:
        invalid = connection.execute(text(
            "SELECT count(*) FROM pg_index WHERE NOT indisvalid")).scalar()
        kept = connection.execute(text("SELECT count(*) FROM deliveries")).scalar()
    assert invalid == 0 and kept == 50


def test_an_index_build_that_failed_halfway_is_built_again(postgres_url: str) -> None:
    engine = engine_for(postgres_url)
    _at(engine, "0003")
    _ledger_rows(engine, 10)
    # What an interrupted 0004 leaves: its column added, its unique index INVALID (a
    # CONCURRENTLY build that failed: here on two equal tags), the version still 0003.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("ALTER TABLE deliveries ADD COLUMN return_tag VARCHAR(32)"))
        connection.execute(text("UPDATE deliveries SET return_tag = 'same' WHERE id <= 2"))
        with pytest.raises(IntegrityError, match="uq_delivery_return_tag"):
            connection.execute(text("CREATE UNIQUE INDEX CONCURRENTLY uq_delivery_return_tag "
                                    "ON deliveries (return_tag)"))
        connection.execute(text("UPDATE deliveries SET return_tag = NULL"))
        assert connection.execute(text(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = 'uq_delivery_return_tag'")).scalar() is False
    assert schema_version(engine) == "0003"
    assert upgrade_schema(engine) == ("0003", SCHEMA_HEAD)
    with engine.connect() as connection:
        invalid = connection.execute(text(
            "SELECT count(*) FROM pg_index WHERE NOT indisvalid")).scalar()
        constraint = connection.execute(text(
            "SELECT contype FROM pg_constraint WHERE conname = 'uq_delivery_return_tag'")).scalar()
    assert invalid == 0 and constraint == "u"


def test_two_processes_upgrading_at_once_take_turns(postgres_url: str) -> None:
    """Two senders started together on an empty database both migrate: the concurrent index
    builds commit part of a migration, so the second must wait for the first, not build (or
    drop) the same index beside it."""
    engine = engine_for(postgres_url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    results: list[object] = []

    def upgrade() -> None:
        try:
            results.append(upgrade_schema(engine)[1])
        except Exception as exc:  # reported by the assertion below
            results.append(exc)

    threads = [threading.Thread(target=upgrade) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert results == [SCHEMA_HEAD, SCHEMA_HEAD]
    with engine.connect() as connection:
        invalid = connection.execute(text(
            "SELECT count(*) FROM pg_index WHERE NOT indisvalid")).scalar()
    assert invalid == 0 and schema_version(engine) == SCHEMA_HEAD


def test_a_step_waiting_for_its_table_lock_gives_way_to_the_senders(postgres_url: str) -> None:
    """0011 adds a column to deliveries (a brief exclusive lock). Queued behind a long
    transaction (a pg_dump, a report), its lock request would hold up every write of a
    running send until that transaction ends. With the upgrade's lock_timeout it gives way,
    the send's write goes through while the long transaction is still open, and the step
    is tried again until it gets its lock."""
    engine = engine_for(postgres_url)
    _at(engine, "0010")
    _ledger_rows(engine, 5)
    holder = engine.connect()
    holder.execute(text("SELECT count(*) FROM deliveries"))  # ACCESS SHARE, kept open
    upgraded: list[tuple[str | None, str]] = []
    upgrade = threading.Thread(target=lambda: upgraded.append(upgrade_schema(engine)))
    upgrade.start()
    watcher = engine.connect()
    try:
        for _ in range(600):  # until the ALTER waits for its lock (bounded: 60 s)
            waiting = watcher.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE 'ALTER TABLE deliveries%'")).scalar()
            watcher.rollback()
            if waiting:
                break
            threading.Event().wait(0.1)
        else:
            pytest.fail("the upgrade never waited for its lock")
        # A send recording an answer while the long transaction is still open: without
        # the timeout it would queue behind the ALTER until that transaction ends (here:
        # never; its own 30 s lock_timeout then fails the test instead of hanging it).
        with engine.begin() as writer:
            writer.execute(text("SET LOCAL lock_timeout = '30s'"))
            changed = writer.execute(text(
                "UPDATE deliveries SET attempts = attempts + 1 WHERE id = 1")).rowcount
    finally:
        holder.rollback()
        holder.close()
        watcher.close()
        upgrade.join(timeout=300)
    assert changed == 1
    assert upgraded == [("0010", SCHEMA_HEAD)]
    assert schema_version(engine) == SCHEMA_HEAD
