"""The subscriber history on SQLite and PostgreSQL: every change writes exactly its event
(kind, source, issue) in the change's transaction, repeats write nothing, imports write one
event per arrival in bulk, web unsubscribes are put down to the last issue the reader got,
bounces to the issue that bounced; and the read side reports count from it."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Browser
from sqlalchemy import select
from starlette.testclient import TestClient

from ainews_newsletter import clock
from ainews_newsletter.config import Config, load_config
from ainews_newsletter.database import engine_for
from ainews_newsletter.errors import SubscriberError
from ainews_newsletter.feedback.mailfile import MailItem
from ainews_newsletter.models import SubscriberStatus, Window
from ainews_newsletter.pipeline.feedback import ingest
from ainews_newsletter.pipeline.issue import audience_list, open_ledger, open_subscribers
from ainews_newsletter.pipeline.send import execute_send, plan_send
from ainews_newsletter.subscribers import importer
from ainews_newsletter.subscribers.history import SubscriberHistory, count_statement
from ainews_newsletter.subscribers.importer import ImportRow, import_rows
from ainews_newsletter.subscribers.schema import subscriber_events
from ainews_newsletter.subscribers.signups import SignUps
from ainews_newsletter.subscribers.store import SubscriberStore
from ainews_newsletter.web.public import create_public_app
from tests.conftest import Project, SmtpServer
from tests.feedback.returns import dsn
from tests.render.test_browser import browser  # noqa: F401  (the Chromium fixture)
from tests.web.conftest import free_port, served

pytestmark = pytest.mark.clock

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
Event = tuple[str, str, int | None]  # (kind, source, issue_id)


@pytest.fixture
def store(database_url: str) -> SubscriberStore:
    return SubscriberStore(engine_for(database_url), default_list="newsletter")


def _events(store: SubscriberStore, subscriber_id: int | None = None) -> list[Event]:
    """What the table holds, read directly (not through SubscriberHistory), in write order."""
    query = select(subscriber_events.c.kind, subscriber_events.c.source,
                   subscriber_events.c.issue_id).order_by(subscriber_events.c.id)
    if subscriber_id is not None:
        query = query.where(subscriber_events.c.subscriber_id == subscriber_id)
    with store.engine.connect() as connection:
        return [(row.kind, row.source, row.issue_id) for row in connection.execute(query)]


# -- the write side, operation by operation ----------------------------------------------------

def test_each_store_change_writes_exactly_its_event(store: SubscriberStore) -> None:
    ada = store.add("ada@example.com")
    assert _events(store) == [("joined", "cli", None)]
    store.unsubscribe("ada@example.com")
    store.unsubscribe("ada@example.com")  # already unsubscribed: nothing more
    assert _events(store)[1:] == [("unsubscribed", "cli", None)]
    store.resubscribe("ada@example.com")
    store.resubscribe("ada@example.com")  # active already: the row is left alone
    assert _events(store)[2:] == [("resubscribed", "cli", None)]
    assert store.mark_left(ada.id, SubscriberStatus.BOUNCED, issue_id=7)
    assert not store.mark_left(ada.id, SubscriberStatus.COMPLAINED, issue_id=8)  # left already
    assert _events(store)[3:] == [("bounced", "bounce", 7)]
    store.remove("ada@example.com")  # she had left (bounced): the list does not shrink
    assert _events(store)[4:] == [("erased", "cli", None)]
    store.add("bo@example.com")
    store.remove("bo@example.com")  # on the list: the list shrinks
    assert _events(store)[-1] == ("removed", "cli", None)
    assert [event.kind for event in SubscriberHistory(store.engine).events_for(ada.id)] == []

    bob = store.add("bob@example.com", source="import:old-list.csv")
    assert store.mark_left(bob.id, SubscriberStatus.COMPLAINED, issue_id=3)
    # (by position: on SQLite Bob has Ada's id, see the test of that below)
    assert _events(store)[-2:] == [("joined", "import", None), ("complained", "complaint", 3)]


def test_two_unsubscribes_that_both_saw_an_active_row_write_one_event(
        store: SubscriberStore) -> None:
    """Two requests (a retried one-click POST, say) each read the row as active before
    either wrote: the second finds it changed and must neither write nor count again."""
    seen = store.add("ann@example.com")
    assert store.set_status(seen, SubscriberStatus.UNSUBSCRIBED, "one-click", 1)
    assert not store.set_status(seen, SubscriberStatus.UNSUBSCRIBED, "one-click", 1)
    assert _events(store) == [("joined", "cli", None), ("unsubscribed", "one-click", 1)]


def test_an_arrival_that_had_left_joins_and_leaves(store: SubscriberStore) -> None:
    cy = store.add("cy@example.com", status=SubscriberStatus.UNSUBSCRIBED)
    dee = store.add("dee@example.com", status=SubscriberStatus.PENDING, source="demo")
    assert _events(store, cy.id) == [("joined", "cli", None), ("unsubscribed", "cli", None)]
    assert _events(store, dee.id) == [("joined", "demo", None)]


def test_what_changes_no_subscriber_writes_no_event(store: SubscriberStore) -> None:
    store.add_list("research")
    ada = store.add("ada@example.com")
    store.add("ada@example.com", list_name="research")  # a membership, not a change of Ada
    store.set_lists("ada@example.com", ["newsletter"])
    store.set_name(ada.id, "Ada")
    store.unsubscribe("ada@example.com")
    store.remove("ada@example.com")
    with pytest.raises(SubscriberError, match="suppression list"):
        store.add("ada@example.com")  # refused: its transaction wrote nothing
    assert [kind for kind, _, _ in _events(store)] == ["joined", "unsubscribed", "erased"]


def test_web_sign_up_confirmation_and_return(store: SubscriberStore) -> None:
    sign_ups = SignUps(store)
    eve = sign_ups.sign_up("eve@example.com", "Eve", None)
    sign_ups.confirm("eve@example.com")
    sign_ups.confirm("eve@example.com")  # the link followed twice
    store.unsubscribe("eve@example.com", source="one-click", issue_id=2)
    sign_ups.sign_up("eve@example.com", None, None)  # no change: the link decides
    sign_ups.confirm("eve@example.com")
    assert _events(store, eve.id) == [
        ("joined", "web", None), ("confirmed", "web", None), ("unsubscribed", "one-click", 2),
        ("resubscribed", "web", None)]


def test_sqlite_reusing_a_removed_id_does_not_hand_its_history_on(
        store: SubscriberStore) -> None:
    old = store.add("old@example.com")
    store.unsubscribe("old@example.com")
    store.remove("old@example.com")
    new = store.add("new@example.com")  # SQLite: the same id again (the newest was deleted)
    shown = SubscriberHistory(store.engine).events_for(new.id)
    assert [(event.kind, event.source) for event in shown] == [("joined", "cli")]
    if store.engine.dialect.name == "sqlite":
        assert new.id == old.id  # else this test shows nothing: SQLite changed its ways


# -- imports ---------------------------------------------------------------------------------

def test_an_import_writes_one_joined_event_per_row_across_batches(
        store: SubscriberStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importer, "BATCH_SIZE", 5)
    rows = [ImportRow(line, f"r{line:02d}@example.com", f"r{line:02d}@example.com")
            for line in range(12)]
    rows.append(ImportRow(12, "gone@example.com", "gone@example.com",
                          status=SubscriberStatus.UNSUBSCRIBED))
    import_rows(store, rows, dry_run=True)
    assert _events(store) == []  # rolled back with the rows
    summary = import_rows(store, rows, source="import:list.csv")
    assert summary.imported == 13
    events = _events(store)
    assert events.count(("joined", "import", None)) == 13
    assert events.count(("unsubscribed", "import", None)) == 1
    assert len(events) == 14
    with store.engine.connect() as connection:
        ids = {row.subscriber_id for row in connection.execute(
            select(subscriber_events.c.subscriber_id)
            .where(subscriber_events.c.kind == "joined"))}
    assert ids == {subscriber.id for subscriber in store.iter_subscribers()}

    # Again, with two readers now marked as having left and one pending confirmed: only
    # those three changes write, and the rest of the file is a no-op.
    again = [*rows[:10],
             ImportRow(10, "r10@example.com", "r10@example.com",
                       status=SubscriberStatus.BOUNCED),
             ImportRow(11, "r11@example.com", "r11@example.com",
                       status=SubscriberStatus.UNSUBSCRIBED),
             rows[12]]
    store.add("late@example.com", status=SubscriberStatus.PENDING)
    again.append(ImportRow(13, "late@example.com", "late@example.com",
                           status=SubscriberStatus.ACTIVE))
    import_rows(store, again)
    assert sorted(_events(store)[15:]) == [("bounced", "import", None),
                                           ("confirmed", "import", None),
                                           ("unsubscribed", "import", None)]


def test_the_cli_import_records_its_source_as_import(any_project: Project) -> None:
    any_project.import_readers(4)
    assert any_project.query("SELECT kind, source, count(*) FROM subscriber_events "
                             "GROUP BY kind, source") == [("joined", "import", 4)]


# -- attribution to an issue -----------------------------------------------------------------

SECRET = "test-secret-key-of-enough-length"
BOUNCES = "bounces@news.example.org"


def _config(project: Project, server: SmtpServer) -> Config:
    overrides: dict[str, Any] = {"smtp": {"host": "127.0.0.1", "port": server.port},
                                 "bounces": {"address": BOUNCES}}
    if project.storage_url is not None:
        overrides["storage"] = {"url": project.storage_url}
    return load_config(project.config_path, environ={"AINEWS_SECRET_KEY": SECRET},
                       overrides=overrides)


def _send(config: Config, week: str) -> int:
    """Send the week's issue; returns its id."""
    plan = plan_send(config, Window(week=week))
    assert execute_send(config, plan).failed == 0
    issue = open_ledger(config).find_issue(audience_list(config), week)
    assert issue is not None
    return issue.id


def _events_of(project: Project, address: str) -> list[Event]:
    return [tuple(row) for row in project.query(  # type: ignore[misc]
        "SELECT e.kind, e.source, e.issue_id FROM subscriber_events e JOIN subscribers s "
        "ON s.id = e.subscriber_id WHERE s.email = ? ORDER BY e.id", address)]


def test_web_unsubscribes_are_put_down_to_the_last_issue_sent(
        any_project: Project, smtp_server: SmtpServer) -> None:
    readers = any_project.import_readers(3)
    config = _config(any_project, smtp_server)
    older = _send(config, "2026-W46")
    newer = _send(config, "2026-W47")
    assert older != newer
    late = open_subscribers(config).add("late@example.com")  # got no issue
    tokens = dict(any_project.query("SELECT email, token FROM subscribers"))
    client = TestClient(create_public_app(config), base_url="https://testserver")
    one_click = {"List-Unsubscribe": "One-Click"}
    for _ in range(2):  # a mail provider's RFC 8058 POST, retried: one event
        answer = client.post(f"/unsubscribe/{tokens[readers[0]]}", data=one_click)
        assert answer.status_code == 200
    # The page's button: a browser's form POST carries fetch metadata.
    form_post = {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document",
                 "Sec-Fetch-Site": "same-origin"}
    assert client.post(f"/unsubscribe/{tokens[readers[1]]}", data=one_click,
                       headers=form_post).status_code == 200
    assert client.post(f"/unsubscribe/{late.token}", data=one_click).status_code == 200
    assert client.get(f"/unsubscribe/{tokens[readers[2]]}").status_code == 200  # changes nothing

    assert _events_of(any_project, readers[0]) == [("joined", "import", None),
                                                   ("unsubscribed", "one-click", newer)]
    assert _events_of(any_project, readers[1])[1:] == [("unsubscribed", "web", newer)]
    assert _events_of(any_project, "late@example.com") == [("joined", "cli", None),
                                                           ("unsubscribed", "one-click", None)]
    assert _events_of(any_project, readers[2]) == [("joined", "import", None)]
    history = SubscriberHistory(engine_for(config.database_url))
    assert (history.unsubscribes_for_issue(newer), history.unsubscribes_for_issue(older)) \
        == (2, 0)


def test_a_bounce_through_the_feedback_loop_names_its_issue(
        any_project: Project, smtp_server: SmtpServer) -> None:
    readers = any_project.import_readers(2)
    config = _config(any_project, smtp_server)
    issue_id = _send(config, "2026-W47")
    [message] = [m for m in smtp_server.handler.messages if readers[1] in m.rcpt_tos]
    assert re.fullmatch(r"bounces\+[a-z2-7]{16}@news\.example\.org", message.mail_from)
    report = dsn(message.mail_from, readers[1], original=message.data)
    summary = ingest(config, [MailItem("dsn.eml", report)])
    assert summary.changed["bounced"] == 1
    ingest(config, [MailItem("again.eml", report)])  # a repeat: no event
    assert _events_of(any_project, readers[1]) == [("joined", "import", None),
                                                   ("bounced", "bounce", issue_id)]
    assert _events_of(any_project, readers[0]) == [("joined", "import", None)]


# -- the read side ---------------------------------------------------------------------------

def test_counts_between_is_half_open_and_per_kind(store: SubscriberStore) -> None:
    for offset, address in ((0, "a@example.com"), (1, "b@example.com"), (2, "c@example.com")):
        with clock.use_clock(clock.frozen(T0 + timedelta(days=offset))):
            store.add(address)
    with clock.use_clock(clock.frozen(T0 + timedelta(days=1, hours=5))):
        store.unsubscribe("a@example.com", source="one-click", issue_id=4)
    with clock.use_clock(clock.frozen(T0 + timedelta(days=1, hours=6))):
        store.resubscribe("a@example.com")
    with clock.use_clock(clock.frozen(T0 + timedelta(days=1, hours=7))):
        store.unsubscribe("a@example.com", source="one-click", issue_id=4)
    history = SubscriberHistory(store.engine)
    counts = history.counts_between(T0, T0 + timedelta(days=2))  # c joins at the end: out
    assert counts == {"joined": 2, "confirmed": 0, "unsubscribed": 2, "bounced": 0,
                      "complained": 0, "resubscribed": 1, "removed": 0, "erased": 0}
    assert history.counts_between(T0 + timedelta(days=2), T0 + timedelta(days=3))["joined"] == 1
    assert history.unsubscribes_for_issue(4) == 1  # distinct subscribers
    assert history.unsubscribes_for_issue(5) == 0
    shown = history.events_for(store.require("a@example.com").id)
    assert [(event.kind, event.at) for event in shown] == [
        ("joined", T0), ("unsubscribed", T0 + timedelta(days=1, hours=5)),
        ("resubscribed", T0 + timedelta(days=1, hours=6)),
        ("unsubscribed", T0 + timedelta(days=1, hours=7))]


def test_counting_a_kind_is_a_range_on_the_kind_at_index(database_url: str) -> None:
    """Reports count weeks of a million-row table: each count must be an index range."""
    engine = engine_for(database_url)
    SubscriberHistory(engine)  # makes the schema
    statement = count_statement("joined", T0, T0 + timedelta(days=7))
    compiled = statement.compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            plan = " ".join(str(row[-1]) for row in connection.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {compiled}"))
        else:
            connection.exec_driver_sql("SET enable_seqscan = off")  # an empty table
            plan = " ".join(str(row[0]) for row in connection.exec_driver_sql(
                f"EXPLAIN {compiled}"))
    assert "ix_subscriber_events_kind_at" in plan, plan


def test_subscribers_show_lists_the_history(any_project: Project) -> None:
    assert any_project.run("subscribers", "add", "ada@example.com").exit_code == 0
    assert any_project.run("subscribers", "unsubscribe", "ada@example.com").exit_code == 0
    assert any_project.run("subscribers", "resubscribe", "ada@example.com").exit_code == 0
    shown = any_project.run("subscribers", "show", "ada@example.com", "--json")
    assert shown.exit_code == 0, shown.output
    history = json.loads(shown.output)["history"]
    assert [(e["kind"], e["source"], e["issue_id"]) for e in history] == [
        ("joined", "cli", None), ("unsubscribed", "cli", None), ("resubscribed", "cli", None)]
    assert all(datetime.fromisoformat(e["at"]).tzinfo is not None for e in history)
    plain = any_project.run("subscribers", "show", "ada@example.com")
    assert plain.exit_code == 0
    lines = [line.split("UTC", 1)[1].split() for line in plain.output.splitlines()
             if " UTC " in line]
    assert lines == [["joined", "(cli)"], ["unsubscribed", "(cli)"], ["resubscribed", "(cli)"]]


def test_the_unsubscribe_pages_button_in_chromium_counts_as_web(
        project: Project, smtp_server: SmtpServer, browser: Browser) -> None:  # noqa: F811
    """What tells the button from a mail provider's POST is the fetch metadata a real
    browser sends with a form: checked in one, not assumed."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = load_config(project.config_path, environ={"AINEWS_SECRET_KEY": SECRET},
                         overrides={"newsletter": {"base_url": base},
                                    "smtp": {"host": "127.0.0.1", "port": smtp_server.port}})
    token = open_subscribers(config).add("fay@example.com").token
    with served(create_public_app(config), port):
        page = browser.new_page()
        page.goto(f"{base}/unsubscribe/{token}")
        page.click("#unsubscribe")
        page.wait_for_selector("text=You are unsubscribed")
        page.close()
    assert _events_of(project, "fay@example.com") == [("joined", "cli", None),
                                                      ("unsubscribed", "web", None)]
