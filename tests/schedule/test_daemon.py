"""`ainews schedule run` as real processes on a real database: a fire missed while down runs
once on start, two schedulers send the period once, SIGTERM mid-send loses nobody."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from ainews_newsletter import clock
from ainews_newsletter.config import load_config
from ainews_newsletter.database import dispose_all
from ainews_newsletter.schedule.daemon import (
    JOB_ID,
    install_job,
    make_scheduler,
    stop_scheduler,
)
from tests.conftest import Project, SmtpServer, post_text, smtp_env, write_post

# Run again under libfaketime at awkward dates by scripts/test-clocks.
pytestmark = pytest.mark.clock

BERLIN = ZoneInfo("Europe/Berlin")  # the project fixture's newsletter timezone


def _subscribe(project: Project, count: int) -> list[str]:
    return project.import_readers(count)


def _posts_for_the_real_clock(project: Project) -> None:
    """The scheduler runs on the real clock with `window = "week"`: the last complete week
    of whatever day the suite runs. A post on Thursday of this week and of the two before,
    so that week has posts even if a Monday passes during the test, or a process's clock
    is behind this one's (under libfaketime each process starts at the same fake time)."""
    now = clock.now().astimezone(BERLIN)
    for weeks_back in range(3):
        day = now - timedelta(weeks=weeks_back)
        thursday = (day - timedelta(days=day.weekday() - 3)).replace(hour=12, minute=0,
                                                                    second=0, microsecond=0)
        week = thursday.strftime("%G-W%V")
        write_post(project.posts, f"{week}-thursday.md",
                   post_text(f"Thursday Story of {week}", thursday.isoformat()))


def _missed_while_down(project: Project, hours: int = 5) -> None:
    """What a scheduler that was off for `hours` leaves in the database: the job, due since
    then. The cron fires hourly, at this minute, in the `hours` hours before now and never
    in the next 24 - `hours`: about `hours` fire times were missed, and the next real one
    cannot fall inside the test (nor for a process whose clock is somewhat behind)."""
    _posts_for_the_real_clock(project)
    now = clock.now().astimezone(BERLIN)
    missed_hours = ",".join(str((now.hour - back) % 24) for back in range(1, hours + 1))
    project.write_config(f'[schedule]\ncron = "{now.minute} {missed_hours} * * *"\n')
    environ = {"AINEWS_STORAGE__URL": project.storage_url} if project.storage_url else {}
    config = load_config(project.config_path, environ=environ)
    scheduler = make_scheduler(config)
    scheduler.start(paused=True)
    install_job(scheduler, config)
    scheduler.modify_job(JOB_ID, next_run_time=clock.now() - timedelta(hours=hours))
    stop_scheduler(scheduler)
    dispose_all()


def _scheduler(project: Project, server: SmtpServer) -> subprocess.Popen[str]:
    env = {**os.environ, **smtp_env(server), "AINEWS_LINT__SPAMASSASSIN": "false"}
    if project.storage_url is not None:
        env["AINEWS_STORAGE__URL"] = project.storage_url
    return subprocess.Popen([sys.executable, "-m", "ainews_newsletter", "--config",
                             str(project.config_path), "schedule", "run"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_until(condition: Callable[[], bool], *processes: subprocess.Popen[str],
                timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            for process in processes:
                process.kill()
            logs = "\n---\n".join(process.communicate()[1] for process in processes)
            raise AssertionError(f"timed out; the schedulers said:\n{logs}")
        time.sleep(0.1)


def _finished_runs(project: Project) -> list[tuple[str, str]]:
    return [(outcome, detail) for outcome, detail in project.query(
        "SELECT outcome, detail FROM schedule_runs WHERE finished_at IS NOT NULL "
        "ORDER BY id")]


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    return stderr


def test_a_fire_missed_while_down_runs_once_on_start(project: Project,
                                                     smtp_server: SmtpServer) -> None:
    addresses = _subscribe(project, 5)
    _missed_while_down(project, hours=5)
    process = _scheduler(project, smtp_server)
    _wait_until(lambda: bool(_finished_runs(project)), process)
    time.sleep(1.5)  # room for a second (wrong) run to show up
    stderr = _stop(process)
    runs = _finished_runs(project)
    assert [outcome for outcome, _ in runs] == ["sent"], runs  # five missed fires, one run
    assert sorted(smtp_server.recipients()) == addresses
    assert "scheduler started" in stderr and "scheduler stopped" in stderr
    assert "Traceback" not in stderr


def test_two_schedulers_send_the_period_once(any_project: Project,
                                             smtp_server: SmtpServer) -> None:
    """Both processes find the job due; the issue's unique key lets one freeze the period,
    the other records that it lost the race (or that it was sent already); claims keep a
    shared send to one message per reader."""
    addresses = _subscribe(any_project, 30)
    _missed_while_down(any_project)
    smtp_server.handler.data_delay = 0.02
    processes = [_scheduler(any_project, smtp_server) for _ in range(2)]
    _wait_until(lambda: any_project.query(
        "SELECT count(*) FROM deliveries WHERE state = 'sent'") == [(30,)]
        and len(_finished_runs(any_project)) >= 1, *processes)
    time.sleep(2)  # let the other process's run (if it fired) finish and record itself
    for process in processes:
        _stop(process)
    assert any_project.query("SELECT count(*) FROM issues") == [(1,)]
    received = Counter(smtp_server.recipients())
    assert sorted(received) == addresses and set(received.values()) == {1}
    # One run sent the period. The other process, if its timing let it see the job, either
    # lost the race (skipped) or helped finish the send it found under way (resumed).
    outcomes = Counter(outcome for outcome, _ in _finished_runs(any_project))
    assert outcomes["sent"] == 1 and set(outcomes) <= {"sent", "skipped", "resumed"}, outcomes


def test_sigterm_mid_send_then_restart_completes_with_nobody_lost(
        project: Project, smtp_server: SmtpServer) -> None:
    addresses = _subscribe(project, 40)
    _missed_while_down(project)
    smtp_server.handler.data_delay = 0.05
    process = _scheduler(project, smtp_server)
    _wait_until(lambda: len(smtp_server.handler.messages) >= 5, process)
    _stop(process)
    stopped_at = len(smtp_server.handler.messages)
    assert stopped_at < 40
    assert [outcome for outcome, _ in _finished_runs(project)] == ["stopped"]
    assert project.query("SELECT count(*) FROM deliveries WHERE state = 'sending'") == [(0,)]
    restarted = _scheduler(project, smtp_server)
    _wait_until(lambda: len(smtp_server.handler.messages) >= 40, restarted)
    _wait_until(lambda: len(_finished_runs(project)) == 2, restarted)
    _stop(restarted)
    received = Counter(smtp_server.recipients())
    assert sorted(received) == addresses and set(received.values()) == {1}  # no duplicates
    # The restart saw the last run cut short and ran the whole job: it resumed the send,
    # then found the period's issue sent.
    [(period,)] = project.query("SELECT period_key FROM issues")
    outcome, detail = _finished_runs(project)[1]
    assert outcome == "skipped" and f"resumed {period}: sent 40 of 40" in detail
