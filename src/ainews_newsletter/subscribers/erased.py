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
from datetime import datetime

from sqlalchemy import Connection, delete, func, insert, select

from ainews_newsletter.errors import ConfigError, SubscriberError
from ainews_newsletter.subscribers.bulk import keyed, one_of
from ainews_newsletter.subscribers.schema import suppressions

HASHED = "hashed:"  # an address the ledger no longer keeps (pipeline/retention.py)
PREFIX = "erased:"  # cannot be an address (no "@"); 7 + 64 characters fit String(320)
MIN_KEY_LENGTH = 16
# Kept apart from the other uses of the secret key (links, form stamps) by its own purpose.
_PURPOSE = b"ainews erased addresses\x00"
# What the refusals say, so the CLI, the importer and the store word it alike.
REFUSED = "erased on request"


def address_hash(secret: str, address: str) -> str:
    """The keyed hash that stands for an address once it is gone: the same address always
    gives the same hash (a later request can still be matched), and without the key nobody
    can test a guess against it."""
    digest = hmac.new(secret.encode("utf-8"), address.strip().lower().encode("utf-8"),
                      hashlib.sha256).hexdigest()
    return HASHED + digest


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
    found = connection.execute(keyed(connection, suppressions.c.email_normalized, list(marks))
                               .select(suppressions.c.email_normalized)).scalars()
    return {marks[mark] for mark in found}


def lift_erased(connection: Connection, secret_key: str, normalized: Iterable[str]) -> None:
    """Take these addresses' marks off the suppression list: the operator forced them
    back in, or their owner confirmed a new sign-up."""
    marks = [erased_mark(secret_key, address) for address in normalized]
    if marks:
        connection.execute(delete(suppressions).where(
            one_of(connection, suppressions.c.email_normalized, marks)))


# The key's fingerprint, on the suppression list beside the marks (no migration: a row no
# address can match, "key-check:" has no "@"), so a changed key is noticed instead of every
# erased address being let back in silently.
KEY_CHECK_PREFIX = "key-check:"
KEY_CHECK_REASON = "key-check"


def key_check(secret_key: str) -> str:
    digest = hmac.new(secret_key.encode("utf-8"), b"ainews key check",
                      hashlib.sha256).hexdigest()
    return KEY_CHECK_PREFIX + digest


def record_key_check(connection: Connection, secret_key: str, now: datetime) -> None:
    """Written by an erase: the fingerprint of the key the marks are made with."""
    if connection.execute(select(suppressions.c.email_normalized).where(
            suppressions.c.reason == KEY_CHECK_REASON)).first() is None:
        connection.execute(insert(suppressions).values(
            email_normalized=key_check(secret_key), reason=KEY_CHECK_REASON, created_at=now))


def require_same_key(connection: Connection, secret_key: str, new_key: bool = False) -> bool:
    """ConfigError when earlier erases used another key: this one's marks would not match
    theirs, so those addresses could be imported again unnoticed. With `new_key` (the
    operator changed the key for good): True, and the caller replaces the fingerprint in
    the transaction of its erase (replace_key_check)."""
    recorded = connection.execute(select(suppressions.c.email_normalized).where(
        suppressions.c.reason == KEY_CHECK_REASON)).scalars().all()
    if not recorded or key_check(secret_key) in recorded:
        return False
    if not new_key:
        raise ConfigError("AINEWS_SECRET_KEY is not the one earlier erases used: set that "
                          "key again, or pass --new-key to erase with this one from now on "
                          "(addresses erased with the old key are then no longer "
                          "recognised on import)")
    return True


def replace_key_check(connection: Connection, secret_key: str, now: datetime) -> None:
    """The fingerprint of `secret_key` instead of any earlier one (`erase --new-key`)."""
    connection.execute(delete(suppressions).where(suppressions.c.reason == KEY_CHECK_REASON))
    record_key_check(connection, secret_key, now)


def check_erase_key(connection: Connection, secret_key: str | None) -> None:
    """SubscriberError when erased addresses exist but cannot be recognised: no key, or
    another key than the one they were erased with (the force option skips this check)."""
    erased = connection.execute(select(func.count()).select_from(suppressions).where(
        suppressions.c.email_normalized.startswith(PREFIX))).scalar_one()
    if not erased:
        return
    where = f"{erased} address{'es were' if erased != 1 else ' was'} {REFUSED}"
    if not secret_key:
        raise SubscriberError(f"{where}; set AINEWS_SECRET_KEY (the same one used to erase) "
                              "so they can be recognised, or pass --force-erased")
    recorded = connection.execute(select(suppressions.c.email_normalized).where(
        suppressions.c.reason == KEY_CHECK_REASON)).scalars().all()
    if recorded and key_check(secret_key) not in recorded:
        raise SubscriberError(f"AINEWS_SECRET_KEY is not the one used to erase ({where}); "
                              "set that one so they can be recognised, or pass --force-erased")
