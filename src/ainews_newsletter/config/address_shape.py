"""The config's own addresses (from, reply_to, notify, …) of the everyday shape, judged
without email-validator: importing it, with the tables of idna that its first check loads,
cost more than the rest of the config's validation (BENCHMARKS.md, "Start-up"), and every
command loads the config. The shape: plain ASCII, a dot-atom local part, a domain of
letter-digit-hyphen labels whose last ends in a letter, no IDNA (xn--) label, no special-use
name. Such an address is accepted with exactly email-validator's result for the config's
check (tests/test_config_address_shape.py asks it with hypothesis); anything else goes to
email-validator."""

from __future__ import annotations

import re

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_LOCAL = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
_DOMAIN = re.compile(rf"(?:{_LABEL}\.)+{_LABEL}")
# email-validator's SPECIAL_USE_DOMAIN_NAMES less "test", which its test environment (the
# config's check) allows; tests/test_config_address_shape.py holds the two lists together.
SPECIAL_USE_BUT_TEST = ("arpa", "invalid", "local", "localhost", "onion")
_LONGEST_LOCAL = 64
_LONGEST_ADDRESS = 254


def everyday_address(value: str) -> str | None:
    """`value` as email-validator normalizes it (the domain in lower case) when it has the
    everyday shape; None: email-validator must judge it."""
    at = value.find("@")
    if (at < 1 or at > _LONGEST_LOCAL or len(value) > _LONGEST_ADDRESS
            or _LOCAL.fullmatch(value, 0, at) is None):
        return None
    domain = value[at + 1:]
    if _DOMAIN.fullmatch(domain) is None or not domain[-1].isalpha():
        return None
    domain = domain.lower()
    if any(label[2:4] == "--" for label in domain.split(".")) or any(
            domain == name or domain.endswith("." + name) for name in SPECIAL_USE_BUT_TEST):
        return None
    return value[:at] + "@" + domain
