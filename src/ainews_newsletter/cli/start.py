"""`ainews init` and `ainews demo`: the two ways to start, the only commands that need no
configuration."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from ainews_newsletter.cli.common import console, progress_bar
from ainews_newsletter.errors import AinewsError
from ainews_newsletter.models import counted


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


@click.command()
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
    from ainews_newsletter.config.locate import CONFIG_ENV_VAR

    if os.environ.get(CONFIG_ENV_VAR):
        console.print(f"note: {CONFIG_ENV_VAR} is set ({os.environ[CONFIG_ENV_VAR]}): it wins "
                      f"over {folder}/config.toml; unset it, or add --config "
                      f"{folder}/config.toml")


@click.command()
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
