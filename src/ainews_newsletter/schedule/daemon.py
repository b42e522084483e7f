"""`ainews schedule run`: APScheduler with its job persisted in the project's database.

The job's next fire time lives in the database (SQLAlchemyJobStore), so a run that fell due
while the machine was off is still due when the scheduler starts again: with coalesce=True
it runs once however many fire times were missed, if no more than misfire_grace_hours late.
The job is replaced only when the cron, timezone or grace changed, so a restart keeps a
missed fire instead of silently recomputing it away."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from dataclasses import dataclass
from types import FrameType
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from ainews_newsletter import clock
from ainews_newsletter.config import Config
from ainews_newsletter.database import engine_for, ensure_schema
from ainews_newsletter.schedule.cron import build_trigger
from ainews_newsletter.schedule.history import RunHistory
from ainews_newsletter.schedule.job import (
    apply_retention_daily,
    expire_sign_ups,
    fetch_bounces,
    needs_rerun,
    run_once,
    send_welcomes,
    unless_database_away,
)

JOB_ID = "ainews-issue"
WELCOME_SECONDS = 180
WELCOME_EXECUTOR = "welcomes"
log = logging.getLogger("ainews.schedule")


@dataclass
class _RunningScheduler:
    config: Config
    stop: threading.Event
    runs_before: int  # the newest schedule_runs id when this process started


# The job stored in the database is a reference to `fire`, not a closure (it must survive a
# restart); `fire` finds the running process's config here.
_runtime: _RunningScheduler | None = None


def fire() -> None:
    if _runtime is None:  # a stale job picked up outside `schedule run`: nothing to use
        log.error("scheduled run fired outside `ainews schedule run`; ignored")
        return
    config, stop = _runtime.config, _runtime.stop.is_set
    unless_database_away(config, "scheduled run", lambda: run_once(config, stop))


def resume_at_start() -> None:
    """At start: resume unfinished sends; and if the last run was cut short, run the whole
    job again so its period is done (its fire time has passed and will not come back)."""
    if _runtime is not None and not _runtime.stop.is_set():
        config, stop, before = _runtime.config, _runtime.stop.is_set, _runtime.runs_before
        unless_database_away(config, "resume at start", lambda: run_once(
            config, stop, resume_only=not needs_rerun(config, before)))


def retry_deferred() -> None:
    if _runtime is not None and not _runtime.stop.is_set():
        config, stop = _runtime.config, _runtime.stop.is_set
        unless_database_away(config, "resume", lambda: run_once(config, stop,
                                                                resume_only=True))


def read_bounces() -> None:
    if _runtime is not None and not _runtime.stop.is_set():
        config = _runtime.config
        unless_database_away(config, "bounces", lambda: fetch_bounces(config))


def expire_unconfirmed() -> None:
    if _runtime is not None and not _runtime.stop.is_set():
        config = _runtime.config
        unless_database_away(config, "unconfirmed sign-ups", lambda: expire_sign_ups(config))


def keep_no_longer() -> None:
    if _runtime is not None and not _runtime.stop.is_set():
        config = _runtime.config
        unless_database_away(config, "retention", lambda: apply_retention_daily(config))


def welcome_readers() -> None:
    if _runtime is not None and not _runtime.stop.is_set():
        config, stop = _runtime.config, _runtime.stop.is_set
        unless_database_away(config, "welcomes", lambda: send_welcomes(config, stop))


def job_name(config: Config) -> str:
    s = config.schedule
    return f"ainews issue: {s.cron} ({config.newsletter.timezone}, grace {s.misfire_grace_hours}h)"


def make_scheduler(config: Config) -> BackgroundScheduler:
    engine = engine_for(config.database_url)
    ensure_schema(engine)
    # Two workers: a long resume (a big rate-limited send) must not hold back the weekly
    # fire, or APScheduler would find it past its grace time when it finally starts and
    # skip it. Both may send the same issue at once; row claims keep that to once a row.
    return BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=engine),
                   "memory": MemoryJobStore()},
        executors={"default": ThreadPoolExecutor(max_workers=2),
                   # Its own worker: a long round of welcomes never holds back a send.
                   WELCOME_EXECUTOR: ThreadPoolExecutor(max_workers=1)},
        timezone=config.newsletter.tz)


def install_job(scheduler: BackgroundScheduler, config: Config) -> Any:
    """The persisted job for [schedule], kept as stored when unchanged (so a fire missed
    while down is still pending), replaced when the schedule changed."""
    trigger = build_trigger(config.schedule.cron, config.newsletter.tz)
    name = job_name(config)
    existing = scheduler.get_job(JOB_ID, jobstore="default")
    if existing is not None and existing.name == name:
        return existing
    return scheduler.add_job(
        fire, trigger, id=JOB_ID, name=name, jobstore="default", replace_existing=True,
        coalesce=True, max_instances=1,
        misfire_grace_time=int(config.schedule.misfire_grace_hours * 3600))


def stop_scheduler(scheduler: BackgroundScheduler) -> None:
    """Stop without losing a due fire. APScheduler's shutdown wakes its loop once more, and a
    job due at that moment would be marked done although its submission fails; with the
    database job store detached first, the job stays due for the next start."""
    if not scheduler.running:
        return
    scheduler.pause()
    scheduler.remove_jobstore("default")  # the job stays in the database, untouched
    scheduler.shutdown(wait=True)  # waits for a run in progress to stop


def run_forever(config: Config) -> int:
    """The foreground daemon: logs to stderr, stops cleanly on SIGTERM/SIGINT (the message
    in flight is finished and recorded). Returns the exit code."""
    global _runtime
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    build_trigger(config.schedule.cron, config.newsletter.tz)  # a bad cron fails here, early
    stop = threading.Event()
    runs_before = RunHistory(engine_for(config.database_url)).newest_id()
    _runtime = _RunningScheduler(config, stop, runs_before)

    def request_stop(signum: int, frame: FrameType | None) -> None:
        log.info("%s: finishing the message in flight, then stopping",
                 signal.Signals(signum).name)
        stop.set()

    previous = {number: signal.signal(number, request_stop)
                for number in (signal.SIGINT, signal.SIGTERM)}
    scheduler = make_scheduler(config)
    try:
        scheduler.start(paused=True)
        job = install_job(scheduler, config)
        scheduler.add_job(resume_at_start, jobstore="memory", id="resume-at-start",
                          next_run_time=clock.now(), misfire_grace_time=None)
        # Deferred readers (greylisting, a relay's 4xx) are retried when due, not a week
        # later at the next fire: a resume every retry_base_seconds.
        scheduler.add_job(retry_deferred, "interval", jobstore="memory", id="retry-deferred",
                          seconds=config.delivery.retry_base_seconds, coalesce=True,
                          max_instances=1, misfire_grace_time=None)
        # Welcomes a crash left queued, or a 4xx deferred: from the start, then every few
        # minutes (readers who join are welcomed by `serve` at once; this is the net).
        scheduler.add_job(welcome_readers, "interval", jobstore="memory", id="welcomes",
                          executor=WELCOME_EXECUTOR, seconds=WELCOME_SECONDS, coalesce=True,
                          max_instances=1, misfire_grace_time=None,
                          next_run_time=clock.now())
        if config.bounces.imap_configured:  # bounces and complaints stop mail between issues
            scheduler.add_job(read_bounces, "interval", jobstore="memory", id="read-bounces",
                              minutes=config.bounces.fetch_minutes, coalesce=True,
                              max_instances=1, misfire_grace_time=None,
                              next_run_time=clock.now())
        # Sign-ups never confirmed go after [subscribers] unconfirmed_days: checked at start
        # and daily (a day late at most, on a limit counted in days).
        scheduler.add_job(expire_unconfirmed, "interval", jobstore="memory",
                          id="expire-unconfirmed", hours=24, coalesce=True, max_instances=1,
                          misfire_grace_time=None, next_run_time=clock.now())
        # [privacy] retention (feedback text, old IMAP mail, addresses in the ledger): the
        # limits are counted in days, so at start and daily, like the expiry above.
        scheduler.add_job(keep_no_longer, "interval", jobstore="memory", id="retention",
                          hours=24, coalesce=True, max_instances=1, misfire_grace_time=None,
                          next_run_time=clock.now())
        log.info("scheduler started: %s; next run %s", job.name,
                 job.next_run_time.isoformat() if job.next_run_time else "never")
        scheduler.resume()
        while not stop.wait(1.0):
            pass
    finally:
        stop_scheduler(scheduler)
        for number, handler in previous.items():
            signal.signal(number, handler)
        _runtime = None
    log.info("scheduler stopped")
    return 0
