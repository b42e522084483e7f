"""RFC 3464 delivery status notifications: the per-recipient fields of every
message/delivery-status part (and of DSN-shaped text some servers put in a text/plain part)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message

from ainews_newsletter.feedback import mime

_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)[ \t]*:[ \t]*(.*)$")
STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


def status_in(text: str) -> str:
    """The first RFC 3463 enhanced status code in `text` ("5.1.1"), or ""."""
    match = STATUS.search(text)
    return ".".join(match.groups()) if match else ""


@dataclass(frozen=True)
class DsnRecipient:
    email: str
    action: str  # lower-cased RFC 3464 Action ("" when missing)
    status: str  # normalised "5.1.1" ("" when missing or unreadable)
    diagnostic: str  # Diagnostic-Code without its "smtp;" type, one line


def _blocks(text: str) -> list[dict[str, str]]:
    """Field blocks separated by blank lines; folded lines joined to their field."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last = ""
    folded: list[str] = []  # the current field's continuation lines, joined once at its end

    def unfold() -> None:
        if folded:
            current[last] = " ".join([current[last], *folded])[:mime.MAX_HEADER]
            folded.clear()

    for line in text.split("\n"):
        if not line.strip():
            unfold()
            if current:
                blocks.append(current)
            current, last = {}, ""
            continue
        if line[0] in " \t" and last:
            folded.append(line.strip())
            continue
        unfold()
        match = _FIELD.match(line)
        if match:
            last = match.group(1).lower()
            # Some servers (AOL) run recipients together without the blank line.
            if last in ("final-recipient", "original-recipient") and "final-recipient" in current \
                    and "action" in current:
                blocks.append(current)
                current = {}
            # A repeated field keeps its first value, as RFC 3464 allows only one.
            current.setdefault(last, match.group(2).strip()[:mime.MAX_HEADER])
        else:
            last = ""
    unfold()
    if current:
        blocks.append(current)
    return blocks


def _normal_status(value: str) -> str:
    match = STATUS.search(value)
    return ".".join(match.groups()) if match else ""


def _strip_type(value: str) -> str:
    """"smtp; 550 5.1.1 …" → "550 5.1.1 …": the type label says nothing to a reader."""
    head, sep, rest = value.partition(";")
    if sep and re.fullmatch(r"\s*[A-Za-z0-9-]+\s*", head):
        return " ".join(rest.split())
    return " ".join(value.split())


def recipients_from_text(text: str) -> list[DsnRecipient]:
    found: list[DsnRecipient] = []
    for block in _blocks(text):
        raw_to = (block.get("final-recipient") or block.get("original-recipient")
                  or block.get("x-actual-recipient") or "")
        if not raw_to:
            continue
        address = mime.bare_address(raw_to)
        original = mime.bare_address(block.get("original-recipient", ""))
        if original and (raw_to.split(";")[-1].strip().startswith("@")
                         or "." not in address.rpartition("@")[2]):
            # A source route or a bare internal host name: the sender's own address is
            # the one our records know.
            address = original
        if not address:
            continue
        diagnostic = _strip_type(block.get("diagnostic-code", ""))
        status = _normal_status(block.get("status", "")) or _normal_status(diagnostic)
        if status.endswith(".0.0") and _normal_status(diagnostic)[:1] == status[:1]:
            # A generic X.0.0 next to the server's own, more precise code: keep the precise one.
            status = _normal_status(diagnostic)
        action = block.get("action", "").split()[0].lower() if block.get("action") else ""
        found.append(DsnRecipient(address, action, status, diagnostic))
    return found


def delivery_status_parts(msg: Message) -> list[str]:
    """The text of every message/delivery-status part (outside returned originals)."""
    texts: list[str] = []
    for part in mime.walk(msg):
        ctype = part.get_content_type()
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            texts.append(_status_text(part))
    return texts


def _status_text(part: Message) -> str:
    payload = part.get_payload()
    if not isinstance(payload, list):
        return mime.part_text(part)
    # compat32 parses each field block as a header-only sub-message; a block whose fields
    # did not parse as headers lands in that sub-message's body, kept as text.
    blocks: list[str] = []
    for sub in payload:
        if not isinstance(sub, Message):
            continue
        lines = [f"{name}: {mime.decode_header_value(value)}" for name, value in sub.items()]
        body = sub.get_payload()
        if isinstance(body, str) and ":" in body:
            lines.append(body)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def parse_dsn(msg: Message) -> list[DsnRecipient]:
    """Recipients of the message's delivery-status parts; if there are none, DSN fields
    written into the text (some gateways flatten the report), else []."""
    found: list[DsnRecipient] = []
    for text in delivery_status_parts(msg):
        found.extend(recipients_from_text(text))
    if found:
        return _dedupe(found)
    for part in mime.walk(msg):
        if mime.is_textual(part):
            text = mime.part_text(part)
            if "final-recipient" in text.lower():
                found.extend(r for r in recipients_from_text(text) if r.action or r.status)
    return _dedupe(found)


def _dedupe(found: list[DsnRecipient]) -> list[DsnRecipient]:
    """One entry per address (a report that lists a recipient twice, e.g. once per attempt,
    keeps the entry with the most information)."""
    best: dict[str, DsnRecipient] = {}
    for item in found:
        key = item.email.lower()
        old = best.get(key)
        if old is None or (not old.status and item.status) or (
                not old.diagnostic and item.diagnostic and old.status == item.status):
            best[key] = item
    return list(best.values())
