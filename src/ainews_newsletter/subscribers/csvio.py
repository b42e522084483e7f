"""Subscriber CSV files: a header row with an `email` column and an optional `name` column
(UTF-8, a BOM is fine). Every row is checked; a bad row is reported with its line number."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ainews_newsletter.errors import SubscriberError
from ainews_newsletter.subscribers.addresses import normalize
from ainews_newsletter.subscribers.store import ImportRow

EMAIL_HEADERS = ("email", "email address", "e-mail")
NAME_HEADERS = ("name", "full name")


@dataclass(frozen=True)
class RejectedRow:
    line: int
    email: str
    reason: str


def _column(header: list[str], candidates: tuple[str, ...]) -> int | None:
    lowered = [cell.strip().lower() for cell in header]
    for candidate in candidates:
        if candidate in lowered:
            return lowered.index(candidate)
    return None


def read_subscriber_csv(path: Path) -> tuple[list[ImportRow], list[RejectedRow]]:
    """Valid rows and rejected rows of a subscriber CSV; SubscriberError if the file as a
    whole is unusable (missing, not UTF-8, no email column)."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            return _parse(handle, path)
    except FileNotFoundError:
        raise SubscriberError(f"subscriber file not found: {path}") from None
    except UnicodeDecodeError as exc:
        raise SubscriberError(f"{path}: not UTF-8 text (byte {exc.start}); save it as "
                              "UTF-8 CSV") from None
    except csv.Error as exc:
        raise SubscriberError(f"{path}: malformed CSV: {exc}") from None


def _parse(handle: TextIO, path: Path) -> tuple[list[ImportRow], list[RejectedRow]]:
    reader = csv.reader(handle)
    header = next(reader, None)
    if header is None:
        raise SubscriberError(f"{path}: the file is empty; expected a header row with 'email'")
    email_at = _column(header, EMAIL_HEADERS)
    if email_at is None:
        raise SubscriberError(f"{path}:1: no 'email' column in the header row "
                              f"({', '.join(header) or 'empty'})")
    name_at = _column(header, NAME_HEADERS)
    rows: list[ImportRow] = []
    rejects: list[RejectedRow] = []
    line = reader.line_num
    for record in reader:
        start, line = line + 1, reader.line_num  # a quoted field may span several lines
        if not any(cell.strip() for cell in record):
            continue
        email = record[email_at].strip() if email_at < len(record) else ""
        name = record[name_at].strip() if name_at is not None and name_at < len(record) else None
        try:
            normalize(email)
        except SubscriberError as exc:
            rejects.append(RejectedRow(line=start, email=email, reason=str(exc)))
            continue
        rows.append(ImportRow(line=start, email=email, name=name or None))
    return rows, rejects
