"""A full disk under SQLite: the database on a small tmpfs mounted for the test, the rest of
it filled by a file, and the real CLI run against it. Each command that meets the full disk
says one line naming the database's folder and exits 1; nothing is half-written; once the
filler is gone the same command (or `send --resume`) finishes: nobody lost, nobody twice
beyond the messages in flight.

Mounting needs root and the right to mount (CAP_SYS_ADMIN): CI runs the suite as root; the
tests skip, saying why, where either is missing."""

from __future__ import annotations

import errno
import os
import re
import sqlite3
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.exc import DBAPIError

from ainews_newsletter.storage_faults import disk_full, safe_url, storage_failure
from tests.conftest import REPO, Project, SmtpServer, smtp_env

BOUNCE = REPO / "tests" / "fixtures" / "bounces" / "postfix-two-recipients.eml"


def _mount(folder: Path, size: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs the suite as root)")
    folder.mkdir(parents=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                           str(folder)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}): "
                    "a container without CAP_SYS_ADMIN")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Mounts a tmpfs of the size asked for (e.g. "8m") and gives its folder; unmounted at
    the end whatever happened."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        folder = tmp_path / f"disk{len(mounted)}"
        _mount(folder, size)
        mounted.append(folder)
        return folder

    try:
        yield mount
    finally:
        from ainews_newsletter.database import dispose_all

        dispose_all()  # no pooled connection keeps a file on it open
        for folder in mounted:
            if subprocess.run(["umount", str(folder)], check=False).returncode != 0:
                subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path, leave: int = 0) -> Path:
    """Fill `folder`'s filesystem with a file until at most `leave` bytes are free
    (bounded: it stops at the first ENOSPC); returns the file."""
    filler = folder / "filler"
    stats = os.statvfs(folder)
    wanted = max(0, stats.f_bavail * stats.f_frsize - leave)
    with filler.open("ab") as handle:
        for chunk in (1 << 20, 4096):
            while wanted >= chunk:
                try:
                    handle.write(b"\0" * chunk)
                    handle.flush()
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
                wanted -= chunk
    return filler


def integrity(database: Path) -> str:
    with sqlite3.connect(database) as connection:
        return str(connection.execute("PRAGMA integrity_check").fetchone()[0])


def one_line(stderr: str, folder: Path) -> str:
    """The error is exactly one line, naming the folder, and no traceback."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert lines[0].startswith(f"error: the disk holding {folder} is full ("), lines[0]
    assert "free space and run the command again — nothing was half-written: " in lines[0]
    return lines[0]


def on_disk(project: Project, folder: Path) -> Path:
    database = folder / "ainews.db"
    project.storage_url = f"sqlite:///{database}"
    return database


def count(database: Path, sql: str) -> int:
    with sqlite3.connect(database) as connection:
        return int(connection.execute(sql).fetchone()[0])


def test_import_on_a_full_disk_stores_nothing_then_the_same_import_finishes(
        project: Project, small_disk: Callable[[str], Path]) -> None:
    folder = small_disk("16m")
    database = on_disk(project, folder)
    project.import_readers(10)  # the schema and ten readers, before the disk fills
    big = project.root / "big.csv"  # beside the project, not on the small disk
    big.write_text("email,name\n" + "".join(f"late{i:05d}@example.com,Late Reader {i}\n"
                                           for i in range(5_000)), encoding="utf-8")
    filler = fill(folder, leave=256 * 1024)

    result = project.run("subscribers", "import", str(big))
    assert result.exit_code == 1
    line = one_line(result.stderr, folder)
    assert ("an import one per 50,000 rows: those committed stay, the one that failed left "
            "nothing") in line
    # One batch (fewer rows than BATCH_SIZE): all or nothing, and it was nothing.
    assert count(database, "SELECT count(*) FROM subscribers") == 10
    assert integrity(database) == "ok"

    filler.unlink()
    again = project.run("subscribers", "import", str(big))
    assert again.exit_code == 0, again.output
    assert count(database, "SELECT count(*) FROM subscribers") == 5_010
    assert count(database, "SELECT count(DISTINCT email) FROM subscribers") == 5_010
    assert integrity(database) == "ok"


def test_import_whose_staging_folder_is_full_says_which_and_stores_nothing(
        project: Project, small_disk: Callable[[str], Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A big file's batches are staged in the temporary folder (read_ahead.py), not beside
    the database: when that disk is full the line names the folder there, the database
    keeps what it had, and with space again the same import finishes."""
    import tempfile

    scratch = small_disk("16m")
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # TMPDIR, read once per process
    database = project.root / "data" / "ainews.db"
    project.import_readers(10)
    big = project.root / "big.csv"  # over read_ahead.READ_AHEAD_BYTES: read by a child
    big.write_text("email,name\n" + "".join(f"late{i:05d}@example.com,Late Reader {i}\n"
                                           for i in range(40_000)), encoding="utf-8")
    assert big.stat().st_size > (1 << 20)
    filler = fill(scratch, leave=64 * 1024)

    result = project.run("subscribers", "import", str(big))
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert re.match(rf"error: the disk holding {re.escape(str(scratch))}/ainews-import-\w+ "
                    r"is full \(No space left on device\); free space and run the command "
                    "again — nothing was half-written: ", lines[0]), lines[0]
    assert count(database, "SELECT count(*) FROM subscribers") == 10
    assert list(scratch.glob("ainews-import-*")) == []  # the staging folder went too

    filler.unlink()
    again = project.run("subscribers", "import", str(big))
    assert again.exit_code == 0, again.output
    assert count(database, "SELECT count(*) FROM subscribers") == 40_010


@pytest.mark.parametrize("workers", [1, 2], ids=["threads", "worker-processes"])
def test_send_meets_a_full_disk_then_resume_finishes_it(
        project: Project, smtp_server: SmtpServer, small_disk: Callable[[str], Path],
        workers: int) -> None:
    """The disk fills while the send runs (the SMTP server fills it after 40 messages):
    the next ledger write fails, the send stops with one line, every row is still in a
    state the resume knows. After freeing space the resume sends the rest; each reader got
    the issue once, but for at most one message per connection (answered by the server,
    its answer never recorded)."""
    connections = 2
    folder = small_disk("16m")
    database = on_disk(project, folder)
    readers = project.import_readers(300)
    handler = smtp_server.handler
    fillers: list[Path] = []

    def fill_after_forty(_address: str) -> None:
        if len(handler.messages) >= 40 and not fillers:
            fillers.append(fill(folder))
    handler.on_rcpt = fill_after_forty
    env = {**smtp_env(smtp_server), "AINEWS_SMTP__CONNECTIONS": str(connections),
           "AINEWS_SMTP__WORKERS": str(workers)}

    result = project.run("send", "--week", "2026-W47", "--yes", env=env)
    assert fillers, "the disk was never filled: the send ended before 40 messages"
    assert result.exit_code == 1, result.output
    line = one_line(result.stderr, folder)
    assert "`ainews send --resume` goes on" in line
    handler.on_rcpt = None
    fillers[0].unlink()
    assert integrity(database) == "ok"
    states = dict(project.query("SELECT state, count(*) FROM deliveries GROUP BY state"))
    assert sum(states.values()) == 300 and set(states) <= {"queued", "sending", "sent"}
    # Left `sending`: per connection the row on the wire (and with workers the one claimed
    # ahead of it); a failed commit took the claims riding in it back with it.
    assert states.get("sending", 0) <= connections * (2 if workers > 1 else 1)
    received_before = len(smtp_server.recipients())
    # Sent, or on its way when the disk filled (`sending`): never more than were received.
    assert states.get("sent", 0) <= received_before
    assert states.get("sent", 0) + states.get("sending", 0) >= received_before

    resumed = project.run("send", "--resume", "--yes", env=env)
    assert resumed.exit_code == 0, resumed.output
    assert dict(project.query("SELECT state, count(*) FROM deliveries GROUP BY state")) == {
        "sent": 300}
    received = Counter(smtp_server.recipients())
    assert set(received) == set(readers)  # nobody lost
    twice = sum(times - 1 for times in received.values())
    assert max(received.values()) <= 2 and twice <= connections  # only messages in flight
    assert integrity(database) == "ok"


def test_send_on_a_disk_already_full_creates_no_half_issue(
        project: Project, smtp_server: SmtpServer, small_disk: Callable[[str], Path]) -> None:
    """Full before the send begins: the issue, its renderings and its rows are one
    transaction; none of it is left, and the send run again after freeing space is the
    first one (each reader once)."""
    folder = small_disk("8m")
    database = on_disk(project, folder)
    readers = project.import_readers(50)
    filler = fill(folder)

    result = project.run("send", "--week", "2026-W47", "--yes", env=smtp_env(smtp_server))
    assert result.exit_code == 1
    one_line(result.stderr, folder)
    assert smtp_server.recipients() == []
    assert count(database, "SELECT count(*) FROM issues") == 0
    assert count(database, "SELECT count(*) FROM deliveries") == 0
    filler.unlink()
    again = project.run("send", "--week", "2026-W47", "--yes", env=smtp_env(smtp_server))
    assert again.exit_code == 0, again.output
    assert sorted(smtp_server.recipients()) == sorted(readers)
    assert integrity(database) == "ok"


def test_bounces_ingest_on_a_full_disk_stores_no_half_event_then_ingests(
        project: Project, small_disk: Callable[[str], Path]) -> None:
    folder = small_disk("4m")
    database = on_disk(project, folder)
    project.import_readers(3)
    filler = fill(folder)

    result = project.run("bounces", "ingest", str(BOUNCE))
    assert result.exit_code == 1
    line = one_line(result.stderr, folder)
    assert "ingesting the same mail again stores each event once" in line
    assert count(database, "SELECT count(*) FROM feedback_events") == 0
    assert integrity(database) == "ok"

    filler.unlink()
    again = project.run("bounces", "ingest", str(BOUNCE))
    assert again.exit_code == 0, again.output
    stored = count(database, "SELECT count(*) FROM feedback_events")
    assert stored == 2  # the bounce names two recipients: an event each
    repeat = project.run("bounces", "ingest", str(BOUNCE))
    assert repeat.exit_code == 0
    assert count(database, "SELECT count(*) FROM feedback_events") == stored
    assert integrity(database) == "ok"


def test_bounces_piped_from_the_mail_system_on_a_full_disk_ask_it_to_retry(
        project: Project, small_disk: Callable[[str], Path]) -> None:
    """From an MTA's pipe (-) the exit is 75, EX_TEMPFAIL: the mail system keeps the
    bounce and delivers it again later, when there may be space."""
    folder = small_disk("4m")
    database = on_disk(project, folder)
    project.import_readers(3)
    filler = fill(folder)
    mail = BOUNCE.read_text(encoding="utf-8")

    result = project.run("bounces", "ingest", "-", input=mail)
    assert result.exit_code == 75
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: the disk holding {folder} is full (")
    assert line.endswith("(exit 75: the mail system retries)")
    filler.unlink()
    assert project.run("bounces", "ingest", "-", input=mail).exit_code == 0
    assert count(database, "SELECT count(*) FROM feedback_events") == 2


def test_export_to_a_full_disk_leaves_no_truncated_file(
        project: Project, small_disk: Callable[[str], Path]) -> None:
    """The database is elsewhere; the export's own disk fills: the line names the export's
    folder, and no half-written file is left that could pass for the whole list."""
    folder = small_disk("1m")
    project.import_readers(5_000)  # about 150 kB of CSV
    fill(folder, leave=16 * 1024)
    output = folder / "list.csv"

    result = project.run("subscribers", "export", "-o", str(output))
    assert result.exit_code == 1
    one_line(result.stderr, folder)
    assert "No space left on device" in result.stderr
    assert sorted(path.name for path in folder.iterdir()) == ["filler"]


def test_a_database_server_away_is_one_line_without_its_password(
        project: Project, unused_port: int) -> None:
    project.storage_url = f"postgresql+psycopg://ainews:s3cret@127.0.0.1:{unused_port}/news"
    for command in (("subscribers", "count"), ("send", "--week", "2026-W47", "--yes"),
                    ("bounces", "ingest", str(BOUNCE))):
        result = project.run(*command)
        assert result.exit_code == 1
        [line] = result.stderr.strip().splitlines()
        assert line.startswith(
            f"error: cannot use the database postgresql+psycopg://ainews:***@127.0.0.1:"
            f"{unused_port}/news: "), line
        assert "s3cret" not in result.output and "Traceback" not in result.output


def _wrapped(error: Exception) -> DBAPIError:
    """A driver error as SQLAlchemy raises it (an OperationalError around it)."""
    return DBAPIError.instance("INSERT …", {}, error, type(error).__mro__[1])


def test_what_counts_as_a_full_disk() -> None:
    """PostgreSQL's own disk full (SQLSTATE 53100) cannot be had on demand from the
    suite's cluster: its error is made here, as psycopg would raise it."""
    server_full = _wrapped(psycopg.errors.DiskFull(
        'could not extend file "base/16384/2619": No space left on device'))
    url = "postgresql+psycopg://ainews:pw@db.internal/news"
    line = storage_failure(server_full, url, "stays")
    assert line is not None and line.startswith("the database server's disk is full (")
    assert line.endswith("— nothing was half-written: stays")
    assert disk_full(server_full, url)

    sqlite_full = sqlite3.OperationalError("database or disk is full")
    sqlite_full.sqlite_errorcode = 13  # type: ignore[attr-defined]
    line = storage_failure(_wrapped(sqlite_full), "sqlite:////srv/news/data/ainews.db")
    assert line is not None and line.startswith(
        "the disk holding /srv/news/data is full (database or disk is full)")

    export = OSError(errno.ENOSPC, "No space left on device", "/mnt/exports/list.csv")
    line = storage_failure(export, "sqlite:////srv/news/data/ainews.db")
    assert line is not None and line.startswith("the disk holding /mnt/exports is full (")

    locked = _wrapped(sqlite3.OperationalError("database is locked"))
    assert not disk_full(locked, "sqlite:////srv/news/data/ainews.db")
    # Errors that keep their own words: a lock, a missing table, our own SQL's mistake.
    for words in ("database is locked", "no such table: subscribers", 'near "X": syntax error'):
        assert storage_failure(_wrapped(sqlite3.OperationalError(words)),
                               "sqlite:////srv/news/data/ainews.db") is None
    timeout = _wrapped(psycopg.errors.QueryCanceled("canceling statement due to timeout"))
    assert storage_failure(timeout, url) is None
    unopenable = storage_failure(_wrapped(sqlite3.OperationalError(
        "unable to open database file")), "sqlite:////srv/news/data/ainews.db")
    assert unopenable is not None and unopenable.startswith("cannot use the database ")
    assert not disk_full(ValueError("no space"))
    assert storage_failure(ValueError("x"), None) is None
    assert storage_failure(OSError(errno.EACCES, "Permission denied", "/x"), None) is None


def test_safe_url_hides_only_the_password() -> None:
    assert safe_url("postgresql+psycopg://u:p%40ss@h:5432/db?sslmode=require") == (
        "postgresql+psycopg://u:***@h:5432/db?sslmode=require")
    assert safe_url("postgresql://u@h/db") == "postgresql://u@h/db"
    assert safe_url("postgresql://u:p@ss@h/db") == "postgresql://u:***@h/db"
    assert safe_url("postgresql+psycopg://u:pa/ss@h/db") == "postgresql+psycopg://u:***@h/db"
    assert "secret" not in safe_url("postgresql+psycopg://u@h/db?password=secret")
    assert safe_url("sqlite:////srv/a:b@c/ainews.db") == "sqlite:////srv/a:b@c/ainews.db"


def test_the_public_site_on_a_full_disk_answers_503_and_recovers(
        project: Project, smtp_server: SmtpServer, small_disk: Callable[[str], Path],
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A sign-up is stored after the answer, so the first on a full disk is told "check
    your inbox" and logged (one line, no traceback); the form then answers 503 for a while
    instead of telling the next ones the same; a one-click unsubscribe gets 503 (its mail
    provider retries). Once space is freed, sign-ups work again without a restart."""
    from starlette.testclient import TestClient

    from ainews_newsletter.config import load_config
    from ainews_newsletter.web import double_opt_in
    from ainews_newsletter.web.public import create_public_app
    from tests.web.test_public import HTTPS, SECRET, _csrf

    caplog.set_level("INFO", logger="ainews.web")
    folder = small_disk("8m")
    database = on_disk(project, folder)
    project.import_readers(3)
    [(token,)] = project.query("SELECT token FROM subscribers WHERE email = ?",
                               "reader000@example.com")
    config = load_config(project.config_path, environ={
        **smtp_env(smtp_server), "AINEWS_SECRET_KEY": SECRET,
        "AINEWS_STORAGE__URL": f"sqlite:///{database}"})
    client = TestClient(create_public_app(config), base_url=HTTPS, follow_redirects=False)
    filler = fill(folder)

    first = client.post("/subscribe", data={"email": "ada@example.com",
                                            "csrf": _csrf(client)})
    assert first.status_code == 200  # answered before the sign-up is stored
    assert "Traceback" not in caplog.text
    assert "not stored: the database is unusable (" in caplog.text
    second = client.post("/subscribe", data={"email": "bo@example.com",
                                             "csrf": _csrf(client)})
    assert second.status_code == 503 and second.headers["Retry-After"] == "30"
    leave = client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    assert leave.status_code == 503 and leave.headers["Retry-After"]
    assert count(database, "SELECT count(*) FROM subscribers") == 3
    assert smtp_server.recipients() == []

    filler.unlink()
    monkeypatch.setattr(double_opt_in, "STORAGE_PAUSE_SECONDS", 0.0)  # the pause is over
    again = client.post("/subscribe", data={"email": "bo@example.com",
                                            "csrf": _csrf(client)})
    assert again.status_code == 200
    assert project.query("SELECT status FROM subscribers WHERE email = ?",
                         "bo@example.com") == [("pending",)]
    assert smtp_server.recipients() == ["bo@example.com"]
    left = client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    assert left.status_code == 200
    assert integrity(database) == "ok"
