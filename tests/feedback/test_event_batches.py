"""EventLog.record_many: a webhook body's events stored in one transaction, each once by its
key, on SQLite and PostgreSQL; a repeat (in an earlier body, or earlier in the same one)
comes back as the stored event, not new."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from ainews_newsletter.database import engine_for
from ainews_newsletter.feedback.events import EventLog, FeedbackEvent, event_key, feedback_events
from ainews_newsletter.feedback.findings import FeedbackKind

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def _event(number: int, provider: str | None = "sendgrid", diagnostic: str = "") -> FeedbackEvent:
    return FeedbackEvent(
        dedup_key=event_key("sendgrid", f"event-{number}"), received_at=NOW,
        kind=FeedbackKind.HARD, email=f"reader{number}@example.com", status="5.1.1",
        action="failed", diagnostic=diagnostic or f"event {number}", feedback_type=None,
        source="webhook:sendgrid", matched_by="-", delivery_id=None, issue_id=None,
        subscriber_id=None, effect="unmatched", provider=provider)


def _count(log: EventLog) -> int:
    with log.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(feedback_events))
                   .scalar_one())


def test_a_batch_is_stored_once_per_key(database_url: str) -> None:
    log = EventLog(engine_for(database_url))
    first = log.record_many([_event(1), _event(2), _event(1, diagnostic="again"), _event(3)])
    assert [new for _, new in first] == [True, True, False, True]
    assert [stored.email for stored, _ in first] == [
        "reader1@example.com", "reader2@example.com", "reader1@example.com",
        "reader3@example.com"]
    assert first[2][0] == first[0][0]  # the repeat answers with the event stored first
    assert first[0][0].id is not None and first[0][0].provider == "sendgrid"
    assert _count(log) == 3

    again = log.record_many([_event(3), _event(4, provider=None), _event(2)])
    assert [new for _, new in again] == [False, True, False]
    assert again[0][0] == first[3][0]
    assert again[2][0].diagnostic == "event 2" and again[2][0].id == first[1][0].id
    assert again[1][0].provider is None
    assert _count(log) == 4
    stored = log.by_key(_event(1).dedup_key)
    assert stored is not None and stored.provider == "sendgrid"
    assert log.record_many([]) == []


def test_record_keeps_the_provider(database_url: str) -> None:
    log = EventLog(engine_for(database_url))
    stored, new = log.record(_event(9, provider="postmark"))
    assert new and stored.provider == "postmark"
    assert log.record_many([_event(9)])[0] == (stored, False)
    assert [event.provider for event in log.events()] == ["postmark"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_ten_thousand_events_in_one_call(database_url: str) -> None:
    """A SendGrid batch: thousands of events, half of them already stored."""
    log = EventLog(engine_for(database_url))
    log.record_many([_event(number) for number in range(0, 10_000, 2)])
    result = log.record_many([_event(number) for number in range(10_000)])
    assert sum(new for _, new in result) == 5_000
    assert [new for _, new in result[:4]] == [False, True, False, True]
    assert _count(log) == 10_000
