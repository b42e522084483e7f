"""`ainews subscribers prune`: sign-ups never confirmed, and readers who stopped clicking."""

from __future__ import annotations

from typing import Any

import click

from ainews_newsletter.cli.common import AppState, console, json_option, pass_state, print_json
from ainews_newsletter.errors import SubscriberError
from ainews_newsletter.models import counted


@click.command("prune")
@click.option("--unconfirmed", is_flag=True,
              help="Remove the pending sign-ups older than [subscribers] unconfirmed_days "
                   "(counted from their last sign-up), as the scheduler does daily.")
@click.option("--inactive-issues", "inactive_issues", type=click.IntRange(min=1), metavar="N",
              help="List the active readers with no click in the last N issues sent to them "
                   "(needs [tracking] clicks); with --yes, unsubscribe them.")
@click.option("--yes", "-y", is_flag=True,
              help="With --inactive-issues: unsubscribe the readers listed (without it they "
                   "are only listed).")
@json_option
@pass_state
def prune(state: AppState, unconfirmed: bool, inactive_issues: int | None, yes: bool,
          as_json: bool) -> None:
    """Remove sign-ups never confirmed (--unconfirmed); list readers who stopped clicking
    (--inactive-issues N) and unsubscribe them with --yes.

    An unconfirmed sign-up is removed like `subscribers remove` removes someone (its event
    "removed"), and its address is not suppressed: its owner never confirmed and may sign up
    again. An inactive reader is unsubscribed, not removed: the row keeps imports from
    adding them back, and they can return through the sign-up form."""
    from ainews_newsletter.pipeline.hygiene import (
        expire_unconfirmed,
        inactive_readers,
        unsubscribe_inactive,
    )

    if not unconfirmed and inactive_issues is None:
        raise SubscriberError("say what to prune: --unconfirmed, --inactive-issues N, or both")
    config = state.config
    report: dict[str, Any] = {}
    if unconfirmed:
        removed = expire_unconfirmed(config)
        days = config.subscribers.unconfirmed_days
        report["unconfirmed"] = {"days": days,
                                 "removed": [reader.as_record() for reader in removed]}
        if not as_json:
            _print_readers(f"removed {counted(len(removed), 'unconfirmed sign-up')} (pending "
                           f"for more than {days} days)",
                           [f"{reader.email}  (signed up {reader.updated_at:%Y-%m-%d})"
                            for reader in removed])
    if inactive_issues is not None:
        readers = inactive_readers(config, inactive_issues)
        changed = unsubscribe_inactive(config, readers) if yes else 0
        report["inactive"] = {"issues": inactive_issues, "unsubscribed": changed,
                              "readers": [reader.as_record() for reader in readers]}
        if not as_json:
            title = (f"{counted(len(readers), 'active reader')} with no click in their last "
                     f"{counted(inactive_issues, 'issue')}")
            _print_readers(title, [f"{reader.email}  (joined {reader.created_at:%Y-%m-%d})"
                                   for reader in readers])
            if yes:
                console.print(f"unsubscribed {counted(changed, 'reader')}")
            elif readers:
                console.print("nothing changed: add --yes to unsubscribe them")
    if as_json:
        print_json(report)


def _print_readers(title: str, lines: list[str]) -> None:
    """The title, then one line per reader (addresses are printed as they are: no markup)."""
    console.print(title + (":" if lines else ""), soft_wrap=True)
    for line in lines:
        console.print(f"  {line}", soft_wrap=True, markup=False, highlight=False)
