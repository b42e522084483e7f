"""The envelope sender of each message. With a bounce mailbox configured it is a VERP address,
`bounces+<tag>@domain`, whose tag names the delivery row: a bounce that comes back to it says
which message failed even when the bounce itself is unreadable or names a forwarded address."""

from __future__ import annotations

import base64
import secrets

from ainews_newsletter.config import VERP_TAG_LENGTH


def new_return_tag() -> str:
    """16 lower-case base32 characters: 80 random bits, unguessable, and unchanged by mail
    systems that fold the local part to lower case."""
    raw = secrets.token_bytes(VERP_TAG_LENGTH * 5 // 8)
    return base64.b32encode(raw).decode("ascii").lower()


# new_return_tags slices the base32 of a block at tag borders: each tag must be whole bytes
# that base32 turns into whole characters (5 bytes → 8), or tags would share bits.
assert VERP_TAG_LENGTH % 8 == 0, "a tag must be a whole number of base32 groups"


def new_return_tags(count: int) -> list[str]:
    """`count` tags as new_return_tag makes them, from one draw of random bytes and one
    base32 pass (a send's snapshot tags every reader: per tag, the calls cost more than the
    randomness). Each tag is its own 10 bytes, so each is as unguessable as one alone."""
    size = VERP_TAG_LENGTH * 5 // 8  # 10 bytes: 16 base32 characters, no padding
    text = base64.b32encode(secrets.token_bytes(size * count)).decode("ascii").lower()
    return [text[start:start + VERP_TAG_LENGTH]
            for start in range(0, count * VERP_TAG_LENGTH, VERP_TAG_LENGTH)]


def verp_address(bounce_address: str, delimiter: str, tag: str) -> str:
    """`bounces@news.example` + tag → `bounces+tag@news.example` (the config checked that
    the local part stays within 64 octets)."""
    local, domain = bounce_address.rsplit("@", 1)
    return f"{local}{delimiter}{tag}@{domain}"
