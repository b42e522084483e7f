"""`ainews db upgrade`: migrations by hand."""

from __future__ import annotations

import click

from ainews_newsletter.cli.common import AppState, console, pass_state


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
