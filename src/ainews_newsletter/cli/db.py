"""`ainews db upgrade`: migrations by hand; `ainews db prune`: the [privacy] retention."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from ainews_newsletter.cli.common import AppState, console, json_option, pass_state, print_json
from ainews_newsletter.models import counted

if TYPE_CHECKING:
    from ainews_newsletter.pipeline.retention import RetentionReport


@click.group()
def db() -> None:
    """The database schema (migrations run by themselves on start; this is for doing it by
    hand, e.g. before starting several senders)."""


@db.command()
@pass_state
def upgrade(state: AppState) -> None:
    """Apply every migration the database lacks."""
    from ainews_newsletter.database import engine_for, upgrade_schema

    before, after = upgrade_schema(engine_for(state.config.database_url))
    console.print(f"schema at {after}" + (f" (was {before or 'empty'})" if before != after
                                          else " (already current)"))


@db.command()
@click.option("--no-mailbox", "no_mailbox", is_flag=True,
              help="Leave the IMAP processed folder alone (only the database is pruned).")
@json_option
@pass_state
def prune(state: AppState, no_mailbox: bool, as_json: bool) -> None:
    """Apply the [privacy] retention now, as the scheduler does daily: cut the text of
    feedback events older than keep_feedback_details_days to their status code, delete the
    mail that old in the IMAP processed folder (when IMAP is configured), and replace the
    addresses of ledger rows older than keep_addresses_in_ledger_days by keyed hashes
    (needs AINEWS_SECRET_KEY; without it that part is skipped with a warning). Safe to run
    again: what is done stays done. Exit code 1 if the mailbox could not be pruned (the
    database is pruned all the same)."""
    from ainews_newsletter.pipeline.retention import apply_retention

    report = apply_retention(state.config, with_mailbox=not no_mailbox)
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        print_json(report.as_dict())
    else:
        _print_report(report)
    for error in report.errors:
        click.echo(f"error: {error}", err=True)
    if report.errors:
        sys.exit(1)


def _print_report(report: RetentionReport) -> None:
    console.print(f"feedback events older than {report.feedback_days} days: "
                  f"{counted(report.feedback_cut, 'text')} cut to the status code")
    if report.mail_deleted is not None:
        console.print(f"IMAP processed folder: {counted(report.mail_deleted, 'message')} "
                      f"older than {report.feedback_days} days deleted")
    if report.deliveries_hashed is not None:
        console.print(f"ledger rows older than {report.ledger_days} days, addresses replaced "
                      "by keyed hashes: "
                      f"{counted(report.deliveries_hashed, 'delivery', 'deliveries')}, "
                      f"{counted(report.welcomes_hashed or 0, 'welcome')}, "
                      f"{counted(report.feedback_hashed or 0, 'feedback event')}")
