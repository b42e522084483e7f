"""Reading a VERP tag back out of the address a bounce was sent to (delivery/returnpath.py
writes it): `bounces+k3q…@news.example` → `k3q…`, only for our bounce mailbox and only when
the tag has the shape we write, so any other address yields nothing."""

from __future__ import annotations

import re

from ainews_newsletter.config import VERP_TAG_LENGTH

_TAG = re.compile(rf"[a-z2-7]{{{VERP_TAG_LENGTH}}}")


def tag_in(address: str, bounce_address: str, delimiter: str) -> str | None:
    local, _, domain = address.strip().strip("<>").rpartition("@")
    our_local, _, our_domain = bounce_address.rpartition("@")
    if domain.lower() != our_domain.lower():
        return None
    prefix = f"{our_local}{delimiter}".lower()
    if not local.lower().startswith(prefix):
        return None
    tag = local[len(prefix):].lower()
    return tag if _TAG.fullmatch(tag) else None
