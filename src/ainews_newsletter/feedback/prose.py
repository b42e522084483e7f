"""Bounces written for people: no delivery-status part, only text (qmail, Exim, Yahoo, Gmail,
Japanese carriers, old Exchange, …). flufl.bounce's per-MTA detectors find most recipients;
X-Failed-Recipients, addresses on failure lines and finally the returned original's To fill
the gaps. The status code and the server's sentence come from the lines around the address."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from email.message import Message

from flufl.bounce import all_failures

from ainews_newsletter.feedback import mime
from ainews_newsletter.feedback.dsn import status_in
from ainews_newsletter.feedback.returned import SEPARATOR

# flufl.bounce logs every crash of one of its detectors (they trip over odd From headers) with
# a full traceback; the scan goes on regardless, and a user parsing a mailbox must not see them.
_FLUFL_LOG = logging.getLogger("flufl.bounce")
_FLUFL_LOG.addHandler(logging.NullHandler())
_FLUFL_LOG.propagate = False

_DAEMON = re.compile(r"mailer-daemon|post_?master|mail-daemon|mail delivery|mailer@|"
                     r"bounce|delivery subsystem|nobody@|noreply-dmarc", re.IGNORECASE)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|returned mail|delivery (?:status|failure|failed|notification|problem|report)|"
    r"failure notice|mail delivery|not (?:be )?delivered|could not be delivered|rejected|"
    r"non-?deliver|bounce|error|unzustellbar|failed|échec|fehlgeschlagen|unable to deliver|"
    r"mail system error|warning|delayed|returned|配信|エラー|不達|送信", re.IGNORECASE)
_DELAY_SUBJECT = re.compile(r"delayed|warning|still being retried|delivery status "
                            r"notification \(delay\)|will (?:continue|keep) trying",
                            re.IGNORECASE)
_FAIL_WORDS = re.compile(
    r"fail|error|undeliver|reject|unknown|not |invalid|full|quota|denied|refused|exist|"
    r"block|unable|couldn't|could not|bounce|problem|blacklist|spam|policy|expired|"
    r"timed? ?out|permanent|rcpt to|recipient|[45]\d\d[ -]|[45]\.\d+\.\d+|:$|<[^>]+@[^>]+>",
    re.IGNORECASE)


# Quoted header lines whose "addresses" are message identifiers or relay names.
_ID_LINE = re.compile(r"^\s*(?:message-id|in-reply-to|references|received|dkim-signature|"
                      r"x-[a-z-]*id)\s*:", re.IGNORECASE)


_FAILURE_TEXT = re.compile(
    r"could not be delivered|couldn't be delivered|undeliverable|delivery (?:has )?failed|"
    r"was not delivered|permanent error|unable to deliver|invalid user address|"
    r"delivery to the following recipient|message you sent could not|"
    r"送信できませんでした|配信できませんでした|届きませんでした", re.IGNORECASE)


@dataclass(frozen=True)
class ProseRecipient:
    email: str
    status: str
    diagnostic: str
    temporary: bool  # flufl.bounce filed it under temporary failures


def looks_like_bounce(msg: Message, flufl_found: bool, strict: bool = False) -> bool:
    """Signals that a message with no delivery-status part is a failure report at all.
    `strict` ignores the null Return-Path, which auto-replies share with bounces."""
    if flufl_found or msg.get("X-Failed-Recipients"):
        return True
    if msg.get_content_type() == "multipart/report":
        return True
    sender = " ".join(mime.header(msg, name) for name in ("From", "Sender", "Return-Path"))
    if _DAEMON.search(sender) or (not strict and mime.header(msg, "Return-Path").strip() == "<>"):
        return True
    return bool(_BOUNCE_SUBJECT.search(mime.header(msg, "Subject")))


def failure_words(notice: str) -> bool:
    """The report's own words say a delivery failed (for bounces with no other sign)."""
    return bool(_FAILURE_TEXT.search(notice))


def is_delay_notice(msg: Message, text: str) -> bool:
    subject = mime.header(msg, "Subject")
    return bool(_DELAY_SUBJECT.search(subject)) and not re.search(
        r"fail|undeliver|returned|could not", subject, re.IGNORECASE)


def notification_text(msg: Message) -> str:
    """The report's own words: text parts outside the returned original, cut at the line that
    introduces the quoted original (its headers and body would add our own addresses)."""
    pieces = [mime.part_text(part) for part in mime.walk(msg) if mime.is_textual(part)]
    if not pieces:  # HTML-only bounces (some Exchange): strip the tags
        pieces = [re.sub(r"<[^>]+>", " ", mime.part_text(part)) for part in mime.walk(msg)
                  if part.get_content_type() == "text/html"]
    return "\n".join(pieces)


def before_copy(text: str) -> str:
    match = SEPARATOR.search(text)
    return text[:match.start()] if match else text


def flufl_failures(msg: Message) -> tuple[list[str], list[str]]:
    """flufl.bounce's (temporary, permanent) addresses, cleaned; ([], []) if it chokes."""
    try:
        temporary, permanent = all_failures(msg)
    except Exception:
        return [], []
    clean = [mime.bare_address(a.decode("utf-8", "replace") if isinstance(a, bytes) else str(a))
             for a in temporary]
    perm = [mime.bare_address(a.decode("utf-8", "replace") if isinstance(a, bytes) else str(a))
            for a in permanent]
    return [a for a in clean if a], [a for a in perm if a]


def prose_failures(msg: Message, ours: set[str], original_to: list[str],
                   text: str) -> list[ProseRecipient]:
    """Failed recipients of a prose bounce. `ours` are addresses that cannot be the failed
    recipient (the report's sender and addressee, our own envelope sender)."""
    temporary, permanent = flufl_failures(msg)
    notice = before_copy(text)
    found: dict[str, bool] = {}
    for address in permanent:
        found.setdefault(address, False)
    for address in temporary:
        found.setdefault(address, True)
    for value in mime.header_all(msg, "X-Failed-Recipients"):
        for address in mime.addresses(value):
            found.setdefault(address, False)
    if not found:
        for address in _failure_lines(notice, ours):
            found.setdefault(address, False)
    if not found:
        for address in original_to:
            if address not in ours:
                found.setdefault(address, False)
    return [ProseRecipient(address, *_context(notice, address), temporary)
            for address, temporary in list(found.items())[:50]]


def _failure_lines(notice: str, ours: set[str]) -> list[str]:
    found: list[str] = []
    for line in notice.split("\n"):
        if _ID_LINE.match(line):
            continue
        for address in mime.addresses(line):
            if address.lower() in ours or address in found:
                continue
            if _FAIL_WORDS.search(line) or line.strip().lower().startswith(address.lower()):
                found.append(address)
    return found[:5]


def _context(notice: str, address: str) -> tuple[str, str]:
    """(status, diagnostic) from the lines at and after the first mention of `address`."""
    lines = notice.split("\n")
    lowered = address.lower()
    for index, line in enumerate(lines):
        if lowered in line.lower():
            window = [line.strip()]
            blanks = 0
            for following in lines[index + 1:index + 10]:
                if not following.strip():
                    blanks += 1
                    if blanks > 1 and len(window) > 1:
                        break
                    continue
                if SEPARATOR.match(following):
                    break
                if mime.ADDRESS.search(following) and len(window) > 1 and \
                        lowered not in following.lower():
                    break
                window.append(following.strip())
            diagnostic = " ".join(" ".join(window).split())
            return status_in(diagnostic) or status_in(notice), diagnostic
    return status_in(notice), " ".join(notice.split())[:300]

