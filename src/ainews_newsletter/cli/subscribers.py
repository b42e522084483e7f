"""`ainews subscribers …`: manage the list from the command line."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any, TextIO

import click
from rich.table import Table

from ainews_newsletter.cli.common import (
    AppState,
    confirmed,
    console,
    fail,
    json_option,
    pass_state,
    print_json,
)
from ainews_newsletter.errors import SubscriberError
from ainews_newsletter.models import Subscriber, SubscriberStatus, counted
from ainews_newsletter.subscribers.export import as_record, write_csv, write_json
from ainews_newsletter.subscribers.formats import FORMATS, open_subscriber_file
from ainews_newsletter.subscribers.history import SubscriberEvent, SubscriberHistory
from ainews_newsletter.subscribers.importer import import_rows
from ainews_newsletter.subscribers.store import SubscriberStore

STATUS_CHOICE = click.Choice([status.value for status in SubscriberStatus])
SHOWN_REJECTS = 20
SHOWN_EVENTS = 10  # the newest, in `show`'s plain output (--json has them all)


def _status(value: str | None) -> SubscriberStatus | None:
    return SubscriberStatus(value) if value else None


def list_option(function: Any) -> Any:
    return click.option("--list", "list_name", metavar="NAME",
                        help="The list [default: [subscribers] default_list].")(function)


def _store(state: AppState) -> SubscriberStore:
    return SubscriberStore.open(state.config)


@click.group()
def subscribers() -> None:
    """Add, remove, unsubscribe, list, count, import and export subscribers, and manage
    lists. Statuses: pending, active, unsubscribed, bounced, complained."""


@subscribers.command()
@click.argument("email")
@click.option("--name", help="The subscriber's name, used in the To: header.")
@list_option
@click.option("--status", type=STATUS_CHOICE, default="active", show_default=True)
@json_option
@pass_state
def add(state: AppState, email: str, name: str | None, list_name: str | None, status: str,
        as_json: bool) -> None:
    """Add EMAIL to a list (a known address is added to the list)."""
    subscriber = _store(state).add(email, name, list_name, SubscriberStatus(status))
    if as_json:
        print_json(as_record(subscriber))
    else:
        console.print(f"added {subscriber.email} ({subscriber.status.value}) to "
                      f"{', '.join(subscriber.lists)}")


@subscribers.command()
@click.argument("email")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_state
def remove(state: AppState, email: str, yes: bool) -> None:
    """Delete EMAIL and its data for good. If they had unsubscribed, bounced or complained,
    the address stays on the suppression list so nothing can add it back. To stop mail but
    keep the record, use `unsubscribe`."""
    store = _store(state)
    subscriber = store.require(email)
    if not confirmed(f"Delete {subscriber.email} for good?", yes):
        console.print("Not removed.")
        raise SystemExit(1)
    store.remove(email)
    console.print(f"removed {subscriber.email}")


@subscribers.command()
@click.argument("email")
@pass_state
def unsubscribe(state: AppState, email: str) -> None:
    """Stop sending to EMAIL; the row stays so later imports cannot re-add it."""
    subscriber = _store(state).unsubscribe(email)
    console.print(f"unsubscribed {subscriber.email}")


@subscribers.command()
@click.argument("email")
@pass_state
def resubscribe(state: AppState, email: str) -> None:
    """Make EMAIL active again and lift its suppression: only for someone who asked."""
    subscriber = _store(state).resubscribe(email)
    console.print(f"resubscribed {subscriber.email} (active)")


@subscribers.command()
@click.argument("email")
@json_option
@pass_state
def show(state: AppState, email: str, as_json: bool) -> None:
    """Everything stored about EMAIL."""
    from ainews_newsletter.pipeline.feedback import last_failure

    store = _store(state)
    subscriber = store.require(email)
    record = as_record(subscriber)
    record["suppressed"] = store.suppression(email)
    last = last_failure(state.config, subscriber.id)
    record["last_bounce"] = None if last is None else {
        "kind": last.kind.value, "status": last.status, "diagnostic": last.diagnostic,
        "received_at": last.received_at.isoformat(), "source": last.source}
    events = SubscriberHistory(store.engine).events_for(subscriber.id)
    if as_json:
        print_json({**record, "history": [event.as_record() for event in events]})
        return
    for key, value in record.items():
        if isinstance(value, dict) and key == "last_bounce":
            value = (f"{value['kind']} {value['status']} {value['received_at'][:16]}: "
                     f"{value['diagnostic']}")
        shown = ", ".join(value) if isinstance(value, list) else value
        console.print(f"{key:<16}{shown if shown not in (None, {}, '') else ''}", soft_wrap=True)
    _print_history(events)


def _print_history(events: list[SubscriberEvent]) -> None:
    """One line per event, oldest first, time in UTC to the minute."""
    console.print("history" if events else "history         none recorded")
    if len(events) > SHOWN_EVENTS:
        console.print(f"  … {counted(len(events) - SHOWN_EVENTS, 'earlier event')} "
                      "(--json lists all)")
    for event in events[-SHOWN_EVENTS:]:
        issue = f", issue {event.issue_id}" if event.issue_id is not None else ""
        console.print(f"  {event.at:%Y-%m-%d %H:%M} UTC  {event.kind:<13}({event.source}{issue})",
                      soft_wrap=True, markup=False)


def _selected(state: AppState, status: str | None, list_name: str | None,
              search: str | None = None, limit: int | None = None) -> list[Subscriber]:
    found: list[Subscriber] = []
    for subscriber in _store(state).iter_subscribers(_status(status), list_name, search,
                                                     batch_size=min(limit or 1000, 1000),
                                                     with_lists=True):
        if limit is not None and len(found) >= limit:
            break
        found.append(subscriber)
    return found


@subscribers.command("list")
@click.option("--status", type=STATUS_CHOICE, help="Only subscribers with this status.")
@list_option
@click.option("--search", metavar="TEXT", help="Only addresses or names containing TEXT.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True,
              help="Show at most this many (use `export` for everything).")
@json_option
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV instead of a table.")
@pass_state
def list_(state: AppState, status: str | None, list_name: str | None, search: str | None,
          limit: int, as_json: bool, as_csv: bool) -> None:
    """Subscribers, oldest first."""
    found = _selected(state, status, list_name, search, limit)
    if as_json:
        print_json([as_record(subscriber) for subscriber in found])
        return
    if as_csv:
        write_csv(found, sys.stdout)
        return
    table = Table()
    for column in ("email", "name", "status", "lists", "since"):
        table.add_column(column)
    for subscriber in found:
        table.add_row(subscriber.email, subscriber.name or "", subscriber.status.value,
                      ", ".join(subscriber.lists), f"{subscriber.created_at:%Y-%m-%d}")
    console.print(table)


@subscribers.command()
@click.option("--status", type=STATUS_CHOICE, help="Count only this status.")
@list_option
@pass_state
def count(state: AppState, status: str | None, list_name: str | None) -> None:
    """Print the number of subscribers (one integer)."""
    click.echo(_store(state).count(_status(status), list_name))


@subscribers.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--format", "file_format", default="auto", show_default=True,
              help=f"The export the file comes from: {', '.join(FORMATS)} (auto: by its "
                   "header).")
@list_option
@click.option("--status", type=STATUS_CHOICE,
              help="Give new subscribers this status (never re-activates anyone who left).")
@click.option("--dry-run", is_flag=True, help="Report what would change; store nothing.")
@click.option("--rejects", "rejects_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write every rejected row (line, email, reason) to this CSV file.")
@click.option("--check-dns", is_flag=True, help="Also check that each domain takes mail (DNS).")
@json_option
@pass_state
def import_(state: AppState, file: Path, file_format: str, list_name: str | None,
            status: str | None, dry_run: bool, rejects_path: Path | None, check_dns: bool,
            as_json: bool) -> None:
    """Import FILE: our CSV (email, name, status, …) or an export from Mailchimp, Substack,
    listmonk or Buttondown. Known addresses are merged, not doubled; an unsubscribe is never
    undone; suppressed addresses are rejected. Exit code 1 if any row was rejected."""
    store = _store(state)
    with store.engine.begin() as connection:
        store.list_id(connection, list_name)  # a missing list fails before reading the file
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    opened = open_subscriber_file(file, file_format, check_dns,
                                  state.config.subscribers.allow_test_domains)
    if rejects_path is not None:  # fail on a bad path before anything is stored
        try:
            rejects_path.open("a", encoding="utf-8").close()
        except OSError as exc:
            raise SubscriberError(f"--rejects: cannot write {rejects_path}: "
                                  f"{exc.strerror}") from None
    size = max(file.stat().st_size, 1)
    with Progress(TextColumn("importing"), BarColumn(), TaskProgressColumn(),
                  TimeRemainingColumn(), console=console, transient=True,
                  disable=not console.is_terminal) as progress:
        task = progress.add_task("import", total=size)
        summary = import_rows(store, opened.rows, list_name, _status(status),
                              source=f"import:{file.name}", dry_run=dry_run,
                              on_batch=lambda _rows: progress.update(
                                  task, completed=opened.bytes_read()))
    if rejects_path is not None:
        with rejects_path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["line", "email", "reason"])
            writer.writerows([reject.line, reject.email, reject.reason]
                             for reject in summary.rejects)
    for reject in summary.rejects[:SHOWN_REJECTS]:
        fail(f"{file}:{reject.line}: {reject.reason}")
    if len(summary.rejects) > SHOWN_REJECTS:
        fail(f"… and {len(summary.rejects) - SHOWN_REJECTS} more rejected rows"
             + (f" (all in {rejects_path})" if rejects_path else " (--rejects FILE lists all)"))
    result = summary.as_dict()
    if as_json:
        print_json({**result, "format": opened.format, "dry_run": dry_run})
    else:
        console.print(f"{opened.format} file{' (dry run: nothing stored)' if dry_run else ''}: "
                      + ", ".join(f"{key} {value}" for key, value in result.items()))
    if summary.rejected:
        raise SystemExit(1)


@subscribers.command()
@click.option("--status", type=STATUS_CHOICE, help="Only subscribers with this status.")
@list_option
@click.option("--format", "file_format", type=click.Choice(["csv", "json"]), default="csv",
              show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file [default: standard output].")
@pass_state
def export(state: AppState, status: str | None, list_name: str | None, file_format: str,
           output: Path | None) -> None:
    """Export subscribers (all their fields and lists). The CSV re-imports with `import`
    and is safe to open in a spreadsheet (no formula runs)."""
    rows = _store(state).iter_subscribers(_status(status), list_name, with_lists=True)
    writer = write_csv if file_format == "csv" else write_json
    if output is None:
        written = writer(rows, sys.stdout)
    else:
        handle: TextIO
        with output.open("w", encoding="utf-8", newline="") as handle:
            written = writer(rows, handle)
        console.print(f"exported {counted(written, 'subscriber')} to {output}")


@subscribers.group("lists")
def lists_group() -> None:
    """Create, remove and show lists."""


@lists_group.command("add")
@click.argument("name")
@click.option("--description", help="What the list is for.")
@pass_state
def lists_add(state: AppState, name: str, description: str | None) -> None:
    """Create the list NAME."""
    _store(state).add_list(name, description)
    console.print(f"created list {name}")


@lists_group.command("remove")
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_state
def lists_remove(state: AppState, name: str, yes: bool) -> None:
    """Delete the list NAME and its memberships (the subscribers stay)."""
    if not confirmed(f"Delete list {name}?", yes):
        console.print("Not removed.")
        raise SystemExit(1)
    members = _store(state).remove_list(name)
    console.print(f"removed list {name} ({counted(members, 'membership')})")


@lists_group.command("list")
@json_option
@pass_state
def lists_list(state: AppState, as_json: bool) -> None:
    """Every list with its member counts."""
    found = _store(state).lists()
    if as_json:
        print_json([{"name": item.name, "description": item.description,
                     "members": item.members, "active": item.active} for item in found])
        return
    table = Table()
    for column in ("list", "members", "active", "description"):
        table.add_column(column)
    for item in found:
        table.add_row(item.name, str(item.members), str(item.active), item.description or "")
    console.print(table)
