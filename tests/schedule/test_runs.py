"""`ainews schedule once` (the scheduled job, run now) on the clock's period: it sends once
per period, skips with the reason recorded, blocks on lint errors, drafts, and resumes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from ainews_newsletter import clock
from ainews_newsletter.cli import app
from tests.conftest import REPO, Project, SmtpServer, smtp_env

# Run again under libfaketime at awkward dates by scripts/test-clocks.
pytestmark = pytest.mark.clock

BERLIN = ZoneInfo("Europe/Berlin")
MONDAY_AFTER_W47 = datetime(2026, 11, 23, 8, 0, tzinfo=BERLIN)
MONDAY_AFTER_W49 = datetime(2026, 12, 7, 8, 0, tzinfo=BERLIN)  # W49 has no posts


@pytest.fixture
def on_monday() -> Iterator[None]:
    with clock.use_clock(clock.frozen(MONDAY_AFTER_W47)):
        yield


def _subscribe(project: Project, count: int) -> list[str]:
    addresses = [f"reader{i}@example.com" for i in range(count)]
    for address in addresses:
        assert project.run("subscribers", "add", address).exit_code == 0
    return addresses


def _runs(project: Project) -> list[dict[str, str]]:
    result = project.run("schedule", "status", "--json")
    assert result.exit_code == 0, result.output
    runs: list[dict[str, str]] = json.loads(result.output)
    return runs


def test_auto_mode_sends_the_period_once(project: Project, smtp_server: SmtpServer,
                                         on_monday: None) -> None:
    addresses = _subscribe(project, 5)
    first = project.run("schedule", "once", env=smtp_env(smtp_server))
    assert first.exit_code == 0, first.output
    assert "sent 2026-W47: sent 5 of 5" in first.output
    assert sorted(smtp_server.recipients()) == addresses
    again = project.run("schedule", "once", env=smtp_env(smtp_server))
    assert again.exit_code == 0
    assert "skipped 2026-W47: the issue for 2026-W47 has been sent already" in again.output
    assert len(smtp_server.handler.messages) == 5  # nobody twice
    runs = _runs(project)
    assert [(r["outcome"], r["period"]) for r in runs] == [("skipped", "2026-W47"),
                                                          ("sent", "2026-W47")]
    assert all(r["finished_at"] for r in runs)


def test_a_period_without_posts_is_skipped_and_recorded(
        project: Project, smtp_server: SmtpServer) -> None:
    _subscribe(project, 2)
    with clock.use_clock(clock.frozen(MONDAY_AFTER_W49)):
        result = project.run("schedule", "once", env=smtp_env(smtp_server))
    assert result.exit_code == 0, result.output
    assert smtp_server.handler.messages == []
    assert project.query("SELECT count(*) FROM issues") == [(0,)]
    [run] = _runs(project)
    assert (run["outcome"], run["period"]) == ("skipped", "2026-W49")
    assert "only 0 posts in window" in run["detail"]
    table = project.run("schedule", "status")
    assert "skipped" in table.output and "2026-W49" in table.output


def test_lint_errors_block_an_automatic_send(project: Project, smtp_server: SmtpServer,
                                             on_monday: None) -> None:
    _subscribe(project, 2)
    project.config_path.write_text(project.config_path.read_text().replace(
        'postal_address = "1 Test Road, Testville"', 'postal_address = ""'))
    result = project.run("schedule", "once", env=smtp_env(smtp_server))
    assert result.exit_code == 1
    assert "lint errors block the send" in result.output and "postal_address" in result.output
    assert smtp_server.handler.messages == []
    assert project.query("SELECT count(*) FROM issues") == [(0,)]
    assert _runs(project)[0]["outcome"] == "failed"


def test_draft_mode_freezes_mails_the_editor_and_waits(
        project: Project, smtp_server: SmtpServer, on_monday: None) -> None:
    addresses = _subscribe(project, 3)
    project.write_config('[schedule]\nmode = "draft"\nnotify = ["editor@example.com"]\n')
    result = project.run("schedule", "once", env=smtp_env(smtp_server))
    assert result.exit_code == 0, result.output
    assert "draft 2026-W47" in result.output and "ainews send --issue 2026-W47" in result.output
    assert smtp_server.recipients() == ["editor@example.com"]  # the readers wait
    assert project.query("SELECT period_key, snapshot_at FROM issues") == [("2026-W47", None)]
    waiting = project.run("schedule", "once", env=smtp_env(smtp_server))
    assert "draft of 2026-W47 is waiting" in waiting.output
    sent = project.run("send", "--issue", "2026-W47", "--yes", env=smtp_env(smtp_server))
    assert sent.exit_code == 0, sent.output
    assert sorted(smtp_server.recipients()) == sorted(["editor@example.com", *addresses])


def test_an_unfinished_send_is_resumed_first(project: Project, smtp_server: SmtpServer,
                                             unused_port: int, on_monday: None) -> None:
    addresses = _subscribe(project, 4)
    down = {**smtp_env(smtp_server), "AINEWS_SMTP__PORT": str(unused_port)}
    failed = project.run("schedule", "once", env=down)
    assert failed.exit_code == 1 and "cannot connect" in failed.output
    assert project.query("SELECT count(*) FROM deliveries WHERE state = 'queued'") == [(4,)]
    result = project.run("schedule", "once", env=smtp_env(smtp_server))
    assert result.exit_code == 0, result.output
    assert "resumed 2026-W47: sent 4 of 4" in result.output
    assert sorted(smtp_server.recipients()) == addresses


def test_a_bad_cron_exits_1_naming_the_field(project: Project) -> None:
    project.write_config('[schedule]\ncron = "0 8 * * FUNDAY"\n')
    for command in (["schedule", "once"], ["schedule", "next"], ["schedule", "run"]):
        result = project.run(*command)
        assert result.exit_code == 1, command
        assert "day-of-week field 'FUNDAY'" in result.stderr
        assert "Traceback" not in result.output


def test_next_shows_mondays_at_eight_for_the_shipped_config(project: Project) -> None:
    with clock.use_clock(clock.frozen(datetime(2026, 11, 25, 12, 0, tzinfo=BERLIN))):
        result = project.runner.invoke(
            app.cli, ["--config", str(REPO / "config.toml"), "schedule", "next", "--count", "2",
             "--json"], env={"AINEWS_STORAGE__URL": f"sqlite:///{project.root / 'x.db'}"})
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [
        {"local": "2026-11-30T08:00:00+01:00", "utc": "2026-11-30T07:00:00+00:00"},
        {"local": "2026-12-07T08:00:00+01:00", "utc": "2026-12-07T07:00:00+00:00"}]


def test_the_run_that_loses_the_race_for_a_period_does_nothing(
        project: Project, smtp_server: SmtpServer, on_monday: None) -> None:
    """Two runs planned the same period before either froze it: the database's unique key
    lets the first freeze it, and the second learns it lost instead of sending too."""
    from ainews_newsletter.config import load_config
    from ainews_newsletter.models import Window
    from ainews_newsletter.pipeline.send import PeriodTaken, execute_send, freeze_issue, plan_send

    _subscribe(project, 2)
    config = load_config(project.config_path, environ=smtp_env(smtp_server))
    winner, loser = (plan_send(config, Window()) for _ in range(2))
    assert winner.existing is None and loser.existing is None
    freeze_issue(config, winner, only_if_new=True)
    with pytest.raises(PeriodTaken, match="another run froze the issue for 2026-W47"):
        execute_send(config, loser, only_if_new=True)
    assert project.query("SELECT count(*) FROM deliveries") == [(0,)]  # no snapshot by it
    assert smtp_server.handler.messages == []


def test_deferred_readers_are_retried_by_the_periodic_resume(
        project: Project, smtp_server: SmtpServer) -> None:
    """The scheduler resumes every retry_base_seconds; a greylisted reader goes out when
    due, not a week later, and a resume with nothing due leaves no trace."""
    from datetime import timedelta

    from ainews_newsletter.config import load_config
    from ainews_newsletter.schedule.job import run_once

    addresses = _subscribe(project, 3)
    smtp_server.handler.replies = {addresses[1]: "451 4.7.1 greylisted, try later"}
    with clock.use_clock(clock.frozen(MONDAY_AFTER_W47)):
        result = project.run("schedule", "once", env=smtp_env(smtp_server))
    assert "sent 2 of 3, 1 deferred" in result.output
    config = load_config(project.config_path, environ=smtp_env(smtp_server))
    with clock.use_clock(clock.frozen(MONDAY_AFTER_W47 + timedelta(seconds=60))):
        assert run_once(config, resume_only=True) is None  # not due yet: nothing recorded
    assert len(_runs(project)) == 1
    smtp_server.handler.replies = {}
    with clock.use_clock(clock.frozen(MONDAY_AFTER_W47 + timedelta(minutes=6))):
        resumed = run_once(config, resume_only=True)
    assert resumed is not None and resumed.outcome == "resumed"
    assert "resumed 2026-W47: sent 3 of 3" in resumed.detail
    assert sorted(smtp_server.recipients()) == addresses


def test_a_cut_short_run_is_found_by_run_id_when_the_clock_stepped_back(
        project: Project) -> None:
    """A scheduler restarted after its clock stepped back (NTP, a restored VM) starts
    "before" its previous life's runs: ids, not start times, tell which runs were earlier,
    so a killed run is still found and its period redone."""
    from datetime import timedelta

    from ainews_newsletter.config import load_config
    from ainews_newsletter.database import engine_for
    from ainews_newsletter.schedule.history import RunHistory
    from ainews_newsletter.schedule.job import needs_rerun

    config = load_config(project.config_path, environ={})
    history = RunHistory(engine_for(config.database_url))
    assert history.newest_id() == 0
    later = MONDAY_AFTER_W47 + timedelta(hours=3)
    stopped = history.start("newsletter", later)  # the previous life, by a clock ahead
    history.finish(stopped, later, "stopped", None, "stopped by a signal")
    runs_before = history.newest_id()
    assert runs_before == stopped
    with clock.use_clock(clock.frozen(MONDAY_AFTER_W47)):  # this life: three hours "earlier"
        assert needs_rerun(config, runs_before)
        own = history.start("newsletter", clock.now())  # a run of our own, after it
        history.finish(own, clock.now(), "sent", "2026-W47", "sent 1 of 1")
        assert needs_rerun(config, runs_before)  # our own run does not hide the earlier one
        assert not needs_rerun(config, history.newest_id())  # ours is the last: sent
