"""Proof of consent (issue 29) outside the web: imports (file and detected format, new
subscribers only, one statement per batch), `subscribers add`, the demo, the rows from before
migration 0009, `subscribers show` and `subscribers export --consent`; on SQLite and
PostgreSQL where the database matters."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from click.testing import CliRunner
from sqlalchemy import event, text

from ainews_newsletter import migrations
from ainews_newsletter.cli import app
from ainews_newsletter.database import engine_for, upgrade_schema
from ainews_newsletter.subscribers.consent_records import Agreement, kept_ip, kept_user_agent
from ainews_newsletter.subscribers.formats import open_subscriber_file
from ainews_newsletter.subscribers.importer import import_rows
from ainews_newsletter.subscribers.store import SubscriberStore
from tests.conftest import Project

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "subscribers"


def _records(project: Project) -> dict[str, tuple[Any, ...]]:
    rows = project.query(
        "SELECT s.email, c.how, c.source, c.ip, c.user_agent, c.consent_text, "
        "c.confirmed_at IS NOT NULL FROM consents c JOIN subscribers s ON s.id = "
        "c.subscriber_id")
    return {row[0]: tuple(row[1:]) for row in rows}


def test_the_ip_and_user_agent_as_privacy_keeps_them() -> None:
    assert kept_ip("198.51.100.200", "truncated") == "198.51.100.0/24"
    assert kept_ip("198.51.100.200", "full") == "198.51.100.200"
    assert kept_ip("198.51.100.200", "none") is None
    assert kept_ip("2001:db8:abcd:12::7", "truncated") == "2001:db8:abcd::/48"
    assert kept_ip("::ffff:198.51.100.200", "truncated") == "198.51.100.0/24"  # dual stack
    assert kept_ip("testclient", "full") is None and kept_ip(None, "full") is None
    assert kept_user_agent("a" * 500, True) == "a" * 300
    assert kept_user_agent("Firefox", False) is None


def test_an_import_records_the_file_and_its_format_for_new_subscribers_only(
        any_project: Project) -> None:
    assert any_project.run("subscribers", "add", "gideon.mensah@example.org").exit_code == 0
    result = any_project.run("subscribers", "import",
                             str(FIXTURES / "mailchimp-subscribed.csv"))
    assert result.exit_code == 1  # two rows are rejected (tests/test_cli_subscribers.py)
    records = _records(any_project)
    imported = {email: row for email, row in records.items() if row[0] == "import"}
    assert len(imported) == 2 and len(records) == 3
    for _how, source, ip, agent, wording, confirmed in imported.values():
        assert source == "mailchimp-subscribed.csv (mailchimp)"
        assert (ip, agent, wording) == (None, None, None)
        assert confirmed  # imported as active: the import is the confirmation
    # Known before the import: it keeps the record it had.
    assert records["gideon.mensah@example.org"][:2] == ("cli", "ainews subscribers add")
    # Imported as unsubscribed: recorded, not confirmed.
    listmonk = any_project.run("subscribers", "import", str(FIXTURES / "listmonk.csv"))
    assert listmonk.exit_code == 0
    from_listmonk = [row for row in _records(any_project).values()
                     if row[1] == "listmonk.csv (listmonk)"]
    assert from_listmonk and all(row[0] == "import" for row in from_listmonk)


def test_an_import_writes_the_records_in_one_statement_per_batch(
        any_project: Project, tmp_path: Path) -> None:
    """Not a query per row: a million-row import must stay fast."""
    from ainews_newsletter.subscribers import importer

    addresses = [f"bulk{i:04d}@example.com" for i in range(1200)]
    file = tmp_path / "bulk.csv"
    file.write_text("email\n" + "\n".join(addresses) + "\n", encoding="utf-8")
    url = any_project.storage_url or f"sqlite:///{any_project.database}"
    store = SubscriberStore(engine_for(url))
    consent_inserts: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO CONSENTS"):
            consent_inserts.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    old = importer.BATCH_SIZE
    importer.BATCH_SIZE = 500
    try:
        summary = import_rows(store, open_subscriber_file(file).rows,
                              agreement=Agreement("import", "bulk.csv (csv)"))
    finally:
        importer.BATCH_SIZE = old
        event.remove(store.engine, "before_cursor_execute", count)
    assert summary.imported == 1200
    assert len(consent_inserts) == 3  # three batches: 500, 500, 200
    assert any_project.query("SELECT count(*) FROM consents WHERE source = ?",
                             "bulk.csv (csv)") == [(1200,)]


def test_cli_add_show_and_export(any_project: Project, tmp_path: Path) -> None:
    assert any_project.run("subscribers", "add", "ada@example.com", "--status",
                           "pending").exit_code == 0
    assert _records(any_project)["ada@example.com"] == (
        "cli", "ainews subscribers add", None, None, None, False)
    shown = any_project.run("subscribers", "show", "ada@example.com")
    assert shown.exit_code == 0
    assert "consent         cli, from ainews subscribers add, given " in shown.stdout
    assert "not confirmed" in shown.stdout
    as_json = json.loads(any_project.run("subscribers", "show", "ada@example.com",
                                         "--json").stdout)
    assert as_json["consent"]["how"] == "cli" and as_json["consent"]["confirmed_at"] is None
    assert as_json["consent"]["given_at"].startswith("20")
    # A cell a spreadsheet would run: the file name of an import.
    file = tmp_path / "=cmd.csv"
    file.write_text("email\nbo@example.com\n", encoding="utf-8")
    assert any_project.run("subscribers", "import", str(file)).exit_code == 0
    exported = any_project.run("subscribers", "export", "--consent")
    assert exported.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert [(row["email"], row["how"], row["source"]) for row in rows] == [
        ("ada@example.com", "cli", "ainews subscribers add"),
        ("bo@example.com", "import", "'=cmd.csv (csv)")]  # as text in a spreadsheet
    assert rows[1]["confirmed_at"] and not rows[0]["confirmed_at"]
    as_json_export = json.loads(any_project.run("subscribers", "export", "--consent",
                                                "--format", "json").stdout)
    assert [record["source"] for record in as_json_export] == [
        "ainews subscribers add", "=cmd.csv (csv)"]
    output = tmp_path / "consent.json"
    written = any_project.run("subscribers", "export", "--consent", "--format", "json",
                              "-o", str(output))
    assert "exported 2 consent records" in written.stdout
    assert json.loads(output.read_text(encoding="utf-8")) == as_json_export
    mistake = any_project.run("subscribers", "export", "--consent", "--status", "active")
    assert mistake.exit_code == 1 and "leave out --status and --list" in mistake.stderr


def test_rows_from_before_the_records_keep_what_was_known(database_url: str,
                                                          tmp_path: Path) -> None:
    engine = engine_for(database_url)
    settings = AlembicConfig()
    settings.set_main_option("script_location", str(Path(migrations.__file__).parent))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":  # the shared server: start from nothing
            connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    # No transaction around it: on PostgreSQL the ledger's indexes are built CONCURRENTLY,
    # outside any (migrations/online.py), and alembic commits each migration itself.
    with engine.connect() as connection:
        settings.attributes["connection"] = connection
        command.upgrade(settings, "0008")
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO subscribers (id, email, email_normalized, status, token, source, "
            "created_at, updated_at, confirmed_at, hard_bounces) VALUES (1, 'old@example.com', "
            "'old@example.com', 'active', 'tok', 'import:old.csv', '2025-03-01 10:00:00', "
            "'2025-03-01 10:00:00', '2025-03-02 11:00:00', 0)"))
    assert upgrade_schema(engine)[0] == "0008"
    project = Project(tmp_path / "project", storage_url=database_url)
    project.root.mkdir()
    project.write_config()
    assert project.query("SELECT how, source FROM consents") == [
        ("before-records", "import:old.csv")]
    shown = project.run("subscribers", "show", "old@example.com")
    assert ("consent         imported before consent records (source import:old.csv), "
            "given 2025-03-01 10:00 UTC, confirmed 2025-03-02 11:00 UTC") in shown.stdout
    record = json.loads(project.run("subscribers", "show", "old@example.com",
                                    "--json").stdout)["consent"]
    assert record["how"] == "before-records"
    assert record["given_at"].startswith("2025-03-01T10:00:00")


def test_the_demo_records_its_readers_as_demo(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    result = CliRunner().invoke(app.cli, ["demo", "--dir", str(folder)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with sqlite3.connect(folder / "data" / "ainews.db") as connection:
        rows = connection.execute("SELECT how, source, count(*) FROM consents "
                                  "GROUP BY how, source").fetchall()
    assert rows == [("demo", "sample.csv", 25)]


@pytest.mark.parametrize("args", [("--consent", "--list", "newsletter")])
def test_export_consent_refuses_filters(project: Project, args: tuple[str, ...]) -> None:
    result = project.run("subscribers", "export", *args)
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1


def test_resubscribe_records_the_new_request(any_project: Project) -> None:
    """Coming back on request is a new consent, whether the row stayed (unsubscribed) or
    only the suppression did (removed after leaving)."""
    p = any_project
    for address in ("stayed@example.com", "removed@example.com"):
        assert p.run("subscribers", "add", address).exit_code == 0
        assert p.run("subscribers", "unsubscribe", address).exit_code == 0
    assert p.run("subscribers", "remove", "removed@example.com", "--yes").exit_code == 0
    assert "removed@example.com" not in _records(p)
    for address in ("stayed@example.com", "removed@example.com"):
        done = p.run("subscribers", "resubscribe", address)
        assert done.exit_code == 0, done.output
        assert _records(p)[address] == ("cli", "ainews subscribers resubscribe", None, None,
                                        None, True)


def test_resubscribing_an_active_reader_keeps_how_they_joined(any_project: Project) -> None:
    p = any_project
    assert p.run("subscribers", "add", "kept@example.com").exit_code == 0
    before = _records(p)["kept@example.com"]
    assert p.run("subscribers", "resubscribe", "kept@example.com").exit_code == 0
    assert _records(p)["kept@example.com"] == before == (
        "cli", "ainews subscribers add", None, None, None, True)


class _Refused(Exception):
    """The database failing one statement (a full disk, a lost connection) on demand."""


@pytest.mark.parametrize("failing", ["INSERT INTO consents", "UPDATE subscribers SET"])
def test_add_writes_row_consent_and_language_in_one_transaction(
        any_project: Project, failing: str) -> None:
    """`subscribers add --language` when the consent record or the language cannot be
    written: nothing of the reader stays (no row without its proof of consent)."""
    from sqlalchemy.engine import Engine

    def refuse(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith(failing) and ("language" in statement
                                              or failing.startswith("INSERT")):
            raise _Refused(failing)

    assert any_project.run("subscribers", "count").exit_code == 0  # the schema, first
    event.listen(Engine, "before_cursor_execute", refuse)
    try:
        with pytest.raises(_Refused):
            any_project.run("subscribers", "add", "ada@example.com", "--language", "de")
    finally:
        event.remove(Engine, "before_cursor_execute", refuse)
    assert any_project.query("SELECT count(*) FROM subscribers") == [(0,)]
    assert any_project.query("SELECT count(*) FROM subscriber_events") == [(0,)]
    added = any_project.run("subscribers", "add", "ada@example.com", "--language", "de")
    assert added.exit_code == 0, added.output
    assert any_project.query("SELECT language FROM subscribers") == [("de",)]
    assert _records(any_project)["ada@example.com"][:2] == ("cli", "ainews subscribers add")
