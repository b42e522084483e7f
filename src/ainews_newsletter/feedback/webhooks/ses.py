"""Amazon SES events, as SNS delivers them: the SNS envelope (its types, its signature, the
URLs it may name) and the SES event inside its Message, in both of SES's layouts: identity
notifications (`notificationType`) and configuration-set event publishing (`eventType`).

A bare SES object (no envelope) is read too: it is what people save from the console or a
queue, and only `ainews bounces ingest --provider ses` accepts it; the web route needs the
envelope, since only the envelope is signed."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
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
    seq,
    short_id,
    status_code,
    tag_value,
    text,
)

PROVIDER = "ses"
SNS_TYPES = ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation")
# The fields SNS signs, in its order (AWS: "Verifying the signatures of Amazon SNS messages").
NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
CONFIRMATION_FIELDS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                       "TopicArn", "Type")
SIGNATURE_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
SNS_HOST = re.compile(r"sns\.[a-z]{2}(?:-[a-z]+)+-\d{1,2}\.amazonaws\.com(?:\.cn)?")
URL_CHARS = re.compile(r"[!-~]+")  # printable ASCII, no space: nothing a parser could mend
BOUNCE_KINDS = {"Permanent": FeedbackKind.HARD, "Transient": FeedbackKind.SOFT}


@dataclass(frozen=True, slots=True)
class SnsEnvelope:
    type: str  # Notification | SubscriptionConfirmation | UnsubscribeConfirmation
    message_id: str
    topic_arn: str
    message: str  # for a Notification from SES: the SES event as a JSON string
    signature_version: str
    signature: str  # base64
    signing_cert_url: str
    subscribe_url: str  # confirmations only
    timestamp: str
    raw: dict[str, object]  # the whole envelope: the string to sign is built from it


def sns_envelope(body: bytes | str) -> SnsEnvelope | None:
    """The SNS envelope of a body, or None when the body is JSON without one (a bare SES
    notification, or something else). WebhookBodyError when the body is not JSON or names an
    SNS type there is none of."""
    return _envelope_of(load_json(body))


def _envelope_of(data: object) -> SnsEnvelope | None:
    fields = obj(data)
    if "Type" not in fields:
        return None
    kind = fields["Type"]
    if not isinstance(kind, str) or kind not in SNS_TYPES:
        raise WebhookBodyError(f"SNS message type {text(kind)[:40]!r} is not one SNS sends "
                               f"(expected one of: {', '.join(SNS_TYPES)})")
    def field(name: str) -> str:  # SNS writes every field as a string
        value = fields.get(name)
        return value if isinstance(value, str) else ""

    return SnsEnvelope(
        type=kind, message_id=text(field("MessageId")), topic_arn=text(field("TopicArn")),
        message=field("Message"), signature_version=field("SignatureVersion"),
        signature=field("Signature"), signing_cert_url=text(field("SigningCertURL")),
        subscribe_url=text(field("SubscribeURL")), timestamp=text(field("Timestamp")), raw=fields)


def sns_string_to_sign(envelope: SnsEnvelope) -> bytes:
    """SNS's canonical string: each signed field present, as "Name\\nvalue\\n", in order.
    Subject is signed only when the notification has one."""
    names = NOTIFICATION_FIELDS if envelope.type == "Notification" else CONFIRMATION_FIELDS
    parts: list[str] = []
    for name in names:
        value = envelope.raw.get(name)
        if value is None:
            continue
        parts.append(f"{name}\n{value if isinstance(value, str) else text(value)}\n")
    return "".join(parts).encode("utf-8", "replace")


def verify_sns_signature(envelope: SnsEnvelope, certificate_pem: bytes) -> bool:
    """Signature version 1 (SHA1withRSA) or 2 (SHA256withRSA) by the certificate's key. Any
    other version, a malformed signature or certificate: False. The certificate's dates and
    issuer are the caller's business (a pinned certificate is taken as the operator's)."""
    algorithm = SIGNATURE_HASHES.get(envelope.signature_version)
    if algorithm is None:
        return False
    try:
        signature = base64.b64decode(envelope.signature, validate=True)
        key = x509.load_pem_x509_certificate(certificate_pem).public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            return False
        key.verify(signature, sns_string_to_sign(envelope), padding.PKCS1v15(), algorithm())
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError, binascii.Error):
        return False
    return True


def certificate_in_date(certificate_pem: bytes, at: datetime) -> bool:
    """Whether a fetched certificate is valid at `at` (an aware datetime); False when it
    cannot be read."""
    try:
        certificate = x509.load_pem_x509_certificate(certificate_pem)
        return certificate.not_valid_before_utc <= at <= certificate.not_valid_after_utc
    except (ValueError, TypeError):
        return False


def _sns_url(url: str) -> tuple[str, str, str] | None:
    """(path, query, fragment) of an https URL on an SNS regional host, else None. The whole
    host is compared (no user, no port, lower case): sns.us-east-1.amazonaws.com.evil.test,
    user@… and %-tricks fail."""
    if len(url) > 2000 or not URL_CHARS.fullmatch(url) or "\\" in url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme != "https" or not SNS_HOST.fullmatch(parts.netloc):
        return None
    return parts.path, parts.query, parts.fragment


def valid_sns_url(url: str) -> bool:
    """A SigningCertURL we may fetch: https://sns.<region>.amazonaws.com[.cn]/….pem."""
    found = _sns_url(url)
    return found is not None and found[0].endswith(".pem") and not found[1] and not found[2]


def valid_subscribe_url(url: str) -> bool:
    """A SubscribeURL we may open: the same hosts, any path and query."""
    return _sns_url(url) is not None


def parse(body: bytes | str) -> list[ProviderEvent]:
    """Events of an SNS body (a Notification: its SES event; confirmations: none) or of a
    bare SES notification."""
    data = load_json(body)
    envelope = _envelope_of(data)
    if envelope is not None:
        return envelope_events(envelope)
    fields = obj(data)
    if not isinstance(data, dict) or not _ses_type(fields):
        raise WebhookBodyError("not an SNS message (no Type) nor an SES notification (no "
                               "notificationType or eventType)")
    return ses_events(fields, "")


def envelope_events(envelope: SnsEnvelope) -> list[ProviderEvent]:
    """The SES events of a Notification: none for confirmations, or when its Message is not
    an SES event (SES's "Successfully validated SNS topic" is plain text)."""
    if envelope.type != "Notification":
        return []
    try:
        data = json.loads(envelope.message)
    except (ValueError, RecursionError):
        return []
    fields = obj(data)
    return ses_events(fields, envelope.message_id) if _ses_type(fields) else []


def _ses_type(fields: dict[str, object]) -> str:
    return text(fields.get("notificationType")) or text(fields.get("eventType"))


def ses_events(data: dict[str, object], sns_message_id: str) -> list[ProviderEvent]:
    """One event per affected recipient of an SES notification or event."""
    kind_name = _ses_type(data)
    mail = obj(data.get("mail"))
    # Each entry: (recipient value, kind, status, diagnostic); one shared type and time.
    found: list[tuple[object, FeedbackKind, str, str]] = []
    event_type, occurred, feedback_type = kind_name, text(mail.get("timestamp")), None
    if kind_name in ("Bounce", "DeliveryDelay"):
        key, list_key = (("bounce", "bouncedRecipients") if kind_name == "Bounce"
                         else ("deliveryDelay", "delayedRecipients"))
        detail = obj(data.get(key))
        if kind_name == "Bounce":
            bounce_type = text(detail.get("bounceType"))
            kind = BOUNCE_KINDS.get(bounce_type, FeedbackKind.OTHER)
            event_type = f"Bounce/{bounce_type}/{text(detail.get('bounceSubType'))}"
        else:  # SES still retries: the same "failed for now" as SendGrid's deferred
            kind = FeedbackKind.SOFT
            event_type = f"DeliveryDelay/{text(detail.get('delayType'))}"
        occurred = text(detail.get("timestamp")) or occurred
        for item in seq(detail.get(list_key)):
            entry = obj(item)
            words = entry.get("diagnosticCode")
            found.append((entry.get("emailAddress"), kind, status_code(entry.get("status"),
                          words), one_line(text(words).removeprefix("smtp; "))))
    elif kind_name == "Complaint":
        detail = obj(data.get("complaint"))
        occurred = text(detail.get("timestamp")) or occurred
        feedback_type = text(detail.get("complaintFeedbackType"))[:64] or None
        event_type = f"Complaint/{feedback_type or ''}".rstrip("/")
        words = one_line(detail.get("userAgent"))
        found = [(obj(item).get("emailAddress"), FeedbackKind.COMPLAINT, "", words)
                 for item in seq(detail.get("complainedRecipients"))]
    elif kind_name == "Delivery":
        detail = obj(data.get("delivery"))
        occurred = text(detail.get("timestamp")) or occurred
        words = one_line(detail.get("smtpResponse"))
        found = [(item, FeedbackKind.DELIVERED, status_code(words), words)
                 for item in seq(detail.get("recipients"))]
    else:  # Send, Reject, Open, Click, Rendering Failure, Subscription: every destination
        kind, words = _other(kind_name, data)
        found = [(item, kind, "", words) for item in seq(mail.get("destination"))]
    provider_id = short_id(mail.get("messageId"))
    tags = seq(obj(mail.get("tags")).get("ainews_tag"))  # SES gives each tag as a list
    tag = tag_value(tags[0]) if tags else ""
    message_id = _message_id(mail)
    base = "" if sns_message_id else digest(data)
    events = []
    for index, (value, kind, status, words) in enumerate(found):
        recipient = address(value)
        event_id = (f"{short_id(sns_message_id)}:{index}" if sns_message_id
                    else hashed_id(base, recipient, index))
        events.append(ProviderEvent(
            provider=PROVIDER, event_id=event_id, kind=kind, recipient=recipient,
            provider_message_id=provider_id, tag=tag, message_id=message_id, status=status,
            diagnostic=words, event_type=event_type, occurred_at=occurred,
            feedback_type=feedback_type))
    return events


def _other(kind_name: str, data: dict[str, object]) -> tuple[FeedbackKind, str]:
    """The kind and words of an event-publishing event that is no bounce or complaint."""
    if kind_name == "Reject":
        return FeedbackKind.OTHER, one_line(obj(data.get("reject")).get("reason"))
    if kind_name == "Rendering Failure":
        return FeedbackKind.OTHER, one_line(obj(data.get("failure")).get("errorMessage"))
    if kind_name == "Subscription":  # SES's own list management: its unsubscribe link
        preferences = obj(obj(data.get("subscription")).get("newTopicPreferences"))
        if preferences.get("unsubscribeAll") is True:
            return FeedbackKind.UNSUBSCRIBE, "unsubscribed from all topics"
    return FeedbackKind.OTHER, ""


def _message_id(mail: dict[str, object]) -> str:
    """Our Message-ID, when SES includes the original headers."""
    common = angle(obj(mail.get("commonHeaders")).get("messageId"))
    if common:
        return common
    for header in seq(mail.get("headers")):
        fields = obj(header)
        if text(fields.get("name")).lower() == "message-id":
            return angle(fields.get("value"))
    return ""
