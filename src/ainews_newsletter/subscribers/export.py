"""Exports that re-import to the same store and are safe to open in a spreadsheet: a cell
that starts with =, +, -, @, tab or CR gets a leading ' so Excel or Sheets show it as text
instead of running it as a formula (CSV injection). `formats.unescape_formula` undoes it."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from typing import TextIO

from ainews_newsletter.models import Subscriber
from ainews_newsletter.subscribers.formats import FORMULA_START

COLUMNS = ["email", "name", "status", "lists", "attributes", "source", "created_at",
           "confirmed_at", "unsubscribed_at", "language"]


def spreadsheet_safe(value: str) -> str:
    """A leading ' is doubled too, so that `unescape_formula` can always undo this."""
    return "'" + value if value.startswith((*FORMULA_START, "'")) else value


def as_record(subscriber: Subscriber) -> dict[str, object]:
    return {
        "email": subscriber.email,
        "name": subscriber.name,
        "status": subscriber.status.value,
        "lists": list(subscriber.lists),
        "attributes": subscriber.attributes,
        "source": subscriber.source,
        "created_at": subscriber.created_at.isoformat(),
        "confirmed_at": subscriber.confirmed_at.isoformat() if subscriber.confirmed_at else None,
        "unsubscribed_at": (subscriber.unsubscribed_at.isoformat()
                            if subscriber.unsubscribed_at else None),
        "language": subscriber.language,
    }


def write_csv(subscribers: Iterable[Subscriber], handle: TextIO) -> int:
    writer = csv.writer(handle, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    count = 0
    for subscriber in subscribers:
        record = as_record(subscriber)
        record["lists"] = ";".join(subscriber.lists)
        record["attributes"] = (json.dumps(subscriber.attributes, ensure_ascii=False,
                                           sort_keys=True) if subscriber.attributes else "")
        writer.writerow([spreadsheet_safe(str(record[column] or "")) for column in COLUMNS])
        count += 1
    return count


def write_json(subscribers: Iterable[Subscriber], handle: TextIO) -> int:
    """A JSON array, written one subscriber at a time (constant memory)."""
    handle.write("[")
    count = 0
    for subscriber in subscribers:
        handle.write(",\n " if count else "\n ")
        handle.write(json.dumps(as_record(subscriber), ensure_ascii=False, sort_keys=True))
        count += 1
    handle.write("\n]\n" if count else "]\n")
    return count
