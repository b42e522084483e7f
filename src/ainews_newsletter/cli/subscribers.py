"""`ainews subscribers …`: manage the list from the command line."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from ainews_newsletter import pipeline
from ainews_newsletter.cli.common import (
    AppState,
    console,
    fail,
    json_option,
    pass_state,
    print_json,
)
from ainews_newsletter.models import Subscriber, SubscriberStatus
from ainews_newsletter.subscribers.csvio import read_subscriber_csv

STATUS_CHOICE = click.Choice([status.value for status in SubscriberStatus])


def _as_dict(subscriber: Subscriber) -> dict[str, object]:
    return {
        "email": subscriber.email,
        "name": subscriber.name,
        "status": subscriber.status.value,
        "source": subscriber.source,
        "created_at": subscriber.created_at.isoformat(),
        "unsubscribed_at": (subscriber.unsubscribed_at.isoformat()
                            if subscriber.unsubscribed_at else None),
    }


@click.group()
def subscribers() -> None:
    """Add, remove, unsubscribe, list, count and import subscribers."""


@subscribers.command()
@click.argument("email")
@click.option("--name", help="The subscriber's name, used in the To: header.")
@pass_state
def add(state: AppState, email: str, name: str | None) -> None:
    """Add EMAIL as an active subscriber."""
    subscriber = pipeline.open_subscribers(state.config).add(email, name)
    console.print(f"added {subscriber.email} (active)")


@subscribers.command()
@click.argument("email")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_state
def remove(state: AppState, email: str, yes: bool) -> None:
    """Delete EMAIL and its data for good. To stop mail but remember the choice, use
    `unsubscribe` instead."""
    store = pipeline.open_subscribers(state.config)
    subscriber = store.require(email)
    if not yes and not click.confirm(f"Delete {subscriber.email} for good?", default=False,
                                     err=True):
        console.print("Not removed.")
        raise SystemExit(1)
    store.remove(email)
    console.print(f"removed {subscriber.email}")


@subscribers.command()
@click.argument("email")
@pass_state
def unsubscribe(state: AppState, email: str) -> None:
    """Stop sending to EMAIL; the row stays so later imports cannot re-add it."""
    subscriber = pipeline.open_subscribers(state.config).unsubscribe(email)
    console.print(f"unsubscribed {subscriber.email}")


@subscribers.command()
@click.argument("email")
@json_option
@pass_state
def show(state: AppState, email: str, as_json: bool) -> None:
    """Everything stored about EMAIL."""
    subscriber = pipeline.open_subscribers(state.config).require(email)
    if as_json:
        print_json(_as_dict(subscriber))
        return
    for key, value in _as_dict(subscriber).items():
        console.print(f"{key:<16}{value if value is not None else ''}", soft_wrap=True)


@subscribers.command("list")
@click.option("--status", type=STATUS_CHOICE, help="Only subscribers with this status.")
@click.option("--limit", type=click.IntRange(min=1), help="Show at most this many.")
@json_option
@pass_state
def list_(state: AppState, status: str | None, limit: int | None, as_json: bool) -> None:
    """Subscribers, oldest first."""
    store = pipeline.open_subscribers(state.config)
    found: list[Subscriber] = []
    for subscriber in store.iter_subscribers(SubscriberStatus(status) if status else None):
        if limit is not None and len(found) >= limit:
            break
        found.append(subscriber)
    if as_json:
        print_json([_as_dict(subscriber) for subscriber in found])
        return
    table = Table()
    for column in ("email", "name", "status", "since"):
        table.add_column(column)
    for subscriber in found:
        table.add_row(subscriber.email, subscriber.name or "", subscriber.status.value,
                      f"{subscriber.created_at:%Y-%m-%d}")
    console.print(table)


@subscribers.command()
@click.option("--status", type=STATUS_CHOICE, help="Count only this status.")
@pass_state
def count(state: AppState, status: str | None) -> None:
    """Print the number of subscribers (one integer)."""
    total = pipeline.open_subscribers(state.config).count(
        SubscriberStatus(status) if status else None)
    click.echo(total)


@subscribers.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@json_option
@pass_state
def import_(state: AppState, file: Path, as_json: bool) -> None:
    """Import FILE, a CSV with an `email` column and an optional `name` column.

    New addresses become active; known ones keep their status (an unsubscribed address is
    never re-activated). Invalid rows are reported with their line number and skipped; the
    exit code is then 1 so scripts notice."""
    rows, rejects = read_subscriber_csv(file)
    store = pipeline.open_subscribers(state.config)
    summary = store.import_rows(rows, source=f"import:{file.name}")
    result = {**summary.as_dict(), "rejected": len(rejects)}
    for reject in rejects:
        fail(f"{file}:{reject.line}: {reject.reason}")
    if as_json:
        print_json(result)
    else:
        console.print(", ".join(f"{key} {value}" for key, value in result.items()))
    if rejects:
        raise SystemExit(1)
