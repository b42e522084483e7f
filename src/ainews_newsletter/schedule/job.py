"""What one scheduled run does. The scheduler decides when; this decides nothing about time
except through the clock module, and leaves every guarantee to the database:

1. resume the unfinished sends of earlier issues (a run stopped or killed mid-send);
2. the period's issue: skipped, with the reason recorded, if it exists already or has fewer
   posts than min_posts; blocked by lint errors; then in mode "auto" frozen and sent, in
   mode "draft" frozen and a test copy mailed to [schedule] notify.

Freezing uses the issue's unique key on (list, period): of two runs racing for a period the
one that loses does nothing and records why."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from ainews_newsletter import clock
from ainews_newsletter.config import Config
from ainews_newsletter.database import engine_for
from ainews_newsletter.delivery.reconnect import where
from ainews_newsletter.errors import AinewsError, SelectionError
from ainews_newsletter.models import DeliveryCounts, Window
from ainews_newsletter.pipeline.issue import audience_list, resolve_period
from ainews_newsletter.pipeline.send import (
    PeriodTaken,
    SendPlan,
    delivery_status,
    execute_send,
    freeze_issue,
    lint_send,
    plan_send,
    send_test,
    unfinished_issue_keys,
)
from ainews_newsletter.render.lint import has_errors
from ainews_newsletter.schedule.history import RunHistory
from ainews_newsletter.storage_faults import database_away

log = logging.getLogger("ainews.schedule")
StopRequested = Callable[[], bool]
T = TypeVar("T")


def _away_line(config: Config, exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    reason = (str(original).strip().splitlines() or [type(original).__name__])[0]
    return (f"the database at {where(engine_for(config.database_url).url)} is unreachable "
            f"({reason})")


def unless_database_away(config: Config, job: str, work: Callable[[], T]) -> T | None:
    """`work`'s result; if the database is away (PostgreSQL restarting), one line in the log
    instead of a traceback, and None: the scheduler goes on and the next run tries again."""
    try:
        return work()
    except Exception as exc:
        if not database_away(exc):
            raise
        log.error("%s: %s; the next run tries again", job, _away_line(config, exc))
        return None


@dataclass(frozen=True)
class RunResult:
    outcome: str  # sent | skipped | draft | failed | stopped | resumed
    period_key: str | None
    detail: str


def _counted(counts: DeliveryCounts) -> str:
    parts = [f"sent {counts.sent} of {counts.total}"]
    parts += [f"{value} {name}" for name, value in (("deferred", counts.deferred),
                                                    ("failed", counts.failed)) if value]
    if counts.sending:
        parts.append(f"{counts.sending} still claimed by another sender")
    return ", ".join(parts)


def resume_unfinished(config: Config, should_stop: StopRequested) -> list[str]:
    """Continue every issue whose send started and has rows left; a note for each issue
    where something happened (rows waiting for their retry time are not news)."""
    notes: list[str] = []
    for key in unfinished_issue_keys(config):
        if should_stop():
            break
        before = delivery_status(config, key)
        plan = plan_send(config, Window(), issue_key=key)
        counts = execute_send(config, plan, should_stop=should_stop)
        if (counts.sent, counts.failed) != (before.sent, before.failed):
            notes.append(f"resumed {key}: {_counted(counts)}")
            log.info("resumed %s: %s", key, _counted(counts))
    return notes


def _this_period(config: Config, should_stop: StopRequested) -> RunResult:
    period = resolve_period(config, Window()).key
    try:
        plan = plan_send(config, Window())
    except SelectionError as exc:
        return RunResult("skipped", period, str(exc))
    if plan.existing is not None and plan.existing.snapshot_at is not None:
        return RunResult("skipped", period, f"the issue for {period} has been sent already")
    if plan.existing is not None and config.schedule.mode == "draft":
        return RunResult("skipped", period, f"the draft of {period} is waiting for "
                                            f"`ainews send --issue {period} --yes`")
    errors = [f.message for f in lint_send(config, plan) if has_errors([f])]
    if errors:
        return RunResult("failed", period, "lint errors block the send: " + "; ".join(errors))
    if config.schedule.mode == "draft":
        freeze_issue(config, plan, only_if_new=True)
        copies = [_test_copy(config, plan, address) for address in config.schedule.notify]
        return RunResult("draft", period, f"frozen; test copies {', '.join(copies) or 'none'}; "
                                          f"send it with `ainews send --issue {period} "
                                          "--yes`")
    counts = execute_send(config, plan, should_stop=should_stop,
                          only_if_new=plan.existing is None)
    if should_stop() and counts.queued:
        return RunResult("stopped", period, f"stopped by a signal: {_counted(counts)}; the "
                                            "next start resumes it")
    return RunResult("sent", period, _counted(counts))


def needs_rerun(config: Config, runs_before: int) -> bool:
    """Whether the last run was cut short (stopped by a signal, or killed while running):
    then the scheduler's next start runs the whole job, not only the resume, so the period
    it was doing is not lost although its fire time has passed. `runs_before` is the newest
    run id when this process started: ids, not start times, tell the runs of earlier
    processes from our own, since a wall clock may step back between two lives."""
    last = RunHistory(engine_for(config.database_url)).last_up_to(
        audience_list(config), runs_before)  # not our own
    if last is None:
        return False
    if last.outcome == "running":  # killed, or another scheduler busy with it right now
        # Our own pid on a row of an earlier process is a previous life of the pid: in a
        # container the scheduler is PID 1 every time.
        return last.host == socket.gethostname()[:255] and (
            last.pid == os.getpid() or not _process_alive(last.pid))
    return last.outcome == "stopped"  # full runs only: a stopped resume is "resumed"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def run_once(config: Config, should_stop: StopRequested = lambda: False,
             resume_only: bool = False) -> RunResult | None:
    """One run, recorded in schedule_runs. `resume_only` (at scheduler start, and every few
    minutes for deferred rows) only resumes unfinished sends, and is recorded only when
    something happened; it returns None otherwise."""
    if resume_only:
        return _resume_run(config, should_stop)
    history = RunHistory(engine_for(config.database_url))
    run_id = history.start(audience_list(config), clock.now())
    notes: list[str] = []
    try:
        notes = resume_unfinished(config, should_stop)
        if should_stop():  # the next start runs the whole job again (see `needs_rerun`)
            result = RunResult("stopped", None, "stopped by a signal; the next start goes on")
        else:
            result = _this_period(config, should_stop)
    except PeriodTaken as exc:
        result = RunResult("skipped", resolve_period(config, Window()).key, str(exc))
    except AinewsError as exc:  # server down, sender refused, paused: the rest stays queued
        result = RunResult("failed", None, str(exc))
    except Exception as exc:  # recorded for `schedule status`; the scheduler keeps going
        if database_away(exc):  # it may be back to record this; one line, no traceback
            log.error("run failed: %s", _away_line(config, exc))
        else:
            log.exception("run failed")
        result = RunResult("failed", None, f"{type(exc).__name__}: {exc}")
    return _record_finish(history, run_id, result, notes)


def _resume_run(config: Config, should_stop: StopRequested) -> RunResult | None:
    if should_stop() or not unfinished_issue_keys(config):
        return None
    history = RunHistory(engine_for(config.database_url))
    started = clock.now()
    try:
        notes = resume_unfinished(config, should_stop)
        result = RunResult("resumed", None, "stopped by a signal" if should_stop() else "")
    except AinewsError as exc:
        notes, result = [], RunResult("failed", None, f"resuming: {exc}")
    except Exception as exc:
        log.exception("resume failed")
        notes, result = [], RunResult("failed", None, f"resuming: {type(exc).__name__}: {exc}")
    if not notes and result.outcome == "resumed":
        return None
    return _record_finish(history, history.start(audience_list(config), started), result,
                          notes)


def _record_finish(history: RunHistory, run_id: int, result: RunResult,
                   notes: list[str]) -> RunResult:
    detail = "; ".join([*notes, result.detail] if result.detail else notes)
    history.finish(run_id, clock.now(), result.outcome, result.period_key, detail)
    log.info("run %s: %s%s — %s", run_id, result.outcome,
             f" {result.period_key}" if result.period_key else "", detail)
    return RunResult(result.outcome, result.period_key, detail)


def _test_copy(config: Config, plan: SendPlan, address: str) -> str:
    """One editor's copy of a draft; a failure is said in the run's detail, and the other
    editors still get theirs (the issue is frozen already)."""
    try:
        return f"{address}: {send_test(config, plan.rendered, address).state}"
    except AinewsError as exc:
        return f"{address}: not sent ({exc})"


def fetch_bounces(config: Config) -> bool:
    """The scheduler's bounce-mailbox read, every [bounces] fetch_minutes. A mailbox that
    cannot be reached is logged and tried again next time: it must not stop the sends.
    True when the fetch went through."""
    from ainews_newsletter.pipeline.feedback import fetch

    try:
        fetched = fetch(config)
    except AinewsError as exc:
        log.error("bounces: %s", exc)
        return False
    summary = fetched.ingest
    log.info("bounces: %s: %d messages, %d new events (%s), %d bounced, %d complained",
             fetched.mailbox, summary.messages, summary.new_events,
             ", ".join(f"{kind} {count}" for kind, count in sorted(summary.kinds.items()))
             or "none", summary.changed.get("bounced", 0),
             summary.changed.get("complained", 0))
    for problem in summary.problems:
        log.warning("bounces: %s: %s", problem.source, problem.reason)
    return True


def expire_sign_ups(config: Config) -> int:
    """The scheduler's daily removal of sign-ups never confirmed ([subscribers]
    unconfirmed_days), logged; how many went. A database that cannot be reached is logged
    and tried again the next day: it must not stop the sends."""
    from ainews_newsletter.pipeline.hygiene import expire_unconfirmed

    try:
        removed = expire_unconfirmed(config)
    except AinewsError as exc:
        log.error("unconfirmed sign-ups: %s", exc)
        return 0
    log.info("unconfirmed sign-ups: removed %d pending for more than %d days", len(removed),
             config.subscribers.unconfirmed_days)
    return len(removed)


def apply_retention_daily(config: Config) -> None:
    """The scheduler's daily retention ([privacy]: pipeline/retention.py), logged. Without
    AINEWS_SECRET_KEY the ledger's addresses are left and a warning says so; a database or
    mailbox that cannot be reached is logged and tried again the next day."""
    from ainews_newsletter.pipeline.retention import apply_retention

    try:
        report = apply_retention(config)
    except AinewsError as exc:
        log.error("retention: %s", exc)
        return
    for warning in report.warnings:
        log.warning("retention: %s", warning)
    for error in report.errors:
        log.error("retention: %s", error)
    log.info("retention: %s", ", ".join(f"{key} {value}" for key, value in report.as_dict().items()
                                        if key not in ("warnings", "errors")))


def send_welcomes(config: Config, should_stop: StopRequested) -> None:
    """The scheduler's welcome round, every few minutes: the welcomes a crash left queued
    (and, with [subscribers] welcome on, those of web readers who have none), and the 4xx
    retries now due. Logged by the pipeline; a failure waits for the next round."""
    from ainews_newsletter.pipeline.welcome import send_waiting_welcomes

    send_waiting_welcomes(config, should_stop)
