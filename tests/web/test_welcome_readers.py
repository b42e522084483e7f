"""Whose welcome is whose, on the real app, CLI paths and aiosmtpd: SQLite hands a removed
reader's (highest) id to the next reader, and the welcome queued for the first must never
go out with the second's unsubscribe link, nor keep the second from being welcomed; the
catch-up welcomes web readers only for what the web did (not a pending web sign-up that
the CLI or an import activated); a reader who left first is skipped, not failed; and
`ainews status` without an issue still exits 1; `import --welcome` welcomes the readers its
own file added."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from ainews_newsletter import clock
from ainews_newsletter.pipeline.issue import open_subscribers
from ainews_newsletter.pipeline.welcome import Welcomes
from ainews_newsletter.schedule.job import send_welcomes
from ainews_newsletter.subscribers.signups import SignUps
from tests.conftest import Project, SmtpServer, smtp_env
from tests.web.test_welcome import (
    WELCOME_ON,
    _client,
    _config,
    _confirm,
    _import,
    _welcome_rows,
    parsed,
    pending_link,
    welcomes_to,
)

# Run again under libfaketime at awkward dates by scripts/test-clocks.
pytestmark = pytest.mark.clock


def _token(project: Project, address: str) -> tuple[int, str]:
    [(subscriber_id, token)] = project.query(
        "SELECT id, token FROM subscribers WHERE email = ?", address)
    return subscriber_id, token


def _removed_with_a_queued_welcome(project: Project, smtp_server: SmtpServer) -> int:
    """Ada joins from the web an hour ago; her welcome waits (greylisted); she is removed.
    Returns her id, the next reader's on SQLite."""
    project.write_config(WELCOME_ON)
    config = _config(project, smtp_server)
    earlier = clock.now() - timedelta(hours=1)
    smtp_server.handler.replies["ada@example.com"] = "451 4.7.1 greylisted"
    with clock.use_clock(clock.frozen(earlier)):
        _confirm(_client(config), pending_link(config, "ada@example.com"))
    assert _welcome_rows(project) == [("ada@example.com", "queued", 1, 451)]
    ada_id, _ = _token(project, "ada@example.com")
    assert project.run("subscribers", "remove", "ada@example.com", "--yes").exit_code == 0
    del smtp_server.handler.replies["ada@example.com"]
    project.query("UPDATE welcomes SET next_attempt_at = NULL")  # her retry is due
    return ada_id


def test_a_removed_readers_welcome_never_goes_with_the_next_holders_link(
        project: Project, smtp_server: SmtpServer) -> None:
    """Bo, added by the CLI, gets Ada's id: no welcome for him (he did not come from the
    web; Ada's web events are not his) and none to Ada's address with his link."""
    ada_id = _removed_with_a_queued_welcome(project, smtp_server)
    assert project.run("subscribers", "add", "bo@example.com").exit_code == 0
    assert _token(project, "bo@example.com")[0] == ada_id  # SQLite reused the id
    config = _config(project, smtp_server)
    run = Welcomes(config).send_due()
    send_welcomes(config, lambda: False)  # the scheduler's round: catch-up included
    assert welcomes_to(smtp_server) == []
    assert run.sent == 0 and run.skipped == 1
    assert _welcome_rows(project) == []  # the stale row is gone


def test_the_next_holder_of_the_id_is_welcomed_with_their_own_link(
        project: Project, smtp_server: SmtpServer) -> None:
    ada_id = _removed_with_a_queued_welcome(project, smtp_server)
    config = _config(project, smtp_server)
    _confirm(_client(config), pending_link(config, "bo@example.com"))
    bo_id, bo_token = _token(project, "bo@example.com")
    assert bo_id == ada_id
    send_welcomes(config, lambda: False)
    assert welcomes_to(smtp_server, "ada@example.com") == []
    [received] = welcomes_to(smtp_server)
    assert received.rcpt_tos == ["bo@example.com"]
    assert f"/unsubscribe/{bo_token}>" in parsed(received)["List-Unsubscribe"]
    assert _welcome_rows(project) == [("bo@example.com", "sent", 1, 250)]


def test_the_catch_up_leaves_a_web_sign_up_activated_elsewhere(
        any_project: Project, smtp_server: SmtpServer) -> None:
    """Pending web sign-ups later made active by the CLI or an import came from there:
    no welcome. A single opt-in web join (joined as active) is the web's: welcomed."""
    any_project.write_config(WELCOME_ON)
    config = _config(any_project, smtp_server)
    signups = SignUps(open_subscribers(config))
    signups.sign_up("cli@example.com", None, None)
    signups.sign_up("imported@example.com", None, None)
    assert any_project.run("subscribers", "resubscribe", "cli@example.com").exit_code == 0
    assert _import(any_project, "imported@example.com,,active\n").exit_code == 0
    assert signups.join_at_once("single@example.com", None) == "joined"
    send_welcomes(config, lambda: False)
    assert [r.rcpt_tos for r in welcomes_to(smtp_server)] == [["single@example.com"]]


def test_a_reader_who_left_first_is_skipped_not_failed_and_status_exits_1(
        any_project: Project, smtp_server: SmtpServer) -> None:
    any_project.write_config(WELCOME_ON)
    config = _config(any_project, smtp_server)
    signups = SignUps(open_subscribers(config))
    signups.sign_up("ada@example.com", None, None)
    signups.confirm("ada@example.com")
    welcomes = Welcomes(config)
    assert welcomes.catch_up() == 1
    assert any_project.run("subscribers", "unsubscribe", "ada@example.com").exit_code == 0
    run = welcomes.send_due()
    assert (run.sent, run.failed, run.skipped) == (0, 0, 1)
    assert welcomes_to(smtp_server) == []
    [(state,)] = any_project.query("SELECT state FROM welcomes")
    assert state == "skipped"
    status = any_project.run("status")  # no issue yet: exit 1, the welcomes said first
    assert status.exit_code == 1 and "no issue has been sent yet" in status.stderr
    assert "failed 0, skipped 1" in status.output
    assert "last failed welcome" not in status.output
    as_json = any_project.run("status", "--json")
    assert as_json.exit_code == 1
    counts = json.JSONDecoder().raw_decode(as_json.output)[0]["welcomes"]
    assert (counts["failed"], counts["skipped"], counts["last_failure"]) == (0, 1, None)


def test_an_import_welcomes_exactly_the_readers_it_added(
        any_project: Project, smtp_server: SmtpServer) -> None:
    """Another import at the same moment (a clock that stands still makes them
    simultaneous) added its own readers: `import --welcome` welcomes only the ones its file
    added as active, not those, not a pending one."""
    env = smtp_env(smtp_server)
    with clock.use_clock(clock.frozen(clock.now())):
        other = _import(any_project, "other@example.com,Other,active\n", env=env)
        assert other.exit_code == 0
        mine = _import(any_project, """\
            mine@example.com,Mine,active
            waiting@example.com,,pending
            """, "--welcome", "--json", env=env)
    assert mine.exit_code == 0, mine.output + mine.stderr
    assert json.loads(mine.output)["welcomes"]["queued"] == 1
    assert [r.rcpt_tos for r in welcomes_to(smtp_server)] == [["mine@example.com"]]
