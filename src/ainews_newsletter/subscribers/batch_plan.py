"""One import batch's merge rules, applied to its rows against what the store holds, and the
writes that follow, the same however the rows reached the writer (importer.py: in memory;
staged_merge.py: staged in SQLite):
- a new address is added with the status it arrives with, to the chosen list;
- a known address is merged, never doubled: a missing name, a missing language or new
  attributes are filled in (a language the reader has, perhaps chosen on the preferences
  page, is kept), and a status may only move away from the list (active → unsubscribed,
  bounced, …), never back: an unsubscribe is never undone by an import;
- an address on the suppression list is rejected;
- each arrival and each status change writes its subscriber event (history.py), one
  INSERT … SELECT per kind of event."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, Integer, bindparam, func, literal, update

from ainews_newsletter.models import SubscriberStatus
from ainews_newsletter.subscribers.bulk import Chosen, keyed
from ainews_newsletter.subscribers.consent_records import Agreement, record_new
from ainews_newsletter.subscribers.history import (
    arrival_kinds,
    change_kind,
    event_source,
    record_by_address,
    record_chosen,
)
from ainews_newsletter.subscribers.import_rules import (
    ImportRow,
    ImportSummary,
    Rejected,
    merged_status,
)
from ainews_newsletter.subscribers.schema import memberships, subscribers


class Known(NamedTuple):
    """The stored subscriber an import row meets."""

    id: int
    name: str | None
    status: str
    attributes: dict[str, Any] | None
    language: str | None


# A row, the status it arrives with, the subscriber it meets (None: a new address) and
# the suppression it meets (its reason; None: none).
Met = tuple[ImportRow, SubscriberStatus, Known | None, str | None]


@dataclass
class BatchPlan:
    """What a batch's rows come to, gathered by `plan_rows`, written by `write_plan`."""

    list_id: int  # the import's list
    refused: list[Rejected]
    added: list[str] | None  # normalized addresses of new active readers, when asked
    new_rows: list[tuple[ImportRow, SubscriberStatus]] = field(default_factory=list)
    new_listed: int = 0  # new rows that name lists of their own
    new_plain: list[str] = field(default_factory=list)  # new rows naming no lists
    changes: list[dict[str, Any]] = field(default_factory=list)
    # kind → normalized addresses, but the "joined" of every new row (written first)
    events: dict[str, list[str]] = field(default_factory=dict)
    members: dict[int, list[str]] = field(default_factory=dict)  # list → addresses
    skipped: list[str] = field(default_factory=list)  # neither new nor written as new

    def __post_init__(self) -> None:
        self.members.setdefault(self.list_id, [])


def plan_rows(plan: BatchPlan, rows: Iterable[Met], summary: ImportSummary,
              list_ids: Callable[[tuple[str, ...]], list[int]], list_explicit: bool,
              now: datetime) -> None:
    """Apply the rules to `rows` (each person once), gathering into `plan`."""
    for row, incoming, known, suppressed in rows:
        normalized = row.normalized
        if suppressed is not None:
            plan.refused.append(Rejected(row.line, row.email, f"{row.email!r} is on the "
                                         f"suppression list ({suppressed})"))
            plan.skipped.append(normalized)
            continue
        if row.lists:
            # The lists our export names, plus the import's list when it was asked for by
            # --list.
            for target in dict.fromkeys([*list_ids(row.lists),
                                         *([plan.list_id] if list_explicit else [])]):
                plan.members.setdefault(target, []).append(normalized)
        else:
            (plan.new_plain if known is None else plan.members[plan.list_id]).append(
                normalized)
        if known is None:
            plan.new_rows.append((row, incoming))
            plan.new_listed += bool(row.lists)
            if incoming is SubscriberStatus.ACTIVE:
                if plan.added is not None:
                    plan.added.append(normalized)
            elif incoming is not SubscriberStatus.PENDING:
                for arrival in arrival_kinds(incoming):
                    if arrival != "joined":
                        plan.events.setdefault(arrival, []).append(normalized)
            continue
        plan.skipped.append(normalized)
        current = SubscriberStatus(known.status)
        merged = merged_status(current, incoming)
        name = known.name or row.name  # fill a missing name; never overwrite one
        attributes = {**(known.attributes or {}), **(row.attributes or {})} or None
        chosen = known.language or row.language  # fill a missing one; never overwrite one
        if (merged, name, attributes, chosen) == (current, known.name,
                                                  known.attributes or None, known.language):
            summary.duplicates += 1
            continue
        summary.updated += 1
        change = change_kind(current, merged)
        if change is not None:
            plan.events.setdefault(change, []).append(normalized)
        plan.changes.append({"row_id": known.id, "new_status": merged.value,
                             "new_name": name, "new_attributes": attributes,
                             "new_language": chosen, "now": now,
                             "left_at": now if merged is not current and merged.has_left
                             else None})


def add_memberships(connection: Connection, list_id: int, chosen: Chosen,
                    now: datetime) -> None:
    """Put the subscriber rows `chosen` names on list `list_id`, one INSERT … SELECT: the
    database finds the ids, and an existing membership stays as it is."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    rows = chosen.select(literal(list_id, Integer), subscribers.c.id,
                         literal(now, memberships.c.created_at.type))
    connection.execute(dialect.insert(memberships).from_select(
        ["list_id", "subscriber_id", "created_at"], rows).on_conflict_do_nothing())


def write_plan(connection: Connection, plan: BatchPlan, new: Chosen | None,
               new_plain: list[str], source: str, now: datetime,
               agreement: Agreement | None) -> None:
    """Everything but the new rows themselves, inserted already and named by `new` (None:
    no new rows): their "joined" events, consent records and memberships (`new_plain`:
    the new rows that name no lists, all of them when none does), then the known rows'
    changes, the events by address and the memberships by address."""
    if new is not None:  # every arrival joined, whatever its status (history.arrival_kinds)
        record_chosen(connection, "joined", new, event_source(source), now)
        if agreement is not None:  # the new ones only: the others keep theirs
            record_new(connection, new, agreement, now)
        if plan.new_listed == 0:
            add_memberships(connection, plan.list_id, new, now)
        else:
            plan.members[plan.list_id].extend(new_plain)
    if plan.changes:
        connection.execute(
            update(subscribers).where(subscribers.c.id == bindparam("row_id")).values(
                status=bindparam("new_status"), name=bindparam("new_name"),
                attributes=bindparam("new_attributes"), language=bindparam("new_language"),
                updated_at=bindparam("now"),
                unsubscribed_at=func.coalesce(bindparam("left_at"),
                                              subscribers.c.unsubscribed_at)),
            plan.changes)
    record_by_address(connection, plan.events, event_source(source), now)
    for target, addresses in plan.members.items():
        if addresses:
            add_memberships(connection, target,
                            keyed(connection, subscribers.c.email_normalized, addresses), now)
