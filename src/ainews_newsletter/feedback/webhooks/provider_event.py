"""What every provider's webhook parser gives back, its errors, and the careful readers of
untrusted JSON they share. (Named provider_event, not event: feedback/events.py is the
event log, and the naming rule keeps the two apart.)

Every reader here takes any JSON value and returns a plain str, dict or list, never raising:
the parsers are fed whatever arrives on a public URL, and their only way to fail is
WebhookBodyError."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from email.utils import parseaddr

from ainews_newsletter.errors import FeedbackError
from ainews_newsletter.feedback.findings import FeedbackKind

DIAGNOSTIC_CHARS = 1000
ADDRESS_CHARS = 320  # the feedback_events.email column; anything longer is not an address
ID_CHARS = 500  # longer ids are hashed: they are keys, not text anyone reads
STATUS = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")


class WebhookBodyError(FeedbackError):
    """The body is not JSON, or not the shape this provider posts (400, nothing stored)."""


class UnsupportedProvider(FeedbackError):
    """A provider name we do not parse."""


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    """One provider event about one recipient (an SES bounce naming two addresses is two)."""
    provider: str  # ses, sendgrid, mailgun, postmark, postal
    event_id: str  # the provider's id of the event, else "sha256:…" of its content; never ""
    kind: FeedbackKind
    recipient: str  # domain lower-cased, local part as given; "" when the event names none
    provider_message_id: str  # the id the relay answered at DATA (SendGrid: its queue id)
    tag: str  # our ainews_tag from the event's metadata, "" when none
    message_id: str  # our Message-ID with <>, when the event carries the message's headers
    status: str  # RFC 3463 code ("5.1.1") when given, else ""
    diagnostic: str  # the provider's words, one line, at most 1000 chars
    event_type: str  # the provider's own name: "Bounce/Permanent/General", "failed/permanent"
    occurred_at: str  # the event's time as the provider wrote it ("" when none)
    feedback_type: str | None = None  # complaints: abuse, fraud, … when the provider says


def load_json(body: bytes | str) -> object:
    """The body as JSON, or WebhookBodyError: not UTF-8, not JSON, nested too deep, or a
    number Python refuses to read (ints over 4300 digits)."""
    try:
        text = body.decode("utf-8-sig") if isinstance(body, bytes) else body
        return json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError, TypeError) as exc:
        raise WebhookBodyError(f"the body is not JSON ({exc.__class__.__name__})") from None


def obj(value: object) -> dict[str, object]:
    """`value` if it is a JSON object, else an empty one (JSON keys are always str)."""
    return value if isinstance(value, dict) else {}


def seq(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def clean(value: str) -> str:
    """A str any database takes: no NUL (PostgreSQL refuses it) and no lone surrogate
    (JSON's "\\ud800" makes one, and UTF-8 cannot encode it)."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    if not value.isascii():
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def text(value: object) -> str:
    """A JSON string or number as text ("" for anything else: null, true, objects)."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value)
    return ""


def one_line(value: object, limit: int = DIAGNOSTIC_CHARS) -> str:
    """Words for a person: whitespace runs made one space, at most `limit` chars."""
    return " ".join(text(value)[:limit * 4].split())[:limit]


def address(value: object) -> str:
    """A recipient as providers give it (bare, perhaps in <>): domain lower-cased."""
    found = text(value).strip()
    if len(found) > ADDRESS_CHARS:
        return ""
    found = found.removeprefix("<").removesuffix(">").strip()
    local, at, domain = found.rpartition("@")
    return f"{local}@{domain.lower()}" if at else found


def header_address(value: object) -> str:
    """The first address of a To: header value ("Name <a@b>")."""
    header = text(value)
    if not header or len(header) > 4 * ADDRESS_CHARS:
        return ""
    return address(parseaddr(header)[1])


def angle(value: object) -> str:
    """A Message-ID in angle brackets ("" when none): providers drop them, we store them."""
    found = text(value).strip()
    if not found or len(found) > ID_CHARS:
        return ""
    return found if found.startswith("<") and found.endswith(">") else f"<{found.strip('<>')}>"


def tag_value(value: object) -> str:
    """Our delivery tag as an event carries it back (ours are 16 chars; a longer value is
    someone else's and is cut so it cannot bloat a lookup)."""
    return text(value).strip()[:64]


def status_code(*candidates: object) -> str:
    """The first RFC 3463 code among the values, whole ("5.1.1") or inside words."""
    for candidate in candidates:
        found = STATUS.search(text(candidate)[:DIAGNOSTIC_CHARS])
        if found:
            return found.group(0)
    return ""


def short_id(value: object) -> str:
    """A provider's id as a key: as given, or hashed when absurdly long."""
    found = text(value).strip()
    if len(found) > ID_CHARS:
        return "sha256:" + hashlib.sha256(found.encode("utf-8")).hexdigest()
    return found


def digest(data: object) -> str:
    """The hash of a JSON value's canonical form: the same event posted twice, whatever its
    spacing or key order, hashes the same. Computed once per event, not per recipient, so
    an event naming many recipients stays linear."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def hashed_id(event_digest: str, recipient: str, index: int) -> str:
    """The id of an event the provider gave none: its content hash, its recipient and their
    position (the same address twice in one event is two events)."""
    key = f"{event_digest}\n{index}\n{recipient}".encode()
    return "sha256:" + hashlib.sha256(key).hexdigest()
