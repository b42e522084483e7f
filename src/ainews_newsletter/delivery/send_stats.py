"""The ledger's numbers for reports: when an issue's send ran, how fast, and who is in a
given state and why. Each is one indexed query per issue, so that a report on a
million-reader issue stays quick."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, select

from ainews_newsletter.database import ensure_schema
from ainews_newsletter.delivery.tables import deliveries
from ainews_newsletter.models import DeliveryState


@dataclass(frozen=True)
class Recipient:
    delivery_id: int
    email: str
    state: str
    attempts: int
    last_code: int | None
    last_reply: str | None
    updated_at: datetime


def _aware(value: datetime | str | None) -> datetime | None:
    """Aggregates come back naive (SQLite: even as text); stored times are UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class LedgerReports:
    def __init__(self, engine: Engine) -> None:
        ensure_schema(engine)
        self.engine = engine

    def timeline(self, issue_id: int) -> tuple[list[tuple[datetime, int]],
                                               datetime | None, datetime | None]:
        """Messages accepted per minute of the send (oldest first), and the first and last
        acceptance: one pass over the issue's rows, not one per figure."""
        with self.engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                minute: Any = func.date_trunc("minute", deliveries.c.sent_at)
            else:  # SQLite stores "YYYY-MM-DD HH:MM:SS.ffffff": the first 16 characters
                minute = func.substr(deliveries.c.sent_at, 1, 16)
            rows = connection.execute(
                select(minute.label("minute"), func.count(), func.min(deliveries.c.sent_at),
                       func.max(deliveries.c.sent_at))
                .where(deliveries.c.issue_id == issue_id, deliveries.c.sent_at.is_not(None))
                .group_by("minute").order_by("minute")).all()
        per_minute: list[tuple[datetime, int]] = []
        for value, count, _, _ in rows:
            when = _aware(value if not isinstance(value, str) else value + ":00")
            if when is not None:
                per_minute.append((when, int(count)))
        firsts = [moment for row in rows if (moment := _aware(row[2])) is not None]
        lasts = [moment for row in rows if (moment := _aware(row[3])) is not None]
        return per_minute, min(firsts, default=None), max(lasts, default=None)

    def recipients_in(self, issue_id: int, state: DeliveryState,
                      limit: int) -> list[Recipient]:
        """Who is in `state` for the issue, with the server's last answer: `status --state`."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(deliveries.c.id, deliveries.c.email, deliveries.c.state,
                       deliveries.c.attempts, deliveries.c.last_code, deliveries.c.last_reply,
                       deliveries.c.updated_at)
                .where(deliveries.c.issue_id == issue_id,
                       deliveries.c.state == state.value)
                .order_by(deliveries.c.id).limit(limit)).all()
        return [Recipient(row.id, row.email, row.state, row.attempts, row.last_code,
                          row.last_reply, row.updated_at) for row in rows]

    def relay_counts(self, issue_id: int) -> dict[str, dict[str, int]]:
        """Per relay of [[smtp.relays]], the issue's rows it answered last, by state (sent,
        deferred, failed): `ainews status`. Rows through the one [smtp] relay name none."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(deliveries.c.relay, deliveries.c.state, func.count())
                .where(deliveries.c.issue_id == issue_id, deliveries.c.relay.is_not(None))
                .group_by(deliveries.c.relay, deliveries.c.state)).all()
        counts: dict[str, dict[str, int]] = {}
        for relay, state, count in rows:
            per_state = counts.setdefault(str(relay), {"sent": 0, "deferred": 0, "failed": 0})
            per_state[str(state)] = per_state.get(str(state), 0) + int(count)
        return dict(sorted(counts.items()))
