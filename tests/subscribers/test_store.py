"""The subscriber store on a real SQLite file and on a real PostgreSQL database: statuses,
lists, suppression, import merge rules, and an unsubscribe racing a send."""

from __future__ import annotations

import base64
import json
import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ainews_newsletter import clock
from ainews_newsletter.database import engine_for
from ainews_newsletter.errors import SubscriberError
from ainews_newsletter.models import SubscriberStatus
from ainews_newsletter.subscribers import arrivals, importer
from ainews_newsletter.subscribers.formats import open_subscriber_file
from ainews_newsletter.subscribers.importer import ImportRow, import_rows
from ainews_newsletter.subscribers.schema import subscriber_events
from ainews_newsletter.subscribers.store import SubscriberStore
from ainews_newsletter.subscribers.tokens import TOKEN_BYTES

# Run again under libfaketime at awkward dates by scripts/test-clocks.
pytestmark = pytest.mark.clock

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "subscribers"
ACTIVE, UNSUBSCRIBED = SubscriberStatus.ACTIVE, SubscriberStatus.UNSUBSCRIBED


@pytest.fixture
def store(database_url: str) -> SubscriberStore:
    return SubscriberStore(engine_for(database_url), default_list="newsletter")


def _row(line: int, email: str, name: str | None = None,
         status: SubscriberStatus | None = None) -> ImportRow:
    return ImportRow(line, email, email.lower(), name, status)


def test_sqlite_file_is_created_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "subs.db"
    SubscriberStore(engine_for(f"sqlite:///{path}")).add("a@example.com")
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_add_normalizes_joins_the_default_list_and_refuses_duplicates(
        store: SubscriberStore) -> None:
    at = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    with clock.use_clock(clock.frozen(at)):
        added = store.add("  Ada.Lovelace@Example.COM ", name="Ada")
    assert (added.email, added.email_normalized) == ("Ada.Lovelace@Example.COM",
                                                     "ada.lovelace@example.com")
    assert added.status is ACTIVE and added.created_at == at == added.confirmed_at
    assert added.lists == ("newsletter",)
    with pytest.raises(SubscriberError, match="already on list 'newsletter'"):
        store.add("ada.lovelace@example.com")
    assert store.count() == 1


def test_lists_and_memberships(store: SubscriberStore) -> None:
    store.add_list("research", "papers only")
    store.add("a@example.com")
    store.add("a@example.com", list_name="research")  # a known address joins another list
    store.add("b@example.com", list_name="research", status=SubscriberStatus.PENDING)
    assert store.require("a@example.com").lists == ("newsletter", "research")
    assert store.count(list_name="research") == 2 and store.count(list_name="newsletter") == 1
    assert store.count(SubscriberStatus.PENDING, "research") == 1
    info = {item.name: (item.members, item.active) for item in store.lists()}
    assert info == {"newsletter": (1, 1), "research": (2, 1)}
    with pytest.raises(SubscriberError, match="no list named 'nope'"):
        store.add("c@example.com", list_name="nope")
    with pytest.raises(SubscriberError, match="exists already"):
        store.add_list("research")
    assert store.remove_list("research") == 2
    assert store.require("b@example.com").lists == ()  # the subscriber stays


def test_audience_is_active_members_not_suppressed(store: SubscriberStore) -> None:
    store.add_list("other")
    for address in ("in@example.com", "pending@example.com", "left@example.com"):
        store.add(address, status=SubscriberStatus.PENDING if "pending" in address else ACTIVE)
    store.add("elsewhere@example.com", list_name="other")
    store.unsubscribe("left@example.com")
    assert [r.email for r in store.iter_recipients()] == ["in@example.com"]
    assert store.count_recipients() == 1
    assert [r.email for r in store.iter_recipients("other")] == ["elsewhere@example.com"]


def test_remove_after_unsubscribe_keeps_the_address_suppressed(store: SubscriberStore) -> None:
    store.add("gone@example.com")
    store.unsubscribe("gone@example.com")
    store.remove("gone@example.com")
    assert store.get("gone@example.com") is None
    assert store.suppression("gone@example.com") == "unsubscribed"
    with pytest.raises(SubscriberError, match="suppression list"):
        store.add("GONE@example.com")
    summary = import_rows(store, [_row(2, "gone@example.com", "Back")])
    assert summary.as_dict() == {"imported": 0, "updated": 0, "duplicates": 0, "rejected": 1}
    assert store.get("gone@example.com") is None


def test_remove_of_an_active_subscriber_forgets_them(store: SubscriberStore) -> None:
    store.add("bye@example.com")
    store.remove("bye@example.com")
    assert store.suppression("bye@example.com") is None
    assert store.add("bye@example.com").status is ACTIVE


def test_resubscribe_lifts_the_suppression(store: SubscriberStore) -> None:
    store.add("back@example.com")
    first = store.unsubscribe("back@example.com")
    assert first.unsubscribed_at is not None and store.unsubscribe("back@example.com") == first
    again = store.resubscribe("back@example.com")
    assert again.status is ACTIVE and again.unsubscribed_at is None
    assert [r.email for r in store.iter_recipients()] == ["back@example.com"]


def test_unsubscribe_by_token(store: SubscriberStore) -> None:
    subscriber = store.add("t@example.org")
    assert store.unsubscribe_token("wrong-token") is None
    result = store.unsubscribe_token(subscriber.token)
    assert result is not None and result.status is UNSUBSCRIBED


def test_import_merges_and_never_reactivates(store: SubscriberStore) -> None:
    store.add("gone@example.com", name="Gone")
    store.unsubscribe("gone@example.com")
    store.add("known@example.com")
    store.add("named@example.com", name="Keep Me")
    rows = [_row(2, "new@example.com", "New"), _row(3, "NEW@example.com"),
            _row(4, "gone@example.com", "Gone Again", ACTIVE),
            _row(5, "known@example.com", "Now Named"),
            _row(6, "named@example.com", "Other Name"),
            _row(7, "known2@example.com", None, UNSUBSCRIBED)]
    summary = import_rows(store, rows, source="import:test.csv")
    assert summary.as_dict() == {"imported": 2, "updated": 1, "duplicates": 3, "rejected": 0}
    assert store.require("gone@example.com").status is UNSUBSCRIBED
    assert store.require("known@example.com").name == "Now Named"
    assert store.require("named@example.com").name == "Keep Me"  # never overwritten
    assert store.require("known2@example.com").status is UNSUBSCRIBED
    assert store.count(ACTIVE) == 3


def test_an_import_honours_an_unsubscribe_from_the_source(store: SubscriberStore) -> None:
    store.add("leaving@example.com")
    summary = import_rows(store, [_row(2, "leaving@example.com", None, UNSUBSCRIBED)])
    assert summary.updated == 1
    left = store.require("leaving@example.com")
    assert left.status is UNSUBSCRIBED and left.unsubscribed_at is not None


def test_dry_run_counts_but_stores_nothing(store: SubscriberStore) -> None:
    rows = [_row(i + 2, f"dry{i}@example.com") for i in range(3)]
    assert import_rows(store, rows, dry_run=True).imported == 3
    assert store.count() == 0


def test_import_into_a_list_and_with_a_status(store: SubscriberStore) -> None:
    store.add_list("beta")
    import_rows(store, [_row(2, "p@example.com")], list_name="beta",
                status=SubscriberStatus.PENDING)
    subscriber = store.require("p@example.com")
    assert subscriber.lists == ("beta",) and subscriber.status is SubscriberStatus.PENDING
    with pytest.raises(SubscriberError, match="no list named 'ghost'"):
        import_rows(store, [_row(2, "q@example.com")], list_name="ghost")
    assert store.get("q@example.com") is None


def test_reimport_gives_the_same_end_state(store: SubscriberStore) -> None:
    for name in ("mailchimp-subscribed.csv", "substack.csv", "listmonk.csv", "buttondown.tsv",
                 "mailchimp-unsubscribed.csv"):
        import_rows(store, open_subscriber_file(FIXTURES / name).rows)
    first = [(s.email, s.name, s.status, s.attributes, s.lists)
             for s in store.iter_subscribers(with_lists=True)]
    for name in ("mailchimp-subscribed.csv", "substack.csv", "listmonk.csv", "buttondown.tsv",
                 "mailchimp-unsubscribed.csv"):
        again = import_rows(store, open_subscriber_file(FIXTURES / name).rows)
        assert again.imported == 0 and again.updated == 0
    second = [(s.email, s.name, s.status, s.attributes, s.lists)
              for s in store.iter_subscribers(with_lists=True)]
    assert first == second
    statuses = {s.email: s.status for s in store.iter_subscribers()}
    assert statuses["gideon.mensah@example.org"] is UNSUBSCRIBED  # the later unsub file wins
    assert statuses["pia.lund@example.org"] is SubscriberStatus.PENDING
    assert statuses["mo.farah@example.org"] is UNSUBSCRIBED


def test_a_failed_batch_leaves_no_half_rows(store: SubscriberStore,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importer, "BATCH_SIZE", 5000)

    def rows() -> object:
        for i in range(7000):  # the first batch of 5000 commits, then the source breaks
            if i == 6000:
                raise OSError("disk went away")
            yield _row(i + 2, f"r{i}@example.com")

    with pytest.raises(OSError):
        import_rows(store, rows())  # type: ignore[arg-type]
    assert store.count() == 5000
    summary = import_rows(store, [_row(i + 2, f"r{i}@example.com") for i in range(7000)])
    assert (summary.imported, summary.duplicates) == (2000, 5000) and store.count() == 7000


def test_search_and_keyset_pages(store: SubscriberStore) -> None:
    for i in range(7):
        store.add(f"r{i}@example.com", name=f"Reader {i}")
    store.add("someone@else.example.org", name="Zed")
    assert [s.email for s in store.iter_subscribers(search="zed")] == ["someone@else.example.org"]
    emails = [s.email for s in store.iter_subscribers(batch_size=3)]
    assert len(emails) == 8 and emails[0] == "r0@example.com"


def test_import_tokens_are_random_distinct_and_share_only_a_batch_prefix() -> None:
    """Each token of a batch: the batch's 4-character prefix, then random bytes of its own,
    as many as `new_token` has (so no token is easier to guess than a sign-up's)."""
    from ainews_newsletter.subscribers.tokens import new_token

    tokens = arrivals.new_tokens(5000)
    assert len(tokens) == len(set(tokens)) == 5000
    own = len(new_token())
    shape = re.compile(rf"[A-Za-z0-9_-]{{{arrivals.BATCH_PREFIX + own}}}")
    assert all(shape.fullmatch(token) for token in tokens)
    assert len({token[:arrivals.BATCH_PREFIX] for token in tokens}) == 1
    tails = [token[arrivals.BATCH_PREFIX:] for token in tokens]
    assert len(set(tails)) == 5000
    assert {len(base64.urlsafe_b64decode(tail)) for tail in tails} == {TOKEN_BYTES}
    # every character position of the random part varies across the batch
    assert all(len({tail[i] for tail in tails}) > 32 for i in range(own))
    assert arrivals.new_tokens(0) == [] and len(arrivals.new_tokens(1)) == 1
    assert set(arrivals.new_tokens(100)).isdisjoint(tokens)  # not a seeded sequence
    prefixes = {arrivals.new_tokens(1)[0][:arrivals.BATCH_PREFIX] for _ in range(20)}
    assert len(prefixes) > 1  # each batch draws its own


def test_import_across_batches_merges_repeats_keeps_lines_and_gives_each_a_token(
        store: SubscriberStore, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(importer, "BATCH_SIZE", 4)
    store.add_list("beta")
    path = tmp_path / "list.csv"
    # Line 6 repeats line 2 in another batch; line 4 repeats line 3 in the same batch;
    # the rejects sit on both sides of a batch border; a quoted name spans lines 8-9.
    path.write_text("email,name\na@example.com,A\nb@example.com,\nB@EXAMPLE.COM,Bee\n"
                    "broken\nA@Example.com,Other\nc@example.com,C\n"
                    'd@example.com,"D\nD"\nnope@\ne@example.com,E\n', encoding="utf-8")
    summary = import_rows(store, open_subscriber_file(path).rows, list_name="beta")
    assert summary.as_dict() == {"imported": 5, "updated": 0, "duplicates": 2,
                                 "rejected": 2}
    assert [(reject.line, reject.email) for reject in summary.rejects] == [
        (5, "broken"), (10, "nope@")]
    stored = {s.email_normalized: s for s in store.iter_subscribers(with_lists=True)}
    assert sorted(stored) == [f"{c}@example.com" for c in "abcde"]
    assert stored["a@example.com"].name == "A" and stored["b@example.com"].name == "Bee"
    assert stored["d@example.com"].name == "D D"
    assert all(s.lists == ("beta",) for s in stored.values())
    tokens = [s.token for s in stored.values()]
    assert len(set(tokens)) == 5 and all(len(token) == 28 for token in tokens)
    with store.engine.connect() as connection:
        joined = sorted(connection.execute(
            select(subscriber_events.c.subscriber_id)
            .where(subscriber_events.c.kind == "joined")).scalars())
    assert joined == sorted(s.id for s in stored.values())


def test_import_restores_the_lists_of_our_export_and_adds_the_asked_for_list(
        store: SubscriberStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importer, "BATCH_SIZE", 2)
    store.add_list("beta")
    store.add("known@example.com")  # on "newsletter" already: stays there, once
    rows = [ImportRow(2, "x@example.com", "x@example.com", lists=("research", "weekly")),
            ImportRow(3, "y@example.com", "y@example.com"),
            ImportRow(4, "known@example.com", "known@example.com", lists=("weekly",)),
            ImportRow(5, "z@example.com", "z@example.com", lists=("research",))]
    import_rows(store, rows)
    on = {s.email: s.lists for s in store.iter_subscribers(with_lists=True)}
    assert on == {"x@example.com": ("research", "weekly"), "y@example.com": ("newsletter",),
                  "known@example.com": ("newsletter", "weekly"),
                  "z@example.com": ("research",)}
    import_rows(store, rows, list_name="beta")
    on = {s.email: s.lists for s in store.iter_subscribers(with_lists=True)}
    assert on["x@example.com"] == ("beta", "research", "weekly")
    assert on["y@example.com"] == ("beta", "newsletter")


def test_an_import_batch_writes_each_new_rows_columns_events_record_and_list(
        store: SubscriberStore) -> None:
    """The new rows' insert (arrivals.py) and what follows it (bulk.added_since on SQLite):
    ids in file order, "" back to NULL, the times the status calls for, a source with
    quotes and placeholders kept as given, and each new row's event, record and list."""
    from ainews_newsletter.subscribers.consent_records import Agreement

    pending = SubscriberStatus.PENDING
    rows = [ImportRow(2, "Z@example.com", "z@example.com", "Zed", ACTIVE,
                      {"plan": "pro"}, (), "de"),
            ImportRow(3, "a@example.com", "a@example.com", None, pending),
            ImportRow(4, "m@example.com", "m@example.com", "Em", UNSUBSCRIBED)]
    source = "import:o'brien ?1 %s.csv"
    summary = import_rows(store, rows, source=source,
                          agreement=Agreement("import", "o'brien.csv (csv)"))
    assert summary.imported == 3
    with store.engine.connect() as connection:
        stored = connection.exec_driver_sql(
            "SELECT email, name, status, attributes, language, source, created_at = updated_at,"
            " confirmed_at IS NOT NULL, unsubscribed_at IS NOT NULL FROM subscribers "
            "ORDER BY id").all()
        records = connection.exec_driver_sql(
            "SELECT s.email, c.source, c.confirmed_at IS NOT NULL FROM consents c "
            "JOIN subscribers s ON s.id = c.subscriber_id ORDER BY s.id").all()
        events = connection.exec_driver_sql(
            "SELECT s.email, e.kind, e.source FROM subscriber_events e JOIN subscribers s "
            "ON s.id = e.subscriber_id ORDER BY e.id").all()
    assert [(*row[:3], json.loads(row[3]) if isinstance(row[3], str) else row[3], *row[4:])
            for row in stored] == [
        ("Z@example.com", "Zed", "active", {"plan": "pro"}, "de", source, True, True, False),
        ("a@example.com", None, "pending", None, None, source, True, False, False),
        ("m@example.com", "Em", "unsubscribed", None, None, source, True, False, True)]
    assert [tuple(row) for row in records] == [
        ("Z@example.com", "o'brien.csv (csv)", True),
        ("a@example.com", "o'brien.csv (csv)", False),
        ("m@example.com", "o'brien.csv (csv)", False)]
    assert [tuple(row) for row in events] == [
        ("Z@example.com", "joined", "import"), ("a@example.com", "joined", "import"),
        ("m@example.com", "joined", "import"), ("m@example.com", "unsubscribed", "import")]
    assert {s.email: s.lists for s in store.iter_subscribers(with_lists=True)} == {
        "Z@example.com": ("newsletter",), "a@example.com": ("newsletter",),
        "m@example.com": ("newsletter",)}


def test_an_import_after_the_largest_sqlite_id_still_finds_its_new_rows(
        store: SubscriberStore, database_url: str) -> None:
    """Once the largest id is taken SQLite picks ids at random: the new rows are no longer
    the ids above the last one, and the import finds them by address instead."""
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's choice of ids")
    from ainews_newsletter.subscribers.consent_records import Agreement

    with store.engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO subscribers (id, email, email_normalized, status, token, created_at, "
            "updated_at) VALUES (9223372036854775807, 'last@example.com', 'last@example.com', "
            "'active', 'last-token', '2026-01-01 00:00:00.000000', "
            "'2026-01-01 00:00:00.000000')")
    rows = [_row(i + 2, f"late{i}@example.com") for i in range(40)]
    assert import_rows(store, rows, agreement=Agreement("import", "late.csv")).imported == 40
    with store.engine.connect() as connection:
        counts = connection.exec_driver_sql(
            "SELECT (SELECT count(*) FROM consents), (SELECT count(*) FROM memberships), "
            "(SELECT count(*) FROM subscriber_events WHERE kind = 'joined' "
            "AND source = 'import')").one()
    assert tuple(counts) == (40, 40, 40)


def test_an_import_meeting_a_locked_database_fails_as_sqlalchemy_says_it(
        tmp_path: Path) -> None:
    """The staged merge hands some statements to the driver itself (BEGIN IMMEDIATE, the
    batch file's ATTACH): a write lock held elsewhere past the busy timeout must still be
    SQLAlchemy's OperationalError (the CLI says those in one line), not sqlite3's."""
    from sqlalchemy import event
    from sqlalchemy.exc import OperationalError

    path = tmp_path / "locked.db"
    engine = engine_for(f"sqlite:///{path}")
    store = SubscriberStore(engine, default_list="newsletter")
    store.add("first@example.com")

    @event.listens_for(engine, "connect")
    def impatient(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=50")  # after the usual 10 s one

    engine.dispose()  # the next connection is made with it
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(OperationalError, match="database is locked"):
            import_rows(store, [_row(2, "late@example.com")])
    finally:
        holder.rollback()
        holder.close()
    assert import_rows(store, [_row(2, "late@example.com")]).imported == 1
