"""The mark an erased address leaves: a keyed hash (HMAC-SHA256 with AINEWS_SECRET_KEY) of
its normalized form, "erased:<hex>". It takes the address's place in the ledger, the
feedback events and the suppression list, so counts stay and a later import of the same
address is still recognised, while the database holds nothing that names the person. The
key is what makes the mark unguessable from a list of addresses; it must stay the same for
the suppression to keep working."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from sqlalchemy import Connection, delete, select

from ainews_newsletter.errors import ConfigError
from ainews_newsletter.subscribers.bulk import one_of
from ainews_newsletter.subscribers.schema import suppressions

PREFIX = "erased:"  # cannot be an address (no "@"); 7 + 64 characters fit String(320)
MIN_KEY_LENGTH = 16
# Kept apart from the other uses of the secret key (links, form stamps) by its own purpose.
_PURPOSE = b"ainews erased addresses\x00"
# What the refusals say, so the CLI, the importer and the store word it alike.
REFUSED = "erased on request"


def require_key(secret_key: str | None) -> str:
    """The secret key, or ConfigError: without it an erase would leave the address itself
    (or a hash anyone can recompute) behind."""
    if not secret_key or len(secret_key) < MIN_KEY_LENGTH:
        raise ConfigError("AINEWS_SECRET_KEY must be set (16+ characters, the same one every "
                          "time) to erase a reader: the erased address is kept only as a "
                          "hash keyed with it")
    return secret_key


def erased_mark(secret_key: str, normalized: str) -> str:
    """"erased:" and the hex HMAC-SHA256 of the normalized address."""
    digest = hmac.new(secret_key.encode("utf-8"), _PURPOSE + normalized.encode("utf-8"),
                      hashlib.sha256).hexdigest()
    return PREFIX + digest


def erased_among(connection: Connection, secret_key: str,
                 normalized: Iterable[str]) -> set[str]:
    """Which of these normalized addresses were erased (their mark is on the suppression
    list)."""
    marks = {erased_mark(secret_key, address): address for address in normalized}
    if not marks:
        return set()
    found = connection.execute(select(suppressions.c.email_normalized).where(
        one_of(connection, suppressions.c.email_normalized, list(marks)))).scalars()
    return {marks[mark] for mark in found}


def lift_erased(connection: Connection, secret_key: str, normalized: Iterable[str]) -> None:
    """Take these addresses' marks off the suppression list: the operator forced them
    back in, or their owner confirmed a new sign-up."""
    marks = [erased_mark(secret_key, address) for address in normalized]
    if marks:
        connection.execute(delete(suppressions).where(
            one_of(connection, suppressions.c.email_normalized, marks)))
