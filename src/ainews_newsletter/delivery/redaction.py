"""The placeholder an erase (pipeline/erasure.py) writes for a free text that may quote an
address, here so that the sender can write it too: a message that was on its way when its
reader was erased must not put the server's reply (a 550 quoting the address) back."""

from __future__ import annotations

import re

ERASED_TEXT = "(erased on request)"
# The start of the keyed mark an erase leaves for an address (subscribers/erased.PREFIX;
# this room may not import that one, a test holds the two equal).
ERASED_PREFIX = "erased:"
# A server's or a report's leading status ("550", "550 5.1.1", "550-5.1.1", "5.1.1"): kept,
# because the reports and `ainews bounces` read the code, never the words after it.
_CODE = re.compile(r"\s*((?:\d{3}(?:[ -]\d\.\d{1,3}\.\d{1,3})?|\d\.\d{1,3}\.\d{1,3}))(?!\S)")


def scrubbed(free_text: str | None) -> str | None:
    """The placeholder for a free text that may quote an address: its SMTP code, if it
    starts with one, and nothing else."""
    if free_text is None:
        return None
    code = _CODE.match(free_text)
    return f"{code.group(1)} {ERASED_TEXT}" if code else ERASED_TEXT
