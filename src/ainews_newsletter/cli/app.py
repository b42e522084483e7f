"""`ainews`: the root group. Its commands live in the other modules of this package and are
imported only when run (see LazyGroup in common.py): `ainews --help` imports click and
nothing heavy, and `ainews subscribers count` loads the config, SQLAlchemy and the
subscriber store, not the renderer or the pipeline."""

from __future__ import annotations

import contextlib
import gc
import sys
from pathlib import Path

import click

from ainews_newsletter import __version__
from ainews_newsletter.cli.common import AppState, ErrorHandlingGroup

_CLI = "ainews_newsletter.cli"
# name → (where the command is, its short help in `ainews --help`). The short help is the
# command's docstring up to its first sentence end, as click makes it; a test compares.
COMMANDS: dict[str, tuple[str, str]] = {
    "bounces": (f"{_CLI}.bounces:bounces",
                "Bounces, spam complaints and auto-replies: parse them, ingest them (files, an "
                "mbox, a Maildir, standard input, or the IMAP mailbox of [bounces]) and list "
                "what happened."),
    "build": (f"{_CLI}.issues:build",
              "Render the issue to OUT/issue.html, issue.txt and issue.eml (the full message as "
              "the first subscriber would receive it). Sends nothing."),
    "db": (f"{_CLI}.db:db",
           "The database: its schema (migrations run by themselves on start; upgrade does it "
           "by hand), retention, backups and checks."),
    "demo": (f"{_CLI}.start:demo",
             "Run the whole job end to end on sample data: posts, subscribers, and a local SMTP "
             "server that captures every message. Nothing leaves this machine."),
    "dkim": (f"{_CLI}.dkim:dkim",
             "DKIM keys: every message is signed with [dkim]'s key, and receivers check the "
             "signature against the public half published in DNS."),
    "doctor": (f"{_CLI}.doctor:doctor",
               "Check SPF, DKIM, DMARC, the bounce domain's MX, the relay (TLS, login) and the "
               "sample issue, the way Gmail and Yahoo will. Each check passes, warns or fails, "
               "with exactly what to publish or change. Exit 1 when any fails. Nothing is sent."),
    "init": (f"{_CLI}.start:init",
             "Start a newsletter of your own in FOLDER: a commented config.toml with your "
             "answers, posts/ with one example post dated today, and templates/ (email and web "
             "pages) to edit. On a terminal it asks for what the options leave out; without one "
             "it never asks."),
    "posts": (f"{_CLI}.posts:posts",
              "Inspect the posts an issue would carry, and check every source."),
    "preview": (f"{_CLI}.web:preview",
                "Preview the issue in a browser: desktop and mobile side by side, plain text, "
                "headers, lint findings, why each post is in or out, and a test send. Saving a "
                "post, a template or the config reloads the page."),
    "report": (f"{_CLI}.reports:report",
               "How ISSUE went (default: the latest): readers, accepted, failed, bounces, "
               "complaints, unsubscribes, clicks (when [tracking] clicks is on), rates and "
               "warnings."),
    "schedule": (f"{_CLI}.scheduling:schedule",
                 "Send each period's issue by itself, once per period (`[schedule]` in the "
                 "config)."),
    "send": (f"{_CLI}.sending:send",
             "Send the issue of the window to every active subscriber."),
    "serve": (f"{_CLI}.web:serve",
              "Serve the public pages: subscribe (double opt-in), confirm, one-click "
              "unsubscribe, preferences, the archive of sent issues and its Atom feed. Needs "
              "AINEWS_SECRET_KEY."),
    "status": (f"{_CLI}.issues:status",
               "Delivery counts by state for ISSUE (e.g. 2026-W47) [default: the latest issue]; "
               "with --state, who is in that state and why."),
    "subscribers": (f"{_CLI}.subscribers:subscribers",
                    "Add, remove, unsubscribe, list, count, import and export subscribers, and "
                    "manage lists. Statuses: pending, active, unsubscribed, bounced, complained."),
    "web": (f"{_CLI}.web:web",
            "The sign-up form for your own site: `ainews web snippet` prints it to paste "
            "there."),
}


@click.group(cls=ErrorHandlingGroup, lazy_commands=COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(path_type=Path), envvar="AINEWS_CONFIG",
              help="Config file [default: $AINEWS_CONFIG, else ./config.toml, else built-in "
                   "defaults].")
@click.version_option(__version__, prog_name="ainews")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None) -> None:
    """Select a week of AI-news posts, render the digest, and send it to your subscribers.

    Start with `ainews demo` to see the whole job on sample data."""
    ctx.obj = AppState(config_path)


def main() -> None:
    try:
        cli(prog_name="ainews")
    except SystemExit:  # how click ends every command, with its exit code
        _before_exit()
        raise


def _before_exit() -> None:
    """The database connections closed now (SQLite checkpoints its WAL and removes it, as
    when they closed at exit), then the garbage collector frozen: the interpreter's
    shutdown would otherwise run full collections over every object the command loaded
    (SQLAlchemy, the renderer, pydantic), about 0.15 s after a send, for nothing still
    needed (issue 32). Objects still referenced are torn down as
    before; only unreachable cycles are left to the process's end, whose finalizers Python
    never promised to run at exit."""
    database = sys.modules.get("ainews_newsletter.database")
    if database is not None:  # a command that opened none (`--help`) does not import it
        with contextlib.suppress(Exception):  # closing is no reason to change the exit
            database.dispose_all()
    gc.freeze()
