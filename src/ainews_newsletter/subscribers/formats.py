"""Subscriber files as people really have them: our own CSV, exports of Mailchimp, Substack,
Ghost, beehiiv, Kit, Buttondown, listmonk, TinyNews and Curated (see `foreign_formats`), a Revue
JSON list, and a plain list of addresses one per line (Medium). The format is detected from
the header row (or the file's first character); UTF-8 with or without BOM; `,` `;` or tab
delimited; quoted fields with newlines; CRLF. Each row is validated and comes out as an
ImportRow or a Rejected with its line number and reason."""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

from ainews_newsletter.errors import SubscriberError
from ainews_newsletter.subscribers.addresses import normalize, plain_form
from ainews_newsletter.subscribers.foreign_formats import (
    EMAIL_COLUMNS,
    FORMULA_START,
    LISTS_COLUMN,
    MAPPERS,
    SIGNATURES,
    Mapper,
    RefusedRow,
    Row,
    cell,
    column_key,
    detect,
    fits,
    read_row,
    unescape_formula,
)
from ainews_newsletter.subscribers.importer import ImportRow, Rejected
from ainews_newsletter.subscribers.languages import row_language
from ainews_newsletter.subscribers.names import MAX_NAME, clean_name

# "lines": one address per line, no header (Medium's export); "revue": Revue's JSON.
FORMATS = ("auto", *MAPPERS, "lines")
csv.field_size_limit(1024 * 1024)  # a long attributes column is not an error
__all__ = ["FORMATS", "FORMULA_START", "detect", "open_subscriber_file", "unescape_formula"]


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


def _first_line(path: Path) -> str:
    """The first line that is not blank (a JSON export may start with an empty line)."""
    with path.open(encoding="utf-8-sig", newline="") as peek:
        for line in peek:
            if line.strip():
                return line
    return ""


def _looks_like_addresses(first: str) -> bool:
    """A file of bare addresses: its first line is one address, not a header."""
    text = first.strip()
    return ("@" in text and not any(mark in text for mark in (",", ";", "\t", " "))
            and column_key(text) not in EMAIL_COLUMNS)


def open_subscriber_file(path: Path, file_format: str = "auto",
                         check_dns: bool = False, allow_test: bool = False) -> Opened:
    """Open and check the header; rows are read lazily (constant memory for any size, but
    for JSON, which is read whole)."""
    if file_format not in FORMATS:
        raise SubscriberError(f"unknown format {file_format!r}; use one of "
                              f"{', '.join(FORMATS)}")
    _check_text(path)
    _check_encoding(path)
    first = _first_line(path)
    if first.lstrip().startswith(("{", "[")) or file_format == "revue":
        return _open_json(path, file_format, check_dns, allow_test)
    if file_format == "lines" or (file_format == "auto" and _looks_like_addresses(first)):
        return _open_lines(path, check_dns, allow_test)
    counting = _CountingReader(path.open("rb"))
    handle = io.TextIOWrapper(io.BufferedReader(counting), encoding="utf-8-sig", newline="")
    reader = csv.reader(handle, delimiter=_delimiter(first))
    try:
        header = next(reader, [])
    except csv.Error as exc:  # a header cell over the field limit, a NUL, …
        handle.close()
        raise SubscriberError(f"{path}:1: malformed CSV header: {exc}") from None
    columns = [column.strip() for column in header]
    keys = [column_key(column) for column in columns]
    if not set(EMAIL_COLUMNS) & set(keys):
        handle.close()
        raise SubscriberError(f"{path}:1: no email column; the columns found are: "
                              f"{', '.join(repr(c) for c in columns) or 'none'}")
    chosen = detect(columns) if file_format == "auto" else file_format
    if not fits(chosen, set(keys)):
        handle.close()
        wanted = " or ".join("+".join(sorted(s)) for s in SIGNATURES[chosen])
        raise SubscriberError(f"{path}:1: not a {chosen} export: it needs the columns "
                              f"{wanted}; the columns found are: "
                              f"{', '.join(repr(c) for c in columns)}")
    if chosen == "csv" and _is_plain(keys):
        rows = _plain_rows(handle, reader, keys, path, check_dns, allow_test)
    else:
        rows = _rows(_csv_records(handle, reader, keys, path), MAPPERS[chosen], check_dns,
                     allow_test, lists=chosen == "csv")
    return Opened(chosen, columns, rows, lambda: counting.bytes_read)


def _is_plain(keys: list[str]) -> bool:
    """An address column and perhaps a name, nothing else: the shape of most lists, read
    by `_plain_rows` without a dict, a mapper and the opt-out rule per row (none of which
    can say anything about such a row: no status, opt-out, attributes or lists column)."""
    return (len(set(keys)) == len(keys) and set(keys) <= {*EMAIL_COLUMNS, "name"}
            and len(set(keys) & set(EMAIL_COLUMNS)) == 1)


def _clean_name(raw: str | None) -> str | None:
    """`clean_name`, without its Unicode work for a printable ASCII name (no control or
    bidi characters to drop, NFC is the identity)."""
    if raw is not None and raw.isascii() and raw.isprintable():
        return " ".join(raw.split())[:MAX_NAME] or None
    return clean_name(raw)


def _plain_rows(handle: IO[str], reader: Any, keys: list[str], path: Path, check_dns: bool,
                allow_test: bool) -> Iterator[ImportRow | Rejected]:
    """`_rows(_csv_records(…), ours, lists=True)` for a file `_is_plain` accepts, row for
    row the same (tests/subscribers/test_formats.py checks it with hypothesis). The loop of
    a million-row list: `_csv_lines` and `normalize` written out for the common row (a
    plain address; a cell is trimmed and a formula's quote taken off, as
    `foreign_formats.cell` does), a tuple made directly."""
    email_at = next(index for index, key in enumerate(keys) if key in EMAIL_COLUMNS)
    name_at = keys.index("name") if "name" in keys else -1
    row = tuple.__new__  # ImportRow(…) without its Python-level __new__
    line = reader.line_num
    try:
        for record in reader:
            start, line = line + 1, reader.line_num  # a quoted field may span several lines
            size = len(record)
            email = record[email_at].strip() if email_at < size else ""
            if email[:1] == "'":
                email = unescape_formula(email)
            elif not email and not any(value.strip() for value in record):
                continue
            name = record[name_at].strip() if 0 <= name_at < size else ""
            if name[:1] == "'":
                name = unescape_formula(name)
            checked = None if check_dns else plain_form(email, allow_test)
            if checked is None:
                try:
                    checked = normalize(email, check_dns=check_dns, allow_test=allow_test)
                except SubscriberError as exc:
                    yield Rejected(start, email, str(exc))
                    continue
            yield row(ImportRow, (start, checked[0], checked[1], _clean_name(name or None),
                                  None, None, (), None))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise _csv_failure(exc, path, line, reader) from None
    finally:
        handle.close()


def _csv_failure(exc: UnicodeDecodeError | csv.Error, path: Path, line: int,
                 reader: Any) -> SubscriberError:
    """A file that is not UTF-8 (after `line`) or not CSV, as one error naming the line."""
    if isinstance(exc, UnicodeDecodeError):
        return SubscriberError(f"{path}:{line + 1}: not UTF-8 text (byte {exc.start})")
    return SubscriberError(f"{path}:{reader.line_num}: malformed CSV: {exc}")


def _csv_lines(handle: IO[str], reader: Any,
               path: Path) -> Generator[tuple[int, list[str]], None, None]:
    """Each record of a CSV with the line it starts on; a file that is not UTF-8 or not CSV
    becomes one SubscriberError naming the line. Closes the file when done."""
    line = reader.line_num
    try:
        for record in reader:
            start, line = line + 1, reader.line_num  # a quoted field may span several lines
            yield start, record
    except (UnicodeDecodeError, csv.Error) as exc:
        raise _csv_failure(exc, path, line, reader) from None
    finally:
        handle.close()


def _csv_records(handle: IO[str], reader: Any, keys: list[str],
                 path: Path) -> Iterator[tuple[int, Row]]:
    named_once = len(set(keys)) == len(keys)
    with closing(_csv_lines(handle, reader, path)) as lines:
        for start, record in lines:
            if not "".join(record).strip():
                continue
            if named_once:
                yield start, dict(zip(keys, record, strict=False))
                continue
            row: Row = {}
            for key, value in zip(keys, record, strict=False):
                # A column named twice: the first filled value wins.
                if key not in row or (not row[key].strip() and value.strip()):
                    row[key] = value
            yield start, row


def _open_lines(path: Path, check_dns: bool, allow_test: bool) -> Opened:
    size = path.stat().st_size

    def records() -> Iterator[tuple[int, Row]]:
        with path.open(encoding="utf-8-sig") as handle:
            for number, text in enumerate(handle, start=1):
                if text.strip():
                    yield number, {"email": text.strip()}

    return Opened("lines", ["email"], _rows(records(), MAPPERS["csv"], check_dns, allow_test),
                  lambda: size)


def _open_json(path: Path, file_format: str, check_dns: bool,
               allow_test: bool) -> Opened:
    """A JSON array of subscriber objects, or an object holding one (Revue's API answer:
    {"subscribers": [...]}). Read whole: these exports are small."""
    text = path.read_text(encoding="utf-8-sig")
    try:
        data = json.loads(text, parse_int=_int_of)
    except json.JSONDecodeError as exc:
        raise SubscriberError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    except RecursionError:
        raise SubscriberError(f"{path}: JSON nested too deeply to be a subscriber list"
                              ) from None
    except _LongNumber as exc:
        line = text.count("\n", 0, max(text.find(exc.digits), 0)) + 1
        raise SubscriberError(f"{path}:{line}: a number of {len(exc.digits):,} digits (more "
                              "than Python reads: 4,300)") from None
    if isinstance(data, dict):
        data = next((value for key in ("subscribers", "members", "data", "results")
                     if isinstance(value := data.get(key), list)), None)
    if not isinstance(data, list):
        raise SubscriberError(f"{path}: expected a JSON list of subscribers (or an object "
                              "with a \"subscribers\" list)")
    chosen = "revue" if file_format in ("auto", "revue") else file_format
    size = path.stat().st_size

    def records() -> Iterator[tuple[int, Row]]:
        for number, item in enumerate(data, start=1):
            if isinstance(item, dict):
                yield number, {column_key(str(key)): _text(value)
                               for key, value in item.items()}
            else:  # a bare address ("a@example.com") or something that is not a subscriber
                yield number, {"email": item if isinstance(item, str) else json.dumps(item)}

    return Opened(chosen, sorted({key for item in data if isinstance(item, dict)
                                  for key in item}),
                  _rows(records(), MAPPERS.get(chosen, MAPPERS["revue"]), check_dns,
                        allow_test),
                  lambda: size)


class _LongNumber(ValueError):
    """A JSON integer longer than int() takes (sys.get_int_max_str_digits)."""

    def __init__(self, digits: str) -> None:
        super().__init__(digits[:20])
        self.digits = digits


def _int_of(digits: str) -> int:
    """json's parse_int, raising with the digits (for the line) where int() would raise a
    bare ValueError naming no place."""
    try:
        return int(digits)
    except ValueError:
        raise _LongNumber(digits) from None


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _rows(records: Iterable[tuple[int, Row]], mapper: Mapper, check_dns: bool,
          allow_test: bool,
          lists: bool = False) -> Iterator[ImportRow | Rejected]:
    """(line or item number, row) → ImportRow or Rejected, through the format's mapper and
    the common opt-out rule."""
    for start, row in records:
        # The address first (every mapper reads it from EMAIL_COLUMNS): a row refused for
        # it costs no mapping, so a file of junk rows is read at the speed of its lines.
        email = cell(row, *EMAIL_COLUMNS)
        try:
            stored, normalized = normalize(email, check_dns, allow_test)
        except SubscriberError as exc:
            yield Rejected(start, email, str(exc))
            continue
        try:
            mapped = read_row(row, mapper)
            language = row_language(row)
        except RefusedRow as exc:
            yield Rejected(start, email, str(exc))
            continue
        on_lists = tuple(name.strip() for name in cell(row, LISTS_COLUMN).split(";")
                         if name.strip()) if lists else ()
        yield ImportRow(start, stored, normalized, _clean_name(mapped.name), mapped.status,
                        mapped.attributes, on_lists, language)
