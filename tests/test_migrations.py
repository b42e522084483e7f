"""The migrations build exactly the tables the code declares, on SQLite and PostgreSQL; and
a database starts empty, migrates on first use, and says which version it is at."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData

from ainews_newsletter import migrations
from ainews_newsletter.database import SCHEMA_HEAD, engine_for, schema_version, upgrade_schema
from ainews_newsletter.delivery.tables import metadata as ledger_metadata
from ainews_newsletter.feedback import replay_guard  # noqa: F401 (its table joins the metadata)
from ainews_newsletter.feedback.events import metadata as feedback_metadata
from ainews_newsletter.schedule.history import metadata as schedule_metadata
from ainews_newsletter.subscribers.schema import metadata as subscribers_metadata


def _declared() -> MetaData:
    combined = MetaData()
    for metadata in (subscribers_metadata, ledger_metadata, schedule_metadata,
                     feedback_metadata):
        for table in metadata.tables.values():
            table.to_metadata(combined)
    return combined


def test_schema_head_is_the_newest_migration() -> None:
    settings = AlembicConfig()
    settings.set_main_option("script_location", str(Path(migrations.__file__).parent))
    assert ScriptDirectory.from_config(settings).get_current_head() == SCHEMA_HEAD


def test_migrations_match_the_declared_tables(database_url: str) -> None:
    engine = engine_for(database_url)
    upgrade_schema(engine)
    assert schema_version(engine) == SCHEMA_HEAD
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        differences = compare_metadata(context, _declared())
    assert differences == []


def test_upgrade_from_empty_reports_versions(tmp_path: Path) -> None:
    engine = engine_for(f"sqlite:///{tmp_path / 'fresh.db'}")
    assert schema_version(engine) is None
    assert upgrade_schema(engine) == (None, SCHEMA_HEAD)
    assert upgrade_schema(engine) == (SCHEMA_HEAD, SCHEMA_HEAD)


def test_upgrading_a_used_database_keeps_its_data(database_url: str) -> None:
    """0004 rebuilds `deliveries` on SQLite (batch mode): every row, and every list
    membership (which a rebuilt `subscribers` would have lost to ON DELETE CASCADE), stays;
    0007's columns start empty on the rows already there."""
    from alembic import command
    from sqlalchemy import text

    engine = engine_for(database_url)
    settings = AlembicConfig()
    settings.set_main_option("script_location", str(Path(migrations.__file__).parent))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":  # the shared server: start from nothing
            connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    with engine.begin() as connection:
        settings.attributes["connection"] = connection
        command.upgrade(settings, "0003")
        now = "2026-11-23 08:00:00"
        connection.execute(text(
            "INSERT INTO subscribers (id, email, email_normalized, status, token, created_at, "
            f"updated_at, hard_bounces) VALUES (1, 'a@example.com', 'a@example.com', 'active', "
            f"'tok', '{now}', '{now}', 0)"))
        connection.execute(text(f"INSERT INTO lists (id, name, created_at) VALUES "
                                f"(1, 'newsletter', '{now}')"))
        connection.execute(text("INSERT INTO memberships (subscriber_id, list_id, created_at) "
                                f"VALUES (1, 1, '{now}')"))
        connection.execute(text(
            "INSERT INTO issues (id, list_id, period_key, period_start, period_end, timezone, "
            "subject, preheader, html, text, unsubscribe_placeholder, post_count, created_at) "
            f"VALUES (1, 'newsletter', '2026-W47', '{now}', '{now}', 'UTC', 's', 'p', 'h', "
            f"'t', 'x', 1, '{now}')"))
        connection.execute(text(
            "INSERT INTO deliveries (id, issue_id, subscriber_id, email, token, state, "
            f"attempts, updated_at) VALUES (1, 1, 1, 'a@example.com', 'tok', 'sent', 1, "
            f"'{now}')"))
    assert upgrade_schema(engine) == ("0003", SCHEMA_HEAD)
    with engine.connect() as connection:
        counts = [connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
                  for table in ("subscribers", "memberships", "deliveries")]
        tag = connection.execute(text("SELECT return_tag FROM deliveries")).scalar_one()
        # 0007: the relay's id and the Message-ID digest, unknown for a row sent before.
        provider_columns = tuple(connection.execute(text(
            "SELECT provider_message_id, message_digest FROM deliveries")).one())
        connection.execute(text("SELECT provider FROM feedback_events"))  # the column exists
        history = connection.execute(text(
            "SELECT subscriber_id, kind, source FROM subscriber_events")).all()
    assert counts == [1, 1, 1]
    assert [tuple(row) for row in history] == [(1, "joined", "backfill")]  # 0005 backfill
    assert tag is None  # sent before VERP: matched by what the bounce quotes
    assert provider_columns == (None, None)
