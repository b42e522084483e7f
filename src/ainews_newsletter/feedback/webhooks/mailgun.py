"""Mailgun's webhooks: one JSON object per event, `{"signature": {timestamp, token,
signature}, "event-data": {…}}`, the signature an HMAC-SHA256 with the account's webhook
signing key. The legacy form-encoded webhooks are refused with a message saying which to
choose instead."""

from __future__ import annotations

import hashlib
import hmac
import re

from ainews_newsletter.feedback.classify import classify
from ainews_newsletter.feedback.findings import FeedbackKind
from ainews_newsletter.feedback.webhooks.provider_event import (
    ProviderEvent,
    WebhookBodyError,
    address,
    angle,
    digest,
    hashed_id,
    header_address,
    load_json,
    obj,
    one_line,
    short_id,
    status_code,
    tag_value,
    text,
)

PROVIDER = "mailgun"
LEGACY = ("Mailgun's legacy form-encoded webhooks are not supported: choose the JSON "
          "webhooks (Mailgun's control panel, Sending → Webhooks; the legacy ones are the "
          "form-field webhooks Mailgun calls \"legacy\")")
KINDS = {"delivered": FeedbackKind.DELIVERED, "complained": FeedbackKind.COMPLAINT,
         "unsubscribed": FeedbackKind.UNSUBSCRIBE}
# A failure's reason, where it says more than its severity: a send Mailgun refused because
# of its own suppression lists, or gave up on for reasons that are not the address's.
FAILED_REASONS = {"suppress-bounce": FeedbackKind.HARD,
                  "suppress-complaint": FeedbackKind.COMPLAINT,
                  "suppress-unsubscribe": FeedbackKind.UNSUBSCRIBE,
                  "old": FeedbackKind.SOFT,  # retried for hours, then gave up
                  "espblock": FeedbackKind.SOFT}  # the receiving provider blocks Mailgun
SEVERITIES = {"permanent": FeedbackKind.HARD, "temporary": FeedbackKind.SOFT}
FORM = re.compile(rb"\s*(?:--|[A-Za-z0-9_.%-]+=)")  # multipart boundary or a=b&c=d


def parse(body: bytes | str) -> list[ProviderEvent]:
    try:
        data = load_json(body)
    except WebhookBodyError:
        raw = body.encode("utf-8", "replace") if isinstance(body, str) else body
        if FORM.match(raw[:200]):
            raise WebhookBodyError(LEGACY) from None
        raise
    if not isinstance(data, dict):
        raise WebhookBodyError("Mailgun posts one JSON object per event; this body is not one")
    event_data = data.get("event-data")
    if not isinstance(event_data, dict):
        if "event" in data and ("token" in data or "recipient" in data):
            raise WebhookBodyError(LEGACY)  # the legacy form fields, written out as JSON
        raise WebhookBodyError("a Mailgun webhook body has an \"event-data\" object; this "
                               "one has none")
    return [_event(event_data)]


def _event(data: dict[str, object]) -> ProviderEvent:
    name = text(data.get("event"))
    delivery = obj(data.get("delivery-status"))
    words = (one_line(delivery.get("message")) or one_line(delivery.get("description"))
             or one_line(obj(data.get("reject")).get("reason")) or one_line(data.get("reason")))
    status = status_code(delivery.get("enhanced-code"), words)
    event_type = name[:100]
    if name == "failed":
        severity, reason = text(data.get("severity"))[:40], text(data.get("reason"))[:40]
        kind = FAILED_REASONS.get(reason) or SEVERITIES.get(severity) \
            or classify(status, words, "failed")
        event_type = "/".join(part for part in (name, severity, reason) if part)
    else:
        kind = KINDS.get(name, FeedbackKind.OTHER)
    headers = obj(obj(data.get("message")).get("headers"))
    recipient = address(data.get("recipient")) or header_address(headers.get("to"))
    message_id = angle(headers.get("message-id"))
    event_id = short_id(data.get("id")) or hashed_id(digest(data), recipient, 0)
    return ProviderEvent(
        provider=PROVIDER, event_id=event_id, kind=kind, recipient=recipient,
        provider_message_id=message_id[1:-1], tag=tag_value(
            obj(data.get("user-variables")).get("ainews_tag")),
        message_id=message_id, status=status, diagnostic=words, event_type=event_type,
        occurred_at=text(data.get("timestamp")))


def signature_fields(body: bytes | str) -> tuple[str, str, str] | None:
    """(timestamp, token, signature) from the body's "signature" object; None when the body
    is not JSON or has no complete one."""
    try:
        data = load_json(body)
    except WebhookBodyError:
        return None
    block = obj(obj(data).get("signature"))
    found = (text(block.get("timestamp")), text(block.get("token")),
             text(block.get("signature")))
    return found if all(found) else None


def verify_signature(signing_key: str, timestamp: str, token: str, signature_hex: str) -> bool:
    """HMAC-SHA256 with the webhook signing key over timestamp + token, compared in constant
    time. False for anything malformed, never raises."""
    try:
        expected = hmac.new(signing_key.encode("utf-8"), (timestamp + token).encode("utf-8"),
                            hashlib.sha256).hexdigest().encode("ascii")
        given = signature_hex.strip().lower().encode("utf-8")
    except (UnicodeEncodeError, TypeError, AttributeError):
        return False
    return bool(signing_key) and hmac.compare_digest(expected, given)
