"""What sending providers report by webhook (Amazon SES through SNS, SendGrid, Mailgun,
Postmark, Postal), read into ProviderEvents without side effects, and the pure checks of
each provider's signature. Receiving, matching and acting on them is pipeline's job.

`parse_body` never raises anything but WebhookBodyError (the body is not JSON, or not the
shape the provider posts) and UnsupportedProvider, whatever the body: these bodies come from
a public URL."""

from __future__ import annotations

from collections.abc import Callable

from ainews_newsletter.feedback.webhooks import mailgun, postal, postmark, sendgrid, ses
from ainews_newsletter.feedback.webhooks.provider_event import (
    ProviderEvent,
    UnsupportedProvider,
    WebhookBodyError,
)

__all__ = ["PROVIDERS", "ProviderEvent", "UnsupportedProvider", "WebhookBodyError",
           "check_provider", "parse_body"]

PROVIDERS = ("ses", "sendgrid", "mailgun", "postmark", "postal")
_PARSERS: dict[str, Callable[[bytes | str], list[ProviderEvent]]] = {
    "ses": ses.parse, "sendgrid": sendgrid.parse, "mailgun": mailgun.parse,
    "postmark": postmark.parse, "postal": postal.parse}


def check_provider(provider: str) -> None:
    """UnsupportedProvider, naming the ones we hear, for any other name."""
    if provider not in _PARSERS:
        raise UnsupportedProvider(f"provider {provider[:40]!r} is not supported "
                                  f"(supported: {', '.join(PROVIDERS)})")


def parse_body(provider: str, body: bytes | str) -> list[ProviderEvent]:
    """The events of one webhook body (raw bytes as posted), one per affected recipient."""
    check_provider(provider)
    parser = _PARSERS[provider]
    try:
        return parser(body)
    except RecursionError:
        # JSON nested just short of the reader's limit can still be too deep to hash.
        raise WebhookBodyError("the body is nested too deeply") from None
