"""Every command through click's CliRunner against a real SQLite file and a real SMTP server:
exit codes, output, and what ends up stored."""

from __future__ import annotations

import email
import email.policy
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ainews_newsletter.cli import app
from tests.conftest import Project, SmtpServer, smtp_env

# Run again under libfaketime at awkward dates by scripts/test-clocks.
pytestmark = pytest.mark.clock

REPO = Path(__file__).resolve().parent.parent

COMMANDS = [
    [], ["demo"], ["build"], ["posts"], ["posts", "list"], ["send"], ["status"],
    ["subscribers"], ["subscribers", "add"], ["subscribers", "remove"],
    ["subscribers", "unsubscribe"], ["subscribers", "show"], ["subscribers", "list"],
    ["subscribers", "count"], ["subscribers", "import"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "ainews")
def test_help_works_everywhere_without_a_config(command: list[str]) -> None:
    result = CliRunner().invoke(app.cli, [*command, "--help"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output
    assert "Options:" in result.output


def test_top_level_help_lists_every_command() -> None:
    output = CliRunner().invoke(app.cli, ["--help"]).output
    for name in ("demo", "build", "posts", "send", "status", "subscribers"):
        assert f"  {name} " in output


def test_usage_error_exits_2(project: Project) -> None:
    result = project.run("subscribers", "add")
    assert result.exit_code == 2
    assert "Missing argument 'EMAIL'" in result.stderr


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# -- build ---------------------------------------------------------------------------------

def test_build_writes_three_files(project: Project) -> None:
    project.run("subscribers", "add", "first@example.com", "--name", "First Reader")
    out = project.root / "out"
    result = project.run("build", "--week", "2026-W47", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "2026-W47" in result.output and "3 posts" in result.output
    for name in ("issue.html", "issue.txt", "issue.eml"):
        size = (out / name).stat().st_size
        assert size > 500 and f"{size:,} bytes" in result.output
    message = email.message_from_bytes((out / "issue.eml").read_bytes(),
                                       policy=email.policy.default)
    assert message["To"] == "First Reader <first@example.com>"
    token = project.query("SELECT token FROM subscribers")[0][0]
    assert f"https://news.example.org/unsubscribe/{token}" in (out / "issue.html").read_text()
    assert project.query("SELECT count(*) FROM issues") == [(0,)]  # build froze nothing
    assert project.query("SELECT count(*) FROM deliveries") == [(0,)]


def test_build_refuses_an_empty_week(project: Project) -> None:
    result = project.run("build", "--week", "2026-W30")
    assert result.exit_code == 1
    assert "only 0 posts in window, min_posts is 1 (2026-W30)" in result.stderr


def test_build_min_posts_and_force(project: Project) -> None:
    project.write_config("[posts]\nmin_posts = 2\n")
    refused = project.run("build", "--week", "2026-W46", "--out", "o")
    assert refused.exit_code == 1
    assert ("only 1 post in window, min_posts is 2 (2026-W46; --force builds anyway)"
            in refused.stderr)
    assert project.run("build", "--week", "2026-W46", "--out", "o", "--force").exit_code == 0


# -- send, status --------------------------------------------------------------------------

def test_send_and_status(project: Project, smtp_server: SmtpServer) -> None:
    for i in range(3):
        project.run("subscribers", "add", f"s{i}@example.com")
    env = smtp_env(smtp_server)
    result = project.run("send", "--week", "2026-W47", "--yes", env=env)
    assert result.exit_code == 0, result.output + result.stderr
    assert "2026-W47: sent 3 of 3" in result.output
    assert sorted(smtp_server.recipients()) == [f"s{i}@example.com" for i in range(3)]

    status = json.loads(project.run("status", "--json").output)
    assert status == {"issue": "2026-W47", "total": 3, "queued": 0, "sending": 0, "sent": 3,
                      "deferred": 0, "failed": 0, "languages": {"en": 3}, "feedback": {
                          "bounced": 0, "complained": 0, "hard": 0, "soft": 0,
                          "complaint": 0, "autoreply": 0, "other": 0, "delivered": 0,
                          "unsubscribe": 0}, "relays": {}}
    assert json.loads(project.run("status", "2026-W47", "--json").output) == status
    table = project.run("status").output
    assert "sent" in table and "3" in table

    again = project.run("send", "--week", "2026-W47", "--yes", env=env)
    assert again.exit_code == 0 and "Nothing to send for 2026-W47" in again.output
    assert len(smtp_server.handler.messages) == 3


def test_send_without_a_terminal_asks_nobody_and_sends_nothing(
        project: Project, smtp_server: SmtpServer) -> None:
    project.run("subscribers", "add", "ask@example.com")
    result = project.run("send", "--week", "2026-W47", input="y\n", env=smtp_env(smtp_server))
    assert result.exit_code == 1  # a "y" on a pipe is not a person: --yes is the way
    assert "Send 2026-W47" in result.stderr and "to 1 subscriber via" in result.stderr
    assert "no terminal to confirm: add --yes" in result.stderr
    assert smtp_server.handler.messages == []
    assert project.query("SELECT count(*) FROM deliveries") == [(0,)]


def test_send_with_server_down_exits_1_and_resumes(project: Project,
                                                   smtp_server: SmtpServer) -> None:
    project.run("subscribers", "add", "wait@example.com")
    result = project.run("send", "--week", "2026-W47", "--yes",
                         env={"AINEWS_SMTP__HOST": "127.0.0.1", "AINEWS_SMTP__PORT": "9"})
    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot connect to smtp 127.0.0.1:9")
    resumed = project.run("send", "--week", "2026-W47", "--yes", env=smtp_env(smtp_server))
    assert "Resume" not in resumed.output and "sent 1 of 1" in resumed.output
    assert smtp_server.recipients() == ["wait@example.com"]


def test_status_without_issues_exits_1(project: Project) -> None:
    result = project.run("status")
    assert result.exit_code == 1 and "no issue has been sent yet" in result.stderr


# -- demo ----------------------------------------------------------------------------------

def test_demo_runs_end_to_end_twice(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    for _ in range(2):
        result = CliRunner().invoke(app.cli, ["demo", "--dir", str(folder)],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert "week        2026-W47" in result.output
        assert "recipients  25" in result.output
        assert "sent        25" in result.output and "failed      0" in result.output
        outbox = sorted((folder / "outbox").glob("*.eml"))
        assert len(outbox) == 25
        assert "config.toml preview --week 2026-W47" in result.output  # what to try next
    first = email.message_from_bytes(outbox[0].read_bytes(), policy=email.policy.default)
    assert first["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert (folder / "issue.html").stat().st_size > 10_000


def test_demo_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    folder = tmp_path / "precious"
    folder.mkdir()
    (folder / "thesis.txt").write_text("do not delete")
    result = CliRunner().invoke(app.cli, ["demo", "--dir", str(folder)])
    assert result.exit_code == 1 and "was not made by `ainews demo`" in result.stderr
    assert (folder / "thesis.txt").read_text() == "do not delete"


def test_ctrl_c_during_send_reports_progress_and_exits_130(
        project: Project, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C cannot come from a real peer on demand, so the second ledger write raises it."""
    from ainews_newsletter.delivery.claims import LedgerWriter

    for i in range(3):
        project.run("subscribers", "add", f"c{i}@example.com")
    original = LedgerWriter.record
    calls = {"n": 0}

    def record_then_interrupt(self: LedgerWriter, *args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(LedgerWriter, "record", record_then_interrupt)
    result = project.run("send", "--week", "2026-W47", "--yes", env=smtp_env(smtp_server))
    assert result.exit_code == 130
    assert "Interrupted: 2026-W47 sent to 1 of 3" in result.output
    assert "ainews send --issue 2026-W47" in result.output
    states = sorted(state for (state,) in project.query("SELECT state FROM deliveries"))
    assert states == ["queued", "sending", "sent"]  # the one in flight is not claimed as sent
