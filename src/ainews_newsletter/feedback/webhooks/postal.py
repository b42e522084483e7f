"""Postal's webhooks: `{"event", "timestamp", "uuid", "payload": {…}}`, one per event, signed
in the X-Postal-Signature header (RSA, SHA-1, over the raw body) with the server's key. The
message events carry `payload.message`; a bounce carries `original_message` and `bounce`.
Server events (DNS errors, send limits) concern no message and give no event."""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ainews_newsletter.feedback.findings import FeedbackKind
from ainews_newsletter.feedback.webhooks.provider_event import (
    ProviderEvent,
    WebhookBodyError,
    address,
    angle,
    digest,
    hashed_id,
    load_json,
    obj,
    one_line,
    short_id,
    status_code,
    tag_value,
    text,
)

PROVIDER = "postal"
KINDS = {"MessageSent": FeedbackKind.DELIVERED, "MessageDelayed": FeedbackKind.SOFT,
         "MessageDeliveryFailed": FeedbackKind.HARD, "MessageBounced": FeedbackKind.HARD}


def parse(body: bytes | str) -> list[ProviderEvent]:
    data = load_json(body)
    if not isinstance(data, dict) or not isinstance(data.get("payload"), dict):
        raise WebhookBodyError("Postal posts one JSON object with a \"payload\" object per "
                               "event; this body is not one")
    payload = obj(data.get("payload"))
    name = text(data.get("event"))[:100]
    if isinstance(payload.get("bounce"), dict):
        # A bounce returned to Postal: the message it returns is "original_message". Its
        # shape decides, whatever the event is called.
        message, kind = obj(payload.get("original_message")), FeedbackKind.HARD
    elif isinstance(payload.get("message"), dict):
        message, kind = obj(payload.get("message")), KINDS.get(name, FeedbackKind.OTHER)
    else:
        return []
    incoming = text(message.get("direction")) == "incoming"
    # A message *to* this server failing to reach its HTTP endpoint is not about our mail.
    recipient = "" if incoming else address(message.get("to"))
    if incoming:
        kind = FeedbackKind.OTHER
    words = one_line(payload.get("details")) or one_line(payload.get("output"))
    message_id = angle(message.get("message_id"))
    event_id = short_id(data.get("uuid")) or hashed_id(digest(data), recipient, 0)
    return [ProviderEvent(
        provider=PROVIDER, event_id=event_id, kind=kind, recipient=recipient,
        provider_message_id=message_id[1:-1], tag=tag_value(message.get("tag")),
        message_id=message_id, status=status_code(payload.get("output"), words),
        diagnostic=words, event_type="/".join(
            part for part in (name, text(payload.get("status"))[:40]) if part),
        occurred_at=text(data.get("timestamp")) or text(payload.get("timestamp")))]


def verify_signature(public_key: str, signature_b64: str, body: bytes,
                     sha256: bool = False) -> bool:
    """X-Postal-Signature: RSA PKCS#1 v1.5 with SHA-1 over the raw body (`sha256`: the
    X-Postal-Signature-256 header newer Postal versions send beside it, SHA-256). The key as
    Postal shows it (base64 DER SubjectPublicKeyInfo without PEM armour) or as PEM. False
    for anything malformed, never raises."""
    try:
        if "-----BEGIN" in public_key:
            key = serialization.load_pem_public_key(public_key.encode("ascii"))
        else:
            key = serialization.load_der_public_key(
                base64.b64decode("".join(public_key.split()), validate=True))
        if not isinstance(key, rsa.RSAPublicKey):
            return False
        signature = base64.b64decode("".join(signature_b64.split()), validate=True)
        digest: hashes.HashAlgorithm = hashes.SHA256() if sha256 else hashes.SHA1()
        key.verify(signature, body, padding.PKCS1v15(), digest)
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError, binascii.Error):
        return False
    return True
