"""`schedule_runs`: one row per scheduled run with its outcome, so `ainews schedule status`
can say what happened each week (sent, skipped and why, failed and why)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    select,
)

from ainews_newsletter.database import UTCDateTime, ensure_schema

metadata = MetaData()

schedule_runs = Table(
    "schedule_runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("list_id", String(255), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime(), nullable=True),  # None while running (or if killed)
    Column("period_key", String(64), nullable=True),
    # running | sent | skipped | draft | failed | stopped
    Column("outcome", String(16), nullable=False),
    Column("detail", Text, nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Index("ix_schedule_runs_started", "started_at"),
)


@dataclass(frozen=True)
class RunRecord:
    id: int
    started_at: datetime
    finished_at: datetime | None
    period_key: str | None
    outcome: str
    detail: str
    host: str
    pid: int


class RunHistory:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        ensure_schema(engine)

    def start(self, list_id: str, now: datetime) -> int:
        with self.engine.begin() as connection:
            result = connection.execute(schedule_runs.insert().values(
                list_id=list_id, started_at=now, outcome="running", detail="",
                host=socket.gethostname()[:255], pid=os.getpid()))
        assert result.inserted_primary_key is not None
        return int(result.inserted_primary_key[0])

    def finish(self, run_id: int, now: datetime, outcome: str, period_key: str | None,
               detail: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(schedule_runs.update().where(schedule_runs.c.id == run_id)
                               .values(finished_at=now, outcome=outcome,
                                       period_key=period_key, detail=detail))

    def newest_id(self) -> int:
        """The id of the newest run of any list, 0 when there is none (ids only grow)."""
        with self.engine.connect() as connection:
            return int(connection.execute(select(func.max(schedule_runs.c.id))).scalar() or 0)

    def last_up_to(self, list_id: str, run_id: int) -> RunRecord | None:
        """The list's newest run with an id no higher than `run_id`."""
        query = (select(schedule_runs).where(schedule_runs.c.list_id == list_id,
                                             schedule_runs.c.id <= run_id)
                 .order_by(schedule_runs.c.id.desc()).limit(1))
        with self.engine.connect() as connection:
            row = connection.execute(query).first()
        return None if row is None else _record(row)

    def recent(self, list_id: str, limit: int = 10) -> list[RunRecord]:
        """The latest runs, newest first."""
        query = (select(schedule_runs).where(schedule_runs.c.list_id == list_id)
                 .order_by(schedule_runs.c.id.desc()).limit(limit))
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [_record(row) for row in rows]


def _record(row: Any) -> RunRecord:
    return RunRecord(id=row.id, started_at=row.started_at, finished_at=row.finished_at,
                     period_key=row.period_key, outcome=row.outcome, detail=row.detail,
                     host=row.host, pid=row.pid)
