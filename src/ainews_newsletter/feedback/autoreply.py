"""Automatic answers (RFC 3834 and the common non-standard marks). Only asked once the
message has shown no failure: Exim and others put `Auto-Submitted: auto-replied` on genuine
bounces, and many out-of-office replies carry no header at all, only a subject."""

from __future__ import annotations

import re
from email.message import Message

from ainews_newsletter.feedback import mime

_SUBJECT = re.compile(
    r"^\s*(?:(?:re|aw|fw|fwd)\s*:\s*)*(?:automatic reply|auto[- ]?reply|autoreply|"
    r"auto[- ]?response|automatische antwort|out of (?:the )?office|away from (?:my|the) "
    r"(?:desk|office)|on vacation|vacation reply|abwesenheitsnotiz|r[ée]ponse automatique|"
    r"away until|i am away|i'm away|absence)", re.IGNORECASE)
_MARK_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress-Never",
                 "X-Vacation", "X-Mailer-Autoreply")


def is_autoreply(msg: Message) -> bool:
    auto = mime.header(msg, "Auto-Submitted").lower()
    if auto.startswith("auto-replied"):
        return True
    if mime.header(msg, "Precedence").lower() in ("auto_reply", "auto-reply"):
        return True
    if any(msg.get(name) is not None for name in _MARK_HEADERS):
        return True
    return bool(_SUBJECT.search(mime.header(msg, "Subject")))
