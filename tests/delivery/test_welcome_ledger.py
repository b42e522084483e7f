"""The welcome ledger on SQLite and PostgreSQL: one row per reader ever, a claim only one
sender wins, a 4xx queued again with backoff, a 5xx failed, a dead sender's claim taken
back only after its lease, and a reader who left never welcomed."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update

from ainews_newsletter import clock
from ainews_newsletter.database import engine_for
from ainews_newsletter.delivery.claims import Claim, RetryPolicy
from ainews_newsletter.delivery.tables import welcomes
from ainews_newsletter.delivery.transports import MemoryTransport
from ainews_newsletter.delivery.welcome_ledger import WelcomeLedger, WelcomeRow
from ainews_newsletter.models import DeliveryState, Recipient, SendOutcome
from ainews_newsletter.subscribers.queries import deliverable_subscriber
from ainews_newsletter.subscribers.store import SubscriberStore

# Run again under libfaketime at awkward dates by scripts/test-clocks.
pytestmark = pytest.mark.clock

LEASE = timedelta(minutes=5)
POLICY = RetryPolicy(max_attempts=3, base_seconds=60, max_seconds=600,
                     give_up_after=timedelta(hours=24))


def _readers(database_url: str, count: int) -> tuple[WelcomeLedger, list[Recipient]]:
    engine = engine_for(database_url)
    store = SubscriberStore(engine)
    readers = []
    for index in range(count):
        found = store.add(f"reader{index}@example.com", name=f"Reader {index}")
        readers.append(Recipient(found.id, found.email, found.name, found.token))
    return WelcomeLedger(engine), readers


def _only_row(ledger: WelcomeLedger) -> WelcomeRow:
    [row] = ledger.due(clock.now(), LEASE, 10)
    return row


def test_one_row_per_reader_however_often_it_is_queued(database_url: str) -> None:
    ledger, readers = _readers(database_url, 2)
    now = clock.now()
    ledger.queue(readers, now, tagged=True)
    ledger.queue(readers[:1], now)
    ledger.queue(readers, now)
    rows = ledger.due(now, LEASE, 10)
    assert [row.subscriber_id for row in rows] == [r.subscriber_id for r in readers]
    assert all(row.return_tag for row in rows)  # tagged once, on the first queueing
    assert ledger.welcomed([r.subscriber_id for r in readers] + [999]) == {
        r.subscriber_id: r.email for r in readers}
    assert ledger.counts().queued == 2


def test_of_two_senders_claiming_one_row_exactly_one_wins(database_url: str) -> None:
    ledger, [reader] = _readers(database_url, 1)
    ledger.queue([reader], clock.now())
    other = WelcomeLedger(engine_for(database_url))
    row = _only_row(ledger)
    seen_by_other = _only_row(other)  # both read the row as due
    assert ledger.claim(row, clock.now(), LEASE) is Claim.CLAIMED
    assert other.claim(seen_by_other, clock.now(), LEASE) is Claim.TAKEN
    assert ledger.due(clock.now(), LEASE, 10) == []  # `sending`, within its lease
    assert ledger.counts().sending == 1


def test_racing_threads_send_one_welcome(database_url: str) -> None:
    """Eight threads, each reading the row and claiming it: one message leaves."""
    ledger, [reader] = _readers(database_url, 1)
    ledger.queue([reader], clock.now())
    outbox: list[tuple[str, str, bytes]] = []
    transport = MemoryTransport(outbox)
    start = threading.Barrier(8)

    def sender() -> None:
        mine = WelcomeLedger(engine_for(database_url))
        rows = mine.due(clock.now(), LEASE, 10)
        start.wait()
        for row in rows:
            if mine.claim(row, clock.now(), LEASE) is Claim.CLAIMED:
                outcome = transport.send("from@example.org", row.email, b"welcome")
                mine.record(row, outcome, clock.now(), POLICY)

    threads = [threading.Thread(target=sender) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [recipient for _, recipient, _ in outbox] == [reader.email]
    counts = ledger.counts()
    assert (counts.sent, counts.queued, counts.sending) == (1, 0, 0)


def test_a_4xx_waits_with_backoff_and_fails_after_max_attempts(database_url: str) -> None:
    ledger, [reader] = _readers(database_url, 1)
    ledger.queue([reader], clock.now())
    busy = SendOutcome(DeliveryState.DEFERRED, 451, "4.7.1 try again later")
    now = clock.now()
    for attempt in range(1, POLICY.max_attempts + 1):
        row = ledger.due(now, LEASE, 10)[0]
        assert row.attempts == attempt - 1
        assert ledger.claim(row, now, LEASE) is Claim.CLAIMED
        state = ledger.record(row, busy, now, POLICY)
        if attempt < POLICY.max_attempts:
            assert state == "queued"
            assert ledger.due(now, LEASE, 10) == []  # not before its retry time
            wait = ledger.seconds_to_next_due(now, LEASE)
            assert wait == POLICY.delay(attempt).total_seconds()
            assert ledger.counts().retrying == 1
            now += POLICY.delay(attempt)
    assert state == "failed"
    counts = ledger.counts()
    assert (counts.failed, counts.queued) == (1, 0)
    assert counts.last_failure is not None and counts.last_failure.code == 451


def test_a_5xx_fails_at_once_and_is_the_last_failure(database_url: str) -> None:
    ledger, readers = _readers(database_url, 2)
    ledger.queue(readers, clock.now())
    first, second = ledger.due(clock.now(), LEASE, 10)
    for row, outcome in ((first, SendOutcome(DeliveryState.FAILED, 550, "5.1.1 no such user")),
                         (second, SendOutcome(DeliveryState.SENT, 250, "2.0.0 queued as 4AB"))):
        assert ledger.claim(row, clock.now(), LEASE) is Claim.CLAIMED
        ledger.record(row, outcome, clock.now(), POLICY)
    counts = ledger.counts()
    assert (counts.sent, counts.failed, counts.total) == (1, 1, 2)
    failure = counts.last_failure
    assert failure is not None
    assert (failure.email, failure.code, failure.reply) == (
        first.email, 550, "5.1.1 no such user")
    assert ledger.due(clock.now() + timedelta(days=30), LEASE, 10) == []  # never again


def _claimed_at(ledger: WelcomeLedger) -> datetime:
    with ledger.engine.connect() as connection:
        return connection.execute(select(welcomes.c.updated_at)).scalar_one()


def _age_claim(ledger: WelcomeLedger, by: timedelta) -> datetime:
    """Time passes for the claim (on PostgreSQL its lease runs by the database's clock, so
    the claim's stamp moves back instead); returns the new stamp."""
    stamp = _claimed_at(ledger) - by
    with ledger.engine.begin() as connection:
        connection.execute(update(welcomes).values(updated_at=stamp))
    return stamp


def test_a_dead_senders_claim_is_taken_back_only_after_the_lease(database_url: str) -> None:
    ledger, [reader] = _readers(database_url, 1)
    ledger.queue([reader], clock.now())
    assert ledger.claim(_only_row(ledger), clock.now(), LEASE) is Claim.CLAIMED
    # ... and the sender dies before recording anything.
    stamp = _age_claim(ledger, LEASE - timedelta(minutes=1))
    now = clock.now()
    assert ledger.due(now, LEASE, 10) == []
    wait = ledger.seconds_to_next_due(now, LEASE)
    assert wait is not None
    if database_url.startswith("postgresql"):  # by the database's clock, a moment later
        assert 50 < wait <= 60
    else:
        assert wait == (stamp + LEASE - now).total_seconds()
    _age_claim(ledger, timedelta(minutes=2))
    later = clock.now()
    [stale] = ledger.due(later, LEASE, 10)
    assert stale.attempts == 1
    assert ledger.claim(stale, later, LEASE) is Claim.CLAIMED
    assert ledger.claim(stale, later, LEASE) is Claim.TAKEN  # only once


def test_on_postgresql_the_lease_runs_by_the_databases_clock(database_url: str) -> None:
    """Senders on machines whose clocks disagree: one running behind claims, one running
    ahead looks. On PostgreSQL neither clock counts (the claim is stamped and judged by the
    database's); on SQLite, one machine, the process's clock is the one."""
    ledger, [reader] = _readers(database_url, 1)
    ledger.queue([reader], clock.now())
    behind, ahead = clock.now() - 2 * LEASE, clock.now() + 2 * LEASE
    row = _only_row(ledger)
    assert ledger.claim(row, behind, LEASE) is Claim.CLAIMED
    seen = ledger.due(clock.now(), LEASE, 10) + ledger.due(ahead, LEASE, 10)
    if database_url.startswith("postgresql"):
        assert seen == []
        assert ledger.claim(replace(row, attempts=1), ahead, LEASE) is Claim.TAKEN
    else:
        assert [found.id for found in seen] == [row.id, row.id]


def test_on_postgresql_the_wait_for_a_lease_is_measured_by_the_databases_clock(
        database_url: str) -> None:
    """`serve` sleeps until a dead sender's claim may be taken back. With the process's
    clock an hour behind the database's (another machine, or a process started later under
    libfaketime), the wait on PostgreSQL is still the lease, not the lease and an hour; on
    SQLite the process's clock is the one claims are judged by."""
    ledger, [reader] = _readers(database_url, 1)
    ledger.queue([reader], clock.now())
    behind = clock.now() - timedelta(hours=1)
    assert ledger.claim(_only_row(ledger), behind, LEASE) is Claim.CLAIMED
    wait = ledger.seconds_to_next_due(behind, LEASE)
    assert wait is not None
    if database_url.startswith("postgresql"):
        assert LEASE.total_seconds() - 10 < wait <= LEASE.total_seconds()
    else:
        assert wait == LEASE.total_seconds()


def test_a_row_put_back_keeps_its_attempt_count(database_url: str) -> None:
    ledger, [reader] = _readers(database_url, 1)
    ledger.queue([reader], clock.now())
    now = clock.now()
    row = _only_row(ledger)
    assert ledger.claim(row, now, LEASE) is Claim.CLAIMED
    ledger.put_back(row, now, now + timedelta(minutes=1), "cannot connect")
    assert ledger.due(now, LEASE, 10) == []
    [again] = ledger.due(now + timedelta(minutes=1), LEASE, 10)
    assert again.attempts == 0 and ledger.counts().retrying == 1


def test_a_reader_who_left_is_never_welcomed(database_url: str) -> None:
    ledger, readers = _readers(database_url, 2)
    ledger.queue(readers, clock.now())
    SubscriberStore(engine_for(database_url)).unsubscribe(readers[0].email)
    leaving, staying = ledger.due(clock.now(), LEASE, 10)
    assert ledger.claim(leaving, clock.now(), LEASE, deliverable_subscriber) is Claim.LEFT
    assert ledger.claim(staying, clock.now(), LEASE, deliverable_subscriber) is Claim.CLAIMED
    counts = ledger.counts()  # skipped: leaving is no failure of ours
    assert (counts.skipped, counts.failed, counts.sending) == (1, 0, 1)
    assert counts.last_failure is None
    with ledger.engine.connect() as connection:
        assert connection.execute(select(welcomes.c.state, welcomes.c.last_reply).where(
            welcomes.c.id == leaving.id)).one() == (
                "skipped", "not sent: no longer an active subscriber")


def _taken_over(database_url: str) -> tuple[WelcomeLedger, WelcomeRow, WelcomeRow]:
    """One reader's welcome claimed by a sender that outlived its lease, and claimed again
    by another: (the ledger, the first claim's row, the newer claim's)."""
    ledger, [reader] = _readers(database_url, 1)
    ledger.queue([reader], clock.now())
    stale = _only_row(ledger)
    assert ledger.claim(stale, clock.now(), LEASE) is Claim.CLAIMED
    _age_claim(ledger, LEASE + timedelta(minutes=1))
    [fresh] = ledger.due(clock.now(), LEASE, 10)
    assert ledger.claim(fresh, clock.now(), LEASE) is Claim.CLAIMED
    return ledger, stale, fresh


def test_a_late_answer_to_a_claim_taken_over_changes_nothing(database_url: str) -> None:
    """A sender taken for dead (its claim outlived the lease) answers after another sent
    the welcome: its 451 and its put-back leave `sent` alone (no second welcome later)."""
    ledger, stale, fresh = _taken_over(database_url)
    sent = SendOutcome(DeliveryState.SENT, 250, "2.0.0 queued")
    assert ledger.record(fresh, sent, clock.now(), POLICY) == "sent"
    busy = SendOutcome(DeliveryState.DEFERRED, 451, "4.7.1 try again later")
    ledger.record(stale, busy, clock.now(), POLICY)
    ledger.put_back(stale, clock.now(), clock.now(), "cannot connect")
    with ledger.engine.connect() as connection:
        assert connection.execute(select(welcomes.c.state, welcomes.c.attempts,
                                         welcomes.c.last_code)).one() == ("sent", 2, 250)
    assert ledger.due(clock.now() + timedelta(days=1), LEASE, 10) == []


def test_a_late_250_is_kept_whoever_holds_the_row_now(database_url: str) -> None:
    """The newer claim found the relay down and put the welcome back; then the first
    sender's 250 arrives: the welcome went, so it is `sent` (not sent a second time)."""
    ledger, stale, fresh = _taken_over(database_url)
    ledger.put_back(fresh, clock.now(), clock.now(), "cannot connect")
    sent = SendOutcome(DeliveryState.SENT, 250, "2.0.0 queued")
    assert ledger.record(stale, sent, clock.now(), POLICY) == "sent"
    ledger.record(fresh, SendOutcome(DeliveryState.FAILED, 550, "5.1.1 no"), clock.now(),
                  POLICY)
    with ledger.engine.connect() as connection:
        assert connection.execute(select(welcomes.c.state, welcomes.c.attempts,
                                         welcomes.c.last_code)).one() == ("sent", 1, 250)
    assert ledger.due(clock.now() + timedelta(days=1), LEASE, 10) == []
