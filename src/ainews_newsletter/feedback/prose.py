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
    r"timed? ?out|permanent|rcpt to|recipient|[45]\d\d[ -]|[45]\.\d+\.\d+|:$",
    re.IGNORECASE)


_TAG = re.compile(r"<[^>]+>")
_WORD = re.compile(r"\S+")
# What flufl.bounce is shown of a message (see flufl_failures): a bounce's own words come
# first, and no line of mail is longer than 998 characters (RFC 5322).
FLUFL_BYTES = 64 * 1024
MAX_LINE = 1000

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
        pieces = [_strip_tags(mime.part_text(part)) for part in mime.walk(msg)
                  if part.get_content_type() == "text/html"]
    return "\n".join(pieces)


def _strip_tags(html: str) -> str:
    """Each <…> as a space. Only up to the last ">": after it, the pattern would read from
    every "<" to the end of the text and find nothing (quadratic in a run of "<")."""
    head, closing, tail = html.rpartition(">")
    return _TAG.sub(" ", head + closing) + tail


def before_copy(text: str) -> str:
    match = SEPARATOR.search(text)
    return text[:match.start()] if match else text


def flufl_failures(raw: bytes) -> tuple[list[str], list[str]]:
    """flufl.bounce's (temporary, permanent) addresses in the message `raw` (LF line ends),
    cleaned; ([], []) if it chokes. Its detectors run their patterns over every body line,
    some quadratic in the line's length (a line of 10,000 "<" took 1.3 s, of 100,000 165 s),
    so they are given a bounded copy: the first FLUFL_BYTES, each line cut at MAX_LINE."""
    try:
        temporary, permanent = all_failures(mime.load(_bounded(raw)))
    except Exception:
        return [], []
    clean = [mime.bare_address(a.decode("utf-8", "replace") if isinstance(a, bytes) else str(a))
             for a in temporary]
    perm = [mime.bare_address(a.decode("utf-8", "replace") if isinstance(a, bytes) else str(a))
            for a in permanent]
    return [a for a in clean if a], [a for a in perm if a]


def _bounded(raw: bytes) -> bytes:
    head = raw[:FLUFL_BYTES]
    if len(head) <= MAX_LINE or max(map(len, head.split(b"\n"))) <= MAX_LINE:
        return head
    return b"\n".join(line[:MAX_LINE] for line in head.split(b"\n"))


def prose_failures(msg: Message, ours: set[str], original_to: list[str], text: str,
                   flufl: tuple[list[str], list[str]]) -> list[ProseRecipient]:
    """Failed recipients of a prose bounce. `ours` are addresses that cannot be the failed
    recipient (the report's sender and addressee, our own envelope sender); `flufl` is what
    `flufl_failures` found."""
    temporary, permanent = flufl
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
    lines = notice.split("\n")
    lowered = [line.lower() for line in lines]
    status = status_in(notice)
    return [ProseRecipient(address, *_context(notice, status, lines, lowered, address),
                           temporary)
            for address, temporary in list(found.items())[:50]]


def _failure_lines(notice: str, ours: set[str]) -> list[str]:
    found: list[str] = []
    for line in notice.split("\n"):
        if _ID_LINE.match(line):
            continue
        for address in mime.addresses(line):
            if address.lower() in ours or address in found:
                continue
            if _FAIL_WORDS.search(line) or _bracketed_address(line) or \
                    line.strip().lower().startswith(address.lower()):
                found.append(address)
                if len(found) == 5:
                    return found
    return found


def _bracketed_address(line: str) -> bool:
    """What `<[^>]+@[^>]+>` finds, without it: from each "<" that pattern reads on to the end
    of a line with no ">" (quadratic in a line of "<"). The text between a ">" and the next
    holds such an address when, after its first "<", an "@" has something on both sides."""
    for piece in line.split(">")[:-1]:
        opening = piece.find("<")
        if opening != -1 and "@" in piece[opening + 2:-1]:
            return True
    return False


def _context(notice: str, status: str, lines: list[str], lowered_lines: list[str],
             address: str) -> tuple[str, str]:
    """(status, diagnostic) from the lines at and after the first mention of `address`.
    `status` (the notice's first code) and `lines` (split, and lower-cased) are worked out
    once for every recipient."""
    lowered = address.lower()
    for index, line in enumerate(lines):
        if lowered in lowered_lines[index]:
            # Each line cut at MAX_LINE: classify() reads the diagnostic with many-branched
            # patterns, and a one-line megabyte must not become its words.
            window = [line.strip()[:MAX_LINE]]
            blanks = 0
            for following in lines[index + 1:index + 10]:
                if not following.strip():
                    blanks += 1
                    if blanks > 1 and len(window) > 1:
                        break
                    continue
                if SEPARATOR.match(following):
                    break
                if mime.has_address(following) and len(window) > 1 and \
                        lowered not in following.lower():
                    break
                window.append(following.strip()[:MAX_LINE])
            diagnostic = " ".join(" ".join(window).split())
            return status_in(diagnostic) or status, diagnostic
    return status, _opening(notice)


def _opening(notice: str, size: int = 300) -> str:
    """`" ".join(notice.split())[:size]` without splitting all of a long notice."""
    words: list[str] = []
    length = -1
    for word in _WORD.finditer(notice):
        words.append(word.group(0))
        length += 1 + len(word.group(0))
        if length >= size:
            break
    return " ".join(words)[:size]

