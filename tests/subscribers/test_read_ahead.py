"""The import's read-ahead (subscribers/read_ahead.py): a child process reads and checks the
file while the parent writes. What the parent gets must be exactly what the file's own reader
gives in this process — the same rows, of the same types, in the same order, rejects with
their lines — and a failure must arrive where it happened, as the same error."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ainews_newsletter.errors import SubscriberError
from ainews_newsletter.models import SubscriberStatus
from ainews_newsletter.subscribers import read_ahead
from ainews_newsletter.subscribers.arrivals import new_tokens
from ainews_newsletter.subscribers.formats import Opened, open_subscriber_file
from ainews_newsletter.subscribers.import_rules import arriving
from ainews_newsletter.subscribers.importer import ImportRow, Rejected
from ainews_newsletter.subscribers.read_ahead import ReadAhead, Staging, can_read_ahead
from ainews_newsletter.subscribers.schema import subscribers
from tests.conftest import Project

pytestmark = pytest.mark.skipif(not can_read_ahead(), reason="this system does not fork")


def _mixed_file(path: Path, rows: int) -> Path:
    """Our own CSV with every kind of cell: names (one quoted over two lines), statuses,
    lists, languages, attributes, rejects, repeats in other case."""
    lines = ["email,name,status,lists,language,attributes"]
    for index in range(rows):
        if index % 13 == 12:
            lines.append(f"not-an-address-{index},Nobody,,,,")
        elif index % 17 == 16:
            lines.append(f"READER{index - 1}@EXAMPLE.ORG,Again,,,,")
        elif index % 19 == 18:
            lines.append(f'reader{index}@example.org,"Two\nLines",unsubscribed,beta,pt_br,')
        else:
            lines.append(f"reader{index}@example.org,Reader {index},active,alpha;beta,de,"
                         f'"{{""plan"": ""p{index % 3}""}}"')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_the_child_hands_over_exactly_the_rows_read_here(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    path = _mixed_file(tmp_path / "mixed.csv", 500)
    here = list(open_subscriber_file(path).rows)
    monkeypatch.setattr(read_ahead, "CHUNK_ROWS", 7)  # many chunks, one cut mid-record
    with ReadAhead(open_subscriber_file(path)) as reader:
        there = list(reader.rows)
        assert reader.bytes_read() == path.stat().st_size
    assert there == here
    assert [type(row) for row in there] == [type(row) for row in here]
    kinds = {type(row) for row in here}
    assert kinds == {ImportRow, Rejected}  # both kinds went through the pipe
    assert any(isinstance(row, ImportRow) and row.attributes and row.lists == ("alpha", "beta")
               for row in there)


def test_progress_follows_the_rows_taken(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    path = _mixed_file(tmp_path / "mixed.csv", 2000)
    monkeypatch.setattr(read_ahead, "CHUNK_ROWS", 100)
    with ReadAhead(open_subscriber_file(path)) as reader:
        assert reader.bytes_read() == 0
        first = list(islice(reader.rows, 150))
        part = reader.bytes_read()
        rest = list(reader.rows)
    assert 0 < part < path.stat().st_size
    assert len(first) + len(rest) == len(list(open_subscriber_file(path).rows))


class _Unpicklable(Exception):
    def __init__(self, path: Path, line: int) -> None:  # two arguments: pickle cannot rebuild it
        super().__init__(f"{path}:{line}: the disk went away")


def _failing(rows: int, failure: Exception) -> Opened:
    """A reader that gives `rows` rows, then fails (as a file can: a disk error, a record
    the format cannot read)."""
    def read() -> Iterator[ImportRow | Rejected]:
        for index in range(rows):
            yield ImportRow(index + 2, f"r{index}@example.org", f"r{index}@example.org")
        raise failure

    return Opened("csv", ["email"], read(), lambda: 4242)


@pytest.mark.parametrize("failure", [
    SubscriberError("list.csv:302: malformed CSV: unexpected end of data"),
    OSError(5, "Input/output error"),
    _Unpicklable(Path("list.csv"), 302)], ids=["ours", "os", "unpicklable"])
def test_a_failure_mid_file_arrives_after_the_rows_before_it(
        failure: Exception, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(read_ahead, "CHUNK_ROWS", 64)
    taken: list[ImportRow | Rejected] = []
    with ReadAhead(_failing(300, failure)) as reader, pytest.raises(Exception) as raised:
        taken.extend(reader.rows)
    assert [row.line for row in taken] == list(range(2, 302))  # every row before it, then it
    assert str(raised.value) == str(failure)
    expected = SubscriberError if isinstance(failure, _Unpicklable) else type(failure)
    assert type(raised.value) is expected


def test_a_reader_that_dies_is_an_error_not_a_short_import(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _mixed_file(tmp_path / "mixed.csv", 3000)
    monkeypatch.setattr(read_ahead, "QUEUED_CHUNKS", 1)
    monkeypatch.setattr(read_ahead, "CHUNK_ROWS", 10)
    with ReadAhead(open_subscriber_file(path)) as reader:
        next(reader.rows)
        pid = reader._process.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(SubscriberError, match=r"reader process ended \(exit code -9\)"):
            for _ in reader.rows:
                pass


def test_closing_early_stops_the_child(tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = _mixed_file(tmp_path / "mixed.csv", 3000)
    monkeypatch.setattr(read_ahead, "CHUNK_ROWS", 10)
    reader = ReadAhead(open_subscriber_file(path))
    process = reader._process
    next(reader.rows)
    assert process.is_alive()  # held up: the pipe and the queue are full
    reader.close()  # the parent failed after its first row: the child must not linger
    assert process.exitcode == -signal.SIGTERM


def _stored(project: Project) -> list[tuple[object, ...]]:
    from ainews_newsletter.database import engine_for

    with engine_for(f"sqlite:///{project.database}").connect() as connection:
        rows = connection.execute(select(
            subscribers.c.id, subscribers.c.email, subscribers.c.name, subscribers.c.status,
            subscribers.c.attributes, subscribers.c.language).order_by(subscribers.c.id))
        return [tuple(row) for row in rows]


def test_the_command_stores_the_same_with_and_without_reading_ahead(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`subscribers import` of a file over the threshold reads ahead; under it, it does not:
    two stores, one from each, hold the same rows with the same ids, and the command says
    the same. A second run on the read-ahead store takes every row as a repeat."""
    from ainews_newsletter.cli import subscribers_import

    path = _mixed_file(tmp_path / "mixed.csv", 1200)
    monkeypatch.setattr(read_ahead, "CHUNK_ROWS", 50)
    started: list[int] = []
    real = subscribers_import.ReadAhead

    def counted(opened: Any, staging: Any = None) -> ReadAhead:
        started.append(1)
        assert staging is not None  # an SQLite store: the child stages the batches
        return real(opened, staging)

    monkeypatch.setattr(subscribers_import, "ReadAhead", counted)
    here, ahead = (Project(tmp_path / name) for name in ("here", "ahead"))
    for project in (here, ahead):
        project.root.mkdir()
        project.write_config()
    monkeypatch.setattr(subscribers_import, "READ_AHEAD_BYTES", 1 << 40)
    alone = here.run("subscribers", "import", str(path), "--json")
    assert started == []
    monkeypatch.setattr(subscribers_import, "READ_AHEAD_BYTES", 1)
    read = ahead.run("subscribers", "import", str(path), "--json")
    assert started == [1]
    assert (read.exit_code, read.stdout) == (alone.exit_code, alone.stdout) == (
        1, read.stdout)  # 1: rows were rejected
    assert read.stderr == alone.stderr  # the same rejects, lines and words
    stored = _stored(ahead)
    assert stored == _stored(here) and len(stored) > 900
    again = ahead.run("subscribers", "import", str(path), "--json")
    assert '"imported": 0' in again.stdout and started == [1, 1]
    assert _stored(ahead) == stored


_ORPHAN_PROBE = """
import sys, time
from pathlib import Path
from ainews_newsletter.subscribers import read_ahead
from ainews_newsletter.subscribers.formats import open_subscriber_file
read_ahead.CHUNK_ROWS = 10
read_ahead.QUEUED_CHUNKS = 1
staged = sys.argv[2] == "staged"
staging = read_ahead.Staging(100, None) if staged else None
reader = read_ahead.ReadAhead(open_subscriber_file(Path(sys.argv[1])), staging)
folder = Path(next(reader.batches).path).parent if staged else ""
if not staged:
    next(reader.rows)
print(reader._process.pid, folder, flush=True)
time.sleep(600)  # never reads on: the child fills the pipe (or waits for a credit)
"""


def _running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie waiting for its new parent counts as ended)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
@pytest.mark.parametrize("kill", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "term"])
@pytest.mark.parametrize("mode", ["rows", "staged"])
def test_the_child_ends_when_the_parent_is_killed(tmp_path: Path, kill: int,
                                                  mode: str) -> None:
    """kill -9 or a SIGTERM (systemd, `docker stop`, `timeout`) of the importing process:
    its reader must not linger, blocked on a pipe no one reads or waiting for a credit, and
    staging leaves no batch file behind."""
    import subprocess
    import sys
    import time

    import ainews_newsletter

    path = _mixed_file(tmp_path / "mixed.csv", 20000)
    code = str(Path(ainews_newsletter.__file__).parents[1])  # the code under test, not another
    parent = subprocess.Popen([sys.executable, "-c", _ORPHAN_PROBE, str(path), mode],
                              stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": code})
    child = 0
    try:
        assert parent.stdout is not None
        pid, _, folder = parent.stdout.readline().strip().partition(" ")
        child = int(pid)
        assert _running(child)
        if mode == "staged":
            assert len(list(Path(folder).glob("batch-*.db"))) >= 1
        parent.send_signal(kill)
        parent.wait(timeout=30)
        for _ in range(300):  # bounded: up to ~30 s on a slow machine
            if not _running(child):
                break
            time.sleep(0.1)
        assert not _running(child)
        if mode == "staged":
            assert not Path(folder).exists()
    finally:
        parent.kill()
        parent.wait()
        if child and _running(child):
            os.kill(child, signal.SIGKILL)  # a failed run leaves no orphan behind


def _staged_rows(path: str) -> list[tuple[object, ...]]:
    import sqlite3

    with sqlite3.connect(path) as connection:
        return connection.execute(
            "SELECT line, email, normalized, name, status, attributes, lists, language, token "
            "FROM rows ORDER BY seq").fetchall()


@pytest.mark.parametrize("status", [None, SubscriberStatus.PENDING], ids=["as-read", "pending"])
def test_staged_batches_hold_the_rows_read_here_each_person_once(
        tmp_path: Path, status: SubscriberStatus | None) -> None:
    """Staging (an SQLite store): each batch's file holds the batch's rows as the file's
    own reader gives them here, a repeat folded into its first row, each with the status
    it arrives with (--status applied, never over a row that left) and a token of its own;
    the rejects travel beside it with their lines. The folder goes with the reader."""
    path = _mixed_file(tmp_path / "mixed.csv", 700)
    here = list(open_subscriber_file(path).rows)
    with ReadAhead(open_subscriber_file(path), Staging(100, status)) as reader:
        batches = list(reader.batches)
        folder = Path(batches[0].path).parent
        staged = [_staged_rows(batch.path) for batch in batches]
        assert reader.bytes_read() == path.stat().st_size
    assert not folder.exists()
    assert [batch.items for batch in batches] == [100] * 7
    tokens = [row[-1] for rows in staged for row in rows]
    width = len(new_tokens(1)[0])  # what the import gives every new reader
    assert len(set(tokens)) == len(tokens) and {len(str(token)) for token in tokens} == {width}
    folded = 0
    for number, batch in enumerate(batches):
        read = here[number * 100:(number + 1) * 100]
        assert [Rejected(*fields) for fields in batch.rejects] == [
            row for row in read if isinstance(row, Rejected)]
        expected, duplicates = arriving([row for row in read if isinstance(row, ImportRow)],
                                        status)
        assert batch.duplicates == duplicates
        folded += duplicates
        assert [row[:-1] for row in staged[number]] == [
            (row.line, row.email, row.normalized, row.name, incoming.value,
             json.dumps(row.attributes) if row.attributes else None,
             json.dumps(list(row.lists)) if row.lists else None, row.language)
            for row, incoming in expected]
    assert folded > 0  # the file's repeats in other case were folded, not staged twice
    statuses = {row[4] for rows in staged for row in rows}
    assert statuses == ({"pending", "unsubscribed"} if status else {"active", "unsubscribed"})


def test_the_child_stages_at_most_a_few_batches_ahead(tmp_path: Path) -> None:
    """A batch file is written only with a credit the writer gives back as it takes the
    next batch: an import stalled on its database holds a few batch files on disk, not the
    whole file staged."""
    import time

    path = _mixed_file(tmp_path / "mixed.csv", 3000)
    with ReadAhead(open_subscriber_file(path), Staging(50, None)) as reader:
        first = next(reader.batches)
        folder = Path(first.path).parent

        def staged() -> int:
            return len(list(folder.glob("batch-*.db")))

        for _ in range(300):  # bounded: up to ~30 s for the child to write what it may
            if staged() == read_ahead.QUEUED_BATCHES:
                break
            time.sleep(0.1)
        time.sleep(0.5)  # had it no limit, it would have written more by now
        assert staged() == read_ahead.QUEUED_BATCHES  # the one taken and one more
        assert reader._process.is_alive()  # waiting for a credit, not finished
        rest = list(reader.batches)
    assert len(rest) == 3000 // 50 - 1


def test_a_dry_run_of_a_big_file_counts_as_the_import_and_stores_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dry run holds one transaction across all batches, where no staged file can be
    attached: it copies each batch's rows instead, and counts what the real import then
    does."""
    from ainews_newsletter.cli import subscribers_import
    from ainews_newsletter.subscribers import importer

    path = _mixed_file(tmp_path / "mixed.csv", 1200)
    monkeypatch.setattr(subscribers_import, "READ_AHEAD_BYTES", 1)
    monkeypatch.setattr(importer, "BATCH_SIZE", 300)  # several batches in the one transaction
    project = Project(tmp_path / "dry")
    project.root.mkdir()
    project.write_config()
    project.import_readers(3)  # the store exists, with readers of its own
    before = _stored(project)
    held: list[int] = []  # batch files on disk after each copy
    copy = importer.copy_here

    def counted(connection: Any, staged: str) -> None:
        copy(connection, staged)
        held.append(len(list(Path(staged).parent.glob("batch-*.db"))))

    monkeypatch.setattr(importer, "copy_here", counted)
    dry = project.run("subscribers", "import", str(path), "--json", "--dry-run")
    assert _stored(project) == before
    assert len(held) == 4 and max(held) <= read_ahead.QUEUED_BATCHES  # none kept once read
    real = project.run("subscribers", "import", str(path), "--json")
    assert dry.exit_code == real.exit_code == 1
    assert json.loads(dry.stdout) == {**json.loads(real.stdout), "dry_run": True}
    assert json.loads(real.stdout)["imported"] > 900
