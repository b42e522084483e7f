"""Postmark's webhooks: one JSON object per event, told apart by `RecordType` (Bounce,
SpamComplaint, Delivery, Open, Click, SubscriptionChange). Postmark signs nothing: the route
checks basic auth. Bounce types are Postmark's own list (its "Bounce types" reference)."""

from __future__ import annotations

from ainews_newsletter.feedback.findings import FeedbackKind
from ainews_newsletter.feedback.webhooks.provider_event import (
    ProviderEvent,
    WebhookBodyError,
    address,
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

PROVIDER = "postmark"
RECORD_KINDS = {"SpamComplaint": FeedbackKind.COMPLAINT, "Delivery": FeedbackKind.DELIVERED}
BOUNCE_KINDS = {
    "HardBounce": FeedbackKind.HARD, "BadEmailAddress": FeedbackKind.HARD,
    "SoftBounce": FeedbackKind.SOFT, "Transient": FeedbackKind.SOFT,
    "DnsError": FeedbackKind.SOFT, "Blocked": FeedbackKind.SOFT,
    "SpamNotification": FeedbackKind.SOFT,  # the receiver filtered it: no reader complained
    "VirusNotification": FeedbackKind.SOFT, "DMARCPolicy": FeedbackKind.SOFT,
    "SpamComplaint": FeedbackKind.COMPLAINT,
    "Unsubscribe": FeedbackKind.UNSUBSCRIBE,  # "Unsubscribe or Remove request"
    "AutoResponder": FeedbackKind.AUTOREPLY, "ChallengeVerification": FeedbackKind.AUTOREPLY,
}
# A SubscriptionChange that stops sending, by its reason: the reader's click on Postmark's
# unsubscribe link (or a person suppressing the address by hand) is ManualSuppression.
SUPPRESSION_KINDS = {"ManualSuppression": FeedbackKind.UNSUBSCRIBE,
                     "HardBounce": FeedbackKind.HARD, "SpamComplaint": FeedbackKind.COMPLAINT}
TIME_FIELDS = ("BouncedAt", "DeliveredAt", "ReceivedAt", "ChangedAt")


def parse(body: bytes | str) -> list[ProviderEvent]:
    data = load_json(body)
    if not isinstance(data, dict) or "RecordType" not in data:
        raise WebhookBodyError("Postmark posts one JSON object with a RecordType per event; "
                               "this body is not one")
    return [_event(data)]


def _event(data: dict[str, object]) -> ProviderEvent:
    record = text(data.get("RecordType"))[:40]
    bounce_type = text(data.get("Type"))[:40]
    event_type = record
    if record == "Bounce":
        kind = BOUNCE_KINDS.get(bounce_type, FeedbackKind.OTHER)
        event_type = f"{record}/{bounce_type}"
    elif record == "SubscriptionChange":
        reason = text(data.get("SuppressionReason"))[:40]
        kind = (SUPPRESSION_KINDS.get(reason, FeedbackKind.OTHER)
                if data.get("SuppressSending") is True else FeedbackKind.OTHER)
        event_type = "/".join(part for part in (record, reason) if part)
    else:
        kind = RECORD_KINDS.get(record, FeedbackKind.OTHER)
    recipient = address(data.get("Email")) or address(data.get("Recipient"))
    words = one_line(data.get("Details")) or one_line(data.get("Description"))
    occurred = next((text(data.get(name)) for name in TIME_FIELDS if text(data.get(name))), "")
    provider_id = short_id(data.get("MessageID"))
    # Bounces and complaints have Postmark's own id; the other records are told apart by what
    # they are about and when (an unsubscribe and a resubscribe share a MessageID).
    bounce_id = text(data.get("ID")) if record in ("Bounce", "SpamComplaint") else ""
    given = short_id(f"{record}:{bounce_id}") if bounce_id else ""
    if not given and provider_id:
        given = short_id(f"{record}:{provider_id}:{recipient}:{occurred}")
    return ProviderEvent(
        provider=PROVIDER, event_id=given or hashed_id(digest(data), recipient, 0),
        kind=kind, recipient=recipient, provider_message_id=provider_id,
        tag=tag_value(obj(data.get("Metadata")).get("ainews_tag")), message_id="",
        status=status_code(words), diagnostic=words, event_type=event_type,
        occurred_at=occurred)
