"""One returned message → one FeedbackReport. Pure: bytes in, data out, no I/O.

Order matters. A complaint is recognised first (its returned original would otherwise look
like ordinary mail); then a failure, from RFC 3464 fields, an Amazon SES notification or the
prose; only a message with no failure can be an auto-reply, because Exim and others mark real
bounces `Auto-Submitted: auto-replied`. Everything else is `other`."""

from __future__ import annotations

import hashlib
import re
from email.message import Message

from ainews_newsletter.errors import FeedbackError
from ainews_newsletter.feedback import mime
from ainews_newsletter.feedback.autoreply import is_autoreply
from ainews_newsletter.feedback.classify import classify, worst
from ainews_newsletter.feedback.complaints import as_list, find_complaint, ses_notification
from ainews_newsletter.feedback.dsn import parse_dsn
from ainews_newsletter.feedback.findings import FailedRecipient, FeedbackKind, FeedbackReport
from ainews_newsletter.feedback.mailfile import normalise_line_ends
from ainews_newsletter.feedback.prose import (
    before_copy,
    failure_words,
    flufl_failures,
    is_delay_notice,
    looks_like_bounce,
    notification_text,
    prose_failures,
)
from ainews_newsletter.feedback.returned import returned_of

_HEADER_LINE = re.compile(rb"^(?:From |[!-9;-~]+[ \t]*:)")
_SENT_TO = ("To", "Delivered-To", "X-Original-To", "Envelope-To")
MAX_CONTEXT = 64 * 1024


def parse_message(raw: bytes, source: str) -> FeedbackReport:
    """Parse one message; FeedbackError if `raw` is not mail at all."""
    raw = normalise_line_ends(raw)
    if not raw.strip() or not _HEADER_LINE.match(raw.lstrip(b"\n")):
        raise FeedbackError(f"{source}: not a mail message (it does not start with headers)")
    if raw.startswith(b"From ") and b"\n" in raw:  # a single mbox entry: drop the separator
        raw = raw.split(b"\n", 1)[1]
    msg = mime.load(raw)
    if not msg.keys():
        raise FeedbackError(f"{source}: not a mail message (no header lines)")
    text = notification_text(msg)
    returned, original_fields = returned_of(msg, text)
    kind, recipients, feedback_type = _verdict(msg, text, original_fields, raw)
    message_id = mime.header(msg, "Message-ID").strip() or None
    return FeedbackReport(
        source=source, kind=kind, recipients=tuple(recipients), feedback_type=feedback_type,
        message_id=message_id, digest=hashlib.sha256(raw).hexdigest(),
        sent_to=tuple(_sent_to(msg)), returned=returned,
        subject=mime.header(msg, "Subject"), date=mime.header(msg, "Date"))


def _sent_to(msg: Message) -> list[str]:
    found: dict[str, None] = {}
    for name in _SENT_TO:
        for value in mime.header_all(msg, name):
            for address in mime.addresses(value):
                found.setdefault(address.lower(), None)
    return list(found)


def _verdict(msg: Message, text: str, original_fields: dict[str, list[str]], raw: bytes
             ) -> tuple[FeedbackKind, list[FailedRecipient], str | None]:
    complaint = find_complaint(msg, original_fields)
    if complaint is not None:
        people = [FailedRecipient(e, FeedbackKind.COMPLAINT) for e in complaint.emails]
        return FeedbackKind.COMPLAINT, people, complaint.feedback_type

    # The words classify() reads when a recipient's own line says nothing: the notice's
    # first MAX_CONTEXT characters (its many-branched patterns cost about 0.6 s a megabyte).
    context = mime.header(msg, "Subject") + "\n" + before_copy(text)[:MAX_CONTEXT]
    recipients = [FailedRecipient(r.email, classify(r.status, r.diagnostic, r.action, context),
                                  r.status, r.action, r.diagnostic) for r in parse_dsn(msg)]
    if not recipients:
        recipients = _from_ses(msg)
    if recipients:
        return worst([r.kind for r in recipients]), recipients, None

    flufl = flufl_failures(raw)
    flufl_found = bool(flufl[0] or flufl[1])
    if is_autoreply(msg) and not flufl_found and not looks_like_bounce(msg, False, strict=True):
        sender = mime.addresses(mime.header(msg, "From"))
        people = [FailedRecipient(sender[0], FeedbackKind.AUTOREPLY)] if sender else []
        return FeedbackKind.AUTOREPLY, people, None
    if looks_like_bounce(msg, flufl_found) or failure_words(context):
        # Not X-Original-To / Delivered-To: some MTAs (DragonFly) put the failed recipient there.
        ours = _our_side(msg, original_fields)
        original_to = [a for value in original_fields.get("to", []) for a in mime.addresses(value)]
        delay = is_delay_notice(msg, text)
        for found in prose_failures(msg, ours, original_to, text, flufl):
            action = "delayed" if delay else "failed"
            kind = classify(found.status, found.diagnostic, action, context)
            recipients.append(FailedRecipient(found.email, kind, found.status, action,
                                              found.diagnostic[:500]))
        if recipients:
            return worst([r.kind for r in recipients]), recipients, None

    return FeedbackKind.OTHER, [], None


def _our_side(msg: Message, original_fields: dict[str, list[str]]) -> set[str]:
    """Addresses that are the report's or our own, never the failed recipient."""
    values = [mime.header(msg, name) for name in ("From", "To", "Sender", "Reply-To",
                                                  "Return-Path")]
    for name in ("from", "return-path", "sender", "reply-to"):
        values += original_fields.get(name, [])
    return {a.lower() for value in values for a in mime.addresses(value)}


def _from_ses(msg: Message) -> list[FailedRecipient]:
    """Amazon SES bounce and delivery notifications (JSON, as SNS mails them)."""
    data = ses_notification(msg)
    if data is None:
        return []
    kind_name = data.get("notificationType") or data.get("eventType")
    section = data.get("bounce") if kind_name == "Bounce" else data.get("delivery")
    if not isinstance(section, dict):
        return []
    found: list[FailedRecipient] = []
    if kind_name == "Bounce":
        transient = section.get("bounceType") == "Transient"
        for item in as_list(section.get("bouncedRecipients")):
            if not isinstance(item, dict):
                continue
            address = mime.bare_address(str(item.get("emailAddress", "")))
            status = str(item.get("status") or "")
            diagnostic = " ".join(str(item.get("diagnosticCode") or "").split())
            kind = classify(status, diagnostic, "failed")
            if transient and kind is FeedbackKind.HARD:
                kind = FeedbackKind.SOFT
            if address:
                found.append(FailedRecipient(address, kind, status, "failed", diagnostic))
    else:
        for listed in as_list(section.get("recipients")):
            if bare := mime.bare_address(str(listed)):
                found.append(FailedRecipient(bare, FeedbackKind.OTHER, "2.0.0", "delivered",
                                             str(section.get("smtpResponse") or "")))
    return found
