"""`ainews db upgrade`: migrations by hand; `ainews db prune`: the [privacy] retention;
`ainews db backup` and `ainews db check`: a copy taken while in use, and whether a database
(or a copy) is whole and at the schema this ainews needs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ainews_newsletter.cli.common import AppState, console, json_option, pass_state, print_json
from ainews_newsletter.models import counted

if TYPE_CHECKING:
    from ainews_newsletter.pipeline.backup import BackupReport
    from ainews_newsletter.pipeline.retention import RetentionReport


@click.group()
def db() -> None:
    """The database: its schema (migrations run by themselves on start; upgrade does it by
    hand), retention, backups and checks."""


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


@db.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
@json_option
@pass_state
def backup(state: AppState, file: Path, force: bool, as_json: bool) -> None:
    """Copy the database into FILE while it is in use (a send may be running).

    SQLite: SQLite's online backup, one consistent moment of the database, written to
    FILE.partial and renamed to FILE when whole. PostgreSQL: `pg_dump --format=custom`
    (restore with pg_restore), the URL's password passed in PGPASSWORD. Prints the copy's
    size, schema version and counts. To restore a SQLite copy: stop every ainews process,
    copy FILE over the database file and delete its -wal and -shm files. A send that went on
    after the backup sends again, after a restore, to the readers it reached in between:
    take backups between sends (see docs: When things fail)."""
    from ainews_newsletter.pipeline.backup import take_backup

    report = take_backup(state.config.database_url, file, force=force)
    if as_json:
        print_json(report.as_dict())
    else:
        _print_backup(report)
    if report.unsent:
        click.echo(f"warning: a send was under way: {report.unsent} delivery rows in this copy "
                   "are not sent yet; restored, it sends to them again, to those the send "
                   "reaches after now too (back up between sends to avoid it)", err=True)


def _print_backup(report: BackupReport) -> None:
    deliveries = ", ".join(f"{count} {row_state}" for row_state, count
                           in report.deliveries.items()) or "none"
    console.print(f"{report.path}: {report.size:,} bytes ({report.database}), schema "
                  f"{report.schema or 'none'}, "
                  f"{counted(report.subscribers, 'subscriber')}, delivery rows: {deliveries}",
                  soft_wrap=True)


@db.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@json_option
@pass_state
def check(state: AppState, file: Path | None, as_json: bool) -> None:
    """Check that the database is whole and at the schema this ainews needs.

    Checks the configured database, or the SQLite FILE given (a backup, say): SQLite's
    integrity_check and foreign_key_check (PostgreSQL: that it answers and has the tables),
    and the schema version against this ainews's newest. Changes nothing. Exit code 1 with
    one line per problem."""
    from ainews_newsletter.pipeline.integrity import check_database

    url = "" if file is not None else state.config.database_url
    report = check_database(url, file)
    if as_json:
        print_json(report.as_dict())
    elif report.ok:
        console.print(f"{report.database}: ok (schema {report.schema}, integrity checked)",
                      soft_wrap=True)
    for problem in report.problems:
        click.echo(f"error: {problem}", err=True)
    if not report.ok:
        sys.exit(1)
