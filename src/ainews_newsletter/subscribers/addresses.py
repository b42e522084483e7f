"""Address validation and normalization: one person is one row, whatever case they typed.

email-validator decides what is valid. Imports of a million rows cannot afford its cost
per address, so plain ASCII addresses of the everyday shape take a fast path that accepts
only what email-validator accepts, with the same result; tests/subscribers/test_addresses.py
checks that claim with hypothesis. Everything else goes to email-validator."""

from __future__ import annotations

import re
from functools import cache, lru_cache
from typing import Any

from ainews_newsletter.config import is_test_domain
from ainews_newsletter.errors import SubscriberError

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_LOCAL = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
_DOMAIN = re.compile(rf"(?:{_LABEL}\.)+{_LABEL}")


@cache
def _special_use() -> tuple[frozenset[str], tuple[str, ...]]:
    """email-validator's special-use names, loaded on first use (the module is slow to
    import, which a quick `ainews subscribers count` should not pay)."""
    from email_validator import SPECIAL_USE_DOMAIN_NAMES

    names = frozenset(SPECIAL_USE_DOMAIN_NAMES)
    return names, tuple("." + name for name in names)


@cache
def _validator() -> tuple[type[Exception], Any]:
    """email-validator, imported on first use (slow to import; and an import statement in
    normalize() costs its lookup on every row of a large import)."""
    from email_validator import EmailNotValidError, validate_email

    return EmailNotValidError, validate_email


@lru_cache(maxsize=4096)
def _everyday_domain(domain: str, allow_test: bool) -> bool:
    """Whether the fast path may judge an address at `domain` (as typed). A list holds
    few domains many times over, so this is asked once per domain, not once per row."""
    if _DOMAIN.fullmatch(domain) is None:
        return False
    domain = domain.lower()
    special, special_suffixes = _special_use()
    reserved = (domain in special or domain.endswith(special_suffixes)) and not (
        allow_test and is_test_domain(domain))
    # A TLD must end in a letter; "xx--" labels are IDNA's (punycode and reserved);
    # special-use names are refused: all of these go to email-validator to judge.
    return not (not domain[-1].isalpha() or ("--" in domain and any(
        label[2:4] == "--" for label in domain.split("."))) or reserved)


def plain_form(given: str, allow_test: bool) -> tuple[str, str] | None:
    """What `normalize(given, allow_test=allow_test)` returns when `given` is trimmed and an
    address of the everyday shape (its fast path), else None: ask `normalize`. Called
    directly by loops over a million addresses (formats._plain_rows): one call less a row."""
    # local@domain, neither holding an "@" (the local part's characters exclude it), so
    # the first "@" is the only one of an address this path accepts.
    at = given.find("@")
    if (at < 1 or at > 64 or len(given) > 254 or _LOCAL.fullmatch(given, 0, at) is None
            or not _everyday_domain(given[at + 1:], allow_test)):
        return None
    # Everything matched is ASCII: the normalized form is the address in lower case (its
    # domain lower-cased, then the whole).
    return given, given.lower()


def normalize(address: str, check_dns: bool = False,
              allow_test: bool = False) -> tuple[str, str]:
    """(address to store and send to, normalized address) or SubscriberError naming it.

    The stored address is the one given (trimmed), or its ASCII form when the domain is
    internationalized (punycode), so it can go through any SMTP server without SMTPUTF8.
    A non-ASCII local part (RFC 6531, "ömil@example.com") has no ASCII form: it is stored
    as its NFC local part at the ASCII domain and needs a relay that offers SMTPUTF8.
    Normalized = the stored form, fully lower-cased: mailbox names are case-insensitive at
    every provider that matters. `allow_test`: addresses under `.test` are accepted
    ([subscribers] allow_test_domains, for staging against a local mail server)."""
    given = address.strip()
    if not given:
        raise SubscriberError("empty email address")
    if "\r" in given or "\n" in given:
        raise SubscriberError(f"{given!r} contains a line break")
    if not check_dns:
        fast = plain_form(given, allow_test)
        if fast is not None:
            return fast
    if "<" in given or ">" in given:
        raise SubscriberError(f"{given!r} looks like a name and an address; put only the "
                              "address (name@example.com) in the email field")
    refused = _plain_refusal(given, allow_test)
    if refused is not None:  # a fault of the shape, whatever the domain: no hint
        raise SubscriberError(f"{given!r} is not a valid email address: {refused}")
    # A DNS answer may change (the web server runs for weeks), and a value longer than any
    # address (a cell may hold a megabyte) is not worth keeping: neither is remembered.
    remembered = not check_dns and len(given) <= MAX_REMEMBERED
    checked = (_validated if remembered else _validated.__wrapped__)(given, check_dns,
                                                                    allow_test)
    if isinstance(checked, tuple):
        return checked
    raise SubscriberError(f"{given!r} is not a valid email address: {checked}"
                          + ("" if allow_test else reserved_domain_hint(given)))


def _plain_refusal(given: str, allow_test: bool) -> str | None:
    """email-validator's own words for the plainest faults, without its cost (about 13 µs
    a call): a hostile file of 500,000 rows of "a" or "@" is refused in a second, not in
    ten. Each case is one email-validator refuses with exactly this message
    (tests/subscribers/test_addresses.py checks it with hypothesis)."""
    if "\uff20" in given or "\ufe6b" in given:
        return None  # a full-width or small "@": email-validator names it in its own words
    at = given.rfind("@")
    if at < 0:
        return "An email address must have an @-sign."
    if given[0] == "@":
        return "There must be something before the @-sign."
    if given.find("@") != at or _LOCAL.fullmatch(given, 0, at) is None:
        return None  # a local part of any other shape: email-validator judges it first
    if at == len(given) - 1:
        return "There must be something after the @-sign."
    domain = given[at + 1:]
    if (len(domain) <= 63 and domain.isascii() and domain.isalnum()
            and not (allow_test and is_test_domain(domain))):
        return "The part after the @-sign is not valid. It should have a period."
    return None


MAX_REMEMBERED = 320  # characters: longer than any address email-validator accepts (254)


@lru_cache(maxsize=1024)
def _validated(given: str, check_dns: bool, allow_test: bool) -> tuple[str, str] | str:
    """email-validator's judgement: (stored, normalized) or its reason for refusing.
    Remembered for the last 1,024 values without DNS, so a file repeating one odd value
    pays once."""
    not_valid, validate_email = _validator()
    try:
        # email-validator's test environment also turns DNS checks off: only for .test.
        testing = allow_test and is_test_domain(given.rpartition("@")[2])
        valid = validate_email(given, check_deliverability=check_dns and not testing,
                               allow_smtputf8=True, test_environment=testing)
    except not_valid as exc:
        return str(exc)
    if valid.ascii_email is None:  # an internationalized local part: SMTPUTF8 only
        stored = f"{valid.local_part}@{valid.ascii_domain}"
        return stored, stored.lower()
    ascii_form = valid.ascii_email
    return (given if given.isascii() else ascii_form), ascii_form.lower()


def reserved_domain_hint(address: str) -> str:
    """The way out when a `.test` address is refused: the setting that allows it."""
    if is_test_domain(address.rpartition("@")[2]):
        return (" (addresses under .test are accepted with [subscribers] "
                "allow_test_domains = true, for staging)")
    return ""
