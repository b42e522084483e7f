"""One subscriber's email, built with the stdlib `email` package (policy SMTP: CRLF, encoded
words for non-ASCII headers, no line over 998 octets thanks to quoted-printable bodies).

`build_message` builds one message entirely with the stdlib: simple, and the reference.
`IssueMessages` is what a send uses: the stdlib builds the issue's message once with slots,
and each reader's bytes are that skeleton with their To, Message-ID, unsubscribe token and
two bodies filled in (bodies encoded by binascii's C quoted-printable encoder); with click
counts on, also their click links (one slot per link position, see clicklinks.py). The stdlib
is far too slow to build every reader's message (BENCHMARKS.md has the figures); tests prove
both parse to the same message."""

from __future__ import annotations

import binascii
import dataclasses
import hashlib
import re
from collections.abc import Sequence
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from html import escape
from typing import Any
from urllib.parse import quote

from ainews_newsletter.config import NewsletterConfig
from ainews_newsletter.delivery.clicklinks import SLOT_PATTERN, ClickLinks, mark_links
from ainews_newsletter.delivery.provider_headers import ProviderHeaders
from ainews_newsletter.models import Recipient, RenderedIssue

# CR, LF, NUL and the Unicode line/paragraph separators could end a header early in some
# parser; none belongs in a name or a subject, so they become spaces.
# CRLF line ends, headers folded at 78 columns; values set with `set_raw` (already folded
# by us) are kept as given.
MESSAGE_POLICY = SMTP.clone(refold_source="none")
_HEADER_BREAKERS = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")


# Long enough for any real name or subject, short enough that even one unbroken word keeps
# its header line far below SMTP's 998-octet limit (the folder cannot break inside a word).
MAX_HEADER_TEXT = 200


def _one_line(text: str) -> str:
    return _HEADER_BREAKERS.sub(" ", text).strip()


def header_safe(text: str) -> str:
    """One line of at most MAX_HEADER_TEXT characters, with nothing that could end a header.

    "=?" is broken up too: the stdlib decodes RFC 2047 encoded words in a value it is given,
    so a title like "=?utf-8?b?SGkNCkJjYzog...?=" would otherwise turn into a raw CR LF and a
    new header on the way out."""
    flat = _one_line(text).replace("=?", "= ?")
    return flat if len(flat) <= MAX_HEADER_TEXT else flat[: MAX_HEADER_TEXT - 1] + "…"


def eml_filename(sequence: int, recipient: str) -> str:
    """A file name for a saved message: ordered, readable, and safe on every filesystem."""
    safe = "".join(ch if ch.isalnum() or ch in "@.-_" else "_" for ch in recipient)
    return f"{sequence:04d}-{safe}.eml"


def unsubscribe_url(newsletter: NewsletterConfig, token: str) -> str:
    return f"{newsletter.base_url}/unsubscribe/{quote(token)}"


def notice_message(newsletter: NewsletterConfig, to_address: str, subject: str, text: str,
                   date: datetime) -> bytes:
    """A one-off plain-text mail from the newsletter (the sign-up confirmation)."""
    message = EmailMessage(policy=_policy_for(to_address))
    message["From"] = _address(newsletter.name, newsletter.from_)
    message["To"] = _address(None, to_address)
    message["Subject"] = header_safe(subject)
    message["Date"] = format_datetime(date)
    digest = hashlib.sha256(f"{to_address}|{date.isoformat()}".encode()).hexdigest()[:24]
    message["Message-ID"] = f"<notice.{digest}@{newsletter.from_.rsplit('@', 1)[1]}>"
    message.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    return message.as_bytes()


def message_digest(list_identifier: str, issue_key: str, subscriber_id: int) -> str:
    """The part of a reader's Message-ID that names them (24 hex digits): stored per
    delivery, so an event quoting the Message-ID finds its row through an index."""
    return hashlib.sha256(
        f"{list_identifier}|{issue_key}|{subscriber_id}".encode()).hexdigest()[:24]


def message_id(newsletter: NewsletterConfig, issue_key: str, subscriber_id: int) -> str:
    """Stable per (list, issue, subscriber): a resent message carries the same Message-ID,
    so receiving servers and clients can recognise the duplicate."""
    digest = message_digest(newsletter.list_identifier, issue_key, subscriber_id)
    domain = newsletter.from_.rsplit("@", 1)[1]
    # Keys like "since-2026-11-18T10:33" or "2026-11-16..2026-11-23" hold characters a
    # msg-id may not (":" ends it, ".." is invalid): keep letters, digits and single dashes.
    readable = re.sub(r"[^a-z0-9]+", "-", issue_key.lower()).strip("-") or "issue"
    return f"<{readable}.{digest}@{domain}>"


def _address(name: str | None, addr_spec: str) -> Address:
    if not addr_spec.isascii():  # RFC 6531: the stdlib refuses such an addr_spec whole
        local, _, domain = addr_spec.rpartition("@")
        return Address(display_name=header_safe(name or ""), username=local, domain=domain)
    return Address(display_name=header_safe(name or ""), addr_spec=addr_spec)


def _policy_for(address: str) -> Any:
    """UTF-8 headers (RFC 6532) for a reader whose address needs SMTPUTF8; else ASCII."""
    return MESSAGE_POLICY if address.isascii() else MESSAGE_POLICY.clone(utf8=True)


def build_message(rendered: RenderedIssue, recipient: Recipient, newsletter: NewsletterConfig,
                  date: datetime, language: str | None = None) -> EmailMessage:
    """multipart/alternative: text first, then HTML (clients show the last part they can).
    `language`: the rendering's language, said in Content-Language."""
    html, text = rendered.personalize(unsubscribe_url(newsletter, recipient.token))
    return list_message(newsletter, recipient, rendered.subject, html, text, date,
                        message_id(newsletter, rendered.period.key, recipient.subscriber_id),
                        language=language)


def list_message(newsletter: NewsletterConfig, recipient: Recipient, subject: str, html: str,
                 text: str, date: datetime, msg_id: str,
                 utf8_headers: bool = False, language: str | None = None) -> EmailMessage:
    """A mail of the list to one reader, bodies already theirs: an issue's, or the welcome
    (which shares the list's headers, its one-click unsubscribe above all). `utf8_headers`:
    RFC 6532 headers when the reader's address needs them (an issue's skeleton writes its
    To line apart, see `_to_header`). `language`: a Content-Language header (RFC 3282)."""
    link = unsubscribe_url(newsletter, recipient.token)
    message = EmailMessage(policy=_policy_for(recipient.email) if utf8_headers
                           else MESSAGE_POLICY)
    message["From"] = _address(newsletter.name, newsletter.from_)
    message["To"] = _address(recipient.name, recipient.email)
    if newsletter.reply_to:
        message["Reply-To"] = _address(None, newsletter.reply_to)
    message["Subject"] = header_safe(subject)
    message["Date"] = format_datetime(date)
    message["Message-ID"] = msg_id
    message["List-Id"] = f"{header_safe(newsletter.name)} <{newsletter.list_identifier}>"
    token = quote(recipient.token)
    mailto = f"mailto:{newsletter.unsubscribe_mailbox}?subject=unsubscribe%20{token}"
    # Set raw and pre-folded between the two URIs: the default folder would turn a URI
    # longer than 78 columns into an RFC 2047 encoded word, which no client can use.
    message.set_raw("List-Unsubscribe", f"<{_one_line(link)}>,\r\n <{_one_line(mailto)}>")
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    if language:  # after the bodies: set_content drops the Content-* headers it finds
        message["Content-Language"] = language
    return message


# Slot values for the skeleton: ASCII, without characters any encoder would touch, and
# unlikely enough that a newsletter's own text never contains them (checked anyway).
_TOKEN_SLOT = "ainews-slot-token-7f3c"
_TO_SLOT = "ainews-slot-to-7f3c@slot.invalid"
_TEXT_SLOT = "AINEWS-SLOT-TEXT-7F3C"
_HTML_SLOT = "AINEWS-SLOT-HTML-7F3C"
_SLOT_ID = 0  # no subscriber has id 0, so its Message-ID digest is unique in the skeleton
# Display names the stdlib writes as-is (atext words, single spaces): anything else (quotes,
# dots, non-ASCII, long) goes through the stdlib's own folding and encoding.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+/^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/^_`{|}~-]+)*")
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
# A dot-atom local part and a host name: anything else (a..b, .a, a.) goes to the stdlib,
# which refuses it, and the row is recorded as failed instead of sent malformed. The SMTP
# transport writes such an address in angle brackets without parsing it, too.
PLAIN_ADDRESS = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*@{_LABEL}(?:\.{_LABEL})+")
MAX_LINE = 78


def quoted_printable_body(text: str) -> bytes:
    """What `set_content(text, cte="quoted-printable")` puts in the body: the UTF-8 lines
    joined with CRLF and ended by one, quoted-printable with lines of at most 76 octets."""
    lines = text.encode("utf-8").splitlines()
    return binascii.b2a_qp(b"\r\n".join(lines) + b"\r\n", istext=True)


class PersonalBody:
    """A body whose only per-reader parts are the unsubscribe URL and, with click counts on,
    the click links (`slots`, a pattern whose group is the link's number). Quoted-printable
    encodes line by line, so the lines without any of them are encoded once, and per reader
    only the lines holding one: the pieces join to exactly `quoted_printable_body`."""

    def __init__(self, text: str, placeholder: str, slots: bytes | None = None) -> None:
        mark = re.escape(placeholder.encode("utf-8"))
        self._split = re.compile(mark if slots is None else b"(?:" + mark + b")|" + slots)
        # A constant piece is bytes; a personal line is a list of its literal parts and the
        # numbers of the values that go between them (0: the unsubscribe URL, n: link n).
        self._pieces: list[bytes | list[bytes | int]] = []
        constant: list[bytes] = []
        for line in text.encode("utf-8").splitlines():
            if self._split.search(line):
                self._flush(constant)
                self._pieces.append(self._parts(line + b"\r\n"))
            else:
                constant.append(line)
        self._flush(constant or ([b""] if not self._pieces else []))  # "" encodes as CRLF

    def _parts(self, line: bytes) -> list[bytes | int]:
        parts: list[bytes | int] = []
        start = 0
        for match in self._split.finditer(line):
            number = int(match.group(1)) if match.re.groups and match.group(1) else 0
            parts += [line[start:match.start()], number]
            start = match.end()
        parts.append(line[start:])
        return parts

    def _flush(self, lines: list[bytes]) -> None:
        if lines:
            self._pieces.append(binascii.b2a_qp(b"\r\n".join(lines) + b"\r\n", istext=True))
            lines.clear()

    def encoded(self, value: str, links: Sequence[bytes] = ()) -> bytes:
        """The body with `value` in place of the placeholder and `links[n - 1]` in place of
        link n's slot, quoted-printable."""
        values = (value.encode("utf-8"), *links)
        return b"".join(
            piece if isinstance(piece, bytes) else binascii.b2a_qp(b"".join(
                part if isinstance(part, bytes) else values[part] for part in piece),
                istext=True)
            for piece in self._pieces)


def _to_header(recipient: Recipient) -> bytes:
    name = header_safe(recipient.name or "")
    if PLAIN_ADDRESS.fullmatch(recipient.email):
        line = f"To: {name} <{recipient.email}>" if name else f"To: {recipient.email}"
        if (not name or _PLAIN_NAME.fullmatch(name)) and len(line) <= MAX_LINE:
            return line.encode("ascii") + b"\r\n"
    single = EmailMessage(policy=_policy_for(recipient.email))
    single["To"] = _address(recipient.name, recipient.email)
    return single.as_bytes().removesuffix(b"\r\n")  # the header, without the blank line


class IssueMessages:
    """Every reader's message of one issue, from one skeleton built by the stdlib."""

    def __init__(self, rendered: RenderedIssue, newsletter: NewsletterConfig,
                 date: datetime, clicks: ClickLinks | None = None,
                 provider: ProviderHeaders | None = None, language: str | None = None) -> None:
        """`clicks`: count clicks, each reader's post links becoming their own click links
        (the issue's links are marked once here; `bytes_for` fills them per reader).
        `provider`: the relay provider's metadata headers, each reader's delivery tag in
        them (a slot of its own, filled by `bytes_for`). `language`: the rendering's, said
        in a Content-Language header."""
        self.rendered, self.newsletter, self.clicks = rendered, newsletter, clicks
        self.provider = provider
        body = rendered if clicks is None else mark_links(rendered, clicks.links)
        link_slots = None if clicks is None else SLOT_PATTERN
        self._text = PersonalBody(body.text, rendered.unsubscribe_placeholder, link_slots)
        self._html = PersonalBody(body.html, rendered.unsubscribe_placeholder, link_slots)
        slots = dataclasses.replace(rendered, html=_HTML_SLOT, text=_TEXT_SLOT)
        skeleton = build_message(slots, Recipient(_SLOT_ID, _TO_SLOT, None, _TOKEN_SLOT),
                                 newsletter, date, language).as_bytes()
        head, rest = _split_once(skeleton, f"{_TEXT_SLOT}\r\n".encode())
        self._between, self._tail = _split_once(rest, f"{_HTML_SLOT}\r\n".encode())
        self._before_to, after_to = _split_once(head, f"To: {_TO_SLOT}\r\n".encode())
        # The Date line is filled per message: the moment it is handed over, not when the
        # issue was frozen (a send resumed after an outage must not carry an old date).
        date_line = f"Date: {format_datetime(date)}\r\n".encode("ascii")
        self._to_date, self._after_date = _split_once(after_to, date_line)
        self._date_cache = (int(date.timestamp()), date_line)
        self._token_slot = _TOKEN_SLOT.encode("ascii")
        # Worked out once: per message it cost more than the rest of the headers.
        self._list_identifier = newsletter.list_identifier
        self._digest_slot = message_digest(self._list_identifier, rendered.period.key,
                                            _SLOT_ID).encode("ascii")
        # The token is in List-Unsubscribe twice (https and mailto), the digest once.
        if head.count(self._token_slot) != 2 or head.count(self._digest_slot) != 1:
            raise ValueError("message skeleton: unexpected unsubscribe or Message-ID slots")

    def _personalized(self, part: bytes, token: bytes, digest: bytes) -> bytes:
        """A piece of the skeleton's header with this reader's unsubscribe token and
        Message-ID digest in their slots."""
        return part.replace(self._token_slot, token).replace(self._digest_slot, digest)

    def _date_line(self, date: datetime | None) -> bytes:
        """The Date header for `date` (None: the one the skeleton was built with), made at
        most once a second; one tuple, so connection threads never see half an update."""
        if date is None:
            return self._date_cache[1]
        second = int(date.timestamp())
        cached = self._date_cache
        if cached[0] != second:
            line = f"Date: {format_datetime(date.replace(microsecond=0))}\r\n".encode()
            cached = self._date_cache = (second, line)
        return cached[1]

    def bytes_for(self, recipient: Recipient, date: datetime | None = None,
                  delivery_id: int | None = None, tag: str | None = None) -> bytes:
        """The exact bytes `recipient` receives (before DKIM signing), dated `date` (the
        moment it is handed to the relay; None: the date the messages were built with).
        With click counts on, `delivery_id` (the ledger row) is in each click link; with a
        provider, `tag` (the row's return tag) is in its metadata header."""
        token = quote(recipient.token).encode("ascii")
        digest = message_digest(self._list_identifier, self.rendered.period.key,
                                 recipient.subscriber_id).encode("ascii")
        link = unsubscribe_url(self.newsletter, recipient.token)
        text_links: list[bytes] = []
        html_links: list[bytes] = []
        if self.clicks is not None:
            if delivery_id is None:
                raise ValueError("click links need the message's delivery id")
            for url in self.clicks.urls_for(delivery_id):
                text_links.append(url.encode("utf-8"))
                html_links.append(escape(url).encode("utf-8"))
        # The provider's lines, if any, go just before the Date line.
        provider = b"" if self.provider is None else self.provider.lines(tag)
        return b"".join((self._personalized(self._before_to, token, digest), _to_header(recipient),
                         self._personalized(self._to_date, token, digest), provider,
                         self._date_line(date),
                         self._personalized(self._after_date, token, digest),
                         self._text.encoded(link, text_links), self._between,
                         self._html.encoded(escape(link), html_links), self._tail))


def _split_once(data: bytes, slot: bytes) -> tuple[bytes, bytes]:
    before, found, after = data.partition(slot)
    if not found or slot in after:
        # The issue's own text contains a slot string: impossible by accident, and the fast
        # path would put a reader's data in the wrong place, so refuse loudly.
        raise ValueError(f"message skeleton: slot {slot!r} not found exactly once")
    return before, after
