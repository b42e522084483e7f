"""PostgreSQL's one statement per message: the reader's check inside the claim (a reader who
left is recorded failed, never sent, whichever claim meets them) and the answer recorded in
the next row's claim, on a real PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from ainews_newsletter import clock
from ainews_newsletter.database import engine_for
from ainews_newsletter.delivery.claims import NOT_ACTIVE_REPLY, Claimed, DeliverableCheck
from ainews_newsletter.delivery.ledger import Ledger
from ainews_newsletter.delivery.retry_policy import RetryPolicy
from ainews_newsletter.delivery.tables import deliveries
from ainews_newsletter.models import (
    DeliveryState,
    Period,
    RenderedIssue,
    SendOutcome,
    SubscriberStatus,
)
from ainews_newsletter.subscribers.queries import deliverable_reader, deliverable_subscriber
from ainews_newsletter.subscribers.store import SubscriberStore

START = clock.now().replace(microsecond=0)
LEASE = timedelta(minutes=5)
POLICY = RetryPolicy(max_attempts=5, base_seconds=60, max_seconds=600)
SENT = SendOutcome(DeliveryState.SENT, 250, "2.0.0 queued as ABC")
CHECK = DeliverableCheck(deliverable_subscriber, deliverable_reader)


def _issue_for(store: SubscriberStore, ledger: Ledger, count: int) -> tuple[int, list[str]]:
    addresses = [f"reader{i}@example.com" for i in range(count)]
    for address in addresses:
        store.add(address)
    rendered = RenderedIssue(
        period=Period("2026-W47", START - timedelta(days=7), START), subject="s",
        preheader="p", html="<p>U</p>", text="U", unsubscribe_placeholder="U", post_count=1)
    issue = ledger.create_issue("newsletter", rendered, (), START)
    ledger.snapshot(issue.id, store.iter_recipients(), START)
    return issue.id, addresses


def _rows(ledger: Ledger) -> dict[str, tuple[str, int, str | None]]:
    with ledger.engine.connect() as connection:
        return {row.email: (row.state, row.attempts, row.last_reply)
                for row in connection.execute(select(
                    deliveries.c.email, deliveries.c.state, deliveries.c.attempts,
                    deliveries.c.last_reply))}


def test_a_reader_who_left_is_recorded_by_either_claim(postgres_url: str) -> None:
    """The first row is claimed alone (`claim_next`), the next with the previous answer
    (`record_then_claim_next`): a reader who left meanwhile is recorded failed by the claim
    itself, attempt counted, never handed out; the others are claimed `sending`."""
    engine = engine_for(postgres_url)
    store, ledger = SubscriberStore(engine), Ledger(engine)
    issue_id, addresses = _issue_for(store, ledger, 4)
    store.unsubscribe(addresses[0])
    store.unsubscribe(addresses[2])
    with ledger.writer(CHECK) as writer:
        left = writer.claim_next(issue_id, START, LEASE)
        assert left is not None and left.left
        assert left.delivery.recipient.email == addresses[0]
        first = writer.claim_next(issue_id, START, LEASE)
        assert first is not None and not first.left
        state, second = writer.record_then_claim_next(first.delivery, SENT, START, POLICY,
                                                      START, issue_id, LEASE)
        assert state is DeliveryState.SENT
        assert second is not None and second.left  # reader2: recorded by that statement
        assert second.delivery.recipient.email == addresses[2]
        last = writer.claim_next(issue_id, START, LEASE)
        assert last is not None and not last.left
        _, none = writer.record_then_claim_next(last.delivery, SENT, START, POLICY, START,
                                                issue_id, LEASE)
        assert none is None  # nothing due: the fallback claims found nothing either
    assert _rows(ledger) == {
        addresses[0]: ("failed", 1, NOT_ACTIVE_REPLY),
        addresses[1]: ("sent", 1, SENT.reply),
        addresses[2]: ("failed", 1, NOT_ACTIVE_REPLY),
        addresses[3]: ("sent", 1, SENT.reply)}


def test_an_unsubscribe_in_progress_is_waited_for_not_missed(postgres_url: str) -> None:
    """The claim reads the reader FOR SHARE in its own statement: an unsubscribe not yet
    committed makes the claim wait for it, and once it commits the claim sees the reader
    gone. Without the lock the claim would read the row as it was and send."""
    engine = engine_for(postgres_url)
    store, ledger = SubscriberStore(engine), Ledger(engine)
    issue_id, addresses = _issue_for(store, ledger, 1)
    claimed: list[Claimed | None] = []
    with engine.connect() as unsubscribing, ledger.writer(CHECK) as writer:
        unsubscribing.execute(text("UPDATE subscribers SET status = :gone WHERE email = :a"),
                              {"gone": SubscriberStatus.UNSUBSCRIBED.value, "a": addresses[0]})
        claim = threading.Thread(
            target=lambda: claimed.append(writer.claim_next(issue_id, START, LEASE)))
        claim.start()
        claim.join(0.5)
        assert claim.is_alive()  # waiting on the reader's row lock, not reading past it
        unsubscribing.commit()
        claim.join(30)
    assert len(claimed) == 1 and claimed[0] is not None and claimed[0].left
    assert _rows(ledger)[addresses[0]] == ("failed", 1, NOT_ACTIVE_REPLY)


def test_an_answer_and_the_next_claim_are_one_statement(
        postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """One round trip a message: the answer's record and the next row's claim reach the
    server as a single statement on a connection in autocommit (no BEGIN, no COMMIT sent),
    and another connection sees the next row `sending` before anything is sent to it."""
    from sqlalchemy import event

    from ainews_newsletter.delivery.driver_statement import PsycopgStatement

    engine = engine_for(postgres_url)
    store, ledger = SubscriberStore(engine), Ledger(engine)
    issue_id, addresses = _issue_for(store, ledger, 3)
    statements: list[str] = []
    run = PsycopgStatement.first

    def first(self: PsycopgStatement, driver: object, values: dict[str, object]) -> object:
        statements.append(self.sql)
        return run(self, driver, values)

    def seen(*args: object) -> None:
        statements.append(str(args[2]))

    with ledger.writer(CHECK) as writer:
        first_row = writer.claim_next(issue_id, START, LEASE)
        assert first_row is not None
        monkeypatch.setattr(PsycopgStatement, "first", first)
        event.listen(writer.connection, "before_cursor_execute", seen)
        _, following = writer.record_then_claim_next(first_row.delivery, SENT, START, POLICY,
                                                      START, issue_id, LEASE)
        event.remove(writer.connection, "before_cursor_execute", seen)
        assert writer.connection.connection.driver_connection.autocommit
        assert following is not None and not following.left
        assert len(statements) == 1 and statements[0].lstrip().startswith("WITH recorded")
        with engine.connect() as other:
            states = dict(other.execute(select(deliveries.c.email, deliveries.c.state)).all())
    assert states == {addresses[0]: "sent", addresses[1]: "sending", addresses[2]: "queued"}


@pytest.mark.parametrize("workers", [1, 2])
def test_several_writers_never_take_the_same_row(postgres_url: str, workers: int) -> None:
    """FOR UPDATE SKIP LOCKED still holds inside the one statement: writers racing through
    record-and-claim take every row once."""
    engine = engine_for(postgres_url)
    store, ledger = SubscriberStore(engine), Ledger(engine)
    issue_id, addresses = _issue_for(store, ledger, 60)
    taken: list[int] = []
    lock = threading.Lock()

    def run() -> None:
        with ledger.writer(CHECK) as writer:
            claimed = writer.claim_next(issue_id, START, LEASE)
            while claimed is not None:
                with lock:
                    taken.append(claimed.delivery.id)
                _, claimed = writer.record_then_claim_next(
                    claimed.delivery, SENT, START, POLICY, START, issue_id, LEASE)

    threads = [threading.Thread(target=run) for _ in range(workers + 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(taken) == sorted(set(taken)) and len(taken) == len(addresses)
    assert {state for state, _, _ in _rows(ledger).values()} == {"sent"}


def test_a_claim_deadlocked_with_an_erase_keeps_the_answer_before_it(
        postgres_url: str) -> None:
    """The answer and the next claim are one statement; the claim waits on its reader's
    row, and an erase holding that row while it updates the reader's queued delivery
    (which the claim has locked) is a deadlock PostgreSQL breaks by failing one side. If
    it fails ours, the answer of the message already sent must still be recorded (else it
    stays `sending` and goes out again)."""
    engine = engine_for(postgres_url)
    store, ledger = SubscriberStore(engine), Ledger(engine)
    issue_id, addresses = _issue_for(store, ledger, 2)
    outcome: list[object] = []
    with ledger.writer(CHECK) as writer, engine.connect() as eraser:
        first = writer.claim_next(issue_id, START, LEASE)
        assert first is not None and first.delivery.recipient.email == addresses[0]
        # The erase's first step: reader 1's own row, locked until its transaction ends.
        eraser.execute(text("UPDATE subscribers SET name = 'x' WHERE email = :a"),
                       {"a": addresses[1]})

        def answer_and_claim() -> None:
            try:
                outcome.append(writer.record_then_claim_next(
                    first.delivery, SENT, START, POLICY, START, issue_id, LEASE))
            except Exception as exc:  # the assertion below says what it was
                outcome.append(exc)

        worker = threading.Thread(target=answer_and_claim)
        worker.start()
        worker.join(0.5)  # the claim now waits for reader 1's row
        deadlocked = False
        try:
            eraser.execute(text("UPDATE deliveries SET state = 'failed' "
                                "WHERE email = :a AND state = 'queued'"), {"a": addresses[1]})
            eraser.commit()
        except Exception:  # PostgreSQL chose the erase's side: ours went through
            eraser.rollback()
            deadlocked = True
        worker.join(30)
    assert not worker.is_alive()
    rows = _rows(ledger)
    assert rows[addresses[0]][0] == "sent", (outcome, deadlocked)
