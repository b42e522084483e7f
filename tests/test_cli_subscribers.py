"""`ainews subscribers …` and `ainews db upgrade` through CliRunner, each against a real
SQLite file and a real PostgreSQL database; every bad input is one line and exit code 1 with
nothing stored changed."""

from __future__ import annotations

import csv
import io
import json
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ainews_newsletter.config import load_config
from ainews_newsletter.database import SCHEMA_HEAD, engine_for
from ainews_newsletter.models import SubscriberStatus, Window
from ainews_newsletter.pipeline.issue import open_subscribers
from ainews_newsletter.pipeline.send import execute_send, plan_send
from ainews_newsletter.subscribers.export import write_csv
from ainews_newsletter.subscribers.formats import open_subscriber_file
from ainews_newsletter.subscribers.importer import import_rows
from ainews_newsletter.subscribers.store import SubscriberStore
from tests.conftest import Project, SmtpServer

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "subscribers"


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _json(project: Project, *args: str) -> object:
    result = project.run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _count(project: Project, *args: str) -> int:
    return int(project.run("subscribers", "count", *args).stdout)


def test_lifecycle(any_project: Project) -> None:
    p = any_project
    added = _json(p, "subscribers", "add", "Ada@Example.com", "--name", "Ada")
    assert added["email"] == "Ada@Example.com" and added["lists"] == ["newsletter"]  # type: ignore[index]
    assert p.run("subscribers", "add", "bob@example.org", "--status", "pending").exit_code == 0
    assert _count(p) == 2 and _count(p, "--status", "pending") == 1

    listed = _json(p, "subscribers", "list")
    assert [(s["email"], s["name"], s["status"]) for s in listed] == [  # type: ignore[attr-defined,index]
        ("Ada@Example.com", "Ada", "active"), ("bob@example.org", None, "pending")]

    assert p.run("subscribers", "unsubscribe", "ada@example.com").exit_code == 0
    shown = _json(p, "subscribers", "show", "ADA@example.com")
    assert shown["status"] == "unsubscribed" and shown["unsubscribed_at"]  # type: ignore[index]
    assert p.run("subscribers", "resubscribe", "ada@example.com").exit_code == 0
    assert _count(p, "--status", "active") == 1

    assert p.run("subscribers", "remove", "bob@example.org", "--yes").exit_code == 0
    assert p.query("SELECT email, status FROM subscribers") == [("Ada@Example.com", "active")]


def test_lists_commands(any_project: Project) -> None:
    p = any_project
    assert p.run("subscribers", "lists", "add", "research", "--description", "papers").exit_code \
        == 0
    p.run("subscribers", "add", "r@example.com", "--list", "research")
    p.run("subscribers", "add", "n@example.com")
    lists = _json(p, "subscribers", "lists", "list")
    assert lists == [{"name": "newsletter", "description": "the default list", "members": 1,
                      "active": 1},
                     {"name": "research", "description": "papers", "members": 1, "active": 1}]
    assert _count(p, "--list", "research") == 1
    missing = p.run("subscribers", "add", "x@example.com", "--list", "nope")
    assert missing.exit_code == 1 and "no list named 'nope'" in missing.stderr
    assert p.run("subscribers", "lists", "remove", "research", "--yes").exit_code == 0
    assert _count(p) == 2


def test_list_search_limit_csv(any_project: Project) -> None:
    p = any_project
    for i in range(3):
        p.run("subscribers", "add", f"p{i}@example.com", "--name", f"Person {i}")
    table = p.run("subscribers", "list", "--limit", "2").stdout
    assert "p0@example.com" in table and "p1@example.com" in table
    assert "p2@example.com" not in table
    found = _json(p, "subscribers", "list", "--search", "person 2")
    assert [s["email"] for s in found] == ["p2@example.com"]  # type: ignore[attr-defined,index]
    rows = list(csv.DictReader(io.StringIO(p.run("subscribers", "list", "--csv").stdout)))
    assert [row["email"] for row in rows] == ["p0@example.com", "p1@example.com",
                                              "p2@example.com"]


def test_remove_without_yes_keeps_the_row(any_project: Project) -> None:
    any_project.run("subscribers", "add", "keep@example.com")
    result = any_project.run("subscribers", "remove", "keep@example.com", input="y\n")
    assert "no terminal to confirm: add --yes" in result.stderr  # a pipe is not a person
    assert result.exit_code == 1
    assert _count(any_project) == 1


@pytest.mark.parametrize("address", ["not-an-address", "x@", "two@@example.com",
                                     "Ada <ada@example.com>", "a@b.test"])
def test_invalid_address_exits_1_with_one_line(any_project: Project, address: str) -> None:
    result = any_project.run("subscribers", "add", address)
    assert result.exit_code == 1
    assert _lines(result.stderr) == [result.stderr.strip()]
    assert result.stderr.startswith("error: ") and address in result.stderr
    assert _count(any_project) == 0


def test_duplicate_add_exits_1_and_keeps_the_original(any_project: Project) -> None:
    any_project.run("subscribers", "add", "dup@example.com", "--name", "First")
    result = any_project.run("subscribers", "add", "DUP@example.com", "--name", "Second")
    assert result.exit_code == 1 and "already on list 'newsletter'" in result.stderr
    assert any_project.query("SELECT name FROM subscribers") == [("First",)]


def test_unknown_subscriber_exits_1(any_project: Project) -> None:
    for command in (["unsubscribe"], ["show"], ["remove", "--yes"], ["resubscribe"]):
        result = any_project.run("subscribers", *command, "ghost@example.com")
        assert result.exit_code == 1
        assert "no subscriber with address 'ghost@example.com'" in result.stderr


def test_import_sample_csv_twice(any_project: Project) -> None:
    sample = str(REPO / "subscribers/sample.csv")
    assert _json(any_project, "subscribers", "import", sample) == {
        "imported": 25, "updated": 0, "duplicates": 0, "rejected": 0, "format": "csv",
        "dry_run": False}
    again = _json(any_project, "subscribers", "import", sample)
    assert again["imported"] == 0 and again["duplicates"] == 25  # type: ignore[index]
    assert _count(any_project) == 25


def test_import_every_format_with_rejects_file(any_project: Project, tmp_path: Path) -> None:
    rejects = tmp_path / "rejects.csv"
    result = any_project.run("subscribers", "import", str(FIXTURES / "mailchimp-subscribed.csv"),
                             "--rejects", str(rejects), "--json")
    assert result.exit_code == 1  # some rows were rejected
    assert json.loads(result.stdout) == {"imported": 3, "updated": 0, "duplicates": 1,
                                         "rejected": 2, "format": "mailchimp", "dry_run": False}
    assert "mailchimp-subscribed.csv:5: 'not-an-address' is not a valid" in result.stderr
    written = list(csv.DictReader(rejects.open(encoding="utf-8")))
    assert [(row["line"], row["email"]) for row in written] == [
        ("5", "not-an-address"), ("6", '\'=HYPERLINK("https://evil.example")')]  # as text
    for name, file_format in (("substack.csv", "substack"), ("listmonk.csv", "listmonk")):
        summary = _json(any_project, "subscribers", "import", str(FIXTURES / name))
        assert summary["format"] == file_format and summary["rejected"] == 0  # type: ignore[index]
    unsub = _json(any_project, "subscribers", "import",
                  str(FIXTURES / "mailchimp-unsubscribed.csv"))
    assert unsub["updated"] == 1  # type: ignore[index]
    shown = _json(any_project, "subscribers", "show", "gideon.mensah@example.org")
    assert shown["status"] == "unsubscribed"  # type: ignore[index]


def test_import_dry_run_and_list_and_status(any_project: Project) -> None:
    p = any_project
    dry = _json(p, "subscribers", "import", str(FIXTURES / "substack.csv"), "--dry-run")
    assert dry["imported"] == 3 and dry["dry_run"] is True  # type: ignore[index]
    assert _count(p) == 0
    p.run("subscribers", "lists", "add", "trial")
    result = p.run("subscribers", "import", str(FIXTURES / "substack.csv"), "--list", "trial",
                   "--status", "pending")
    assert result.exit_code == 0, result.stderr
    assert _count(p, "--list", "trial") == 3
    # --status never brings back the one who turned emails off
    assert _count(p, "--status", "pending") == 2 and _count(p, "--status", "unsubscribed") == 1


@pytest.mark.parametrize(("content", "args", "message"), [
    (b"", [], "the file is empty"),
    (b"\x00\x01\x02binary", [], "binary file"),
    (b"name,phone\nA,1\n", [], "no email column; the columns found are: 'name', 'phone'"),
    (b"email\na@example.com\n", ["--format", "excel"], "unknown format 'excel'"),
    (b"email\na@example.com\n", ["--list", "ghost"], "no list named 'ghost'"),
])
def test_bad_import_files_change_nothing(any_project: Project, tmp_path: Path, content: bytes,
                                         args: list[str], message: str) -> None:
    any_project.run("subscribers", "add", "keep@example.com")
    path = tmp_path / "in.csv"
    path.write_bytes(content)
    result = any_project.run("subscribers", "import", str(path), *args)
    assert result.exit_code in (1, 2) and message in result.stderr
    assert _lines(result.stderr)[-1].startswith(("error:", "Error:"))
    assert _count(any_project) == 1


def test_import_missing_file_and_folder(any_project: Project, tmp_path: Path) -> None:
    result = any_project.run("subscribers", "import", "nope.csv")
    assert result.exit_code == 1 and "subscriber file not found: nope.csv" in result.stderr
    folder = any_project.run("subscribers", "import", str(tmp_path))
    assert folder.exit_code == 1 and "is a folder" in folder.stderr


def test_export_is_spreadsheet_safe_and_reimports(any_project: Project, tmp_path: Path) -> None:
    p = any_project
    p.run("subscribers", "add", "calc@example.com", "--name", "=SUM(A1:A9)")
    p.run("subscribers", "add", "plus@example.com", "--name", "+1 555")
    p.run("subscribers", "unsubscribe", "plus@example.com")
    out = tmp_path / "export.csv"
    assert p.run("subscribers", "export", "-o", str(out)).exit_code == 0
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [row["name"] for row in rows] == ["'=SUM(A1:A9)", "'+1 555"]
    as_json = json.loads(p.run("subscribers", "export", "--format", "json").stdout)
    assert [row["name"] for row in as_json] == ["=SUM(A1:A9)", "+1 555"]  # JSON is not escaped
    only = list(csv.DictReader(io.StringIO(p.run("subscribers", "export", "--status",
                                                 "unsubscribed").stdout)))
    assert [row["email"] for row in only] == ["plus@example.com"]


def test_db_upgrade(any_project: Project) -> None:
    first = any_project.run("db", "upgrade")
    assert first.exit_code == 0 and f"schema at {SCHEMA_HEAD}" in first.stdout
    assert "already current" in any_project.run("db", "upgrade").stdout


def test_unsubscribe_committed_during_a_send_is_honoured(any_project: Project,
                                                         smtp_server: SmtpServer) -> None:
    """A reader unsubscribes (another connection, committed) while the send is running:
    rows checked after that commit are not sent."""
    p = any_project
    for i in range(4):
        p.run("subscribers", "add", f"reader{i}@example.com")
    p.write_config("[delivery]\nbatch_size = 1\n")
    config = load_config(p.config_path, environ={}, overrides={
        "storage": {"url": p.storage_url}, "smtp": {"host": "127.0.0.1",
                                                    "port": smtp_server.port}})

    def unsubscribe_the_last(address: str) -> None:
        if address == "reader0@example.com":
            worker = threading.Thread(target=lambda: open_subscribers(config)
                                      .unsubscribe("reader3@example.com"))
            worker.start()
            worker.join()

    smtp_server.handler.on_rcpt = unsubscribe_the_last
    counts = execute_send(config, plan_send(
        config, Window(week="2026-W47")))
    assert "reader3@example.com" not in smtp_server.recipients()
    assert (counts.sent, counts.failed) == (3, 1)


EMAIL = st.from_regex(r"[a-z][a-z0-9]{0,8}(\.[a-z0-9]{1,5})?@[a-z]{2,8}\.(com|org|net)",
                      fullmatch=True)
NAME = st.one_of(st.none(), st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1,
    max_size=20).map(str.strip).filter(bool))
STATUS = st.sampled_from(list(SubscriberStatus))
LISTS = st.lists(st.sampled_from(["newsletter", "research", "=formula"]), min_size=1,
                 max_size=3, unique=True)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(people=st.dictionaries(EMAIL, st.tuples(NAME, STATUS, LISTS), min_size=1, max_size=8))
def test_export_then_import_gives_the_same_store(
        tmp_path_factory: pytest.TempPathFactory,
        people: dict[str, tuple[str | None, SubscriberStatus, list[str]]]) -> None:
    folder = tmp_path_factory.mktemp("roundtrip")
    source = SubscriberStore(engine_for(f"sqlite:///{folder / 'source.db'}"))
    for name in ("research", "=formula"):
        source.add_list(name)
    for email, (name, status, on_lists) in people.items():
        for list_name in on_lists:
            if source.get(email) is None:
                source.add(email, name, list_name, status)
            else:
                source.add(email, list_name=list_name)
    exported = folder / "export.csv"
    with exported.open("w", encoding="utf-8", newline="") as handle:
        write_csv(source.iter_subscribers(with_lists=True), handle)
    target = SubscriberStore(engine_for(f"sqlite:///{folder / 'target.db'}"))
    summary = import_rows(target, open_subscriber_file(exported).rows)
    assert summary.rejected == 0

    def state(store: SubscriberStore) -> list[object]:
        return [(s.email, s.name, s.status, s.lists, s.attributes)
                for s in store.iter_subscribers(with_lists=True)]

    assert state(target) == state(source)


# -- hostile input (issue 27): one line naming the file and line, exit 1, nothing half-stored

HUGE_INT = "9" * 5_000  # over Python's 4,300-digit limit for int() of text


@pytest.mark.parametrize(("name", "content", "message"), [
    pytest.param("json-huge-int", f'[\n{{"email": "a@example.com"}},\n{{"email": "b@example.com",\n'
                      f'"id": {HUGE_INT}}}\n]\n',
     "in.csv:4: a number of 5,000 digits (more than Python reads: 4,300)", id="json-int"),
    pytest.param("csv-header-over-field-limit",
                 "email," + "x" * (1024 * 1024 + 1) + "\na@example.com,1\n",
     "in.csv:1: malformed CSV header: field larger than field limit", id="csv-header"),
])
def test_hostile_import_file_is_one_line_and_stores_nothing(
        any_project: Project, tmp_path: Path, name: str, content: str, message: str) -> None:
    any_project.run("subscribers", "add", "keep@example.com")
    path = tmp_path / "in.csv"
    path.write_text(content, encoding="utf-8")
    result = any_project.run("subscribers", "import", str(path))
    assert result.exit_code == 1, name
    assert message in result.stderr and "Traceback" not in result.stderr
    assert _lines(result.stderr) == [result.stderr.strip()]
    assert any_project.query("SELECT email FROM subscribers") == [("keep@example.com",)]


def test_hostile_attributes_cells_reject_their_rows_by_line(any_project: Project,
                                                            tmp_path: Path) -> None:
    """A CSV `attributes` cell with a 5,000-digit integer, NaN, an infinite number or JSON
    nested 100,000 deep: its row is rejected naming the line; the good row is stored."""
    path = tmp_path / "in.csv"
    path.write_text('email,attributes\n'
                    f'a@example.com,"{{""id"": {HUGE_INT}}}"\n'
                    'b@example.com,"{""n"": NaN}"\n'
                    'c@example.com,"{""n"": 1e999}"\n'
                    f'd@example.com,"{"[" * 100_000}"\n'
                    'ok@example.com,"{""plan"": ""pro""}"\n', encoding="utf-8")
    result = any_project.run("subscribers", "import", str(path))
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert _lines(result.stderr) == [
        f"error: {path}:2: attributes: a number of more than 4,300 digits",
        f"error: {path}:3: attributes: NaN is not a number JSON can store",
        f"error: {path}:4: attributes: the number 1e999… is too large to store",
        f"error: {path}:5: attributes: JSON nested more than 32 levels deep"]
    assert any_project.query("SELECT email FROM subscribers") == [("ok@example.com",)]


def test_a_file_of_junk_rows_is_read_row_by_row_and_every_reject_is_written(
        any_project: Project, tmp_path: Path) -> None:
    """The fuzz run's slowest import (a Substack export whose quoted field, left open, made
    500,000 rows of "a"): each row is refused by line as email-validator would word it;
    --rejects holds every one in file order, the suppressed one among them, and the
    summary the command keeps holds the first KEPT_REJECTS only."""
    from ainews_newsletter.subscribers.importer import KEPT_REJECTS

    any_project.run("subscribers", "add", "gone@example.com")
    any_project.run("subscribers", "unsubscribe", "gone@example.com")
    any_project.run("subscribers", "remove", "gone@example.com", "--yes")  # suppressed
    junk = 60_000  # over one batch (50,000), so the order across batches is checked too
    path, rejects = tmp_path / "email_list.csv", tmp_path / "rejects.csv"
    path.write_text("email;active_subscription;expiry;plan;email_disabled;created_at\n"
                    "ok@example.com;true;;yearly;false;2026-03-05\n"
                    + "a\n" * junk + "gone@example.com;false;;free;false;2026-04-01\n"
                    + "@\nx@\nx@y\n", encoding="utf-8")
    result = any_project.run("subscribers", "import", str(path), "--rejects", str(rejects),
                             "--json")
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert json.loads(result.stdout)["rejected"] == junk + 4
    written = list(csv.DictReader(rejects.open(encoding="utf-8")))
    assert [int(row["line"]) for row in written] == list(range(3, junk + 7))
    assert written[0]["reason"] == ("'a' is not a valid email address: An email address "
                                    "must have an @-sign.")
    assert [row["reason"].split(": ", 1)[1] for row in written[-3:]] == [
        "There must be something before the @-sign.",
        "There must be something after the @-sign.",
        "The part after the @-sign is not valid. It should have a period."]
    assert "suppression list" in written[junk]["reason"]
    assert _lines(result.stderr)[-1] == (f"error: … and {junk + 4 - 20} more rejected rows "
                                         f"(all in {rejects})")
    assert any_project.query("SELECT email FROM subscribers") == [("ok@example.com",)]

    fresh = SubscriberStore(engine_for(f"sqlite:///{tmp_path / 'fresh.db'}"))  # none suppressed
    kept = import_rows(fresh, open_subscriber_file(path).rows, dry_run=True)
    assert kept.rejected == junk + 3 and len(kept.rejects) == KEPT_REJECTS
    assert [reject.line for reject in kept.rejects] == list(range(3, 3 + KEPT_REJECTS))


def test_rejects_file_may_not_be_the_file_being_imported(any_project: Project,
                                                         tmp_path: Path) -> None:
    """Review: writing the rejects over the input as it is read imported part of it."""
    path = tmp_path / "in.csv"
    path.write_text("email\n" + "".join(f"r{i}@example.com\n" for i in range(500)) + "bad\n",
                    encoding="utf-8")
    result = any_project.run("subscribers", "import", str(path), "--rejects", str(path))
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert _lines(result.stderr) == [f"error: --rejects: {path} is the file being imported; "
                                     "name another file for the rejected rows"]
    assert path.read_text(encoding="utf-8").count("@example.com") == 500
    assert any_project.query("SELECT count(*) FROM subscribers") == [(0,)]


def test_rejected_values_are_spreadsheet_safe_in_the_rejects_file(any_project: Project,
                                                                  tmp_path: Path) -> None:
    path, rejects = tmp_path / "in.csv", tmp_path / "rejects.csv"
    path.write_text('email\n=HYPERLINK("http://evil.example")\n', encoding="utf-8")
    any_project.run("subscribers", "import", str(path), "--rejects", str(rejects))
    (row,) = list(csv.DictReader(rejects.open(encoding="utf-8")))
    assert row["email"] == "'=HYPERLINK(\"http://evil.example\")"  # text, not a formula
    assert row["reason"].startswith("'=HYPERLINK")  # the address quoted: text too
