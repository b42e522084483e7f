"""MIME helpers shared by the detectors: tolerant header decoding, part text in any charset,
and address clean-up. Returned mail is the worst-formed mail there is (truncated bodies, raw
8-bit Japanese headers, wrong charset labels), so every helper degrades to replacement
characters instead of raising."""

from __future__ import annotations

import codecs
import email
import email.errors
import email.header
import re
import string
from collections.abc import Iterator
from email.message import Message
from email.policy import compat32

# compat32 is the parser that never raises on malformed headers and keeps message/rfc822 and
# message/delivery-status payloads as sub-messages, which the detectors walk.
POLICY = compat32

# An address is a run of these (the local part), "@", then a domain. The local part is found
# by reading back from each "@" (see `_address_spans`), never by a pattern starting at every
# letter: that re-reads the rest of a 100,000-letter line at each one (quadratic).
_LOCAL_CHARS = frozenset(string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~.-")
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-.]*[A-Za-z0-9])?")
# Deeper than this, multiparts and enclosed messages are read as text: the standard library's
# parser recurses once per level (1,000 nested multiparts raise RecursionError).
MAX_NESTING = 50
# Every nesting level of the parser starts with one of these (a part whose Content-Type is
# multipart/* or message/*): counting them bounds the depth. Possessive: linear.
_NESTING_TYPE = re.compile(rb"^content-type:[\s\x1c-\x1f]*+(?:multipart|message)/",
                           re.IGNORECASE | re.MULTILINE)
# The charset of an RFC 2231 parameter ("boundary*=utf-8''b"): the parser decodes a boundary
# with it and raises on a codec it has but cannot decode with ("undefined", a NUL in the name).
_RFC2231_CHARSET = re.compile(rb"(\*=[ \t]*\"?)[^'\";\s]{0,100}'")
# A header value is read up to this many characters. RFC 5322 lines are at most 998; a
# longer value is an attack, and email.header.decode_header is quadratic in the encoded
# words it is given (70,000 of them in a 1 MB Subject took 42 s; see BENCHMARKS.md
# "Hostile input (issue 27)"), so it never sees more than this.
MAX_HEADER = 8192
# Labels that are wrong or too narrow in the wild: Japanese carriers label CP932 text
# "Shift_JIS" and use JIS X 0212 extensions in "ISO-2022-JP".
_CHARSET_ALIASES = {"shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932",
                    "x-sjis": "cp932", "iso-2022-jp": "iso2022_jp_ext", "euc-jp": "euc_jis_2004",
                    "ks_c_5601-1987": "cp949", "gb2312": "gb18030", "unknown-8bit": "utf-8"}
_FALLBACKS = ("utf-8", "iso2022_jp_ext", "cp932", "euc_jp")
# Codecs Python has that are no mail charset: "undefined" always raises, punycode and idna
# are for host names (and punycode is quadratic), the escapes read backslashes as code.
_NOT_CHARSETS = {"undefined", "punycode", "idna", "unicode-escape", "raw-unicode-escape",
                 "unicode-internal"}


def load(raw: bytes) -> Message:
    """The parsed message, nested at most MAX_NESTING deep; a boundary whose RFC 2231
    charset cannot decode is read as US-ASCII."""
    raw = _flatten_deep(raw)
    try:
        return email.message_from_bytes(raw, policy=POLICY)
    except (ValueError, LookupError, TypeError):  # UnicodeError is a ValueError
        return email.message_from_bytes(_RFC2231_CHARSET.sub(rb"\1us-ascii'", raw),
                                        policy=POLICY)


def _flatten_deep(raw: bytes) -> bytes:
    """`raw` with the multipart/message Content-Types after the first MAX_NESTING renamed
    (so those parts are text): the parser can then never recurse deeper than that."""
    starts = [match.start() for match in _NESTING_TYPE.finditer(raw)]
    if len(starts) <= MAX_NESTING:
        return raw
    pieces = [raw[:starts[MAX_NESTING]]]
    for start, end in zip(starts[MAX_NESTING:], [*starts[MAX_NESTING + 1:], len(raw)],
                          strict=True):
        pieces.append(b"X-Too-Deep-" + raw[start:end])
    return b"".join(pieces)


def _codec(label: str) -> str | None:
    """The codec for a charset label, or None when it is none we can read mail with."""
    try:
        info = codecs.lookup(label)
    except (LookupError, ValueError):  # unknown, or a NUL in the name
        return None
    if info.name in _NOT_CHARSETS or not getattr(info, "_is_text_encoding", True):
        return None
    return info.name


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Text in the labelled charset, else the first fallback that fits, else UTF-8 with
    replacement characters: never an exception. A label no mail charset answers to
    ("undefined", "punycode", a NUL in the name) counts as no label."""
    candidates: list[str] = []
    if b"\x1b$" in data:  # ISO-2022-JP escape sequences, whatever the label says ("us-ascii"
        candidates.append("iso2022_jp_ext")  # decodes them too, leaving "$B%f!<" gibberish)
    if charset:
        label = charset.strip().strip('"').lower()
        codec = _codec(_CHARSET_ALIASES.get(label, label))
        if codec is not None:
            candidates.append(codec)
    candidates.extend(_FALLBACKS)
    for name in candidates:
        try:
            return data.decode(name)
        except (LookupError, ValueError):  # UnicodeDecodeError and UnicodeError included
            continue
    return data.decode("utf-8", errors="replace")


def content_charset(part: Message) -> str | None:
    """The part's charset label; None when there is none or it cannot be read (an RFC 2231
    charset with a NUL in its own charset name raises inside the standard library)."""
    try:
        return part.get_content_charset()
    except (ValueError, LookupError, TypeError):
        return None


def header(msg: Message, name: str) -> str:
    """A header's value, encoded-words decoded, folded lines joined; "" when absent."""
    value = msg.get(name)
    return "" if value is None else decode_header_value(value)


def header_all(msg: Message, name: str) -> list[str]:
    return [decode_header_value(value) for value in msg.get_all(name) or []]


def decode_header_value(value: object) -> str:
    """The value decoded and on one line, of its first MAX_HEADER characters."""
    if isinstance(value, email.header.Header):
        # compat32 wraps raw 8-bit headers in a Header labelled unknown-8bit: decode the bytes
        # (a Header's pieces are decoded as they are, in linear time).
        try:
            text = "".join(decode_bytes(piece, charset) if isinstance(piece, bytes) else piece
                           for piece, charset in email.header.decode_header(value))
        except (ValueError, LookupError, AssertionError, email.errors.MessageError):
            text = str(value)
        text = text[:MAX_HEADER]
    else:
        text = str(value)[:MAX_HEADER]
        # Raw 8-bit bytes arrive as surrogate escapes: recover them as the charset they are.
        if any("\udc80" <= ch <= "\udcff" for ch in text):
            text = decode_bytes(text.encode("utf-8", "surrogateescape"), None)
        text = _decode_encoded_words(text)
    return " ".join(text.split())


def _decode_encoded_words(text: str) -> str:
    if "=?" not in text:
        return text
    try:
        pieces = email.header.decode_header(text)
    except (ValueError, LookupError, AssertionError, email.errors.MessageError):
        return text
    out: list[str] = []
    for piece, charset in pieces:
        out.append(decode_bytes(piece, charset) if isinstance(piece, bytes) else piece)
    return "".join(out)


def part_text(part: Message) -> str:
    """The decoded text of a leaf part (transfer encoding and charset); sub-messages as their
    serialised text so detectors can search them too."""
    if part.is_multipart():
        return "\n\n".join(_as_text(sub) for sub in part.get_payload()
                            if isinstance(sub, Message))
    # Never get_payload() without decode=True on a leaf: it decodes 8-bit text with the
    # part's charset label itself and raises for "undefined", "punycode" or a NUL in it.
    try:
        data = part.get_payload(decode=True)
    except (ValueError, AssertionError, LookupError):
        data = None
    if not isinstance(data, bytes):
        try:
            data = str(part.get_payload()).encode("utf-8", "surrogateescape")
        except (ValueError, LookupError, TypeError):
            data = b""
    return decode_bytes(data, content_charset(part))


def _as_text(msg: Message) -> str:
    lines = [f"{name}: {decode_header_value(value)}" for name, value in msg.items()]
    body = "" if msg.is_multipart() else part_text(msg)
    return "\n".join(lines) + ("\n\n" + body if body else "")


def is_textual(part: Message) -> bool:
    """A text part, or a multipart whose boundary never matched (the parser leaves its body as
    one string: real bounces with a broken boundary still carry their words there)."""
    if part.get_content_maintype() == "text":
        return part.get_content_type() not in ("text/rfc822-headers", "text/html")
    return part.is_multipart() is False and part.get_content_maintype() == "multipart"


def walk(msg: Message, depth: int = 0) -> Iterator[Message]:
    """Every part, but never into a returned original (message/rfc822): its parts belong to
    our own message, not to the report. Parts deeper than MAX_NESTING are not walked."""
    yield msg
    if msg.get_content_type() in ("message/rfc822", "message/delivery-status",
                                  "message/feedback-report") or depth >= MAX_NESTING:
        return
    if msg.is_multipart():  # get_payload() of a leaf would decode it (and could raise)
        for sub in msg.get_payload():
            if isinstance(sub, Message):
                yield from walk(sub, depth + 1)


def _address_spans(text: str) -> Iterator[str]:
    """What `[local chars]+@domain` would find in `text`, left to right without overlaps, read
    outward from each "@": each character is looked at a bounded number of times."""
    done = 0  # where the last address found ended: the next one starts no earlier
    at = text.find("@")
    while at != -1:
        start = at
        while start > done and text[start - 1] in _LOCAL_CHARS:
            start -= 1
        domain = _DOMAIN.match(text, at + 1) if start < at else None
        if domain is None:
            at = text.find("@", at + 1)
            continue
        yield text[start:domain.end()]
        done = domain.end()
        at = text.find("@", done)


def has_address(text: str) -> bool:
    return next(_address_spans(text), None) is not None


def bare_address(value: str) -> str:
    """`rfc822; <Kijitora@Example.JP>` → `kijitora@example.jp`'s form: local part kept,
    domain lower-cased, brackets, quotes and the address-type prefix gone. "" if none."""
    value = value.strip()
    if ";" in value and "@" not in value.split(";", 1)[0]:
        value = value.split(";", 1)[1]
    found = next(_address_spans(value.replace("<", " ").replace(">", " ")), None)
    if not found:
        return ""
    local, _, domain = found.strip(".").rpartition("@")
    return f"{local}@{domain.lower().rstrip('.')}"


def addresses(text: str) -> list[str]:
    """Every address in `text`, cleaned, in order, without repeats."""
    seen: dict[str, None] = {}
    for match in _address_spans(text):
        address = bare_address(match)
        if address and "." in address.rpartition("@")[2]:
            seen.setdefault(address, None)
    return list(seen)
