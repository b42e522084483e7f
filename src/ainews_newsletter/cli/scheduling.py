"""`ainews schedule`: run the weekly send by itself, see when it fires and what it did."""

from __future__ import annotations

from datetime import UTC

import click
from rich.table import Table

from ainews_newsletter import clock
from ainews_newsletter.cli.common import AppState, console, json_option, pass_state, print_json
from ainews_newsletter.cli.sending import graceful_stop


@click.group()
def schedule() -> None:
    """Send each period's issue by itself, once per period (`[schedule]` in the config)."""


@schedule.command()
@pass_state
def run(state: AppState) -> None:
    """Run the scheduler in the foreground (for systemd, Docker or a terminal).

    Logs to stderr. A run missed while the machine was off happens once on start (within
    misfire_grace_hours); an unfinished send is resumed at once. SIGTERM or Ctrl-C finish
    the message in flight and exit 0."""
    from ainews_newsletter.schedule.daemon import run_forever

    raise SystemExit(run_forever(state.config))


@schedule.command(name="next")
@click.option("--count", default=5, show_default=True, type=click.IntRange(1, 100),
              help="How many fire times to show.")
@json_option
@pass_state
def next_(state: AppState, count: int, as_json: bool) -> None:
    """The next times the scheduled run fires, in the newsletter's timezone and in UTC."""
    from ainews_newsletter.schedule.cron import build_trigger, next_fire_times

    config = state.config
    trigger = build_trigger(config.schedule.cron, config.newsletter.tz)
    times = next_fire_times(trigger, clock.now(), count)
    if as_json:
        print_json([{"local": t.isoformat(), "utc": t.astimezone(UTC).isoformat()}
                    for t in times])
        return
    table = Table(title=f"{config.schedule.cron} ({config.newsletter.timezone}), "
                        f"mode {config.schedule.mode}")
    table.add_column(config.newsletter.timezone)
    table.add_column("UTC")
    for moment in times:
        table.add_row(moment.strftime("%a %Y-%m-%d %H:%M %Z"),
                      moment.astimezone(UTC).strftime("%a %Y-%m-%d %H:%M"))
    console.print(table)


@schedule.command()
@click.option("--limit", default=10, show_default=True, type=click.IntRange(1, 1000),
              help="How many runs to show, newest first.")
@json_option
@pass_state
def status(state: AppState, limit: int, as_json: bool) -> None:
    """The latest scheduled runs and what each did: sent, skipped and why, failed and why."""
    from ainews_newsletter.database import engine_for
    from ainews_newsletter.pipeline.issue import audience_list
    from ainews_newsletter.schedule.history import RunHistory

    config = state.config
    runs = RunHistory(engine_for(config.database_url)).recent(
        audience_list(config), limit)
    if as_json:
        print_json([{"id": r.id, "started_at": r.started_at.isoformat(),
                     "finished_at": r.finished_at.isoformat() if r.finished_at else None,
                     "period": r.period_key, "outcome": r.outcome, "detail": r.detail,
                     "host": r.host, "pid": r.pid} for r in runs])
        return
    if not runs:
        console.print("No scheduled runs yet (`ainews schedule run`, or `ainews schedule "
                      "once` to run one now).")
        return
    table = Table(title="scheduled runs")
    for column in ("started (UTC)", "period", "outcome", "detail"):
        table.add_column(column)
    for r in runs:
        outcome = r.outcome if r.finished_at or r.outcome != "running" else "running"
        table.add_row(r.started_at.strftime("%Y-%m-%d %H:%M"), r.period_key or "-", outcome,
                      r.detail)
    console.print(table)


@schedule.command()
@pass_state
def once(state: AppState) -> None:
    """Run the scheduled job for the current period now, with the same guarantees (one
    issue per period; an unfinished send resumed first). Exit 1 if it failed."""
    from ainews_newsletter.schedule.cron import build_trigger
    from ainews_newsletter.schedule.job import run_once

    config = state.config
    build_trigger(config.schedule.cron, config.newsletter.tz)  # the same checks as `run`
    with graceful_stop() as stop:
        result = run_once(config, stop.is_set)
    assert result is not None
    console.print(f"{result.outcome}" + (f" {result.period_key}" if result.period_key else "")
                  + f": {result.detail}", soft_wrap=True)
    if result.outcome == "failed":
        raise SystemExit(1)
    if result.outcome == "stopped":
        raise SystemExit(130)
