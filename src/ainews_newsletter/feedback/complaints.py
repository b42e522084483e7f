"""Spam complaints and opt-outs: RFC 5965 ARF reports (with or without the report-type
parameter), Microsoft's JMRP ("complaint about message from …"), Amazon SES complaint
notifications, and Apple Mail's plain-text "unsubscribe" mail."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from email.message import Message

from ainews_newsletter.feedback import mime

_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)[ \t]*:[ \t]*(.*)$", re.MULTILINE)
_JMRP_SUBJECT = re.compile(r"complaint about message from", re.IGNORECASE)
_BRACED = re.compile(r"\{[^{}]*\}")


@dataclass(frozen=True)
class Complaint:
    feedback_type: str  # "abuse", "opt-out", … lower-cased
    emails: tuple[str, ...]  # complained-about addresses; () when the report hides them


def _fields(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for match in _FIELD.finditer(text):
        found.setdefault(match.group(1).lower(), []).append(match.group(2).strip())
    return found


def _report_text(msg: Message) -> str | None:
    """The machine-readable part of an ARF report: message/feedback-report, or (for senders
    that omit report-type, like Yahoo's old loop) any report part that carries Feedback-Type."""
    for part in mime.walk(msg):
        if part.get_content_type() == "message/feedback-report":
            return mime.part_text(part)
    if msg.get_content_type() == "multipart/report":
        for part in mime.walk(msg):
            if part is msg or part.get_content_type() == "message/rfc822":
                continue
            text = mime.part_text(part)
            if re.search(r"^Feedback-Type:", text, re.IGNORECASE | re.MULTILINE):
                return text
    return None


def _bare_all(values: list[str]) -> list[str]:
    return [address for value in values if (address := mime.bare_address(value))]


def find_complaint(msg: Message, original_fields: dict[str, list[str]]) -> Complaint | None:
    """The complaint this message is, or None."""
    report = _report_text(msg)
    if report is not None:
        fields = _fields(report)
        kind = ((fields.get("feedback-type") or [""])[0].split() or ["abuse"])[0].lower()
        emails = _bare_all(fields.get("original-rcpt-to", []) + fields.get("removal-recipient", []))
        if not emails:
            emails = _original_recipients(original_fields)
        return Complaint(kind, tuple(dict.fromkeys(emails)))
    jmrp = _jmrp(msg, original_fields)
    if jmrp is not None:
        return jmrp
    ses = ses_notification(msg)
    if ses is not None and ses.get("notificationType") == "Complaint":
        detail = ses.get("complaint") if isinstance(ses.get("complaint"), dict) else {}
        assert isinstance(detail, dict)
        people = as_list(detail.get("complainedRecipients"))
        emails = [mime.bare_address(str(p.get("emailAddress", ""))) for p in people
                  if isinstance(p, dict)]
        kind = str(detail.get("complaintFeedbackType") or "abuse").lower()
        return Complaint(kind, tuple(e for e in emails if e))
    if mime.header(msg, "X-Apple-Unsubscribe").lower() == "true":
        # Apple Mail's "unsubscribe" button mails the List-Unsubscribe mailto from the
        # reader's own address: the sender is the person opting out.
        return Complaint("opt-out", tuple(_bare_all([mime.header(msg, "From")])))
    return None


def _original_recipients(original_fields: dict[str, list[str]]) -> list[str]:
    """The returned original's To, when it names real addresses (not "Undisclosed")."""
    return [a for value in original_fields.get("to", []) for a in mime.addresses(value)]


def _jmrp(msg: Message, original_fields: dict[str, list[str]]) -> Complaint | None:
    """Hotmail/Outlook JMRP: the complaint is the returned message itself, the recipient in
    X-HmXmrOriginalRecipient (on the report or the enclosed original)."""
    recipients = _bare_all(original_fields.get("x-hmxmroriginalrecipient", []))
    recipients += _bare_all(mime.header_all(msg, "X-HmXmrOriginalRecipient"))
    if not recipients and not _JMRP_SUBJECT.search(mime.header(msg, "Subject")):
        return None
    if not recipients:
        recipients = _original_recipients(original_fields)
    return Complaint("abuse", tuple(dict.fromkeys(recipients)))


def ses_notification(msg: Message) -> dict[str, object] | None:
    """An Amazon SES notification (JSON body, as SNS mails it), or None. Mail transports
    fold or cut the long JSON line, so when the whole does not parse, the type and every
    small object naming an emailAddress are read one by one."""
    for part in mime.walk(msg):
        if part.is_multipart() or (part is not msg and part.get_content_maintype() != "text"):
            continue
        text = mime.part_text(part)
        if '"notificationType"' not in text and '"eventType"' not in text:
            continue
        whole = _json_object(text[text.find("{"):text.rfind("}") + 1])
        if whole is not None and isinstance(whole.get("Message"), str):
            whole = _json_object(str(whole["Message"]))  # SNS envelope around SES JSON
        if whole is not None and ("notificationType" in whole or "eventType" in whole):
            return whole
        return _ses_pieces(text)
    return None


def as_list(value: object) -> list[object]:
    """A JSON field that should hold a list: anything else counts as empty."""
    return value if isinstance(value, list) else []


def _json_object(text: str) -> dict[str, object] | None:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than Python recurses
        return None
    return data if isinstance(data, dict) else None


def _ses_pieces(text: str) -> dict[str, object] | None:
    kind = re.search(r'"(?:notificationType|eventType)"\s*:\s*"(\w+)"', text)
    if kind is None:
        return None
    # Each brace-free {…} naming an emailAddress (not one pattern with the name between two
    # runs: that backtracks over every earlier mention, quadratic in a run of them).
    people = [obj for raw in _BRACED.findall(text) if '"emailAddress"' in raw
              and (obj := _json_object(raw)) is not None]
    detail: dict[str, object] = {}
    for name in ("complaintFeedbackType", "bounceType"):
        found = re.search(rf'"{name}"\s*:\s*"([^"]*)"', text)
        if found:
            detail[name] = found.group(1)
    if kind.group(1) == "Complaint":
        detail["complainedRecipients"] = people
        return {"notificationType": "Complaint", "complaint": detail}
    if kind.group(1) == "Bounce":
        detail["bouncedRecipients"] = people
        return {"notificationType": "Bounce", "bounce": detail}
    return {"notificationType": kind.group(1)}
