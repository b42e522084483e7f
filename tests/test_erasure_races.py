"""An erase that commits between a writer reading readers and writing their queued rows
(issue 29, "found nowhere"): the send's audience snapshot (on PostgreSQL) and the welcome
queue read in one transaction and write in another, so without the check in
delivery/unlisted.py the row written after the erase would keep the erased address and
name. Here the erase runs, on its own connection, exactly in that gap (on SQLite, where
the snapshot has no such gap, just before its statement)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import delete, event, func, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from ainews_newsletter import clock
from ainews_newsletter.config import Config, load_config
from ainews_newsletter.database import engine_for
from ainews_newsletter.feedback.events import EventLog, FeedbackEvent
from ainews_newsletter.feedback.findings import FeedbackKind
from ainews_newsletter.models import Recipient, Window
from ainews_newsletter.pipeline.erasure import erase, unnamer
from ainews_newsletter.pipeline.send import execute_send, plan_send
from ainews_newsletter.pipeline.welcome import Welcomes
from ainews_newsletter.subscribers.erased import erased_mark
from ainews_newsletter.subscribers.newcomers import Newcomers
from ainews_newsletter.subscribers.queries import still_listed
from ainews_newsletter.subscribers.schema import subscribers
from ainews_newsletter.subscribers.store import SubscriberStore
from tests.conftest import Project, SmtpServer
from tests.erase_data import (
    ADDRESS,
    KEY,
    NAME,
    OTHER,
    OTHER_NAME,
    database_bytes,
    hits,
    seed,
)

ENV = {"AINEWS_SECRET_KEY": KEY}


def _config(p: Project, **overrides: Any) -> Config:
    return load_config(p.config_path, environ=dict(ENV),
                       overrides={"storage": {"url": p.storage_url}, **overrides})


def _erase_on_another_connection(config: Config, address: str) -> None:
    """The erase as the CLI or the page runs it: its own thread, engine use and commit."""
    failures: list[BaseException] = []

    def run() -> None:
        try:
            erase(config, [address])
        except BaseException as error:  # re-raised below, in the test's thread
            failures.append(error)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "the erase did not finish"
    assert not failures, failures


def test_a_reader_erased_after_the_audience_was_read_gets_no_ledger_row(
        any_project: Project, smtp_server: SmtpServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    p = any_project
    p.run("subscribers", "add", OTHER, "--name", OTHER_NAME)
    p.run("subscribers", "add", ADDRESS, "--name", NAME)
    config = _config(p, smtp={"host": "127.0.0.1", "port": smtp_server.port},
                     delivery={"batch_size": 1})
    read = SubscriberStore.iter_recipients
    handed: list[str] = []

    def read_then_erase(self: SubscriberStore, *args: Any, **kwargs: Any
                        ) -> Iterator[Recipient]:
        # Each reader is read from the database here, and the erase commits after the
        # reading and before the snapshot writes the row.
        for recipient in read(self, *args, **kwargs):
            if recipient.email == ADDRESS:
                _erase_on_another_connection(config, ADDRESS)
            handed.append(recipient.email)
            yield recipient

    copy = SubscriberStore.audience
    copies: list[int] = []

    def erase_then_copy(self: SubscriberStore, connection: Any, *args: Any) -> Any:
        # SQLite: the database copies the readers itself, one INSERT … SELECT per batch
        # (delivery/snapshot.py), so nothing comes between reading a reader and writing
        # their row; the latest an erase can commit is just before that statement.
        if not copies:
            _erase_on_another_connection(config, ADDRESS)
        copies.append(1)
        return copy(self, connection, *args)

    from ainews_newsletter.database import sqlite_path
    from ainews_newsletter.subscribers import queries

    clean = queries.clean_name
    writers: list[str] = []

    def clean_while_another_tries_to_write(name: str | None) -> str | None:
        # SQLite, inside the copy's one statement (reading and writing the readers): an
        # erase could not commit here, as no other writer can begin.
        if not writers:
            other = sqlite3.connect(sqlite_path(config.database_url) or "", timeout=0.2,
                                    isolation_level=None)
            try:
                other.execute("BEGIN IMMEDIATE")
                writers.append("began")
                other.execute("ROLLBACK")
            except sqlite3.OperationalError as exc:
                writers.append(str(exc))
            finally:
                other.close()
        return clean(name)

    monkeypatch.setattr(SubscriberStore, "iter_recipients", read_then_erase)
    monkeypatch.setattr(SubscriberStore, "audience", erase_then_copy)
    monkeypatch.setattr(queries, "clean_name", clean_while_another_tries_to_write)
    counts = execute_send(config, plan_send(config, Window(week="2026-W47")))
    if p.storage_url is not None and p.storage_url.startswith("postgresql"):
        assert handed == [OTHER, ADDRESS]  # the erased reader was read before the erase
    else:
        assert handed == [] and copies  # no reader was read into Python
        assert writers == ["database is locked"]  # none could write during the copy
    assert (counts.total, counts.sent) == (1, 1)
    assert smtp_server.recipients() == [OTHER]
    assert p.query("SELECT email FROM deliveries") == [(OTHER,)]
    found = database_bytes(config)
    assert hits(found, ADDRESS, NAME) == []
    assert hits(found, OTHER, OTHER_NAME)  # the search sees what is there


def test_a_reader_erased_after_being_read_gets_no_welcome_row(any_project: Project,
                                                              smtp_server: SmtpServer) -> None:
    p = any_project
    p.run("subscribers", "add", OTHER, "--name", OTHER_NAME)
    p.run("subscribers", "add", ADDRESS, "--name", NAME)
    config = _config(p, smtp={"host": "127.0.0.1", "port": smtp_server.port},
                     subscribers={"welcome": True})
    newcomers = Newcomers(SubscriberStore.open(config).engine)
    readers = [newcomers.by_address(address.lower()) for address in (OTHER, ADDRESS)]
    assert all(reader is not None for reader in readers)
    _erase_on_another_connection(config, ADDRESS)
    queued = Welcomes(config).queue([reader for reader in readers if reader is not None])
    assert [reader.email for reader in queued] == [OTHER]
    assert p.query("SELECT email, name FROM welcomes") == [(OTHER, OTHER_NAME)]
    assert hits(database_bytes(config), ADDRESS, NAME) == []


def test_a_report_stored_while_an_erase_is_under_way_does_not_name_the_reader(
        any_project: Project) -> None:
    """The erase is held inside its transaction (after it took the erase lock, before it
    commits) while a bounce for the reader, read and matched before, is being stored: the
    store waits for the erase and then stores the mark, not the address. Without the lock
    the store would look before the erase commits and the erase would not see its row."""
    p = any_project
    config = _config(p)
    seed(engine_for(config.database_url), unsubscribe=False)
    engine = engine_for(config.database_url)
    erasing = threading.Event()
    release = threading.Event()
    eraser: list[int] = []

    def hold_the_erase(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if threading.get_ident() in eraser and statement.startswith("DELETE FROM subscribers"):
            erasing.set()
            release.wait(30)

    late = FeedbackEvent(
        dedup_key="late-during-erase", received_at=clock.now(), kind=FeedbackKind.HARD,
        email=ADDRESS.lower(), status="5.1.1", action="failed",
        diagnostic=f"550 5.1.1 <{ADDRESS.lower()}> {NAME}", feedback_type=None,
        source=f"/var/mail/{ADDRESS}.eml", matched_by="recipient", delivery_id=None,
        issue_id=None, subscriber_id=None)
    stored: list[FeedbackEvent] = []
    event.listen(engine, "before_cursor_execute", hold_the_erase)
    try:
        def run_erase() -> None:
            eraser.append(threading.get_ident())
            erase(config, [ADDRESS])

        erase_thread = threading.Thread(target=run_erase)
        erase_thread.start()
        assert erasing.wait(30), "the erase never reached its DELETE"
        store_thread = threading.Thread(target=lambda: stored.append(
            EventLog(engine).record(late, unnamer(config))[0]))
        store_thread.start()
        store_thread.join(timeout=1)  # it waits for the erase (not asserted: no timing)
        release.set()
        erase_thread.join(timeout=60)
        store_thread.join(timeout=60)
    finally:
        release.set()
        event.remove(engine, "before_cursor_execute", hold_the_erase)
    assert not erase_thread.is_alive() and not store_thread.is_alive()
    mark = erased_mark(KEY, ADDRESS.lower())
    assert [(e.email, e.diagnostic, e.source) for e in stored] == [
        (mark, "550 5.1.1 (erased on request)", "(erased on request)")]
    assert hits(database_bytes(config), ADDRESS, NAME) == []


def test_the_snapshot_lock_lets_other_updates_of_a_reader_through(project: Project,
                                                                  postgres_url: str) -> None:
    """PostgreSQL: the snapshot's look at who is still listed locks the readers FOR KEY
    SHARE, which holds off their DELETE (the erase) but not an UPDATE (an unsubscribe, an
    import): FOR SHARE made those wait, and could deadlock a send."""
    p = project
    p.storage_url = postgres_url
    p.run("subscribers", "add", ADDRESS)
    config = _config(p)
    engine = engine_for(config.database_url)
    [(reader,)] = p.query("SELECT id FROM subscribers")
    with engine.begin() as snapshot:
        assert still_listed(snapshot, [reader]) == {(reader, ADDRESS)}
        with engine.begin() as other:
            other.exec_driver_sql("SET LOCAL lock_timeout = '5s'")
            other.execute(update(subscribers).where(subscribers.c.id == reader)
                          .values(status="unsubscribed"))
        with engine.connect() as eraser:
            eraser.exec_driver_sql("SET lock_timeout = '200ms'")
            with pytest.raises(OperationalError, match="lock timeout"):
                eraser.execute(delete(subscribers).where(subscribers.c.id == reader))
            eraser.rollback()


@pytest.mark.parametrize("where", ["sqlite", "postgresql-c-locale"])
def test_addresses_with_capitals_beyond_ascii_are_matched_where_lower_folds_only_ascii(
        where: str, tmp_path: Any, request: pytest.FixtureRequest) -> None:
    """SQLite's lower() and a PostgreSQL database made with LC_CTYPE "C" fold A-Z only: a
    stored "ÜLRIKE…" is still found by its lower-case form (what the erase and the reader's
    download match by)."""
    from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, insert, select

    from ainews_newsletter.database import same_address

    if where == "sqlite":
        url = f"sqlite:///{tmp_path / 'fold.db'}"
    else:
        server = str(request.getfixturevalue("postgres_url"))
        with engine_for(server).connect().execution_options(
                isolation_level="AUTOCOMMIT") as admin:
            admin.exec_driver_sql("DROP DATABASE IF EXISTS fold_c")
            admin.exec_driver_sql("CREATE DATABASE fold_c TEMPLATE template0 "
                                  "LC_COLLATE 'C' LC_CTYPE 'C' ENCODING 'UTF8'")
        url = make_url(server).set(database="fold_c").render_as_string(hide_password=False)
    engine = create_engine(url)
    table = Table("t", MetaData(), Column("id", Integer, primary_key=True),
                  Column("email", String(320)))
    table.metadata.create_all(engine)
    stored = ["ÜLRIKE.Zweig@example.com", "other@example.com", "Øyvind@example.com"]
    with engine.begin() as connection:
        connection.execute(insert(table), [{"email": email} for email in stored])
        assert connection.execute(select(func.lower(table.c.email)).where(
            table.c.id == 1)).scalar() != "ülrike.zweig@example.com"  # the case at hand
        found = connection.execute(select(table.c.email).where(same_address(
            connection, table.c.email, table.c.id,
            {"ülrike.zweig@example.com", "other@example.com"})).order_by(table.c.id))
        assert found.scalars().all() == stored[:2]
    engine.dispose()
