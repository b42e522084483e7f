"""Address validation and normalization: one person is one row, whatever case they typed."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from ainews_newsletter.errors import SubscriberError


def normalize(address: str) -> tuple[str, str]:
    """(address to store and send to, normalized address) or SubscriberError naming it.

    The stored address is the one given (trimmed), or its ASCII form when the domain is
    internationalized (punycode), so every address can go through any SMTP server without
    SMTPUTF8. Normalized = that ASCII form, fully lower-cased: mailbox names are
    case-insensitive at every provider that matters."""
    given = address.strip()
    if not given:
        raise SubscriberError("empty email address")
    try:
        valid = validate_email(given, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise SubscriberError(f"{given!r} is not a valid email address: {exc}") from None
    ascii_form = valid.ascii_email or valid.normalized
    return (given if given.isascii() else ascii_form), ascii_form.lower()
