"""Subscriber files as people really have them: exports from Mailchimp, Substack, listmonk
and Buttondown, and our own CSV. The format is detected from the header row; UTF-8 with or
without BOM; `,` `;` or tab delimited; quoted fields with newlines; CRLF. Each row is
validated and comes out as an ImportRow or a Rejected with its line number and reason."""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

from ainews_newsletter.errors import SubscriberError
from ainews_newsletter.models import SubscriberStatus
from ainews_newsletter.subscribers.addresses import normalize
from ainews_newsletter.subscribers.importer import ImportRow, Rejected
from ainews_newsletter.subscribers.names import clean_name

FORMATS = ("auto", "csv", "mailchimp", "substack", "listmonk", "buttondown")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
csv.field_size_limit(1024 * 1024)  # a long attributes column is not an error

Row = dict[str, str]
Mapper = Callable[[Row], tuple[str, str | None, SubscriberStatus | None, dict[str, Any] | None]]
# Our own export names the lists a subscriber is on ("a;b"); importing it restores them.
LISTS_COLUMN = "lists"


def _cell(row: Row, *names: str) -> str:
    for name in names:
        value = row.get(name)
        if value:
            return unescape_formula(value.strip())
    return ""


def unescape_formula(value: str) -> str:
    """Undo the `'` our export puts before a cell a spreadsheet would run as a formula."""
    starts = value[1:2]
    return value[1:] if value.startswith("'") and starts and starts in (*FORMULA_START, "'") \
        else value


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("true", "yes", "1", "t", "y")


class UnknownStatus(ValueError):
    """A status column value we cannot map: the row is rejected, never guessed active."""


_STATUS_WORDS = {status.value: status for status in SubscriberStatus} | {
    "subscribed": SubscriberStatus.ACTIVE, "confirmed": SubscriberStatus.ACTIVE,
    "enabled": SubscriberStatus.ACTIVE, "unconfirmed": SubscriberStatus.PENDING,
    "inactive": SubscriberStatus.UNSUBSCRIBED, "disabled": SubscriberStatus.UNSUBSCRIBED,
    "blocklisted": SubscriberStatus.UNSUBSCRIBED, "blacklisted": SubscriberStatus.UNSUBSCRIBED,
    "cleaned": SubscriberStatus.BOUNCED, "spam": SubscriberStatus.COMPLAINED,
}


def _ours(row: Row) -> tuple[str, str | None, SubscriberStatus | None, dict[str, Any] | None]:
    status = _cell(row, "status").lower()
    if status and status not in _STATUS_WORDS:
        raise UnknownStatus(f"unknown status {status!r} (use one of "
                            f"{', '.join(s.value for s in SubscriberStatus)})")
    attributes = _cell(row, "attributes")
    return (_cell(row, "email", "email address", "e-mail"), _cell(row, "name") or None,
            _STATUS_WORDS.get(status), _json_object(attributes))


def _mailchimp(row: Row) -> tuple[str, str | None, SubscriberStatus | None, dict[str, Any] | None]:
    name = " ".join(part for part in (_cell(row, "first name"), _cell(row, "last name")) if part)
    # Mailchimp exports one file per audience status; the timestamp columns tell which.
    if _cell(row, "unsub_time"):
        status = SubscriberStatus.UNSUBSCRIBED
    elif _cell(row, "clean_time"):
        status = SubscriberStatus.BOUNCED
    else:
        status = SubscriberStatus.ACTIVE
    tags = _cell(row, "tags")
    return (_cell(row, "email address"), name or None, status,
            {"tags": tags} if tags else None)


def _substack(row: Row) -> tuple[str, str | None, SubscriberStatus | None, dict[str, Any] | None]:
    # email_disabled: the reader turned emails off; active_subscription: a paying reader.
    status = (SubscriberStatus.UNSUBSCRIBED if _truthy(_cell(row, "email_disabled"))
              else SubscriberStatus.ACTIVE)
    paid = _truthy(_cell(row, "active_subscription"))
    return _cell(row, "email"), _cell(row, "name") or None, status, {"paid": True} if paid else None


_LISTMONK_STATUS = {"enabled": SubscriberStatus.ACTIVE, "disabled": SubscriberStatus.UNSUBSCRIBED,
                    "blocklisted": SubscriberStatus.UNSUBSCRIBED}


def _listmonk(row: Row) -> tuple[str, str | None, SubscriberStatus | None, dict[str, Any] | None]:
    status = _LISTMONK_STATUS.get(_cell(row, "status").lower(), SubscriberStatus.ACTIVE)
    return (_cell(row, "email"), _cell(row, "name") or None, status,
            _json_object(_cell(row, "attributes")))


_BUTTONDOWN_STATUS = {
    "regular": SubscriberStatus.ACTIVE, "premium": SubscriberStatus.ACTIVE,
    "gifted": SubscriberStatus.ACTIVE, "trialed": SubscriberStatus.ACTIVE,
    "unactivated": SubscriberStatus.PENDING, "unpaid": SubscriberStatus.ACTIVE,
    "unsubscribed": SubscriberStatus.UNSUBSCRIBED, "removed": SubscriberStatus.UNSUBSCRIBED,
    "complained": SubscriberStatus.COMPLAINED, "undeliverable": SubscriberStatus.BOUNCED,
}


def _buttondown(row: Row) -> tuple[str, str | None, SubscriberStatus | None,
                                   dict[str, Any] | None]:
    status = _BUTTONDOWN_STATUS.get(_cell(row, "subscriber_type").lower(),
                                    SubscriberStatus.ACTIVE)
    tags = _cell(row, "tags")
    return _cell(row, "email"), None, status, {"tags": tags} if tags else None


MAPPERS: dict[str, Mapper] = {"csv": _ours, "mailchimp": _mailchimp, "substack": _substack,
                              "listmonk": _listmonk, "buttondown": _buttondown}


def _json_object(text: str) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {"raw": text}
    return value if isinstance(value, dict) and value else None


def detect(header: list[str]) -> str:
    """The export format a header row belongs to."""
    names = {cell.strip().lower() for cell in header}
    if "email address" in names and ({"first name", "last name"} & names or
                                     "member_rating" in names):
        return "mailchimp"
    if "email" in names and "active_subscription" in names:
        return "substack"
    if "email" in names and "subscriber_type" in names:
        return "buttondown"
    if "email" in names and "attributes" in names and "uuid" in names:
        return "listmonk"
    return "csv"


class _CountingReader(io.RawIOBase):
    """A binary file that counts the bytes read through it (for the progress bar)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self.raw.readinto(buffer)  # type: ignore[attr-defined]
        self.bytes_read += count or 0
        return int(count or 0)

    def close(self) -> None:
        self.raw.close()
        super().close()


@dataclass(frozen=True)
class Opened:
    format: str
    columns: list[str]
    rows: Iterator[ImportRow | Rejected]
    bytes_read: Callable[[], int]  # how far into the file the reader is


def _delimiter(first_line: str) -> str:
    counts = {delimiter: first_line.count(delimiter) for delimiter in (",", ";", "\t")}
    return max(counts, key=lambda delimiter: counts[delimiter]) if any(counts.values()) else ","


def _check_encoding(path: Path) -> None:
    """Decode the whole file before anything is imported (streaming, constant memory): a bad
    byte on line 600,000 must fail the import before the first batch commits."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    line = 1
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                bad_line = line + chunk[:exc.start].count(b"\n")
                raise SubscriberError(f"{path}:{bad_line}: not UTF-8 text; save the file as "
                                      "UTF-8 CSV (nothing was imported)") from None
            line += chunk.count(b"\n")


def _check_text(path: Path) -> None:
    try:
        with path.open("rb") as handle:
            head = handle.read(8192)
    except FileNotFoundError:
        raise SubscriberError(f"subscriber file not found: {path}") from None
    except IsADirectoryError:
        raise SubscriberError(f"{path} is a folder, not a subscriber file") from None
    if not head.strip():
        raise SubscriberError(f"{path}: the file is empty; expected a header row with an "
                              "email column")
    if b"\x00" in head:
        raise SubscriberError(f"{path}: this is a binary file, not a CSV (save the export as "
                              "CSV, UTF-8)")


def open_subscriber_file(path: Path, file_format: str = "auto",
                         check_dns: bool = False) -> Opened:
    """Open and check the header; rows are read lazily (constant memory for any size)."""
    if file_format not in FORMATS:
        raise SubscriberError(f"unknown format {file_format!r}; use one of "
                              f"{', '.join(FORMATS)}")
    _check_text(path)
    _check_encoding(path)
    with path.open(encoding="utf-8-sig", newline="") as peek:
        try:
            first = peek.readline()
        except UnicodeDecodeError as exc:
            raise SubscriberError(f"{path}: not UTF-8 text (byte {exc.start}); save it as "
                                  "UTF-8 CSV") from None
    counting = _CountingReader(path.open("rb"))
    handle = io.TextIOWrapper(io.BufferedReader(counting), encoding="utf-8-sig", newline="")
    try:
        reader = csv.reader(handle, delimiter=_delimiter(first))
        header = next(reader, [])
    except UnicodeDecodeError as exc:
        handle.close()
        raise SubscriberError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8 "
                              "CSV") from None
    columns = [cell.strip() for cell in header]
    lowered = [cell.lower() for cell in columns]
    if not ({"email", "email address", "e-mail"} & set(lowered)):
        handle.close()
        raise SubscriberError(f"{path}:1: no email column; the columns found are: "
                              f"{', '.join(repr(c) for c in columns) or 'none'}")
    chosen = detect(columns) if file_format == "auto" else file_format
    return Opened(chosen, columns, _rows(handle, reader, lowered, MAPPERS[chosen], path,
                                         check_dns), lambda: counting.bytes_read)


def _rows(handle: IO[str], reader: Any, header: list[str], mapper: Mapper, path: Path,
          check_dns: bool) -> Iterator[ImportRow | Rejected]:
    line = reader.line_num
    try:
        for record in reader:
            start, line = line + 1, reader.line_num  # a quoted field may span several lines
            if not any(cell.strip() for cell in record):
                continue
            row: Row = {}
            for column, value in zip(header, record, strict=False):
                # A column named twice: the first filled value wins.
                if column not in row or (not row[column].strip() and value.strip()):
                    row[column] = value
            try:
                email, name, status, attributes = mapper(row)
            except UnknownStatus as exc:
                yield Rejected(start, _cell(row, "email", "email address"), str(exc))
                continue
            on_lists = tuple(name.strip() for name in _cell(row, LISTS_COLUMN).split(";")
                             if name.strip()) if mapper is _ours else ()
            try:
                stored, normalized = normalize(email, check_dns=check_dns)
            except SubscriberError as exc:
                yield Rejected(start, email, str(exc))
                continue
            yield ImportRow(start, stored, normalized, clean_name(name), status, attributes,
                            on_lists)
    except UnicodeDecodeError as exc:
        raise SubscriberError(f"{path}:{line + 1}: not UTF-8 text (byte {exc.start})") from None
    except csv.Error as exc:
        raise SubscriberError(f"{path}:{reader.line_num}: malformed CSV: {exc}") from None
    finally:
        handle.close()
