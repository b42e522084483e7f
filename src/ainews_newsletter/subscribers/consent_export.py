"""`ainews subscribers export --consent`: the consent records (consent_records.py) as CSV
or JSON, cells safe in a spreadsheet like the subscribers' export."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from typing import TextIO

from ainews_newsletter.subscribers.consent_records import ConsentRecord
from ainews_newsletter.subscribers.export import spreadsheet_safe

COLUMNS = ["email", "how", "source", "ip", "user_agent", "consent_text", "given_at",
           "confirmed_at"]


def write_csv(records: Iterable[ConsentRecord], handle: TextIO) -> int:
    """`export --consent`: one row per record, cells safe in a spreadsheet."""
    writer = csv.writer(handle, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    written = 0
    for consent in records:
        values = consent.as_record()
        writer.writerow([spreadsheet_safe(str(values[column] or "")) for column in COLUMNS])
        written += 1
    return written


def write_json(records: Iterable[ConsentRecord], handle: TextIO) -> int:
    """A JSON array, one record at a time (constant memory)."""
    handle.write("[")
    written = 0
    for consent in records:
        handle.write(",\n " if written else "\n ")
        handle.write(json.dumps(consent.as_record(), ensure_ascii=False, sort_keys=True))
        written += 1
    handle.write("\n]\n" if written else "]\n")
    return written
