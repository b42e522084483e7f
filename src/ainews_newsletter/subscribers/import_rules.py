"""What an import row is, and the rules that need no database: a person twice in one batch
folded into one row, and the status an arriving row takes. Imported by the process that
reads the file (read_ahead.py) as well as by the one that writes (importer.py)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ainews_newsletter.models import SubscriberStatus
from ainews_newsletter.subscribers.erased import REFUSED

KEPT_REJECTS = 100  # in ImportSummary.rejects; the command shows 20


class ImportRow(NamedTuple):
    """A validated row (a named tuple: a million of them are made per million-row file,
    far cheaper than a frozen dataclass)."""
    line: int
    email: str  # stored form (validated)
    normalized: str
    name: str | None = None
    status: SubscriberStatus | None = None  # from the file, if it says
    attributes: dict[str, Any] | None = None
    lists: tuple[str, ...] = ()  # from our own export; empty: the list of the import
    language: str | None = None  # canonical BCP 47, from a language or locale column


class Rejected(NamedTuple):  # a tuple: a file of junk makes one per row
    line: int
    email: str
    reason: str


def refused_as_erased(line: int, email: str) -> Rejected:
    """The reject of a row whose address was erased on request (both databases' way)."""
    return Rejected(line, email, f"{email!r} was {REFUSED} (--force-erased imports it anyway)")


@dataclass
class ImportSummary:
    imported: int = 0  # new subscribers
    updated: int = 0  # known subscribers that changed (name, attributes, status)
    duplicates: int = 0  # the same address again, in the file or already stored unchanged
    rejected: int = 0
    # The first KEPT_REJECTS, in file order; every one goes to import_rows' on_reject. A
    # file of a million junk rows must not hold a million reasons in memory (200 MB at
    # 500,000).
    rejects: list[Rejected] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {"imported": self.imported, "updated": self.updated,
                "duplicates": self.duplicates, "rejected": self.rejected}


def merged_status(current: SubscriberStatus, incoming: SubscriberStatus) -> SubscriberStatus:
    if current.has_left:
        return current  # never back onto the list by import
    if incoming.has_left:
        return incoming
    if current is SubscriberStatus.PENDING and incoming is SubscriberStatus.ACTIVE:
        return incoming  # confirmed elsewhere
    return current


def fold(first: ImportRow, row: ImportRow) -> ImportRow:
    """The same person twice in one batch: fold the later row in by the same rules as
    against the store, so an "unsubscribed" further down is never lost."""
    merged = merged_status(first.status or SubscriberStatus.ACTIVE,
                           row.status or SubscriberStatus.ACTIVE)
    return ImportRow(first.line, first.email, first.normalized, first.name or row.name,
                     merged if (first.status or row.status) else None,
                     {**(row.attributes or {}), **(first.attributes or {})} or None,
                     tuple(dict.fromkeys(first.lists + row.lists)),
                     first.language or row.language)


Arriving = tuple[ImportRow, SubscriberStatus]  # a row and the status it arrives with


def each_once(rows: Iterable[ImportRow]) -> tuple[list[ImportRow], list[ImportRow]]:
    """A batch's rows, each person once: the later rows folded into the first, which
    keeps its place. Also the rows folded away (the duplicates), in file order."""
    unique: dict[str, ImportRow] = {}
    repeats: list[ImportRow] = []
    for row in rows:
        first = unique.setdefault(row.normalized, row)
        if first is not row:
            repeats.append(row)
            unique[row.normalized] = fold(first, row)
    return list(unique.values()), repeats


def arriving_status(given: SubscriberStatus | None,
                    status: SubscriberStatus | None) -> SubscriberStatus:
    """The status a row arrives with: the file's (`given`), or `status` (--status) for a
    row that names none or names one that has not left (--status never overrides a source
    saying a reader left), else active."""
    if given is None:
        return status or SubscriberStatus.ACTIVE
    return given if given.has_left else status or given


def arriving(rows: Iterable[ImportRow], status: SubscriberStatus | None,
             ) -> tuple[list[Arriving], int]:
    """`each_once`'s rows, each with its `arriving_status`, and how many were folded."""
    unique, repeats = each_once(rows)
    return [(row, arriving_status(row.status, status)) for row in unique], len(repeats)
