"""Opaque per-subscriber tokens for unsubscribe links: random, not derived from the address,
so a link reveals nothing and cannot be guessed for someone else."""

from __future__ import annotations

import secrets

TOKEN_BYTES = 18


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)
