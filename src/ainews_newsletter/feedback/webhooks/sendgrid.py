"""SendGrid's Event Webhook: a JSON array of events (thousands in one POST), signed with
ECDSA P-256 when the Signed Event Webhook is on. The old bounce-list records (email, status,
reason, created: no event name) are read too, judged by their words."""

from __future__ import annotations

import base64
import binascii
import re

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ainews_newsletter.feedback.classify import classify
from ainews_newsletter.feedback.findings import FeedbackKind
from ainews_newsletter.feedback.webhooks.provider_event import (
    ProviderEvent,
    WebhookBodyError,
    address,
    angle,
    digest,
    hashed_id,
    load_json,
    one_line,
    short_id,
    status_code,
    tag_value,
    text,
)

PROVIDER = "sendgrid"
KINDS = {"deferred": FeedbackKind.SOFT, "delivered": FeedbackKind.DELIVERED,
         "spamreport": FeedbackKind.COMPLAINT, "unsubscribe": FeedbackKind.UNSUBSCRIBE,
         "group_unsubscribe": FeedbackKind.UNSUBSCRIBE}
# Why SendGrid dropped a message without trying: an address it knows is dead, or one on its
# suppression lists. Other reasons (spam content, bad SMTPAPI header, quota) are ours.
DROPPED = {"bounced address": FeedbackKind.HARD, "invalid": FeedbackKind.HARD,
           "spam reporting address": FeedbackKind.COMPLAINT,
           "unsubscribed address": FeedbackKind.UNSUBSCRIBE}
# sg_message_id is "<queue id>.filter…" (older: "….recvd-…"); the queue id is what the
# relay answered ("250 Ok: queued as <id>"), and in SendGrid's older ids it holds dots.
QUEUE_ID = re.compile(r"(.*?)\.(?:filter|recvd-)")


def parse(body: bytes | str) -> list[ProviderEvent]:
    data = load_json(body)
    if not isinstance(data, list):
        raise WebhookBodyError("SendGrid posts a JSON array of events; this body is not one")
    events = []
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            raise WebhookBodyError(f"SendGrid event {index + 1} is not a JSON object")
        events.append(_event(item))
    return events


def _event(item: dict[str, object]) -> ProviderEvent:
    name = text(item.get("event"))
    words = one_line(item.get("reason")) or one_line(item.get("response"))
    status = status_code(item.get("status"), words)
    if name == "bounce":
        bounce_type = text(item.get("type"))
        kind = FeedbackKind.SOFT if bounce_type == "blocked" else FeedbackKind.HARD
        event_type = f"bounce/{bounce_type}" if bounce_type else name
    elif name == "dropped":
        reason = text(item.get("reason")).strip().lower()
        kind = DROPPED.get(reason, FeedbackKind.OTHER)
        event_type = f"dropped/{reason}"[:100].rstrip("/")
    elif not name and "email" in item and ("reason" in item or "status" in item):
        # The old bounce list carries no label: its words decide, as in a returned mail.
        kind, event_type = classify(status, words, "failed"), "bounce-list"
    else:
        kind, event_type = KINDS.get(name, FeedbackKind.OTHER), name[:100]
    recipient = address(item.get("email"))
    event_id = short_id(item.get("sg_event_id")) or hashed_id(digest(item), recipient, 0)
    return ProviderEvent(
        provider=PROVIDER, event_id=event_id, kind=kind, recipient=recipient,
        provider_message_id=queue_id(text(item.get("sg_message_id"))),
        tag=tag_value(item.get("ainews_tag")), message_id=angle(item.get("smtp-id")),
        status=status, diagnostic=words, event_type=event_type,
        occurred_at=text(item.get("timestamp")) or text(item.get("created")))


def queue_id(sg_message_id: str) -> str:
    """The relay's queue id inside an sg_message_id ("" when it has none: a message dropped
    before it was queued has only the filter part)."""
    value = short_id(sg_message_id)
    if not value or value.startswith(("filter", "recvd-", "sha256:")):
        return ""
    found = QUEUE_ID.match(value)
    return found.group(1) if found else value.partition(".")[0]


def verify_signature(public_key_b64_der: str, signature_b64: str, timestamp: str,
                     body: bytes) -> bool:
    """The Signed Event Webhook: ECDSA P-256 with SHA-256 over the timestamp header followed
    by the raw body; the signature is base64 DER, the key as SendGrid shows it (base64 DER
    SubjectPublicKeyInfo; PEM is taken too). False for anything malformed, never raises."""
    try:
        if "-----BEGIN" in public_key_b64_der:
            key = serialization.load_pem_public_key(public_key_b64_der.encode("ascii"))
        else:
            key = serialization.load_der_public_key(
                base64.b64decode("".join(public_key_b64_der.split()), validate=True))
        if not isinstance(key, ec.EllipticCurvePublicKey) or \
                not isinstance(key.curve, ec.SECP256R1):
            return False
        signature = base64.b64decode(signature_b64.strip(), validate=True)
        key.verify(signature, timestamp.encode("utf-8") + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError, binascii.Error):
        return False
    return True
