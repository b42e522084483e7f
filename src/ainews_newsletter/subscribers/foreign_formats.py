"""Other services' subscriber exports: which one a header row belongs to, and how each row
reads as (address, name, status, attributes).

One rule holds over every format: a row that says the person cannot or does not want to
receive mail — a status such as unsubscribed, cleaned, bounced, blocklisted or inactive; a
`subscribed…` column that is false; `email_disabled` true; a non-empty `unsubscribed_at`,
`deleted_at`, Mailchimp's `UNSUB_TIME` or `CLEAN_TIME` — is never imported mailable,
whatever else the row says. An unknown status value rejects the row and names the value
(never guessed active). Columns are matched by name, case- and spacing-insensitively."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ainews_newsletter.models import SubscriberStatus

Row = dict[str, str]  # column key (see `column_key`) → cell
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Our own export names the lists a subscriber is on ("a;b"); importing it restores them.
LISTS_COLUMN = "lists"
EMAIL_COLUMNS = ("email", "email_address", "e_mail", "emailaddress")


def column_key(header_cell: str) -> str:
    """"Email Address", "email_address" and "E-mail" alike: lower case, words joined by _."""
    return re.sub(r"[^0-9a-z]+", "_", header_cell.strip().lower()).strip("_")


class RefusedRow(ValueError):
    """A row a cell of which cannot be taken: it is rejected with this reason."""


class UnknownStatus(RefusedRow):
    """A status value we cannot map: the row is rejected, never guessed active."""


@dataclass(frozen=True)
class Mapped:
    email: str
    name: str | None
    status: SubscriberStatus | None  # None: the file does not say (new rows become active)
    attributes: dict[str, Any] | None


def unescape_formula(value: str) -> str:
    """Undo the `'` our export puts before a cell a spreadsheet would run as a formula."""
    starts = value[1:2]
    return value[1:] if value.startswith("'") and starts and starts in (*FORMULA_START, "'") \
        else value


def cell(row: Row, *keys: str) -> str:
    for key in keys:
        value = row.get(key)
        if value and (value := value.strip()):
            return unescape_formula(value) if value[0] == "'" else value
    return ""


_FALSE = {"false", "no", "0", "f", "n", "off"}
_TRUE = {"true", "yes", "1", "t", "y", "on"}

# Status words every format understands; a format adds its own.
STATUS_WORDS: dict[str, SubscriberStatus] = {s.value: s for s in SubscriberStatus} | {
    "subscribed": SubscriberStatus.ACTIVE, "confirmed": SubscriberStatus.ACTIVE,
    "enabled": SubscriberStatus.ACTIVE, "unconfirmed": SubscriberStatus.PENDING,
    "inactive": SubscriberStatus.UNSUBSCRIBED, "disabled": SubscriberStatus.UNSUBSCRIBED,
    "cancelled": SubscriberStatus.UNSUBSCRIBED, "canceled": SubscriberStatus.UNSUBSCRIBED,
    "deleted": SubscriberStatus.UNSUBSCRIBED, "removed": SubscriberStatus.UNSUBSCRIBED,
    "blocklisted": SubscriberStatus.UNSUBSCRIBED, "blacklisted": SubscriberStatus.UNSUBSCRIBED,
    "cleaned": SubscriberStatus.BOUNCED, "undeliverable": SubscriberStatus.BOUNCED,
    "spam": SubscriberStatus.COMPLAINED,
}

# How far a status keeps mail away: of two signals in one row, the stronger wins.
_STRENGTH = {SubscriberStatus.ACTIVE: 0, SubscriberStatus.PENDING: 1,
             SubscriberStatus.UNSUBSCRIBED: 2, SubscriberStatus.BOUNCED: 3,
             SubscriberStatus.COMPLAINED: 4}


def _stronger(a: SubscriberStatus | None, b: SubscriberStatus | None) -> SubscriberStatus | None:
    if a is None or b is None:
        return a or b
    return a if _STRENGTH[a] >= _STRENGTH[b] else b


# Opt-out columns by what a filled cell means. Yes/no columns count when they say no to
# mail; time columns when filled with anything but "false" or a null.
_CONSENT_PREFIXES = ("subscribed", "is_subscribed", "opt_in", "opted_in", "email_opt_in",
                     "accepts_marketing", "accepts_email")
_LEFT_IF_TRUE = {"email_disabled", "unsubscribed", "is_unsubscribed", "opted_out",
                 "email_opt_out", "do_not_email"}
_LEFT_IF_DATED = {"unsubscribed_at", "unsub_time", "deleted_at", "unsubscribed_on",
                  "opted_out_at", "unsubscribed"}
_BOUNCED_IF_DATED = {"clean_time", "cleaned_at", "bounced_at"}
_COMPLAINED_IF_DATED = {"complained_at", "spam_complaint_at"}
_STATUS_COLUMNS = {"status", "state", "subscriber_status", "subscription_status"}
# What exports write for "no value".
_NULL = {"null", "none", "nil", "n/a", "na", "-", "0000-00-00", "0000-00-00 00:00:00"}


def _refusal_of(key: str, text: str) -> SubscriberStatus | None:
    if key.startswith(_CONSENT_PREFIXES) and text in _FALSE:  # subscribed_to_emails=false
        return SubscriberStatus.UNSUBSCRIBED
    if key in _LEFT_IF_TRUE and text in _TRUE:
        return SubscriberStatus.UNSUBSCRIBED
    if key in _STATUS_COLUMNS:  # a status any format spells the same way, if it left
        word = STATUS_WORDS.get(text)
        return word if word is not None and word.has_left else None
    if text in _FALSE or text in _TRUE:
        return None
    if key in _LEFT_IF_DATED:
        return SubscriberStatus.UNSUBSCRIBED
    if key in _BOUNCED_IF_DATED:
        return SubscriberStatus.BOUNCED
    if key in _COMPLAINED_IF_DATED:
        return SubscriberStatus.COMPLAINED
    return None


def refusal(row: Row) -> SubscriberStatus | None:
    """What the row's opt-out columns say, whatever the format: the one rule above."""
    found: SubscriberStatus | None = None
    for key, value in row.items():
        text = value.strip().lower()
        if text and text not in _NULL:
            found = _stronger(found, _refusal_of(key, text))
    return found


def _status(value: str, words: dict[str, SubscriberStatus], column: str) -> SubscriberStatus:
    word = value.strip().lower()
    if word in words:
        return words[word]
    if word in STATUS_WORDS:
        return STATUS_WORDS[word]
    raise UnknownStatus(f"unknown {column} {value.strip()!r}")


def _stated(row: Row, default: SubscriberStatus | None,
            words: dict[str, SubscriberStatus] | None = None) -> SubscriberStatus | None:
    """The row's status or state column when it has one (an unknown value rejects the
    row), else `default`."""
    for column in ("status", "state"):
        value = cell(row, column)
        if value:
            return _status(value, words or {}, column)
    return default


def _name(row: Row, full: tuple[str, ...], first: tuple[str, ...] = ("first_name", "first"),
          last: tuple[str, ...] = ("last_name", "surname", "last")) -> str | None:
    """The full-name column, else first and last joined (each trimmed)."""
    whole = cell(row, *full) if full else ""
    if not whole:
        whole = " ".join(part for part in (cell(row, *first), cell(row, *last)) if part)
    return whole or None


# How deep an attributes cell's JSON may nest (real ones are flat or one level down).
MAX_ATTRIBUTES_DEPTH = 32


def _refuse_constant(name: str) -> Any:
    raise RefusedRow(f"attributes: {name} is not a number JSON can store")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise RefusedRow(f"attributes: the number {text[:20]}… is too large to store")
    return value


def _depth(value: object) -> int:
    """How deep a loaded JSON value nests (iterative: no recursion on hostile input)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (
                item.values() if isinstance(item, dict) else item))
    return deepest


def json_object(text: str) -> dict[str, Any] | None:
    """An attributes cell: a JSON object, or {"raw": text} for text that is not JSON. A
    number Python cannot hold as text (more than 4,300 digits), NaN or infinity (no
    database stores them) or nesting past MAX_ATTRIBUTES_DEPTH refuses the row."""
    if not text:
        return None
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite)
    except json.JSONDecodeError:
        return {"raw": text}
    except RecursionError:
        raise RefusedRow(f"attributes: JSON nested more than {MAX_ATTRIBUTES_DEPTH} levels "
                         "deep") from None
    except RefusedRow:
        raise
    except ValueError:  # int(): "Exceeds the limit (4300 digits) for integer string …"
        raise RefusedRow("attributes: a number of more than 4,300 digits") from None
    if _depth(value) > MAX_ATTRIBUTES_DEPTH:
        raise RefusedRow(f"attributes: JSON nested more than {MAX_ATTRIBUTES_DEPTH} levels "
                         "deep")
    return value if isinstance(value, dict) and value else None


def _kept_attributes(row: Row, *keys: str) -> dict[str, Any] | None:
    """Columns worth keeping as attributes (tags, labels, plan, notes)."""
    kept = {key: cell(row, key) for key in keys if cell(row, key)}
    return kept or None


def detect(header: list[str]) -> str:
    """The export a header row (its cells as written) belongs to."""
    return detect_keys({column_key(column) for column in header})


# -- one mapper per service ---------------------------------------------------------------

def ours(row: Row) -> Mapped:
    return Mapped(cell(row, *EMAIL_COLUMNS), _name(row, ("name",)), _stated(row, None),
                  json_object(cell(row, "attributes")))


def mailchimp(row: Row) -> Mapped:
    # One file per audience status; its time columns (UNSUB_TIME, CLEAN_TIME) say which,
    # through the common rule.
    return Mapped(cell(row, *EMAIL_COLUMNS), _name(row, ()),
                  _stated(row, SubscriberStatus.ACTIVE), _kept_attributes(row, "tags"))


def substack(row: Row) -> Mapped:
    # email_list.*.csv (every sign-up) and subscriber_emails (paid, comp, gift: `type`);
    # email_disabled, through the common rule, says the reader turned mail off.
    attributes = _kept_attributes(row, "type")
    if cell(row, "active_subscription").lower() in _TRUE:
        attributes = {**(attributes or {}), "paid": True}
    return Mapped(cell(row, *EMAIL_COLUMNS), _name(row, ("name",)),
                  _stated(row, SubscriberStatus.ACTIVE), attributes)


def ghost(row: Row) -> Mapped:
    # subscribed_to_emails=false, through the common rule, is a member who gets no mail.
    return Mapped(cell(row, *EMAIL_COLUMNS), _name(row, ("name",)),
                  _stated(row, SubscriberStatus.ACTIVE), _kept_attributes(row, "labels", "note"))


_BEEHIIV = {"active": SubscriberStatus.ACTIVE, "inactive": SubscriberStatus.UNSUBSCRIBED,
            "pending": SubscriberStatus.PENDING, "validating": SubscriberStatus.PENDING,
            "invalid": SubscriberStatus.BOUNCED, "needs_attention": SubscriberStatus.PENDING}


def beehiiv(row: Row) -> Mapped:
    return Mapped(cell(row, *EMAIL_COLUMNS), _name(row, ()),
                  _stated(row, None, _BEEHIIV), _kept_attributes(row, "tier"))


_KIT = {"active": SubscriberStatus.ACTIVE, "inactive": SubscriberStatus.UNSUBSCRIBED,
        "cancelled": SubscriberStatus.UNSUBSCRIBED, "bounced": SubscriberStatus.BOUNCED,
        "complained": SubscriberStatus.COMPLAINED}


def kit(row: Row) -> Mapped:
    return Mapped(cell(row, *EMAIL_COLUMNS), _name(row, ("name",)), _stated(row, None, _KIT),
                  _kept_attributes(row, "tags"))


_BUTTONDOWN = {
    "regular": SubscriberStatus.ACTIVE, "premium": SubscriberStatus.ACTIVE,
    "gifted": SubscriberStatus.ACTIVE, "trialed": SubscriberStatus.ACTIVE,
    "unpaid": SubscriberStatus.ACTIVE, "churning": SubscriberStatus.ACTIVE,
    "past_due": SubscriberStatus.ACTIVE, "unactivated": SubscriberStatus.PENDING,
    "unsubscribed": SubscriberStatus.UNSUBSCRIBED, "removed": SubscriberStatus.UNSUBSCRIBED,
    "complained": SubscriberStatus.COMPLAINED, "undeliverable": SubscriberStatus.BOUNCED,
    "spammy": SubscriberStatus.UNSUBSCRIBED,
}


def buttondown(row: Row) -> Mapped:
    kind = cell(row, "subscriber_type", "type")
    return Mapped(cell(row, *EMAIL_COLUMNS), _name(row, ("name",)),
                  _status(kind, _BUTTONDOWN, "subscriber_type") if kind else None,
                  _kept_attributes(row, "tags"))


_LISTMONK = {"enabled": SubscriberStatus.ACTIVE, "disabled": SubscriberStatus.UNSUBSCRIBED,
             "blocklisted": SubscriberStatus.UNSUBSCRIBED}


def listmonk(row: Row) -> Mapped:
    return Mapped(cell(row, *EMAIL_COLUMNS), _name(row, ("name",)),
                  _stated(row, None, _LISTMONK), json_object(cell(row, "attributes")))


# TinyNews's first export numbers its statuses; Ghost's importer (the only reference) takes
# 1 as subscribed and 0 and 4 as not. Anything else is unknown, so rejected.
_TINYNEWS = {"1": SubscriberStatus.ACTIVE, "0": SubscriberStatus.UNSUBSCRIBED,
             "4": SubscriberStatus.UNSUBSCRIBED}


def tinynews(row: Row) -> Mapped:
    return Mapped(cell(row, *EMAIL_COLUMNS),
                  _name(row, (), first=("first_name", "name"), last=("surname", "last_name")),
                  _stated(row, None, _TINYNEWS), _kept_attributes(row, "tags"))


def curated(row: Row) -> Mapped:
    # Curated exports only its subscribed readers.
    return Mapped(cell(row, *EMAIL_COLUMNS), _name(row, ("name",)),
                  _stated(row, SubscriberStatus.ACTIVE), None)


def revue(row: Row) -> Mapped:
    """A subscriber object of Revue's API (JSON), flattened to text cells."""
    return Mapped(cell(row, *EMAIL_COLUMNS), _name(row, ("name",)), _stated(row, None),
                  None)


Mapper = Callable[[Row], Mapped]
MAPPERS: dict[str, Mapper] = {
    "csv": ours, "mailchimp": mailchimp, "substack": substack, "ghost": ghost,
    "beehiiv": beehiiv, "kit": kit, "buttondown": buttondown, "listmonk": listmonk,
    "tinynews": tinynews, "curated": curated, "revue": revue,
}

# What a header must hold for each format (when detected, or when asked for by --format):
# any one of the column sets.
SIGNATURES: dict[str, tuple[frozenset[str], ...]] = {
    # Columns only Mailchimp writes: "Email Address, First Name, Last Name" alone is anyone's.
    "mailchimp": (frozenset({"email_address", "member_rating"}),
                  frozenset({"email_address", "optin_time"}),
                  frozenset({"email_address", "leid"}), frozenset({"email_address", "euid"})),
    "substack": (frozenset({"email", "active_subscription"}),
                 frozenset({"email", "email_disabled"})),
    "ghost": (frozenset({"email", "subscribed_to_emails"}),
              frozenset({"email", "complimentary_plan"})),
    # Before beehiiv: TinyNews's first export has email, status and tier columns too.
    "tinynews": (frozenset({"channel_id", "engagement_optin"}),
                 frozenset({"email", "date_added", "last_modified", "status", "opens"})),
    "beehiiv": (frozenset({"email", "status", "tier"}),),
    "kit": (frozenset({"email_address", "state"}),
            frozenset({"email_address", "first_name", "created_at"})),
    "buttondown": (frozenset({"email", "subscriber_type"}),),
    "listmonk": (frozenset({"email", "attributes", "uuid"}),),
    "curated": (frozenset({"email_address", "subscribed_at"}),),
    "csv": (frozenset({"email"}), frozenset({"email_address"}), frozenset({"e_mail"})),
}


def fits(format_name: str, keys: set[str]) -> bool:
    return any(signature <= keys for signature in SIGNATURES.get(format_name, ()))


def detect_keys(keys: set[str]) -> str:
    """The export a header row belongs to (by its column keys); "csv" for anything else
    with an email column."""
    for name in SIGNATURES:
        if name != "csv" and fits(name, keys):
            return name
    return "csv"


def read_row(row: Row, mapper: Mapper) -> Mapped:
    """The row through its format's mapper, then the common opt-out rule over it."""
    mapped = mapper(row)
    refused = refusal(row)
    if refused is None:
        return mapped
    return dataclasses.replace(mapped, status=_stronger(mapped.status, refused))
