"""`ainews build` and `ainews status`: an issue rendered to files, and what became of one
that was sent."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ainews_newsletter.cli.common import (
    AppState,
    console,
    json_option,
    pass_state,
    print_findings,
    print_json,
    window_options,
)
from ainews_newsletter.models import DeliveryState, Window, counted

if TYPE_CHECKING:
    from ainews_newsletter.delivery.welcome_ledger import WelcomeCounts


@click.command()
@window_options
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("build"), show_default=True, help="Folder for the output files.")
@click.option("--force", is_flag=True, help="Build even with fewer posts than min_posts.")
@pass_state
def build(state: AppState, window: Window, out_dir: Path, force: bool) -> None:
    """Render the issue to OUT/issue.html, issue.txt and issue.eml (the full message as the
    first subscriber would receive it). Sends nothing."""
    from ainews_newsletter.pipeline.issue import lint, render_selection, select_posts, write_build
    from ainews_newsletter.render.localized import period_label

    started = time.perf_counter()
    timings: dict[str, float] = {}
    rendered = render_selection(state.config, select_posts(state.config, window), force,
                                timings)
    files = write_build(state.config, rendered, out_dir)
    elapsed = time.perf_counter() - started
    stages = ", ".join(f"{stage} {seconds * 1000:.0f} ms" for stage, seconds in timings.items())
    console.print(f"{rendered.period.key} ({period_label(rendered.period)}): "
                  f"{counted(rendered.post_count, 'post')}, built in {elapsed:.2f}s ({stages})")
    for path in files.values():
        console.print(f"  {path}  {path.stat().st_size:,} bytes", soft_wrap=True)
    print_findings(lint(state.config, rendered))


@click.command()
@click.argument("issue", required=False, metavar="[ISSUE]")
@click.option("--state", "in_state", type=click.Choice([s.value for s in DeliveryState]),
              help="List the recipients in this state with the server's last answer and "
                   "the bounce kind where one came back.")
@click.option("--limit", type=click.IntRange(min=1), default=1000, show_default=True,
              help="With --state: list at most this many.")
@json_option
@pass_state
def status(state: AppState, issue: str | None, in_state: str | None, limit: int,
           as_json: bool) -> None:
    """Delivery counts by state for ISSUE (e.g. 2026-W47) [default: the latest issue]; with
    --state, who is in that state and why.

    Welcome mails, when there are any, are counted apart: queued, sent, failed, and the
    last failure."""
    from rich.table import Table

    from ainews_newsletter.errors import AinewsError
    from ainews_newsletter.pipeline.editions import language_line
    from ainews_newsletter.pipeline.feedback import issue_feedback
    from ainews_newsletter.pipeline.reports import relay_counts
    from ainews_newsletter.pipeline.send import delivery_status, issue_languages

    if in_state is not None:
        _list_state(state, issue, DeliveryState(in_state), limit, as_json)
        return
    welcomes = _welcomes(state)
    try:
        counts = delivery_status(state.config, issue)
    except AinewsError:  # no issue yet: still exit 1, after the welcomes' news
        if issue is None and welcomes is not None:
            if as_json:
                print_json({"issue": None, "welcomes": welcomes.as_dict()})
            else:
                _print_welcomes(welcomes)
        raise
    feedback = issue_feedback(state.config, counts.issue)
    languages = issue_languages(state.config, counts.issue)
    relays = relay_counts(state.config, counts.issue)
    if as_json:
        extra = {} if welcomes is None else {"welcomes": welcomes.as_dict()}
        print_json({**counts.as_dict(), "languages": languages, "feedback": feedback,
                    "relays": relays, **extra})
        return
    table = Table(title=f"issue {counts.issue}")
    table.add_column("state")
    table.add_column("recipients", justify="right")
    for delivery_state in DeliveryState:
        table.add_row(delivery_state.value, str(getattr(counts, delivery_state.value)))
    table.add_row("total", str(counts.total))
    console.print(table)
    console.print(f"languages: {language_line(languages) or 'none'} (readers each)",
                  soft_wrap=True)
    for name, by_state in relays.items():  # only sends through [[smtp.relays]] name them
        console.print(f"relay {name}: sent {by_state['sent']}, deferred "
                      f"{by_state['deferred']}, failed {by_state['failed']}",
                      soft_wrap=True, markup=False)
    console.print(f"came back: bounced {feedback['bounced']} (hard {feedback['hard']}, soft "
                  f"{feedback['soft']}), complained {feedback['complained']}, auto-replies "
                  f"{feedback['autoreply']}", soft_wrap=True)
    if welcomes is not None:
        _print_welcomes(welcomes)


def _welcomes(state: AppState) -> WelcomeCounts | None:
    """The welcome ledger's counts, when [subscribers] welcome is on or it holds any."""
    from ainews_newsletter.pipeline.welcome import welcome_counts

    counts = welcome_counts(state.config)
    return counts if counts.total or state.config.subscribers.welcome else None


def _print_welcomes(counts: WelcomeCounts) -> None:
    retrying = f" ({counts.retrying} to retry)" if counts.retrying else ""
    console.print(f"welcomes: queued {counts.queued}{retrying}, sending {counts.sending}, "
                  f"sent {counts.sent}, failed {counts.failed}"
                  + (f", skipped {counts.skipped} (left first)" if counts.skipped else ""),
                  soft_wrap=True)
    failure = counts.last_failure
    if failure is not None:
        console.print(f"last failed welcome: {failure.email} at {failure.at:%Y-%m-%d %H:%M} "
                      f"UTC: {failure.code or ''} {failure.reply or ''}".rstrip(),
                      soft_wrap=True, markup=False)


def _list_state(state: AppState, issue: str | None, in_state: DeliveryState, limit: int,
                as_json: bool) -> None:
    from rich.table import Table

    from ainews_newsletter.pipeline.reports import recipients_in

    key, rows = recipients_in(state.config, issue, in_state, limit)
    if as_json:
        print_json([{"email": row.email, "state": row.state, "attempts": row.attempts,
                     "code": row.last_code, "reply": row.last_reply, "bounce": kind,
                     "updated_at": row.updated_at.isoformat()} for row, kind in rows])
        return
    table = Table(title=f"{key}: {counted(len(rows), 'recipient')} {in_state.value}")
    for column in ("email", "attempts", "code", "reply", "bounce"):
        table.add_column(column, overflow="fold")
    for row, kind in rows:
        table.add_row(row.email, str(row.attempts), str(row.last_code or ""),
                      row.last_reply or "", kind or "")
    console.print(table)
