"""Address validation and normalization: one person is one row, whatever case they typed."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from ainews_newsletter.errors import SubscriberError


def normalize(address: str) -> tuple[str, str]:
    """(address as given but trimmed, normalized address) or SubscriberError naming it.

    Normalized = email-validator's form (IDNA domain, Unicode NFC) with the local part
    lower-cased too: mailbox names are case-insensitive at every provider that matters."""
    given = address.strip()
    if not given:
        raise SubscriberError("empty email address")
    try:
        valid = validate_email(given, check_deliverability=False)
    except EmailNotValidError as exc:
        raise SubscriberError(f"{given!r} is not a valid email address: {exc}") from None
    return given, valid.normalized.lower()
