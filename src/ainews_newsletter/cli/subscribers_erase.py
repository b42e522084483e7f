"""`ainews subscribers erase`: a reader erased on request. Apart from subscribers.py (which
loads it lazily) to keep that module short."""

from __future__ import annotations

from pathlib import Path

import click

from ainews_newsletter.cli.common import (
    AppState,
    confirmed,
    console,
    json_option,
    pass_state,
    print_json,
)
from ainews_newsletter.models import counted


@click.command()
@click.argument("emails", metavar="EMAIL...", nargs=-1)
@click.option("--file", "address_file", type=click.Path(exists=True, dir_okay=False,
                                                         path_type=Path),
              help="Also erase the addresses in FILE, one a line (blank lines and lines "
                   "starting with # are skipped).")
@click.option("--new-key", is_flag=True,
              help="AINEWS_SECRET_KEY was changed for good: erase with the new one and keep "
                   "it from now on. Addresses erased with the old key are then no longer "
                   "recognised when imported or added.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@json_option
@pass_state
def erase(state: AppState, emails: tuple[str, ...], address_file: Path | None,
          new_key: bool, yes: bool, as_json: bool) -> None:
    """Erase each EMAIL on request (GDPR): the reader's row, lists, consent record, clicks
    and welcome mail are deleted; in the delivery ledger and the bounce/complaint events
    the address and name become a keyed hash and free text naming them is cleared (reports
    keep their counts); the suppression list keeps only the hash, so a later import or
    `add` of the address is refused unless forced, while its owner may still sign up again
    through double opt-in. Needs AINEWS_SECRET_KEY, always the same one (another one is
    refused unless --new-key). Erasing an address again, or one never stored, changes
    nothing and is reported as not found."""
    from ainews_newsletter.pipeline.erasure import check_erase_allowed
    from ainews_newsletter.pipeline.erasure import erase as erase_addresses

    addresses = list(emails)
    if address_file is not None:
        lines = address_file.read_text(encoding="utf-8-sig").splitlines()
        addresses += [line.strip() for line in lines
                      if line.strip() and not line.lstrip().startswith("#")]
    addresses = list(dict.fromkeys(address for address in addresses if address.strip()))
    if not addresses:
        raise click.UsageError("name at least one EMAIL, or --file FILE")
    config = state.config
    check_erase_allowed(config, new_key)  # a key problem is said before the question
    if not confirmed(f"Erase {counted(len(addresses), 'address', 'addresses')} for good?",
                     yes):
        console.print("Not erased.")
        raise SystemExit(1)
    done = erase_addresses(config, addresses, new_key=new_key)
    if as_json:
        print_json([item.as_record() for item in done])
        return
    if done and done[0].file.startswith("vacuum failed"):
        console.print(f"All erased and committed; rebuilding the file failed ({done[0].file}):"
                      " old free space may still hold them. Run the erase again to retry.",
                      markup=False)
    for item in done:
        if not item.found:
            console.print(f"not found: {item.address} (nothing stored; the hash is on the "
                          "suppression list)", markup=False)
            continue
        console.print(
            f"erased {item.address}: subscriber {'deleted' if item.subscriber else 'gone already'}"
            f", {counted(item.deliveries, 'delivery', 'deliveries')} and "
            f"{counted(item.feedback_events, 'feedback event')} hashed"
            f" ({item.not_sent} not sent), {counted(item.clicks, 'click')} and "
            f"{counted(item.welcomes, 'welcome mail')} deleted", markup=False)
