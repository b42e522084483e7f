"""`ainews db backup` and `ainews db check` (issue 31): a backup taken while a real send runs
is whole and its ledger a consistent moment of the send; restoring it and resuming sends
again exactly to the readers reached after the backup (what the documentation warns of); a
backup taken between sends restores without a duplicate. PostgreSQL: pg_dump, pg_restore
into a fresh database of the suite's private cluster; without pg_dump, one line saying how.
`db check` on a fine, a corrupted, an older and a "newer" database."""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from ainews_newsletter.database import dispose_all, engine_for
from ainews_newsletter.migrations import SCHEMA_HEAD
from tests.conftest import Project, SmtpServer, smtp_env
from tests.test_cli_send import _sender, _wait_for_messages

READERS = 300


def _ledger(database: Path) -> dict[str, str]:
    """address → state, read from a SQLite file (a backup or the live database)."""
    with sqlite3.connect(database) as connection:
        return dict(connection.execute("SELECT email, state FROM deliveries").fetchall())


def _restore(backup: Path, database: Path) -> None:
    """What the documentation says a restore is: with every ainews process stopped, the
    backup copied over the database file, and the old file's -wal and -shm deleted."""
    dispose_all()
    shutil.copyfile(backup, database)
    for suffix in ("-wal", "-shm"):
        database.with_name(database.name + suffix).unlink(missing_ok=True)


def test_a_backup_during_a_send_is_a_consistent_moment_and_a_restore_sends_the_rest_again(
        project: Project, smtp_server: SmtpServer, tmp_path: Path) -> None:
    addresses = project.import_readers(READERS)
    smtp_server.handler.data_delay = 0.01  # 300 messages take seconds: the backup lands inside
    sender = _sender(project, smtp_server, "--week", "2026-W47")
    _wait_for_messages(smtp_server, 40, timeout=60)
    backup = tmp_path / "backups" / "mid-send.db"
    backup.parent.mkdir()
    taken = project.run("db", "backup", str(backup), "--json")
    assert taken.exit_code == 0, taken.output + taken.stderr
    received_by_then = set(smtp_server.recipients())
    out, err = sender.communicate(timeout=180)
    assert sender.returncode == 0, (out, err)
    assert sorted(smtp_server.recipients()) == addresses  # the send was not disturbed
    assert not backup.with_name(backup.name + ".partial").exists()

    # The copy: whole, at the current schema, its ledger one moment of the send.
    checked = project.run("db", "check", str(backup))
    assert checked.exit_code == 0, checked.stderr
    copy = _ledger(backup)
    report = json.loads(taken.stdout)
    assert report["schema"] == SCHEMA_HEAD and report["subscribers"] == READERS
    states = {state: sum(1 for s in copy.values() if s == state) for state in set(copy.values())}
    assert report["deliveries"] == states
    assert set(states) <= {"queued", "sending", "sent"} and sum(states.values()) == READERS
    assert report["unsent"] == READERS - states["sent"]
    assert f"warning: a send was under way: {report['unsent']} delivery rows" in taken.stderr
    sent_before = {address for address, state in copy.items() if state == "sent"}
    assert 0 < len(sent_before) < READERS, "the backup was not taken mid-send"
    # A prefix: every row the copy calls sent, the relay had received when the backup
    # returned (a row is marked sent after the relay's 250, never before).
    assert sent_before <= received_by_then

    # Restore the mid-send copy and resume: the readers the send reached after the backup
    # (and those in flight in it) get the issue a second time; nobody else does.
    _restore(backup, project.database)
    received_before_restore = len(smtp_server.handler.messages)
    resumed = project.run("send", "--resume", "--yes", env=smtp_env(smtp_server))
    assert resumed.exit_code == 0, resumed.output + resumed.stderr
    again = smtp_server.recipients()[received_before_restore:]
    assert sorted(again) == sorted(set(addresses) - sent_before)
    assert len(again) == READERS - len(sent_before)  # each of them exactly once more
    assert set(_ledger(project.database).values()) == {"sent"}


def test_a_backup_between_sends_restores_without_a_duplicate(
        project: Project, smtp_server: SmtpServer, tmp_path: Path) -> None:
    """The way to avoid the duplicates: back up when no send is running."""
    addresses = project.import_readers(20)
    sent = project.run("send", "--week", "2026-W47", "--yes", env=smtp_env(smtp_server))
    assert sent.exit_code == 0, sent.output + sent.stderr
    backup = tmp_path / "between.db"
    taken = project.run("db", "backup", str(backup))
    assert taken.exit_code == 0 and taken.stderr == ""  # no warning: nothing was under way
    _restore(backup, project.database)
    resumed = project.run("send", "--resume", "--yes", env=smtp_env(smtp_server))
    assert resumed.exit_code == 1 and "nothing to resume" in resumed.stderr
    assert sorted(smtp_server.recipients()) == addresses  # each once, before the restore


def test_backup_refuses_to_replace_a_file_and_leaves_no_partial_one(
        project: Project, tmp_path: Path) -> None:
    project.import_readers(3)
    backup = tmp_path / "b.db"
    backup.write_bytes(b"an older backup")
    refused = project.run("db", "backup", str(backup))
    assert refused.exit_code == 1
    assert refused.stderr.strip().splitlines() == [
        f"error: {backup} exists: add --force to replace it"]
    assert backup.read_bytes() == b"an older backup"
    replaced = project.run("db", "backup", str(backup), "--force")
    assert replaced.exit_code == 0, replaced.stderr
    assert "3 subscribers" in replaced.output and "schema " + SCHEMA_HEAD in replaced.output
    assert project.run("db", "check", str(backup)).exit_code == 0
    # A backup that cannot be written (its folder is read-only to the copy: here, a file
    # stands where the .partial would go) fails in one line and leaves the old copy alone.
    blocker = tmp_path / "c.db.partial"
    blocker.mkdir()
    failed = project.run("db", "backup", str(tmp_path / "c.db"))
    assert failed.exit_code == 1 and len(failed.stderr.strip().splitlines()) == 1
    assert "not written" in failed.stderr and not (tmp_path / "c.db").exists()


# -- PostgreSQL ------------------------------------------------------------------------------

@contextmanager
def _fresh_database(url: str) -> Iterator[str]:
    """A new database on the suite's private cluster (dropped at the end); yields its URL."""
    import psycopg

    parsed = make_url(url)
    name = f"ainews_restore_{uuid.uuid4().hex[:8]}"
    host, port = parsed.query["host"], parsed.query["port"]
    with psycopg.connect(host=str(host), port=str(port), user=parsed.username,
                         dbname="postgres", autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    try:
        yield parsed.set(database=name).render_as_string(hide_password=False)
    finally:
        dispose_all()
        with psycopg.connect(host=str(host), port=str(port), user=parsed.username,
                             dbname="postgres", autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_postgres_backup_is_a_pg_dump_that_pg_restore_brings_back(
        project: Project, postgres_url: str, smtp_server: SmtpServer, tmp_path: Path) -> None:
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.skip("pg_dump/pg_restore are not installed (Debian: postgresql-client)")
    project.storage_url = postgres_url
    project.import_readers(12)
    assert project.run("send", "--week", "2026-W47", "--yes",
                       env=smtp_env(smtp_server)).exit_code == 0
    dump = tmp_path / "ainews.dump"
    taken = project.run("db", "backup", str(dump), "--json")
    assert taken.exit_code == 0, taken.stderr
    report = json.loads(taken.stdout)
    assert report["database"] == "postgresql" and report["schema"] == SCHEMA_HEAD
    assert report["subscribers"] == 12 and report["deliveries"] == {"sent": 12}
    assert dump.stat().st_size == report["bytes"] > 0
    with _fresh_database(postgres_url) as restored_url:
        restored = make_url(restored_url)
        restore = subprocess.run(
            ["pg_restore", "--no-owner", f"--host={restored.query['host']}",
             f"--port={restored.query['port']}", f"--username={restored.username}",
             f"--dbname={restored.database}", str(dump)],
            capture_output=True, text=True, check=False)
        assert restore.returncode == 0, restore.stderr
        checked = project.run("db", "check", env={"AINEWS_STORAGE__URL": restored_url})
        assert checked.exit_code == 0, checked.stderr
        with engine_for(restored_url).connect() as connection:
            states = connection.execute(text(
                "SELECT state, count(*) FROM deliveries GROUP BY state")).all()
            readers = connection.execute(text("SELECT count(*) FROM subscribers")).scalar()
        assert [tuple(row) for row in states] == [("sent", 12)] and readers == 12


def test_postgres_backup_without_pg_dump_says_how(
        project: Project, postgres_url: str, tmp_path: Path) -> None:
    project.storage_url = postgres_url
    empty = tmp_path / "bin"
    empty.mkdir()  # a PATH with no pg_dump on it
    dump = tmp_path / "ainews.dump"
    result = project.run("db", "backup", str(dump), env={"PATH": str(empty)})
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "pg_dump is not installed" in lines[0]
    assert "postgresql-client" in lines[0] and "pg_dump --format=custom" in lines[0]
    assert not dump.exists()


# -- db check --------------------------------------------------------------------------------

def test_check_passes_a_database_in_use(any_project: Project) -> None:
    any_project.import_readers(5)
    result = any_project.run("db", "check", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["schema"] == SCHEMA_HEAD
    assert report["problems"] == []


def test_check_finds_overwritten_pages(project: Project, tmp_path: Path) -> None:
    project.import_readers(200)
    copy = tmp_path / "copy.db"
    assert project.run("db", "backup", str(copy)).exit_code == 0
    page = 4096
    assert copy.stat().st_size > 12 * page
    noise = random.Random(31)
    with copy.open("r+b") as file:  # pages 4-9 (of the tables and indexes) overwritten
        file.seek(3 * page)
        file.write(bytes(noise.randrange(256) for _ in range(6 * page)))
    result = project.run("db", "check", str(copy))
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines and all(line.startswith("error: integrity") for line in lines), lines
    assert project.run("db", "check").exit_code == 0  # the database itself is fine


def _migrate_to(url: str, revision: str) -> None:
    from alembic import command
    from alembic.config import Config as AlembicConfig

    from ainews_newsletter import migrations

    settings = AlembicConfig()
    settings.set_main_option("script_location", str(Path(migrations.__file__).parent))
    engine = engine_for(url)
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":  # the suite's own server: start over
            connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    with engine.connect() as connection:  # alembic's own transactions (database.py)
        settings.attributes["connection"] = connection
        command.upgrade(settings, revision)
        connection.commit()  # SQLite: what alembic left open
    dispose_all()


def test_check_says_to_upgrade_an_older_schema(any_project: Project, database_url: str) -> None:
    _migrate_to(database_url, "0009")
    result = any_project.run("db", "check")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"error: schema 0009 is older than this ainews needs ({SCHEMA_HEAD}): run "
        "`ainews db upgrade`"]
    assert any_project.run("db", "upgrade").exit_code == 0
    assert any_project.run("db", "check").exit_code == 0


def test_check_says_a_newer_schema_needs_a_newer_ainews(any_project: Project) -> None:
    any_project.import_readers(1)
    any_project.query("UPDATE alembic_version SET version_num = '0999'")
    try:
        result = any_project.run("db", "check")
        assert result.exit_code == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "schema 0999 is newer than this ainews knows" in lines[0]
        assert "upgrade ainews" in lines[0]
    finally:  # the suite's PostgreSQL database is migrated again by the next test
        any_project.query(f"UPDATE alembic_version SET version_num = '{SCHEMA_HEAD}'")


def test_check_of_a_missing_file(project: Project, tmp_path: Path) -> None:
    result = project.run("db", "check", str(tmp_path / "nowhere.db"))
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: no database at {tmp_path / 'nowhere.db'}"


def test_check_knows_every_declared_table() -> None:
    from ainews_newsletter.pipeline.integrity import declared_tables
    from ainews_newsletter.schedule.history import metadata as schedule

    assert set(schedule.tables) <= declared_tables()


def test_check_of_a_postgresql_that_does_not_answer(project: Project, tmp_path: Path) -> None:
    nowhere = tmp_path / "no-server"  # a socket folder no server listens in
    nowhere.mkdir()
    url = f"postgresql+psycopg://ainews@/ainews?host={nowhere}&port=5432"
    result = project.run("db", "check", env={"AINEWS_STORAGE__URL": url})
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot read the database: ")


def test_pg_dump_connects_as_the_application_does_without_the_password_in_argv() -> None:
    """The URL's libpq options (TLS, several hosts) reach pg_dump as a conninfo string; the
    password, in the URL or its query, only through PGPASSWORD."""
    from pathlib import Path as _Path

    from sqlalchemy.engine import make_url

    from ainews_newsletter.pipeline.backup import pg_dump_arguments, pg_password

    url = make_url("postgresql+psycopg://news:s3cr%40t@db.example:5433/ainews"
                   "?sslmode=verify-full&sslrootcert=/etc/ssl/ca.pem")
    arguments = pg_dump_arguments(url, _Path("/backups/x.dump"))
    assert not any("s3cr" in argument for argument in arguments)
    [conninfo] = [a.removeprefix("--dbname=") for a in arguments if a.startswith("--dbname=")]
    assert dict(part.split("=", 1) for part in conninfo.split()) == {
        "sslmode": "verify-full", "sslrootcert": "/etc/ssl/ca.pem", "host": "db.example",
        "port": "5433", "user": "news", "dbname": "ainews"}
    assert pg_password(url) == "s3cr@t"
    sockets = make_url("postgresql+psycopg:///ainews?host=/run/a&host=/run/b&password=pw")
    assert "host=/run/a,/run/b" in pg_dump_arguments(sockets, _Path("x"))[-1]
    assert "pw" not in " ".join(pg_dump_arguments(sockets, _Path("x")))
    assert pg_password(sockets) == "pw"
