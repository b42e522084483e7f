"""The subscriber store on a real SQLite file, and CSV import with line-numbered rejects."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ainews_newsletter import clock
from ainews_newsletter.database import engine_for
from ainews_newsletter.errors import SubscriberError
from ainews_newsletter.models import SubscriberStatus
from ainews_newsletter.subscribers.csvio import read_subscriber_csv
from ainews_newsletter.subscribers.store import ImportRow, SubscriberStore

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "subs.db"


@pytest.fixture
def store(db_path: Path) -> SubscriberStore:
    return SubscriberStore(engine_for(f"sqlite:///{db_path}"))


def test_sqlite_file_is_created_in_wal_mode(store: SubscriberStore, db_path: Path) -> None:
    store.add("a@example.com")
    assert db_path.is_file()
    with sqlite3.connect(db_path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_add_normalizes_and_refuses_duplicates(store: SubscriberStore) -> None:
    at = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    with clock.use_clock(clock.frozen(at)):
        added = store.add("  Ada.Lovelace@Example.COM ", name="Ada")
    assert added.email == "Ada.Lovelace@Example.COM"
    assert added.email_normalized == "ada.lovelace@example.com"
    assert added.status is SubscriberStatus.ACTIVE
    assert added.created_at == at  # aware UTC survives the SQLite round trip
    with pytest.raises(SubscriberError, match="already on the list"):
        store.add("ada.lovelace@example.com")
    assert store.count() == 1


@pytest.mark.parametrize("bad", ["", "plainaddress", "a@b", "a@@example.com", "a b@example.com"])
def test_invalid_addresses_are_refused_by_name(store: SubscriberStore, bad: str) -> None:
    with pytest.raises(SubscriberError) as caught:
        store.add(bad)
    assert repr(bad.strip()) in str(caught.value) or bad == ""
    assert store.count() == 0


def test_unsubscribe_keeps_the_row_and_is_idempotent(store: SubscriberStore) -> None:
    store.add("b@example.org")
    first = store.unsubscribe("B@example.org")
    second = store.unsubscribe("b@example.org")
    assert first.status is second.status is SubscriberStatus.UNSUBSCRIBED
    assert first.unsubscribed_at == second.unsubscribed_at is not None
    assert store.count(SubscriberStatus.ACTIVE) == 0 and store.count() == 1


def test_unsubscribe_by_token(store: SubscriberStore) -> None:
    subscriber = store.add("t@example.org")
    assert store.unsubscribe_token("wrong-token") is None
    result = store.unsubscribe_token(subscriber.token)
    assert result is not None and result.status is SubscriberStatus.UNSUBSCRIBED


def test_remove_deletes(store: SubscriberStore) -> None:
    store.add("c@example.org")
    store.remove("c@example.org")
    assert store.get("c@example.org") is None
    with pytest.raises(SubscriberError, match="no subscriber"):
        store.remove("c@example.org")


def test_tokens_are_unique_and_unguessable(store: SubscriberStore) -> None:
    tokens = {store.add(f"user{i}@example.com").token for i in range(50)}
    assert len(tokens) == 50
    assert all(len(token) >= 24 for token in tokens)


def test_import_merges_and_never_reactivates(store: SubscriberStore) -> None:
    store.add("gone@example.com", name="Gone")
    store.unsubscribe("gone@example.com")
    store.add("known@example.com")
    rows = [ImportRow(2, "new@example.com", "New"), ImportRow(3, "NEW@example.com", None),
            ImportRow(4, "gone@example.com", "Gone Again"), ImportRow(5, "known@example.com",
                                                                      "Now Named")]
    summary = store.import_rows(rows, source="import:test.csv")
    assert summary.as_dict() == {"imported": 1, "updated": 2, "unchanged": 0, "duplicates": 1}
    assert store.require("gone@example.com").status is SubscriberStatus.UNSUBSCRIBED
    assert store.require("known@example.com").name == "Now Named"
    assert store.count(SubscriberStatus.ACTIVE) == 2


def test_iter_recipients_streams_active_only_in_id_order(store: SubscriberStore) -> None:
    for i in range(7):
        store.add(f"r{i}@example.com")
    store.unsubscribe("r3@example.com")
    emails = [r.email for r in store.iter_recipients(batch_size=2)]
    assert emails == [f"r{i}@example.com" for i in range(7) if i != 3]


def test_sample_csv_has_about_25_valid_fictional_subscribers() -> None:
    rows, rejects = read_subscriber_csv(REPO / "subscribers" / "sample.csv")
    assert rejects == []
    assert 20 <= len(rows) <= 30
    assert all(row.email.endswith(("@example.com", "@example.org")) for row in rows)
    assert all(row.name for row in rows)


def test_csv_rejects_carry_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes("\ufeffEmail,Name\r\n"
                     "ok@example.com,Ok\r\n"
                     'multi@example.com,"Two\nLines"\r\n'
                     "not-an-address,Bad\r\n"
                     "\r\n"
                     "also@example.org,\r\n".encode())
    rows, rejects = read_subscriber_csv(path)
    assert [(row.line, row.email, row.name) for row in rows] == [
        (2, "ok@example.com", "Ok"), (3, "multi@example.com", "Two\nLines"),
        (7, "also@example.org", None)]
    assert [(reject.line, reject.email) for reject in rejects] == [(5, "not-an-address")]
    assert "not a valid email address" in rejects[0].reason


@pytest.mark.parametrize(("content", "message"), [
    (b"name,phone\nA,1\n", "no 'email' column"),
    (b"", "empty"),
    (b"email\n\xff\xfe@example.com\n", "not UTF-8"),
])
def test_unusable_csv_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(content)
    with pytest.raises(SubscriberError, match=message) as caught:
        read_subscriber_csv(path)
    assert str(path) in str(caught.value)


def test_addresses_must_be_deliverable_without_smtputf8(store: SubscriberStore) -> None:
    with pytest.raises(SubscriberError, match=r"jürgen@example\.com"):
        store.add("jürgen@example.com")
    added = store.add("Anna@Bücher.example")
    assert added.email == "Anna@xn--bcher-kva.example"
    assert added.email_normalized == "anna@xn--bcher-kva.example"
    with pytest.raises(SubscriberError, match="already on the list"):
        store.add("anna@xn--bcher-kva.example")
