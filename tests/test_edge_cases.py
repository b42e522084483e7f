"""Edge cases found in review, each pinned by a test (posts, rendering, subscribers, send)."""

from __future__ import annotations

import email
import email.policy
import json
from pathlib import Path

import pytest

from ainews_newsletter import clock
from ainews_newsletter.config import load_config
from ainews_newsletter.delivery.message import message_id
from ainews_newsletter.models import Window
from ainews_newsletter.pipeline.issue import build, lint
from ainews_newsletter.render.lint import spamassassin_score
from tests.conftest import Project, SmtpServer, post_text, smtp_env, write_post

# Run again under libfaketime at awkward dates by scripts/test-clocks.
pytestmark = pytest.mark.clock

CONFIG = load_config(environ={})


@pytest.mark.parametrize("key", ["2026-W47", "since-2026-11-18T10:33", "2026-11-16..2026-11-23",
                                 "2026-11-16T08:00..2026-11-23"])
def test_message_id_is_valid_for_every_kind_of_issue_key(key: str) -> None:
    value = message_id(CONFIG.newsletter, key, 7)
    parsed = email.message_from_bytes(f"Message-ID: {value}\r\n\r\n".encode(),
                                      policy=email.policy.default)
    assert parsed["Message-ID"] == value and parsed["Message-ID"].defects == ()
    assert value.endswith("@ainews.example>") and ".." not in value and ":" not in value


def test_since_last_issue_send_resumes_after_a_failure(project: Project,
                                                      smtp_server: SmtpServer) -> None:
    from datetime import UTC, datetime

    project.write_config('[posts]\nwindow = "since-last-issue"\n')
    project.run("subscribers", "add", "reader@example.com")
    with clock.use_clock(clock.frozen(datetime(2026, 11, 23, 7, 0, tzinfo=UTC))):
        down = project.run("send", "--yes", env={"AINEWS_SMTP__HOST": "127.0.0.1",
                                                 "AINEWS_SMTP__PORT": "9"})
        assert down.exit_code == 1 and "nothing is lost" in down.stderr
        again = project.run("send", "--yes", env=smtp_env(smtp_server))
    assert again.exit_code == 0, again.output
    assert smtp_server.recipients() == ["reader@example.com"]


@pytest.mark.parametrize("url", ["https://example.com:8O80/a", "https://example.com:99999/a",
                                 "https://[::1/a"])
def test_links_with_bad_ports_or_hosts_are_one_line_errors(project: Project, url: str) -> None:
    write_post(project.posts, "2026-11-19-bad-link.md",
               post_text("Bad Link", "2026-11-19T10:00:00Z", url=f"'{url}'"))
    for command in (["posts", "check"], ["posts", "list", "--week", "2026-W47"]):
        result = project.run(*command)
        assert result.exit_code == 1 and "field 'url'" in result.stderr
        assert "Traceback" not in result.output


def test_rich_markup_in_titles_and_names_is_printed_as_is(project: Project) -> None:
    write_post(project.posts, "2026-11-19-markup.md",
               post_text("Closing [/] tag and [bold]not bold[/bold]", "2026-11-19T10:00:00Z"))
    result = project.run("posts", "list", "--week", "2026-W47")
    assert result.exit_code == 0 and "[/]" in result.stdout and "[bold]" in result.stdout
    project.run("subscribers", "add", "dev@example.com", "--name", "Dev [/] Ops")
    listed = project.run("subscribers", "list")
    assert listed.exit_code == 0 and "Dev [/] Ops" in listed.stdout


def test_wrapped_or_multiline_postal_address_is_found(project: Project) -> None:
    project.write_config('[lint]\nspamassassin = false\n')
    project.config_path.write_text(project.config_path.read_text().replace(
        'postal_address = "1 Test Road, Testville"',
        'postal_address = """AI News Weekly GmbH, Musterstraße 123, Hinterhaus 2. OG,\n'
        '10115 Berlin, Germany, a long enough line to be wrapped"""'))
    config = load_config(project.config_path, environ={})
    rendered = build(config, Window(week="2026-W47"))
    assert [f.code for f in lint(config, rendered)] == []


def test_spamassassin_report_is_read_from_its_end() -> None:
    fake = (b"Subject: hi\r\n\r\nContent analysis details:   (-50.0 points, 5.0 required)\r\n"
            b"FREE MONEY!!! CLICK NOW!!! 100% GUARANTEED!!!\r\n")
    scored = spamassassin_score(fake)
    assert scored is not None and scored[0] > -50.0


def _import(project: Project, content: str, *args: str) -> dict[str, object]:
    path = project.root / "in.csv"
    path.write_text(content, encoding="utf-8")
    result = project.run("subscribers", "import", str(path), "--json", *args)
    data: dict[str, object] = json.loads(result.stdout) if result.stdout.strip() else {}
    return {**data, "exit": result.exit_code, "stderr": result.stderr}


def _show(project: Project, address: str) -> dict[str, object]:
    data: dict[str, object] = json.loads(
        project.run("subscribers", "show", address, "--json").stdout)
    return data


def test_a_later_unsubscribe_of_the_same_address_in_one_file_wins(project: Project) -> None:
    _import(project, "email,name,status\r\nann@example.com,,active\r\n"
                     "Ann@Example.com,Ann,unsubscribed\r\n")
    shown = _show(project, "ann@example.com")
    assert shown["status"] == "unsubscribed" and shown["name"] == "Ann"


def test_unknown_statuses_are_rejected_not_made_active(project: Project) -> None:
    result = _import(project, "email,status\nst1@example.com,inactive\nst2@example.com,weird\n")
    assert result["rejected"] == 1 and "unknown status 'weird'" in str(result["stderr"])
    assert _show(project, "st1@example.com")["status"] == "unsubscribed"


def test_a_bad_byte_late_in_the_file_imports_nothing(project: Project) -> None:
    path = project.root / "late.csv"
    good = "".join(f"big{i}@example.com,Big\n" for i in range(6000))
    path.write_bytes(("email,name\n" + good).encode() + b"late@example.com,Ren\xe9\n")
    result = project.run("subscribers", "import", str(path))
    assert result.exit_code == 1 and "late.csv:6002: not UTF-8" in result.stderr
    assert project.run("subscribers", "count").stdout.strip() == "0"


def test_rejects_file_in_a_missing_folder_fails_before_importing(project: Project) -> None:
    path = project.root / "in.csv"
    path.write_text("email\na@example.com\n", encoding="utf-8")
    result = project.run("subscribers", "import", str(path), "--rejects",
                         str(project.root / "no" / "such" / "dir.csv"))
    assert result.exit_code == 1 and "--rejects: cannot write" in result.stderr
    assert project.run("subscribers", "count").stdout.strip() == "0"


def test_repeated_column_names_take_the_filled_value(project: Project) -> None:
    assert _import(project, "email,email,name\nc6@example.com,,Six\n")["imported"] == 1


def test_search_treats_wildcards_literally(project: Project) -> None:
    for address in ("plain@example.com", "under_score@example.com"):
        project.run("subscribers", "add", address)
    found = json.loads(project.run("subscribers", "list", "--search", "_", "--json").stdout)
    assert [s["email"] for s in found] == ["under_score@example.com"]


def test_resubscribe_after_remove_lifts_the_suppression(project: Project) -> None:
    for command in (["add"], ["unsubscribe"], ["remove", "--yes"]):
        assert project.run("subscribers", *command, "bob@example.com").exit_code == 0
    refused = project.run("subscribers", "add", "bob@example.com")
    assert refused.exit_code == 1 and "resubscribe bob@example.com" in refused.stderr
    assert project.run("subscribers", "resubscribe", "bob@example.com").exit_code == 0
    assert _show(project, "bob@example.com")["status"] == "active"


def test_export_keeps_apostrophes_and_import_honours_list(project: Project,
                                                          tmp_path: Path) -> None:
    project.run("subscribers", "add", "q@example.com", "--name", "'=literal apostrophe")
    project.run("subscribers", "lists", "add", "other")
    exported = tmp_path / "e.csv"
    project.run("subscribers", "export", "-o", str(exported))
    project.run("subscribers", "remove", "q@example.com", "--yes")
    assert _import(project, exported.read_text(encoding="utf-8"), "--list", "other")["exit"] == 0
    shown = _show(project, "q@example.com")
    assert shown["name"] == "'=literal apostrophe"
    assert shown["lists"] == ["newsletter", "other"]
    bad = project.run("subscribers", "lists", "add", "a;b")
    assert bad.exit_code == 1 and "no ';'" in bad.stderr


def test_slugs_become_url_safe(project: Project) -> None:
    write_post(project.posts, "2026-11-19-my post #1.md",
               post_text("Spaces And Hash", "2026-11-19T10:00:00Z"))
    data = json.loads(project.run("posts", "list", "--week", "2026-W47", "--json").stdout)
    urls = [post["url"] for post in data["posts"]]
    assert "https://news.example.org/posts/my%20post%20%231" in urls


@pytest.mark.parametrize("args", [["--week", "9999-W52"],
                                  ["--since", "0001-01-01T00:00+05:00", "--until", "2026-01-01"]])
def test_extreme_windows_are_one_line_errors(project: Project, args: list[str]) -> None:
    result = project.run("posts", "list", *args)
    assert result.exit_code == 1 and result.stderr.startswith("error: ")
