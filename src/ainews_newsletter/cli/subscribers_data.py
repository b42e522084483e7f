"""`ainews subscribers data EMAIL`: everything kept about one reader, as the JSON their own
"Download my data" link gives them (pipeline/reader_data.py), to answer a request by mail."""

from __future__ import annotations

import click

from ainews_newsletter.cli.common import AppState, pass_state, print_json


@click.command("data")
@click.argument("email")
@pass_state
def data(state: AppState, email: str) -> None:
    """Print everything kept about EMAIL as JSON: profile, lists, history, consent, every
    delivery with its issue, date and outcome, the welcome, bounces and complaints, clicks.
    The same file the reader downloads from their preferences page."""
    from ainews_newsletter.pipeline.reader_data import reader_data_by_address

    print_json(reader_data_by_address(state.config, email))
