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
