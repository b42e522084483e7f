"""MIME helpers shared by the detectors: tolerant header decoding, part text in any charset,
and address clean-up. Returned mail is the worst-formed mail there is (truncated bodies, raw
8-bit Japanese headers, wrong charset labels), so every helper degrades to replacement
characters instead of raising."""

from __future__ import annotations

import email
import email.errors
import email.header
import re
from collections.abc import Iterator
from email.message import Message
from email.policy import compat32

# compat32 is the parser that never raises on malformed headers and keeps message/rfc822 and
# message/delivery-status payloads as sub-messages, which the detectors walk.
POLICY = compat32

ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.\-]+"
                     r"@[A-Za-z0-9](?:[A-Za-z0-9\-.]*[A-Za-z0-9])?")
# Labels that are wrong or too narrow in the wild: Japanese carriers label CP932 text
# "Shift_JIS" and use JIS X 0212 extensions in "ISO-2022-JP".
_CHARSET_ALIASES = {"shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932",
                    "x-sjis": "cp932", "iso-2022-jp": "iso2022_jp_ext", "euc-jp": "euc_jis_2004",
                    "ks_c_5601-1987": "cp949", "gb2312": "gb18030", "unknown-8bit": "utf-8"}
_FALLBACKS = ("utf-8", "iso2022_jp_ext", "cp932", "euc_jp")


def load(raw: bytes) -> Message:
    return email.message_from_bytes(raw, policy=POLICY)


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Text in the labelled charset, else the first fallback that fits, else UTF-8 with
    replacement characters: never an exception."""
    candidates: list[str] = []
    if b"\x1b$" in data:  # ISO-2022-JP escape sequences, whatever the label says ("us-ascii"
        candidates.append("iso2022_jp_ext")  # decodes them too, leaving "$B%f!<" gibberish)
    if charset:
        label = charset.strip().strip('"').lower()
        candidates.append(_CHARSET_ALIASES.get(label, label))
    candidates.extend(_FALLBACKS)
    for name in candidates:
        try:
            return data.decode(name)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("utf-8", errors="replace")


def header(msg: Message, name: str) -> str:
    """A header's value, encoded-words decoded, folded lines joined; "" when absent."""
    value = msg.get(name)
    return "" if value is None else decode_header_value(value)


def header_all(msg: Message, name: str) -> list[str]:
    return [decode_header_value(value) for value in msg.get_all(name) or []]


def decode_header_value(value: object) -> str:
    if isinstance(value, email.header.Header):
        # compat32 wraps raw 8-bit headers in a Header labelled unknown-8bit: decode the bytes.
        try:
            text = "".join(decode_bytes(piece, charset) if isinstance(piece, bytes) else piece
                           for piece, charset in email.header.decode_header(value))
        except (ValueError, LookupError, AssertionError, email.errors.MessageError):
            text = str(value)
    else:
        text = str(value)
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
    payload = part.get_payload()
    if isinstance(payload, list):
        return "\n\n".join(_as_text(sub) for sub in payload if isinstance(sub, Message))
    try:
        data = part.get_payload(decode=True)
    except (ValueError, AssertionError, LookupError):
        data = None
    if not isinstance(data, bytes):
        data = str(payload).encode("utf-8", "surrogateescape")
    return decode_bytes(data, part.get_content_charset())


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


def walk(msg: Message) -> Iterator[Message]:
    """Every part, but never into a returned original (message/rfc822): its parts belong to
    our own message, not to the report."""
    yield msg
    if msg.get_content_type() in ("message/rfc822", "message/delivery-status",
                                  "message/feedback-report"):
        return
    payload = msg.get_payload()
    if isinstance(payload, list):
        for sub in payload:
            if isinstance(sub, Message):
                yield from walk(sub)


def bare_address(value: str) -> str:
    """`rfc822; <Kijitora@Example.JP>` → `kijitora@example.jp`'s form: local part kept,
    domain lower-cased, brackets, quotes and the address-type prefix gone. "" if none."""
    value = value.strip()
    if ";" in value and "@" not in value.split(";", 1)[0]:
        value = value.split(";", 1)[1]
    found = ADDRESS.search(value.replace("<", " ").replace(">", " "))
    if not found:
        return ""
    local, _, domain = found.group(0).strip(".").rpartition("@")
    return f"{local}@{domain.lower().rstrip('.')}"


def addresses(text: str) -> list[str]:
    """Every address in `text`, cleaned, in order, without repeats."""
    seen: dict[str, None] = {}
    for match in ADDRESS.finditer(text):
        address = bare_address(match.group(0))
        if address and "." in address.rpartition("@")[2]:
            seen.setdefault(address, None)
    return list(seen)
