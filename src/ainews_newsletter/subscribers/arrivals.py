"""An import batch's new subscribers, written in bulk: their tokens, and (PostgreSQL: an
SQLite import copies its new rows from the staged batch, staged_merge.py) their INSERT.

A new row reaches the driver as an `Arrival` tuple of the values that differ from row to
row, each already in the driver's form (bulk.native), None where missing."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

from ainews_newsletter.models import SubscriberStatus
from ainews_newsletter.subscribers.bulk import insert_tuples
from ainews_newsletter.subscribers.schema import subscribers
from ainews_newsletter.subscribers.tokens import TOKEN_BYTES

# email, email_normalized, name, status, attributes, token, language (see the doc above)
Arrival = tuple[str, str, str | None, str, Any, str, str | None]

_COLUMNS = ("email", "email_normalized", "name", "status", "attributes", "token", "language",
            "source", "created_at", "updated_at", "confirmed_at", "unsubscribed_at")


# Characters of the prefix a batch's tokens share (4 base64 characters: 24 bits).
BATCH_PREFIX = 4


def new_tokens(count: int) -> list[str]:
    """`count` tokens, each TOKEN_BYTES random bytes of its own (URL-safe base64, no
    padding: the same 144 random bits as `tokens.new_token`) behind a random prefix the
    batch shares. The prefix is why: a unique index of random tokens takes each new one
    on a random page, so every 50,000-row batch of a big import rewrote nearly every page
    of the token index (committed to the WAL, then checkpointed: the biggest single cost of
    a million-row import, BENCHMARKS.md); sharing a prefix, a batch's tokens sit side by
    side in the index and dirty a few hundred pages. It says only that two readers arrived
    in the same batch, and takes nothing from each token's own random part."""
    width = TOKEN_BYTES // 3 * 4  # TOKEN_BYTES is a multiple of 3: no padding, no sharing
    block = base64.urlsafe_b64encode(secrets.token_bytes(TOKEN_BYTES * count + 3)).decode()
    prefix, block = block[:BATCH_PREFIX], block[BATCH_PREFIX:]
    return [prefix + block[start:start + width] for start in range(0, len(block), width)]


assert TOKEN_BYTES % 3 == 0, "new_tokens slices the base64 of a block at token borders"


def insert_arrivals(connection: Connection, rows: Sequence[Arrival], source: str,
                    stamp: Any) -> None:
    """INSERT the new rows in their order (ids in file order), created, updated and, as
    their status says, confirmed or unsubscribed at `stamp` (bulk.native form)."""
    if not rows:
        return
    active, left = SubscriberStatus.ACTIVE.value, SubscriberStatus.UNSUBSCRIBED.value
    insert_tuples(connection, subscribers, _COLUMNS, [
        (email, normalized, name, status, attributes, token, language, source, stamp, stamp,
         stamp if status == active else None, stamp if status == left else None)
        for email, normalized, name, status, attributes, token, language in rows])
