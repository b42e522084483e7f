"""The mark an erased address leaves: a keyed hash (HMAC-SHA256 with AINEWS_SECRET_KEY) of
its normalized form, "erased:<hex>". It takes the address's place in the ledger, the
feedback events and the suppression list, so counts stay and a later import of the same
address is still recognised, while the database holds nothing that names the person. The
key is what makes the mark unguessable from a list of addresses; it must stay the same for
the suppression to keep working."""

from __future__ import annotations

import hashlib
import hmac

from ainews_newsletter.errors import ConfigError

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
