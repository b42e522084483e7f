"""`ainews dkim keygen`: make the key messages are signed with, and say the DNS record that
lets receivers verify them."""

from __future__ import annotations

from pathlib import Path

import click

from ainews_newsletter.cli.common import AppState, console, pass_state

# Where a key goes when [dkim] private_key_path is not set, relative to the config's folder.
DEFAULT_KEY_FOLDER = "dkim"


@click.group()
def dkim() -> None:
    """DKIM keys: every message is signed with [dkim]'s key, and receivers check the
    signature against the public half published in DNS."""


@dkim.command()
@click.option("--selector", required=True, metavar="NAME",
              help="The DNS label of this key (e.g. news2026): the record goes at "
                   "NAME._domainkey.DOMAIN. A new key usually gets a new selector.")
@click.option("--domain", metavar="DOMAIN",
              help="The signing domain (d=) [default: [dkim] domain, else the From address's "
                   "domain].")
@click.option("--bits", type=click.IntRange(1024, 4096), default=2048, show_default=True,
              help="RSA key size; 1024 is the floor (RFC 8301).")
@click.option("--force", is_flag=True, help="Replace an existing key file.")
@pass_state
def keygen(state: AppState, selector: str, domain: str | None, bits: int, force: bool) -> None:
    """Write a new RSA private key (mode 0600) where [dkim] private_key_path points (else
    dkim/SELECTOR.private.pem beside the config) and print the TXT record to publish."""
    from ainews_newsletter.delivery.dkim import (
        new_private_key,
        public_key_record,
        write_private_key,
    )

    config = state.config
    configured = config.dkim
    domain = (domain or configured.domain or config.newsletter.from_.rpartition("@")[2]).lower()
    relative = configured.private_key_path or f"{DEFAULT_KEY_FOLDER}/{selector}.private.pem"
    path = config.resolve(relative)
    pem = new_private_key(bits)
    write_private_key(path, pem, force)
    console.print(f"Wrote a {bits}-bit RSA key to {path} (mode 0600).", soft_wrap=True)
    console.print("Publish this TXT record in DNS:")
    console.print(f"  name:  {selector}._domainkey.{domain}", soft_wrap=True)
    console.print(f"  value: {public_key_record(pem)}", soft_wrap=True)
    _say_config_lines(config.source, configured.selector, configured.domain,
                      configured.private_key_path, selector, domain, relative)


def _say_config_lines(source: Path | None, selector_now: str | None, domain_now: str | None,
                      path_now: str | None, selector: str, domain: str, path: str) -> None:
    """Signing uses [dkim] as configured: say the lines to add or change, or the new key
    would sit unused (or be used under a selector whose record holds another key)."""
    wanted = {"selector": selector, "domain": domain, "private_key_path": path}
    now = {"selector": selector_now, "domain": domain_now, "private_key_path": path_now}
    differing = {key: value for key, value in wanted.items() if now[key] != value}
    if not differing:
        return
    where = f" in {source}" if source is not None else ""
    verb = "add" if path_now is None else "change"
    console.print(f"Then {verb} these lines under [dkim]{where} (messages are signed with "
                  "this key only once they say so):", soft_wrap=True)
    for key, value in differing.items():
        console.print(f'  {key} = "{value}"')
