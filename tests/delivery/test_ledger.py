"""Ledger claims on a real PostgreSQL: FOR UPDATE SKIP LOCKED hands concurrent senders
different rows instead of making them wait for, or fight over, the same one."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from ainews_newsletter import clock
from ainews_newsletter.database import engine_for
from ainews_newsletter.delivery.ledger import Ledger, deliveries
from ainews_newsletter.models import Period, Recipient, RenderedIssue

START = clock.now().replace(microsecond=0)


def _issue_with_rows(ledger: Ledger, count: int) -> int:
    rendered = RenderedIssue(
        period=Period("2026-W47", START - timedelta(days=7), START), subject="s",
        preheader="p", html="<p>U</p>", text="U", unsubscribe_placeholder="U", post_count=1)
    issue = ledger.create_issue("newsletter", rendered, (), START)
    ledger.snapshot(issue.id, (Recipient(i, f"r{i}@example.com", None, f"t{i}")
                               for i in range(1, count + 1)), START)
    return issue.id


def test_a_row_locked_by_one_sender_is_skipped_by_the_other(postgres_url: str) -> None:
    engine = engine_for(postgres_url)
    ledger = Ledger(engine)
    issue_id = _issue_with_rows(ledger, 3)
    stale = START - timedelta(minutes=5)
    with ledger.writer() as first, ledger.writer() as second, engine.connect() as holder:
        assert first.skips_locked and second.skips_locked
        # Another sender is in the middle of claiming row 1: it holds the row's lock.
        lowest = select(deliveries.c.id).order_by(deliveries.c.id).limit(1)
        locked_id = holder.execute(lowest.with_for_update()).scalar_one()
        taken = first.claim_next(issue_id, START, stale)
        assert taken is not None and taken.id != locked_id  # skipped, not waited for
        again = second.claim_next(issue_id, START, stale)
        assert again is not None and again.id not in (locked_id, taken.id)
        assert second.claim_next(issue_id, START, stale) is None  # only the locked one left
        holder.rollback()
        last = first.claim_next(issue_id, START, stale)
        assert last is not None and last.id == locked_id and last.attempts == 0
    with engine.connect() as connection:
        states = connection.execute(select(deliveries.c.state, deliveries.c.attempts)).all()
    assert sorted(states) == [("sending", 1)] * 3
