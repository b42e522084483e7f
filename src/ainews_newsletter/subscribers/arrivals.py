"""An import batch's new subscribers, written in bulk: their tokens and their INSERT.

A new row reaches the driver as an `Arrival` tuple of the values that differ from row to
row, each already in the driver's form (bulk.native), a missing name, attributes or language
as "" (never a value of its own: names, JSON and language tags are never empty). On SQLite
the statement turns "" back into NULL and takes the batch's source and time as literals, and
the confirmation and unsubscribe times from the status: at a million rows each value bound
per row costs, and a None costs the driver an adapter lookup (more than a string)."""

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
Arrival = tuple[str, str, str, str, Any, str, str]

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


def sqlite_text(value: str) -> str:
    """`value` as an SQLite string literal: SQLite's only escape is a doubled quote (no
    backslashes). A NUL cannot be in a statement's text: dropped (no file name has one)."""
    return "'" + value.replace("\x00", "").replace("'", "''") + "'"


def insert_arrivals(connection: Connection, rows: Sequence[Arrival], source: str,
                    stamp: Any) -> None:
    """INSERT the new rows in their order (ids in file order), created, updated and, as
    their status says, confirmed or unsubscribed at `stamp` (bulk.native form)."""
    if not rows:
        return
    active, left = SubscriberStatus.ACTIVE.value, SubscriberStatus.UNSUBSCRIBED.value
    if connection.dialect.name != "sqlite":
        insert_tuples(connection, subscribers, _COLUMNS, [
            (email, normalized, name or None, status, attributes or None, token,
             language or None, source, stamp, stamp, stamp if status == active else None,
             stamp if status == left else None)
            for email, normalized, name, status, attributes, token, language in rows])
        return
    at, origin = sqlite_text(stamp), sqlite_text(source)
    connection.exec_driver_sql(
        f"INSERT INTO {subscribers.name} ({', '.join(_COLUMNS)}) VALUES (?1, ?2, NULLIF(?3, ''), "
        f"?4, NULLIF(?5, ''), ?6, NULLIF(?7, ''), {origin}, {at}, {at}, "
        f"CASE ?4 WHEN '{active}' THEN {at} END, CASE ?4 WHEN '{left}' THEN {at} END)",
        rows)
