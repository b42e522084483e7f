"""The copy of our own message a report carries: as a message/rfc822 part, as
text/rfc822-headers, or quoted in the prose after a "this is a copy of the message" line.
Its Message-ID, Return-Path (our VERP address) and List-Unsubscribe identify the delivery even
when the report hides the recipient."""

from __future__ import annotations

import re
from email.message import Message

from ainews_newsletter.feedback import mime
from ainews_newsletter.feedback.findings import Returned

# Lines after which MTAs quote the original (Exim, Sendmail, qmail, Postfix, Courier, …).
# The leading run is possessive and alone (it once had "(?:-+ *)?" after it, which it already
# covers): two quantifiers sharing the dash made a line of 12,000 dashes take a minute.
SEPARATOR = re.compile(
    r"^[ \t>-]*+(?:this is a copy of (?:the|your) message|original message|"
    r"returned message|unsent message follows|below this line is a copy|message headers follow|"
    r"original message headers|original mail as follows|headers of the original|"
    r"text of the returned message|undelivered message headers|"
    r"the (?:original )?message headers? (?:are|were|follow)|"
    r"rfc822 headers|original message details|"
    r"message header follows|content of the returned message|"
    r"the header of the original message is attached)",
    re.IGNORECASE | re.MULTILINE)
_HEADER = re.compile(r"^([A-Za-z][A-Za-z0-9-]*):[ \t]*(.*)$")
_URL = re.compile(r"<([^<>\s]+)>")


def original_message(msg: Message) -> Message | None:
    """The returned original (headers at least) found in a MIME part, or None."""
    for part in mime.walk(msg):
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "message/global", "message/rfc822-headers"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
            return mime.load(mime.part_text(part).encode("utf-8", "replace"))
        if ctype in ("text/rfc822-headers", "text/rfc822"):
            return mime.load(mime.part_text(part).lstrip("\n").encode("utf-8", "replace"))
    return None


def quoted_headers(text: str) -> dict[str, list[str]]:
    """Header fields of an original quoted in prose after a separator line."""
    found: dict[str, list[str]] = {}
    match = SEPARATOR.search(text)
    if not match:
        return found
    last = ""
    lines = text[match.end():].split("\n")[1:]
    started = False
    for line in lines[:200]:
        line = line.lstrip(">").rstrip() if line.startswith(">") else line.rstrip()
        if not line.strip():
            if started:
                break
            continue
        if line[0] in " \t" and last:
            found[last][-1] += " " + line.strip()
            continue
        field = _HEADER.match(line.strip())
        if field:
            started = True
            last = field.group(1).lower()
            found.setdefault(last, []).append(field.group(2).strip())
        elif started:
            break
    return found


def from_headers(fields: dict[str, list[str]]) -> Returned:
    ids = [mid for value in fields.get("message-id", [])
           for mid in re.findall(r"<[^<>\s]+>", value)]
    paths = [mime.bare_address(v) for v in fields.get("return-path", [])]
    urls = [url for value in fields.get("list-unsubscribe", []) for url in _URL.findall(value)]
    return Returned(message_ids=tuple(dict.fromkeys(ids)),
                    return_paths=tuple(dict.fromkeys(p for p in paths if p)),
                    unsubscribe_urls=tuple(dict.fromkeys(urls)))


def fields_of(original: Message) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for name, value in original.items():
        fields.setdefault(name.lower(), []).append(mime.decode_header_value(value))
    return fields


def returned_of(msg: Message, prose: str) -> tuple[Returned, dict[str, list[str]]]:
    """Identifiers of the returned original and its header fields (lower-cased names)."""
    original = original_message(msg)
    fields = fields_of(original) if original is not None else {}
    if not fields.get("message-id") and not fields.get("return-path"):
        quoted = quoted_headers(prose)
        if quoted:
            fields = quoted
    return from_headers(fields), fields
