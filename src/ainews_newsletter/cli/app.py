"""`ainews` and its issue commands: demo, build, posts, send, status."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click
from rich.table import Table

from ainews_newsletter import __version__
from ainews_newsletter.cli.bounces import bounces
from ainews_newsletter.cli.common import (
    AppState,
    ErrorHandlingGroup,
    console,
    json_option,
    pass_state,
    print_findings,
    print_json,
    progress_bar,
    window_options,
)
from ainews_newsletter.cli.dkim import dkim
from ainews_newsletter.cli.doctor import doctor
from ainews_newsletter.cli.posts import posts
from ainews_newsletter.cli.reports import report
from ainews_newsletter.cli.scheduling import schedule
from ainews_newsletter.cli.sending import send
from ainews_newsletter.cli.subscribers import subscribers
from ainews_newsletter.cli.web import preview, serve
from ainews_newsletter.config import CONFIG_ENV_VAR
from ainews_newsletter.database import engine_for, upgrade_schema
from ainews_newsletter.errors import AinewsError
from ainews_newsletter.models import DeliveryState, Window, counted

# The pipeline (posts, rendering, delivery) is imported inside the commands that need it:
# `ainews subscribers count` should not pay for loading the renderer.


@click.group(cls=ErrorHandlingGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(path_type=Path), envvar="AINEWS_CONFIG",
              help="Config file [default: $AINEWS_CONFIG, else ./config.toml, else built-in "
                   "defaults].")
@click.version_option(__version__, prog_name="ainews")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None) -> None:
    """Select a week of AI-news posts, render the digest, and send it to your subscribers.

    Start with `ainews demo` to see the whole job on sample data."""
    ctx.obj = AppState(config_path)


def _ask(value: str | None, option: str, question: str, default: str | None,
         missing: list[str]) -> str:
    """The option's value; on a terminal, asked for when missing; never asked without one
    (cron, CI, a script): then it is listed as missing, or takes its default."""
    if value:
        return value
    if sys.stdin.isatty():
        return str(click.prompt(question, default=default, err=True))
    if default is None:
        missing.append(option)
    return default or ""


@cli.command()
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--name", help="The newsletter's name [default: from the folder's name].")
@click.option("--from", "from_address", metavar="ADDRESS",
              help="The sender readers see, e.g. digest@your.domain.")
@click.option("--base-url", metavar="URL",
              help="Your public site (unsubscribe links point there), e.g. "
                   "https://news.your.domain.")
@click.option("--postal-address", metavar="TEXT",
              help="The postal address every issue shows (required by law in most places).")
@click.option("--timezone", metavar="ZONE",
              help="IANA name for weeks and dates, e.g. Europe/Berlin [default: UTC].")
@click.option("--allow-test-domains", is_flag=True,
              help="For staging against a local mail server: accept addresses under .test "
                   "(From included).")
def init(folder: Path, name: str | None, from_address: str | None, base_url: str | None,
         postal_address: str | None, timezone: str | None, allow_test_domains: bool) -> None:
    """Start a newsletter of your own in FOLDER: a commented config.toml with your answers,
    posts/ with one example post dated today, and templates/ (email and web pages) to edit.
    On a terminal it asks for what the options leave out; without one it never asks."""
    from ainews_newsletter.init import NewNewsletter, create

    missing: list[str] = []
    folder_name = folder.resolve().name.replace("-", " ").replace("_", " ").strip()
    answers = NewNewsletter(
        name=_ask(name, "--name", "Newsletter name", folder_name.title() or "My Newsletter",
                  missing),
        from_address=_ask(from_address, "--from", "Sender address (From)", None, missing),
        base_url=_ask(base_url, "--base-url", "Public site (https://…)", None, missing),
        postal_address=_ask(postal_address, "--postal-address", "Postal address", None,
                            missing),
        timezone=_ask(timezone, "--timezone", "Timezone", "UTC", missing),
        allow_test_domains=allow_test_domains)
    if missing:
        raise AinewsError(f"init: no terminal to ask, so give {', '.join(missing)}")
    week = create(folder, answers).strftime("%G-W%V")  # the example post's week
    console.print(f"Made {folder}/: config.toml, posts/welcome.md, templates/ (email and web)")
    console.print(f"Next, in {folder}:")
    for command, why in (
            (f"ainews posts list --week {week}", "what this week's issue carries"),
            (f"ainews build --week {week} --out build", "issue.html, issue.txt, issue.eml"),
            (f"ainews preview --week {week}", "the issue in your browser, live as you edit")):
        console.print(f"  {command}   # {why}")
    if os.environ.get(CONFIG_ENV_VAR):
        console.print(f"note: {CONFIG_ENV_VAR} is set ({os.environ[CONFIG_ENV_VAR]}): it wins "
                      f"over {folder}/config.toml; unset it, or add --config "
                      f"{folder}/config.toml")


@cli.command()
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path),
              default=Path("demo"), show_default=True, help="Working folder for the demo.")
def demo(folder: Path) -> None:
    """Run the whole job end to end on sample data: posts, subscribers, and a local SMTP
    server that captures every message. Nothing leaves this machine."""
    from ainews_newsletter.demo import run_demo

    started = time.perf_counter()
    with progress_bar(25) as progress:
        task = progress.add_task("send", total=None)
        result = run_demo(folder, on_result=lambda state: progress.advance(task))
    counts = result.counts
    console.print(f"ainews demo — the whole job on sample data "
                  f"({time.perf_counter() - started:.1f}s)")
    rows = [
        ("week", result.week), ("posts", str(result.posts)), ("subject", result.subject),
        ("recipients", str(result.recipients)), ("sent", str(counts.sent)),
        ("failed", str(counts.failed)), ("deferred", str(counts.deferred)),
        ("captured", f"{counted(result.captured, 'message')} by the SMTP capture server on "
                     f"127.0.0.1:{result.smtp_port}"),
    ]
    for label, value in rows:
        console.print(f"  {label:<11} {value}", soft_wrap=True)
    console.print("Look at:")
    console.print(f"  {result.issue_html}  the issue in a browser ({result.html_bytes:,} bytes)",
                  soft_wrap=True)
    console.print(f"  {result.outbox}/*.eml  the messages as subscribers receive them",
                  soft_wrap=True)
    console.print(f"  {result.folder}/config.toml  the configuration; try "
                  f"`ainews --config {result.folder}/config.toml build`", soft_wrap=True)
    console.print("Try next:")
    console.print(f"  ainews --config {result.folder}/config.toml preview --week {result.week}"
                  "   the issue in your browser, live-reloading as you edit posts",
                  soft_wrap=True)


@cli.command()
@window_options
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("build"), show_default=True, help="Folder for the output files.")
@click.option("--force", is_flag=True, help="Build even with fewer posts than min_posts.")
@pass_state
def build(state: AppState, window: Window, out_dir: Path, force: bool) -> None:
    """Render the issue to OUT/issue.html, issue.txt and issue.eml (the full message as the
    first subscriber would receive it). Sends nothing."""
    from ainews_newsletter import pipeline
    from ainews_newsletter.render.digest import period_label

    started = time.perf_counter()
    timings: dict[str, float] = {}
    rendered = pipeline.render_selection(state.config,
                                         pipeline.select_posts(state.config, window), force,
                                         timings)
    files = pipeline.write_build(state.config, rendered, out_dir)
    elapsed = time.perf_counter() - started
    stages = ", ".join(f"{stage} {seconds * 1000:.0f} ms" for stage, seconds in timings.items())
    console.print(f"{rendered.period.key} ({period_label(rendered.period)}): "
                  f"{counted(rendered.post_count, 'post')}, built in {elapsed:.2f}s ({stages})")
    for path in files.values():
        console.print(f"  {path}  {path.stat().st_size:,} bytes", soft_wrap=True)
    print_findings(pipeline.lint(state.config, rendered))


@cli.command()
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
    --state, who is in that state and why."""
    from ainews_newsletter import pipeline
    from ainews_newsletter.pipeline.feedback import issue_feedback

    if in_state is not None:
        _list_state(state, issue, DeliveryState(in_state), limit, as_json)
        return
    counts = pipeline.delivery_status(state.config, issue)
    feedback = issue_feedback(state.config, counts.issue)
    if as_json:
        print_json({**counts.as_dict(), "feedback": feedback})
        return
    table = Table(title=f"issue {counts.issue}")
    table.add_column("state")
    table.add_column("recipients", justify="right")
    for delivery_state in DeliveryState:
        table.add_row(delivery_state.value, str(getattr(counts, delivery_state.value)))
    table.add_row("total", str(counts.total))
    console.print(table)
    console.print(f"came back: bounced {feedback['bounced']} (hard {feedback['hard']}, soft "
                  f"{feedback['soft']}), complained {feedback['complained']}, auto-replies "
                  f"{feedback['autoreply']}", soft_wrap=True)


def _list_state(state: AppState, issue: str | None, in_state: DeliveryState, limit: int,
                as_json: bool) -> None:
    from ainews_newsletter.pipeline.report import recipients_in

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


@cli.group()
def db() -> None:
    """The database schema (migrations run by themselves on start; this is for doing it by
    hand, e.g. before starting several senders)."""


@db.command()
@pass_state
def upgrade(state: AppState) -> None:
    """Apply every migration the database lacks."""
    before, after = upgrade_schema(engine_for(state.config.database_url))
    console.print(f"schema at {after}" + (f" (was {before or 'empty'})" if before != after
                                          else " (already current)"))


cli.add_command(send)
cli.add_command(posts)
cli.add_command(subscribers)
cli.add_command(schedule)
cli.add_command(preview)
cli.add_command(serve)
cli.add_command(bounces)
cli.add_command(report)
cli.add_command(dkim)
cli.add_command(doctor)


def main() -> None:
    cli(prog_name="ainews")
