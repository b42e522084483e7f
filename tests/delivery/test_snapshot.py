"""The audience snapshot's two ways (delivery/snapshot.py): readers read into Python and
written in batches (`snapshot`, PostgreSQL's) and readers copied by SQLite itself, one
INSERT … SELECT per batch (`copy_audience`, SQLite's since issue 32). Both must store the
same rows, every column, for an audience with everything that changes a row: names to
clean, languages with and without a rendering, other lists, readers who left, suppressed
addresses, return tags and Message-ID digests on and off, several batches."""

from __future__ import annotations

import re
import shutil
import sqlite3
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ainews_newsletter import clock
from ainews_newsletter.database import dispose_all, engine_for
from ainews_newsletter.delivery.ledger import Ledger
from ainews_newsletter.delivery.snapshot import AudienceSnapshot
from ainews_newsletter.models import Period, RenderedIssue
from ainews_newsletter.subscribers.queries import still_listed
from ainews_newsletter.subscribers.store import SubscriberStore

START = clock.now().replace(microsecond=0)
RENDERINGS = frozenset({"de", "pt-BR", "fr"})  # the issue's further languages ("en" its own)
LANGUAGES = [None, "en", "en-GB", "de", "de-AT", "pt-BR", "pt", "fr-CA", "ja", "xx"]
NAMES = [None, "Zoë Reader", "  Ada\nLovelace\t", "evil\u202egpj.exe", "\x1b[31mred\x1b[0m",
         "\u200e\u200f", "Ｗide ｎame", "e\u0301tienne", "x" * 250]
BATCH = 16
TAG = re.compile(r"[a-z2-7]{16}")


def _audience(database: Path) -> None:
    """300 subscribers: most on the default list, some on another list only, some on both;
    some unsubscribed, bounced or pending; some suppressed; names stored raw (as before
    names were cleaned on the way in), languages of every kind."""
    store = SubscriberStore(engine_for(f"sqlite:///{database}"))
    store.add_list("other")
    store.count_recipients()  # makes the default list, as its first use does
    with closing(sqlite3.connect(database)) as connection, connection:
        lists = dict(connection.execute("SELECT name, id FROM lists"))
        for i in range(1, 301):
            status = ("unsubscribed" if i % 17 == 0 else "bounced" if i % 23 == 0
                      else "pending" if i % 29 == 0 else "active")
            address = f"reader{i}@example.com"
            connection.execute(
                "INSERT INTO subscribers (id, email, email_normalized, name, status, token,"
                " created_at, updated_at, language) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (i * 3, address.upper() if i % 5 == 0 else address, address,
                 NAMES[i % len(NAMES)], status, f"token-{i}", "2026-01-01 00:00:00",
                 "2026-01-01 00:00:00", LANGUAGES[i % len(LANGUAGES)]))
            on = (["other"] if i % 7 == 0 else ["newsletter", "other"] if i % 11 == 0
                  else ["newsletter"])
            for name in on:
                connection.execute("INSERT INTO memberships VALUES (?, ?, ?)",
                                   (lists[name], i * 3, "2026-01-01 00:00:00"))
            if i % 13 == 0:
                connection.execute("INSERT INTO suppressions VALUES (?, 'complaint', ?)",
                                   (address, "2026-01-01 00:00:00"))
    dispose_all()


def _snapshot(database: Path, way: str, tagged: bool, identifier: str | None,
              batch: int = BATCH) -> int:
    ledger = Ledger(engine_for(f"sqlite:///{database}"))
    store = SubscriberStore(ledger.engine)
    rendered = RenderedIssue(
        period=Period("2026-W47", START - timedelta(days=7), START), subject="s",
        preheader="p", html="<p>U</p>", text="U", unsubscribe_placeholder="U", post_count=1)
    issue = ledger.create_issue("newsletter", rendered, (), START)
    if way == "python":
        return ledger.snapshot(issue.id, store.iter_recipients(batch_size=batch), START,
                               batch, tagged=tagged, list_identifier=identifier,
                               still_listed=still_listed, languages=RENDERINGS,
                               own_language="en")
    assert ledger.copies_audience
    return ledger.copy_audience(issue.id, store.audience, START, batch, tagged=tagged,
                                list_identifier=identifier, languages=RENDERINGS,
                                own_language="en")


def _stored(database: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """Every column of every delivery row with its storage class, in id order; and the
    issue rows (snapshot_at marks the snapshot complete)."""
    with closing(sqlite3.connect(database)) as connection:
        columns = [row[1] for row in connection.execute("PRAGMA table_info(deliveries)")]
        query = ", ".join(f"{name}, typeof({name})" for name in columns)
        return (connection.execute(f"SELECT {query} FROM deliveries ORDER BY id").fetchall(),
                connection.execute("SELECT * FROM issues").fetchall())


@pytest.mark.parametrize("identifier", ["news.example", None])
@pytest.mark.parametrize("tagged", [True, False])
def test_the_copy_by_sqlite_stores_what_the_python_way_stores(
        tmp_path: Path, tagged: bool, identifier: str | None) -> None:
    base = tmp_path / "base.db"
    _audience(base)
    stored = {}
    for way in ("python", "sqlite"):
        database = tmp_path / f"{way}.db"
        shutil.copy(base, database)
        total = _snapshot(database, way, tagged, identifier)
        dispose_all()
        stored[way] = _stored(database)
        assert total == len(stored[way][0])
    (python_rows, python_issue), (sqlite_rows, sqlite_issue) = stored["python"], stored["sqlite"]
    assert sqlite_issue == python_issue  # snapshot_at included
    tag_at = 2 * 13  # return_tag and its typeof: random, so compared by shape
    assert [row[:tag_at] + row[tag_at + 2:] for row in sqlite_rows] == \
        [row[:tag_at] + row[tag_at + 2:] for row in python_rows]
    for rows in (python_rows, sqlite_rows):
        tags = [row[tag_at] for row in rows]
        if tagged:
            assert all(isinstance(tag, str) and TAG.fullmatch(tag) for tag in tags)
            assert len(set(tags)) == len(tags)
        else:
            assert set(tags) == {None}
    # The audience really has what the comparison is about.
    emails = {row[6] for row in python_rows}
    assert 150 < len(python_rows) < 300 and len(python_rows) > 4 * BATCH
    assert "reader7@example.com" not in emails  # on the other list only
    assert "reader17@example.com" not in emails and "reader13@example.com" not in emails
    assert "READER5@EXAMPLE.COM" in emails and "reader11@example.com" in emails
    names = {row[8] for row in python_rows}
    assert {"Ada Lovelace", "evilgpj.exe", "[31mred[0m", None, "x" * 200} <= names
    languages = {row[32] for row in python_rows}
    assert languages == {None, "de", "pt-BR", "fr"}
    digests = {row[30] for row in python_rows}
    assert (digests == {None}) == (identifier is None)


def test_a_copy_run_again_adds_only_what_is_missing(tmp_path: Path) -> None:
    """Like the Python way's batches, a copy is idempotent: run after a copy that stopped
    part-way (here: rows of the first readers already there), it adds only the rest, and
    the rows are those of one whole copy."""
    base = tmp_path / "base.db"
    _audience(base)
    whole, resumed = tmp_path / "whole.db", tmp_path / "resumed.db"
    for database in (whole, resumed):
        shutil.copy(base, database)
    _snapshot(whole, "sqlite", False, "news.example")
    ledger = Ledger(engine_for(f"sqlite:///{resumed}"))
    _snapshot(resumed, "sqlite", False, "news.example")
    with ledger.engine.begin() as connection:  # as if stopped after the first batches
        connection.exec_driver_sql("DELETE FROM deliveries WHERE id > 40")
        connection.exec_driver_sql("UPDATE issues SET snapshot_at = NULL")
    issue = ledger.latest_issue()
    assert issue is not None and issue.snapshot_at is None
    total = ledger.copy_audience(issue.id, SubscriberStore(ledger.engine).audience, START,
                                 BATCH, list_identifier="news.example",
                                 languages=RENDERINGS, own_language="en")
    dispose_all()
    assert total == len(_stored(whole)[0])
    assert _stored(resumed) == _stored(whole)


@pytest.mark.parametrize("raised", [ValueError("a bug in a language lookup"),
                                    KeyboardInterrupt()], ids=["bug", "ctrl-c"])
def test_what_a_function_of_the_copy_raises_arrives_as_itself(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raised: BaseException) -> None:
    """sqlite3 turns an exception inside a Python SQL function into a bare "user-defined
    function raised exception": the copy raises the function's own instead (a bug keeps
    its traceback, a second Ctrl-C stops the send as Ctrl-C), and the pooled connection
    keeps none of the batch's functions."""
    from ainews_newsletter import language_tags

    base = tmp_path / "base.db"
    _audience(base)

    calls: list[object] = []

    def broken(*arguments: object) -> str | None:
        calls.append(arguments)
        raise raised

    monkeypatch.setattr(language_tags, "edition_for", broken)
    with pytest.raises(type(raised)) as caught:
        _snapshot(base, "sqlite", tagged=True, identifier="news.example")
    assert caught.value is raised and len(calls) == 1
    # The batch's functions are unset on the pooled connection (Python 3.11's sqlite3
    # cannot delete one: unset, it fails when called): nothing reaches the old one.
    with engine_for(f"sqlite:///{base}").connect() as connection, \
            pytest.raises(Exception, match="user-defined function raised exception"):
        connection.exec_driver_sql("SELECT ainews_edition('fr')").all()
    assert len(calls) == 1


def test_the_last_reader_a_batch_covered_is_noted_as_it_is_copied(tmp_path: Path) -> None:
    """Each batch ends at the largest id its statement selected (noted by ainews_reader as
    the rows pass, not by running the audience's query again): batches of 16 over the
    list's readers cover each once, in order, whatever the gaps between ids."""
    base = tmp_path / "base.db"
    _audience(base)
    ends: list[int | None] = []
    real = AudienceSnapshot._copy_batch

    def noted(self: AudienceSnapshot, *arguments: Any) -> int | None:
        end = real(self, *arguments)
        ends.append(end)
        return end

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(AudienceSnapshot, "_copy_batch", noted)
        total = _snapshot(base, "sqlite", tagged=False, identifier=None)
    with closing(sqlite3.connect(base)) as connection:
        ids = [row[0] for row in connection.execute(
            "SELECT subscriber_id FROM deliveries ORDER BY subscriber_id")]
    assert total == len(ids) > 2 * BATCH
    assert ends == [*ids[BATCH - 1::BATCH], *([ids[-1]] if len(ids) % BATCH else []), None]
