"""`ainews bounces parse|ingest|fetch|list`, and what `status` and `subscribers show` say
about the mail that came back."""

from __future__ import annotations

import json
from pathlib import Path

from ainews_newsletter.config import load_config
from tests.conftest import Project, SmtpServer, smtp_env
from tests.feedback.returns import arf, dsn, out_of_office

BOUNCES_CONFIG = """
[bounces]
address = "bounces@news.example.org"
"""


def _sent_week(project: Project, server: SmtpServer, count: int) -> list[tuple[str, bytes]]:
    """Send 2026-W47 to `count` readers; (envelope sender, bytes) per reader, in order."""
    project.write_config(BOUNCES_CONFIG)
    readers = project.import_readers(count)
    result = project.run("send", "--week", "2026-W47", "--yes", env=smtp_env(server))
    assert result.exit_code == 0, result.output
    by_reader = {m.rcpt_tos[0]: (m.mail_from, m.data) for m in server.handler.messages}
    return [by_reader[reader] for reader in readers]


def test_parse_prints_one_object_per_message_and_changes_nothing(
        project: Project, tmp_path: Path) -> None:
    hard = tmp_path / "hard.eml"
    hard.write_bytes(dsn("bounces@news.example.org", "gone@readers.example"))
    complaint = tmp_path / "complaint.eml"
    complaint.write_bytes(arf("fbl@news.example.org", b"Message-ID: <a@b>\n\nx",
                              recipient="ada@readers.example", feedback_type="opt-out"))
    away = tmp_path / "away.eml"
    away.write_bytes(out_of_office("digest@news.example.org", "bo@readers.example"))
    result = project.run("bounces", "parse", str(hard), str(complaint), str(away), "--json")
    assert result.exit_code == 0, result.output
    parsed = json.loads(result.stdout)
    assert [p["source"] for p in parsed] == [str(hard), str(complaint), str(away)]
    assert [p["kind"] for p in parsed] == ["hard", "complaint", "autoreply"]
    assert parsed[0]["recipients"][0] | {"diagnostic": ""} == {
        "email": "gone@readers.example", "kind": "hard", "status": "5.1.1",
        "action": "failed", "diagnostic": ""}
    assert "no such user" in parsed[0]["recipients"][0]["diagnostic"]
    assert parsed[1]["feedback_type"] == "opt-out"
    assert not project.database.exists()  # parse never opens the database


def test_ingest_reads_stdin_and_names_what_is_not_mail(project: Project, smtp_server: SmtpServer,
                                                      tmp_path: Path) -> None:
    sent = _sent_week(project, smtp_server, 2)
    empty = tmp_path / "empty.eml"
    empty.write_bytes(b"")
    report = dsn(sent[0][0], "reader000@example.com", original=sent[0][1])
    first = project.run("bounces", "ingest", str(empty), "-", input=report.decode())
    assert first.exit_code == 1
    assert f"error: {empty}:" in first.stderr and "empty" in first.stderr
    assert "1 new event (hard 1)" in first.stdout
    assert "subscribers now bounced: 1, complained: 0" in first.stdout
    again = project.run("bounces", "ingest", "-", "--json", input=report.decode())
    assert again.exit_code == 0, again.output
    summary = json.loads(again.stdout)
    assert (summary["new_events"], summary["repeated"]) == (0, 1)
    shown = project.run("subscribers", "show", "reader000@example.com", "--json")
    record = json.loads(shown.stdout)
    assert record["status"] == "bounced"
    assert record["last_bounce"]["kind"] == "hard"
    assert record["last_bounce"]["status"] == "5.1.1"
    assert "no such user" in record["last_bounce"]["diagnostic"]
    plain = project.run("subscribers", "show", "reader000@example.com")
    assert "last_bounce     hard 5.1.1" in plain.stdout


def test_list_and_status_report_the_events(project: Project, smtp_server: SmtpServer,
                                           tmp_path: Path) -> None:
    sent = _sent_week(project, smtp_server, 3)
    files = []
    for number, (envelope, original) in enumerate(sent[:2]):
        path = tmp_path / f"r{number}.eml"
        status, said = [("5.1.1", "550 5.1.1 <{r}>: no such user"),
                        ("5.2.2", "552 5.2.2 <{r}>: mailbox full")][number]
        path.write_bytes(dsn(envelope, f"reader00{number}@example.com", status=status,
                             diagnostic=said, original=original,
                             message_id=f"<r{number}@mx.readers.example>"))
        files.append(str(path))
    delivered = f"Return-Path: <{sent[2][0]}>\n".encode() + sent[2][1]
    (tmp_path / "fbl.eml").write_bytes(arf("fbl@news.example.org", delivered))
    files.append(str(tmp_path / "fbl.eml"))
    assert project.run("bounces", "ingest", *files).exit_code == 0
    listed = json.loads(project.run("bounces", "list", "--json").stdout)
    assert [(e["kind"], e["email"], e["effect"]) for e in listed] == [
        ("hard", "reader000@example.com", "bounced"),
        ("soft", "reader001@example.com", "counted 1 of 3"),
        ("complaint", "", "complained")]
    assert project.run("bounces", "list", "--since", "2999-01-01", "--json").stdout.strip() \
        == "[]"
    status = project.run("status", "2026-W47", "--json")
    assert json.loads(status.stdout)["feedback"] | {"hard": 0, "soft": 0, "complaint": 0} == {
        "bounced": 2, "complained": 1, "hard": 0, "soft": 0, "complaint": 0,
        "autoreply": 0, "other": 0, "delivered": 0, "unsubscribe": 0}
    assert "came back: bounced 2 (hard 1, soft 1), complained 1" in \
        project.run("status", "2026-W47").stdout


def test_fetch_without_a_mailbox_says_what_to_set(project: Project) -> None:
    result = project.run("bounces", "fetch")
    assert result.exit_code == 1
    assert "[bounces] imap_host and imap_user" in result.stderr
    config = load_config(project.config_path, environ={},
                         overrides={"bounces": {"imap_host": "127.0.0.1",
                                                "imap_user": "bounces"}})
    assert config.bounces.imap_port_or_default == 993
    project.write_config('[bounces]\nimap_host = "127.0.0.1"\nimap_user = "bounces"\n')
    no_password = project.run("bounces", "fetch")
    assert no_password.exit_code == 1 and "AINEWS_BOUNCES__PASSWORD" in no_password.stderr


def test_a_password_in_the_file_is_refused(project: Project) -> None:
    project.write_config('[bounces]\npassword = "hunter2"\n')
    result = project.run("bounces", "list")
    assert result.exit_code == 1
    assert "bounces.password" in result.stderr and "hunter2" not in result.stderr


def test_a_bounce_address_must_leave_room_for_the_tag(project: Project) -> None:
    project.write_config(f'[bounces]\naddress = "{"b" * 50}@news.example.org"\n')
    result = project.run("bounces", "list")
    assert result.exit_code == 1 and "room for the 17-character tag" in result.stderr



def test_a_piped_message_is_kept_by_the_mta_when_the_database_is_down(project: Project,
                                                                    tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the database folder should be", encoding="utf-8")
    report = dsn("bounces@news.example.org", "gone@readers.example")
    result = project.run("bounces", "ingest", "-", input=report.decode(),
                         env={"AINEWS_STORAGE__URL": f"sqlite:///{blocker}/ainews.db"})
    assert result.exit_code == 75, result.output
    assert "the mail system retries" in result.stderr
    from_file = tmp_path / "r.eml"
    from_file.write_bytes(report)
    assert project.run("bounces", "ingest", str(from_file), env={
        "AINEWS_STORAGE__URL": f"sqlite:///{blocker}/ainews.db"}).exit_code == 1


def test_parse_json_keeps_the_order_and_names_what_is_not_mail(project: Project,
                                                               tmp_path: Path) -> None:
    good = tmp_path / "good.eml"
    good.write_bytes(dsn("bounces@news.example.org", "gone@readers.example"))
    binary = tmp_path / "photo.eml"
    binary.write_bytes(bytes(range(256)) * 8)
    result = project.run("bounces", "parse", str(binary), str(good), "--json")
    assert result.exit_code == 1
    parsed = json.loads(result.stdout)
    assert [p["source"] for p in parsed] == [str(binary), str(good)]
    assert "error" in parsed[0] and "kind" not in parsed[0]
    assert parsed[1]["kind"] == "hard"
    assert f"error: {binary}:" in result.stderr
