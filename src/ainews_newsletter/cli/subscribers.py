"""`ainews subscribers …`: manage the list from the command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click

from ainews_newsletter.cli.common import (
    AppState,
    LazyGroup,
    confirmed,
    console,
    json_option,
    pass_state,
    print_json,
)
from ainews_newsletter.cli.files import whole_file
from ainews_newsletter.models import Subscriber, SubscriberStatus, counted

if TYPE_CHECKING:
    from ainews_newsletter.subscribers.consent_records import ConsentRecord
    from ainews_newsletter.subscribers.history import SubscriberEvent
    from ainews_newsletter.subscribers.store import SubscriberStore

# The rooms' modules are imported inside the commands: `ainews subscribers count` loads the
# store (SQLAlchemy) and nothing it does not use.
STATUS_CHOICE = click.Choice([status.value for status in SubscriberStatus])
SHOWN_EVENTS = 10  # the newest, in `show`'s plain output (--json has them all)


def status_filter(value: str | None) -> SubscriberStatus | None:
    return SubscriberStatus(value) if value else None


def list_option(function: Any) -> Any:
    return click.option("--list", "list_name", metavar="NAME",
                        help="The list [default: [subscribers] default_list].")(function)


def open_store(state: AppState) -> SubscriberStore:
    from ainews_newsletter.subscribers.store import SubscriberStore

    return SubscriberStore.open(state.config)


# `erase`'s short help: its docstring, as for the others below.
ERASE_HELP = ("Erase each EMAIL on request (GDPR): the reader's row, lists, consent record, "
              'clicks and welcome mail are deleted; in the delivery ledger and the '
              'bounce/complaint events the address and name become a keyed hash and free text'
              ' naming them is cleared (reports keep their counts); the suppression list '
              'keeps only the hash, so a later import or `add` of the address is refused '
              'unless forced, while its owner may still sign up again through double opt-in. '
              'Needs AINEWS_SECRET_KEY, always the same one (another one is refused unless '
              '--new-key). Erasing an address again, or one never stored, changes nothing and '
              'is reported as not found.')

# `import` lives apart: its --format help names every file format, and reading that list
# loads the importer. (name → where, short help: see LazyGroup.)
LAZY_COMMANDS = {
    "data": ("ainews_newsletter.cli.subscribers_data:data",
             "Print everything kept about EMAIL as JSON: profile, lists, history, consent, "
             "every delivery with its issue, date and outcome, the welcome, bounces and "
             "complaints, clicks."),
    "erase": ("ainews_newsletter.cli.subscribers_erase:erase",
              ERASE_HELP),
    "import": ("ainews_newsletter.cli.subscribers_import:import_",
               "Import FILE: our CSV (email, name, status, …) or an export from Mailchimp, "
               "Substack, listmonk or Buttondown. Known addresses are merged, not doubled; an "
               "unsubscribe is never undone; suppressed addresses are rejected. Exit code 1 "
               "if any row was rejected."),
    "prune": ("ainews_newsletter.cli.subscribers_prune:prune",
              "Remove sign-ups never confirmed (--unconfirmed); list readers who stopped "
              "clicking (--inactive-issues N) and unsubscribe them with --yes."),
}


@click.group(cls=LazyGroup, lazy_commands=LAZY_COMMANDS)
def subscribers() -> None:
    """Add, remove, unsubscribe, list, count, import and export subscribers, and manage
    lists. Statuses: pending, active, unsubscribed, bounced, complained."""


@subscribers.command()
@click.argument("email")
@click.option("--name", help="The subscriber's name, used in the To: header.")
@list_option
@click.option("--status", type=STATUS_CHOICE, default="active", show_default=True)
@click.option("--language", metavar="TAG",
              help="The reader's language, a BCP 47 tag (de, pt-BR): their issues come in it "
                   "when catalogs exist for it, else in [newsletter] language. For a reader "
                   "already on the list it only sets their language (\"\" clears it).")
@click.option("--force-erased", is_flag=True,
              help="Add EMAIL even though it was erased on request (only if its owner asked "
                   "you to); lifts the erased mark.")
@json_option
@pass_state
def add(state: AppState, email: str, name: str | None, list_name: str | None, status: str,
        language: str | None, force_erased: bool, as_json: bool) -> None:
    """Add EMAIL to a list (a known address is added to the list)."""
    from ainews_newsletter import translations
    from ainews_newsletter.subscribers.consent_records import Agreement
    from ainews_newsletter.subscribers.export import as_record

    # Checked first: a mistyped tag adds no one.
    tag = translations.canonical(language) if language and language.strip() else None
    store = open_store(state)
    found = store.get(email)
    verb = "added"
    if found is not None and language is not None and (
            list_name or state.config.subscribers.default_list) in found.lists:
        store.set_language(found.id, tag)  # on the list already: only the language changes
        verb = "updated"
    else:
        # One transaction: the row, its consent record (a known address keeps its own)
        # and its language.
        store.add(email, name, list_name, SubscriberStatus(status), force_erased=force_erased,
                  agreement=Agreement("cli", "ainews subscribers add"), language=tag,
                  set_language=language is not None)
    subscriber = store.require(email)
    if as_json:
        print_json(as_record(subscriber))
    else:
        console.print(f"{verb} {subscriber.email} ({subscriber.status.value}, language "
                      f"{subscriber.language or 'none'}) on {', '.join(subscriber.lists)}")


def _record_resubscribe_consent(store: SubscriberStore, subscriber: Subscriber) -> None:
    """Proof of consent for `resubscribe`: the reader's new request replaces the record,
    given and confirmed now, on the command line."""
    from ainews_newsletter import clock
    from ainews_newsletter.subscribers import consent_records

    now = clock.now()
    consent_records.record(store.engine, subscriber.id, consent_records.Agreement(
        "cli", "ainews subscribers resubscribe"), now, now)


@subscribers.command()
@click.argument("email")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_state
def remove(state: AppState, email: str, yes: bool) -> None:
    """Delete EMAIL and its data for good. If they had unsubscribed, bounced or complained,
    the address stays on the suppression list so nothing can add it back. To stop mail but
    keep the record, use `unsubscribe`."""
    store = open_store(state)
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
    subscriber = open_store(state).unsubscribe(email)
    console.print(f"unsubscribed {subscriber.email}")


@subscribers.command()
@click.argument("email")
@pass_state
def resubscribe(state: AppState, email: str) -> None:
    """Make EMAIL active again and lift its suppression: only for someone who asked (their
    consent record becomes this request, made on the command line now)."""
    store = open_store(state)
    before = store.get(email)
    subscriber = store.resubscribe(email)
    if before is None or before.status is not SubscriberStatus.ACTIVE:
        # Only a real return is a new agreement: an active reader keeps the record of how
        # they joined (a web sign-up's proof is stronger than this command's).
        _record_resubscribe_consent(store, subscriber)
    console.print(f"resubscribed {subscriber.email} (active)")


@subscribers.command()
@click.argument("email")
@json_option
@pass_state
def show(state: AppState, email: str, as_json: bool) -> None:
    """Everything stored about EMAIL."""
    from ainews_newsletter.pipeline.feedback import last_failure
    from ainews_newsletter.subscribers.export import as_record
    from ainews_newsletter.subscribers.history import SubscriberHistory

    store = open_store(state)
    subscriber = store.require(email)
    record = as_record(subscriber)
    record["suppressed"] = store.suppression(email)
    last = last_failure(state.config, subscriber.id)
    record["last_bounce"] = None if last is None else {
        "kind": last.kind.value, "status": last.status, "diagnostic": last.diagnostic,
        "received_at": last.received_at.isoformat(), "source": last.source}
    events = SubscriberHistory(store.engine).events_for(subscriber.id)
    consent = _consent(store, subscriber.id)
    if as_json:
        print_json({**record, "consent": None if consent is None else consent.as_record(),
                    "history": [event.as_record() for event in events]})
        return
    for key, value in record.items():
        if isinstance(value, dict) and key == "last_bounce":
            value = (f"{value['kind']} {value['status']} {value['received_at'][:16]}: "
                     f"{value['diagnostic']}")
        shown = ", ".join(value) if isinstance(value, list) else value
        console.print(f"{key:<16}{shown if shown not in (None, {}, '') else ''}", soft_wrap=True)
    console.print(f"{'consent':<16}{'none recorded' if consent is None else consent.describe()}",
                  soft_wrap=True, markup=False)
    _print_history(events)


def _consent(store: SubscriberStore, subscriber_id: int) -> ConsentRecord | None:
    from ainews_newsletter.subscribers import consent_records

    return consent_records.read(store.engine, subscriber_id)


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
    for subscriber in open_store(state).iter_subscribers(status_filter(status), list_name, search,
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
    from rich.table import Table

    from ainews_newsletter.subscribers.export import as_record, write_csv

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
    # The whole config is loaded and checked as for any command. A SQLite file at the
    # newest schema is then counted with one sqlite3 query, without importing SQLAlchemy
    # (BENCHMARKS.md, "Start-up"); anything else (PostgreSQL, a database to create or
    # upgrade, a list it lacks) asks the store.
    from ainews_newsletter.config.locate import sqlite_file

    database = sqlite_file(state.config.database_url)
    if database is not None:
        from ainews_newsletter.subscribers.quickcount import quick_count

        if (found := quick_count(database, status, list_name)) is not None:
            click.echo(found)
            return
    click.echo(open_store(state).count(status_filter(status), list_name))


@subscribers.command()
@click.option("--status", type=STATUS_CHOICE, help="Only subscribers with this status.")
@list_option
@click.option("--format", "file_format", type=click.Choice(["csv", "json"]), default="csv",
              show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file [default: standard output].")
@click.option("--consent", is_flag=True,
              help="Export the proof of consent instead: one record per subscriber (email, "
                   "how, source, ip, user_agent, consent_text, given_at, confirmed_at), "
                   "in --format. Not with --status or --list.")
@pass_state
def export(state: AppState, status: str | None, list_name: str | None, file_format: str,
           output: Path | None, consent: bool) -> None:
    """Export subscribers (all their fields and lists, their language too). The CSV
    re-imports with `import` and is safe to open in a spreadsheet (no formula runs)."""
    from ainews_newsletter.subscribers.export import write_csv, write_json

    if consent:
        _export_consent(state, status, list_name, file_format, output)
        return
    rows = open_store(state).iter_subscribers(status_filter(status), list_name, with_lists=True)
    writer = write_csv if file_format == "csv" else write_json
    if output is None:
        written = writer(rows, sys.stdout)
    else:
        handle: TextIO
        with whole_file(output) as handle:
            written = writer(rows, handle)
        console.print(f"exported {counted(written, 'subscriber')} to {output}")


def _export_consent(state: AppState, status: str | None, list_name: str | None,
                    file_format: str, output: Path | None) -> None:
    from ainews_newsletter.subscribers import consent_export, consent_records

    if status is not None or list_name is not None:
        from ainews_newsletter.errors import SubscriberError

        raise SubscriberError("--consent exports every record: leave out --status and --list")
    records = consent_records.every(open_store(state).engine)
    writer = consent_export.write_csv if file_format == "csv" else consent_export.write_json
    if output is None:
        writer(records, sys.stdout)
        return
    handle: TextIO
    with whole_file(output) as handle:
        written = writer(records, handle)
    console.print(f"exported {counted(written, 'consent record')} to {output}")


@subscribers.group("lists")
def lists_group() -> None:
    """Create, remove and show lists."""


@lists_group.command("add")
@click.argument("name")
@click.option("--description", help="What the list is for.")
@pass_state
def lists_add(state: AppState, name: str, description: str | None) -> None:
    """Create the list NAME."""
    open_store(state).add_list(name, description)
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
    members = open_store(state).remove_list(name)
    console.print(f"removed list {name} ({counted(members, 'membership')})")


@lists_group.command("list")
@json_option
@pass_state
def lists_list(state: AppState, as_json: bool) -> None:
    """Every list with its member counts."""
    from rich.table import Table

    found = open_store(state).lists()
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
