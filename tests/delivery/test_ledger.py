"""Ledger claims on a real PostgreSQL: FOR UPDATE SKIP LOCKED hands concurrent senders
different rows instead of making them wait for, or fight over, the same one."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import Engine, bindparam, select, text, update

from ainews_newsletter import clock
from ainews_newsletter.database import engine_for
from ainews_newsletter.delivery.claims import (
    Claim,
    Claimed,
    Delivery,
    LedgerWriter,
    RetryPolicy,
)
from ainews_newsletter.delivery.ledger import Ledger
from ainews_newsletter.delivery.tables import deliveries
from ainews_newsletter.models import (
    DeliveryState,
    Period,
    Recipient,
    RenderedIssue,
    SendOutcome,
)

# Run again under libfaketime at awkward dates by scripts/test-clocks.
pytestmark = pytest.mark.clock

START = clock.now().replace(microsecond=0)


def _issue_with_rows(ledger: Ledger, count: int) -> int:
    rendered = RenderedIssue(
        period=Period("2026-W47", START - timedelta(days=7), START), subject="s",
        preheader="p", html="<p>U</p>", text="U", unsubscribe_placeholder="U", post_count=1)
    issue = ledger.create_issue("newsletter", rendered, (), START)
    ledger.snapshot(issue.id, (Recipient(i, f"r{i}@example.com", None, f"t{i}")
                               for i in range(1, count + 1)), START)
    return issue.id


def _delivery(claimed: Claimed | None) -> Delivery | None:
    assert claimed is None or not claimed.left  # no `deliverable` check here: nobody has left
    return None if claimed is None else claimed.delivery


def test_a_row_locked_by_one_sender_is_skipped_by_the_other(postgres_url: str) -> None:
    engine = engine_for(postgres_url)
    ledger = Ledger(engine)
    issue_id = _issue_with_rows(ledger, 3)
    lease = timedelta(minutes=5)
    with ledger.writer() as first, ledger.writer() as second, engine.connect() as holder:
        assert first.skips_locked and second.skips_locked
        # Another sender is in the middle of claiming row 1: it holds the row's lock.
        lowest = select(deliveries.c.id).order_by(deliveries.c.id).limit(1)
        locked_id = holder.execute(lowest.with_for_update()).scalar_one()
        taken = _delivery(first.claim_next(issue_id, START, lease))
        assert taken is not None and taken.id != locked_id  # skipped, not waited for
        again = _delivery(second.claim_next(issue_id, START, lease))
        assert again is not None and again.id not in (locked_id, taken.id)
        assert second.claim_next(issue_id, START, lease) is None  # only the locked one left
        holder.rollback()
        last = _delivery(first.claim_next(issue_id, START, lease))
        assert last is not None and last.id == locked_id and last.attempts == 0
    with engine.connect() as connection:
        states = connection.execute(select(deliveries.c.state, deliveries.c.attempts)).all()
    assert sorted(states) == [("sending", 1)] * 3


def _database_now(engine: Engine) -> datetime:
    with engine.connect() as connection:
        value = connection.execute(text("SELECT timezone('UTC', now())")).scalar_one()
    return cast(datetime, value).replace(tzinfo=UTC)


def test_the_claim_lease_runs_on_the_databases_clock_not_the_hosts(postgres_url: str) -> None:
    """Senders on several hosts compare claims against one clock, the database's: a host
    whose clock runs a day ahead does not take a live sender's row, and one a day behind
    (or stepped back) still takes a row whose lease has run out."""
    engine = engine_for(postgres_url)
    ledger = Ledger(engine)
    issue_id = _issue_with_rows(ledger, 2)
    lease = timedelta(minutes=5)
    behind, ahead = START - timedelta(days=1), START + timedelta(days=1)
    with ledger.writer() as writer:
        claimed = _delivery(writer.claim_next(issue_id, behind, lease))
        assert claimed is not None
        with engine.connect() as connection:
            stamped = connection.execute(select(deliveries.c.updated_at).where(
                deliveries.c.id == claimed.id)).scalar_one()
        assert abs(stamped - _database_now(engine)) < timedelta(minutes=1)  # not `behind`
        other = _delivery(writer.claim_next(issue_id, ahead, lease))
        assert other is not None and other.id != claimed.id  # the queued one
        assert writer.claim_next(issue_id, ahead, lease) is None  # claimed's lease holds
        _age(engine, claimed.id)  # its lease (five minutes) run out
        retaken = _delivery(writer.claim_next(issue_id, behind, lease))
        assert retaken is not None and retaken.id == claimed.id and retaken.attempts == 1
        expires = ledger.claims_expire_at(issue_id, lease)
        assert expires is not None
        assert abs(expires - (_database_now(engine) + lease)) < timedelta(minutes=1)


def test_sqlite_writer_stores_what_sqlalchemy_would(tmp_path: Path) -> None:
    """The per-message statements go to sqlite3 directly (driver_statement.DriverStatement): the
    values stored must be byte for byte what SQLAlchemy stores for the same answer, or
    reports and retries would read them differently."""
    engine = engine_for(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger = Ledger(engine)
    issue_id = _issue_with_rows(ledger, 2)
    policy = RetryPolicy(max_attempts=5, base_seconds=60, max_seconds=600)
    when = START + timedelta(seconds=7, microseconds=123456)
    first, second = ledger.due(issue_id, START, 10)
    outcome = SendOutcome(DeliveryState.DEFERRED, 451, "4.3.0 try later")
    with ledger.writer() as writer:  # the driver's path
        assert writer.claim(first, when) is Claim.CLAIMED
        writer.record(first, outcome, when, policy)
    with engine.begin() as connection:  # SQLAlchemy's, same values
        connection.execute(update(deliveries).where(deliveries.c.id == second.id).values(
            state="deferred", attempts=1, last_code=451, last_reply="4.3.0 try later",
            next_attempt_at=when + policy.delay(1), updated_at=when, sent_at=None))
    with sqlite3.connect(tmp_path / "ledger.db") as raw:
        stored = raw.execute("SELECT state, attempts, last_code, last_reply, "
                             "next_attempt_at, updated_at, sent_at FROM deliveries "
                             "ORDER BY id").fetchall()
    assert stored[0] == stored[1]
    assert stored[0][4] is not None and stored[0][4].startswith(
        (when + policy.delay(1)).strftime("%Y-%m-%d %H:%M:%S"))


def _every_column(database: Path, order: str) -> list[tuple[object, ...]]:
    """Every column of every delivery row with its SQLite storage class (`typeof`), as
    stored: two ways of writing the same rows compare equal only byte for byte."""
    with sqlite3.connect(database) as connection:
        columns = [row[1] for row in connection.execute("PRAGMA table_info(deliveries)")]
        query = ", ".join(f"{name}, typeof({name})" for name in columns)
        return connection.execute(f"SELECT {query} FROM deliveries ORDER BY {order}").fetchall()


def test_one_time_for_a_whole_commit_is_stored_as_sqlalchemy_stores_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker-process sender passes one `now` to every statement of a commit, and the
    driver's path converts a datetime it has just converted only once (DriverStatement):
    every column of every row, with its storage type, must be what the same writes store
    through SQLAlchemy's own execute, whether the time repeats, changes or comes in
    another zone."""
    from ainews_newsletter.delivery import snapshot as snapshot_module

    policy = RetryPolicy(max_attempts=5, base_seconds=60, max_seconds=600)
    when = START + timedelta(seconds=7, microseconds=123456)
    elsewhere = (when + timedelta(seconds=3, microseconds=5)).astimezone(
        timezone(timedelta(hours=2)))
    sent = SendOutcome(DeliveryState.SENT, 250, "2.0.0 Ok: queued as 4ABC")
    later = SendOutcome(DeliveryState.DEFERRED, 451, "4.3.0 try later")
    stored = []
    for path in ("driver", "sqlalchemy"):
        if path == "sqlalchemy":  # the snapshot's inserts too
            monkeypatch.setattr(snapshot_module, "insert_by_driver", lambda *args: False)
        database = tmp_path / f"{path}.db"
        ledger = Ledger(engine_for(f"sqlite:///{database}"))
        issue_id = _issue_with_rows(ledger, 4)
        first, second, third, fourth = ledger.due(issue_id, START, 10)
        with ledger.writer() as writer:
            assert writer._driver is not None  # sqlite3 itself runs the statements
            if path == "sqlalchemy":
                writer._driver = None  # SQLAlchemy's execute, its bind processors
            assert writer.claim(first, when) is Claim.CLAIMED
            assert writer.claim(second, when) is Claim.CLAIMED
            with writer.together():  # one time object for the whole commit
                writer.record(first, sent, when, policy, started=START)
                assert writer.record(second, sent, when, policy, started=START,
                                     then_claim=third) == (DeliveryState.SENT, Claim.CLAIMED)
            writer.record(third, later, elsewhere, policy, then_claim=fourth)
            writer.record(fourth, later, elsewhere, policy)
        stored.append(_every_column(database, "id"))
    assert stored[0] == stored[1]
    retry = f"{elsewhere.astimezone(UTC) + policy.delay(1):%Y-%m-%d %H:%M:%S.%f}"
    with sqlite3.connect(tmp_path / "driver.db") as connection:
        assert connection.execute("SELECT state, sent_at, next_attempt_at FROM deliveries "
                                  "ORDER BY id").fetchall() == [
            ("sent", f"{when:%Y-%m-%d %H:%M:%S.%f}", None),
            ("sent", f"{when:%Y-%m-%d %H:%M:%S.%f}", None),
            ("deferred", None, retry), ("deferred", None, retry)]


def test_writes_made_together_are_undone_together(tmp_path: Path) -> None:
    engine = engine_for(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger = Ledger(engine)
    issue_id = _issue_with_rows(ledger, 2)
    policy = RetryPolicy(max_attempts=5, base_seconds=60, max_seconds=600)
    first, second = ledger.due(issue_id, START, 10)
    sent = SendOutcome(DeliveryState.SENT, 250, "ok")
    with ledger.writer() as writer:
        writer.claim(first, START)
        writer.claim(second, START)
        with pytest.raises(RuntimeError), writer.together():
            writer.record(first, sent, START, policy)
            raise RuntimeError("the ledger failed half-way")
        assert ledger.counts(issue_id).sending == 2  # the first answer was not kept alone
        with writer.together():
            writer.record(first, sent, START, policy)
            writer.record(second, sent, START, policy)
            assert ledger.counts(issue_id).sent == 0  # nothing committed inside the block
    assert ledger.counts(issue_id).sent == 2


def test_a_locked_database_is_sqlalchemys_error_not_the_drivers(tmp_path: Path) -> None:
    """The per-message statements run on sqlite3 itself; its errors still come out as
    SQLAlchemy's, which the CLI turns into one line ("database: OperationalError: …")."""
    from sqlalchemy.exc import OperationalError

    engine = engine_for(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger = Ledger(engine)
    issue_id = _issue_with_rows(ledger, 1)
    (row,) = ledger.due(issue_id, START, 10)
    with ledger.writer() as writer, sqlite3.connect(tmp_path / "ledger.db") as other:
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        writer.connection.exec_driver_sql("PRAGMA busy_timeout = 0")
        with pytest.raises(OperationalError, match="database is locked"):
            writer.claim(row, START)
        other.rollback()
        assert writer.claim(row, START) is Claim.CLAIMED  # and the writer is still usable


def test_claims_go_on_from_the_last_one_and_still_find_rows_put_back(
        postgres_url: str) -> None:
    """PostgreSQL looks for the next queued row above the last one claimed (walking from
    the start cost more with every row sent), and from the start once none is above."""
    ledger = Ledger(engine_for(postgres_url))
    issue_id = _issue_with_rows(ledger, 3)
    lease = timedelta(minutes=5)
    with ledger.writer() as writer:
        first = _delivery(writer.claim_next(issue_id, START, lease))
        second = _delivery(writer.claim_next(issue_id, START, lease))
        assert first is not None and second is not None and first.id < second.id
        writer.requeue(first, START)  # put back: below where the claims have got to
        third = _delivery(writer.claim_next(issue_id, START, lease))
        assert third is not None and third.id > second.id
        again = _delivery(writer.claim_next(issue_id, START, lease))
        assert again is not None and again.id == first.id
        assert writer.claim_next(issue_id, START, lease) is None


def test_tags_made_in_bulk_are_what_one_at_a_time_makes() -> None:
    """The snapshot's tags (new_return_tags) have the single tag's shape: 16 lower-case
    base32 characters each, none twice, as many as asked."""
    from ainews_newsletter.delivery.returnpath import new_return_tag, new_return_tags

    shape = re.compile(r"[a-z2-7]{16}")
    for count in (0, 1, 7, 2000):
        tags = new_return_tags(count)
        assert len(tags) == count
        assert all(shape.fullmatch(tag) for tag in tags)
        assert len(set(tags)) == count
    assert shape.fullmatch(new_return_tag())


def test_the_snapshot_inserted_by_sqlite3_stores_what_sqlalchemy_would(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The snapshot's batches go to sqlite3 directly (driver_statement.insert_by_driver):
    every column of every row, and its SQLite storage type, is what SQLAlchemy's own
    insert stores (the other path, kept for PostgreSQL)."""
    from ainews_newsletter.delivery import snapshot as snapshot_module

    stored = []
    for path in ("driver", "sqlalchemy"):
        if path == "sqlalchemy":
            monkeypatch.setattr(snapshot_module, "insert_by_driver", lambda *args: False)
        database = tmp_path / f"{path}.db"
        ledger = Ledger(engine_for(f"sqlite:///{database}"))
        rendered = RenderedIssue(
            period=Period("2026-W47", START - timedelta(days=7), START), subject="s",
            preheader="p", html="<p>U</p>", text="U", unsubscribe_placeholder="U",
            post_count=1)
        issue = ledger.create_issue("newsletter", rendered, (), START)
        readers = [Recipient(i, f"r{i}@example.com", "Zoë" if i % 2 else None, f"t{i}",
                             language="de" if i % 3 else None) for i in range(1, 2500)]
        assert ledger.snapshot(issue.id, readers, START, batch_size=1000,
                               list_identifier="news.example", languages={"de"}) == 2499
        stored.append(_every_column(database, "subscriber_id"))
    assert stored[0] == stored[1]
    assert len(stored[0]) == 2499


def test_a_failing_driver_statement_names_no_reader() -> None:
    """The driver's errors become SQLAlchemy's without the statement's values: they name
    readers (address, name, token), and an error's text reaches the log and the
    scheduler's run records."""
    from sqlalchemy.exc import DBAPIError

    from ainews_newsletter.database import as_sqlalchemy_error

    connection = sqlite3.connect(":memory:")
    parameters = ("zoe.reader@example.com", "Zoë Reader", "token-abc")
    with (pytest.raises(DBAPIError) as raised,
          as_sqlalchemy_error("INSERT INTO nowhere", parameters)):
        connection.execute("INSERT INTO nowhere VALUES (?, ?, ?)", parameters)
    assert "no such table" in str(raised.value)
    assert not any(value in str(raised.value) for value in parameters)


def test_a_conversion_is_shared_only_by_utc_datetimes() -> None:
    """Statements of one writer share the text of one `now`, but only for the project's
    UTCDateTime: two other types that print alike may still convert differently (SQLite's
    storage_format), and each keeps its own conversion."""
    from sqlalchemy import Column, Integer, MetaData, Table
    from sqlalchemy.dialects import sqlite

    from ainews_newsletter.delivery.driver_statement import Converted, DriverStatement

    metadata = MetaData()
    plain = Table("plain", metadata, Column("id", Integer, primary_key=True),
                  Column("at", sqlite.DATETIME()))
    slashed = Table("slashed", metadata, Column("id", Integer, primary_key=True),
                    Column("at", sqlite.DATETIME(
                        storage_format="%(year)04d/%(month)02d/%(day)02d")))
    dialect = sqlite.dialect()  # type: ignore[no-untyped-call]
    shared: Converted = {}
    first, second = (DriverStatement(update(table).values(at=bindparam("now")), dialect, shared)
                     for table in (plain, slashed))
    moment = datetime(2026, 5, 9, 7, 35, 25, 123456)
    assert first.parameters({"now": moment}) == ("2026-05-09 07:35:25.123456",)
    assert second.parameters({"now": moment}) == ("2026/05/09",)


def _state(ledger: Ledger, row_id: int) -> tuple[object, ...]:
    with ledger.engine.connect() as connection:
        return tuple(connection.execute(select(
            deliveries.c.state, deliveries.c.attempts, deliveries.c.last_code).where(
                deliveries.c.id == row_id)).one())


LATE_POLICY = RetryPolicy(max_attempts=5, base_seconds=60, max_seconds=600)
SENT = SendOutcome(DeliveryState.SENT, 250, "2.0.0 queued")
BUSY = SendOutcome(DeliveryState.DEFERRED, 451, "4.7.1 try again later")


LEASE = timedelta(minutes=5)


def _age(engine: Engine, row_id: int) -> None:
    """The row's claim older than LEASE, by the database's clock (PostgreSQL)."""
    with engine.begin() as connection:
        connection.execute(text(
            "UPDATE deliveries SET updated_at = timezone('UTC', now()) "
            "- interval '301 seconds' WHERE id = :id"), {"id": row_id})


def _taken_over_on_sqlite(ledger: Ledger, issue_id: int) -> tuple[Delivery, Delivery]:
    """The issue's one row claimed, given back by a lone sender (its own seemed gone),
    and claimed again: (the first claim's row, the newer claim's)."""
    (stale,) = ledger.due(issue_id, START, 10)
    with ledger.writer() as writer:
        assert writer.claim(stale, START) is Claim.CLAIMED
    assert ledger.release_claims(START) == 1
    (fresh,) = ledger.due(issue_id, START, 10)
    assert fresh.attempts == 1
    with ledger.writer() as writer:
        assert writer.claim(fresh, START) is Claim.CLAIMED
    return stale, fresh


def _taken_over_on_postgresql(engine: Engine, first: LedgerWriter, second: LedgerWriter,
                              issue_id: int) -> tuple[Delivery, Delivery, Delivery]:
    """Of two rows, the first sender claims one and outlives its lease; the second sender
    claims the other and then takes the first's over: (first's row, the second's other
    row, the second's claim of the first's row)."""
    stale = _delivery(first.claim_next(issue_id, START, LEASE))
    assert stale is not None
    _age(engine, stale.id)
    other = _delivery(second.claim_next(issue_id, START, LEASE))  # the queued one
    fresh = _delivery(second.claim_next(issue_id, START, LEASE))  # by the lease
    assert other is not None and fresh is not None and fresh.id == stale.id
    assert fresh.attempts == 1
    return stale, other, fresh


def test_a_late_answer_to_a_claim_taken_over_changes_nothing_on_sqlite(
        tmp_path: Path) -> None:
    """A sender that was taken for dead (a lone sender gave its claim back) answers after
    the row's new claim was sent: its 451 must not turn `sent` into `deferred` (a copy
    more), nor its put-back turn it into `queued`."""
    ledger = Ledger(engine_for(f"sqlite:///{tmp_path / 'ledger.db'}"))
    issue_id = _issue_with_rows(ledger, 1)
    stale, fresh = _taken_over_on_sqlite(ledger, issue_id)
    with ledger.writer() as writer:
        writer.record(fresh, SENT, START, LATE_POLICY)
        writer.record(stale, BUSY, START, LATE_POLICY)  # the first sender, late
        writer.requeue(stale, START)
    assert _state(ledger, fresh.id) == ("sent", 2, 250)
    assert ledger.due(issue_id, START + timedelta(days=1), 10) == []


def test_a_late_answer_to_a_claim_taken_over_changes_nothing_on_postgresql(
        postgres_url: str) -> None:
    """The same across two PostgreSQL senders: the second sends the row it took over; the
    first's late 451 (also as part of its next claim's statement) and put-back leave the
    second's `sent` alone. The second's own answer, written while it still holds the
    claim, is kept."""
    engine = engine_for(postgres_url)
    ledger = Ledger(engine)
    issue_id = _issue_with_rows(ledger, 2)
    with ledger.writer() as first, ledger.writer() as second:
        stale, other, fresh = _taken_over_on_postgresql(engine, first, second, issue_id)
        second.record(fresh, SENT, START, LATE_POLICY)
        first.record_then_claim_next(stale, BUSY, START, LATE_POLICY, None, issue_id, LEASE)
        first.record(stale, BUSY, START, LATE_POLICY)
        first.requeue(stale, START)
        assert _state(ledger, stale.id) == ("sent", 2, 250)
        second.record(other, BUSY, START, LATE_POLICY)
        assert _state(ledger, other.id) == ("deferred", 1, 451)


def test_a_late_250_is_kept_whoever_holds_the_row_now_on_sqlite(tmp_path: Path) -> None:
    """The other way round: the newer claim found the relay down and put the row back;
    then the first sender's 250 arrives. The message went, so the row is `sent` (else it
    would go a second time), and a later answer that is not a 250 cannot undo it."""
    ledger = Ledger(engine_for(f"sqlite:///{tmp_path / 'ledger.db'}"))
    issue_id = _issue_with_rows(ledger, 1)
    stale, fresh = _taken_over_on_sqlite(ledger, issue_id)
    with ledger.writer() as writer:
        writer.requeue(fresh, START)  # the relay was down: never sent
        assert _state(ledger, fresh.id) == ("queued", 1, None)
        writer.record(stale, SENT, START, LATE_POLICY)
        assert _state(ledger, fresh.id) == ("sent", 1, 250)
        writer.record(stale, SENT, START, LATE_POLICY)  # said twice: the first one stays
        writer.record(fresh, BUSY, START, LATE_POLICY)
    assert _state(ledger, fresh.id) == ("sent", 1, 250)
    assert ledger.due(issue_id, START + timedelta(days=1), 10) == []


def test_a_late_250_is_kept_whoever_holds_the_row_now_on_postgresql(
        postgres_url: str) -> None:
    engine = engine_for(postgres_url)
    ledger = Ledger(engine)
    issue_id = _issue_with_rows(ledger, 2)
    with ledger.writer() as first, ledger.writer() as second:
        stale, _, fresh = _taken_over_on_postgresql(engine, first, second, issue_id)
        second.requeue(fresh, START)
        state, claimed = first.record_then_claim_next(stale, SENT, START, LATE_POLICY, None,
                                                      issue_id, LEASE)
        assert state is DeliveryState.SENT and claimed is None  # `other` is the second's
        assert _state(ledger, stale.id) == ("sent", 1, 250)


def test_a_late_250_and_the_next_claim_never_take_the_same_row(postgres_url: str) -> None:
    """On PostgreSQL an answer and the next queued claim are one statement. A late 250 for
    a row another sender has put back in the queue, from a sender whose queued claims have
    not got that far, must not also claim that row in the same statement (PostgreSQL does
    not say which of the two updates wins): it is `sent`, and nobody holds it."""
    engine = engine_for(postgres_url)
    ledger = Ledger(engine)
    issue_id = _issue_with_rows(ledger, 3)
    with ledger.writer() as first, ledger.writer() as second:
        one = _delivery(first.claim_next(issue_id, START, LEASE))
        two = _delivery(second.claim_next(issue_id, START, LEASE))
        three = _delivery(second.claim_next(issue_id, START, LEASE))
        assert one is not None and two is not None and three is not None
        _age(engine, two.id)
        taken = _delivery(first.claim_next(issue_id, START, LEASE))  # by its lease
        assert taken is not None and taken.id == two.id and taken.attempts == 1
        _age(engine, two.id)
        again = _delivery(second.claim_next(issue_id, START, LEASE))
        assert again is not None and again.id == two.id
        second.requeue(again, START)  # the relay was down
        first.record(one, SENT, START, LATE_POLICY)
        state, claimed = first.record_then_claim_next(taken, SENT, START, LATE_POLICY, None,
                                                      issue_id, LEASE)
        assert state is DeliveryState.SENT and claimed is None
        assert _state(ledger, two.id) == ("sent", 2, 250)
        assert _state(ledger, three.id) == ("sending", 1, None)


def test_a_value_left_out_of_a_driver_statement_is_an_error_not_null(
        tmp_path: Path, postgres_url: str) -> None:
    """The per-message statements run on the drivers themselves; a caller that leaves out
    one of their values (the claim's attempt count, say) must hear of it at once, not have
    NULL bound and the answer's UPDATE silently match nothing."""
    from ainews_newsletter.delivery.driver_statement import DriverStatement, PsycopgStatement
    from ainews_newsletter.delivery.row_updates import CLAIM_QUEUED, RECORD

    values = {"row_id": 1, "new_state": "sent", "code": 250, "reply": "ok",
              "erased_reply": "ok", "next_at": None, "now": START, "sent": START}
    sqlite_engine = engine_for(f"sqlite:///{tmp_path / 'ledger.db'}")
    statement = DriverStatement(RECORD, sqlite_engine.dialect)
    with pytest.raises(TypeError, match="no value for claimed_attempts in: UPDATE"):
        statement.parameters(values)
    given = statement.parameters({**values, "claimed_attempts": 1})
    assert given.count(1) >= 2 and "sent" in given  # row_id and claimed_attempts bound
    claim = PsycopgStatement(CLAIM_QUEUED, engine_for(postgres_url).dialect)
    with pytest.raises(TypeError, match="no value for after, issue"):
        claim.first(None, {"now": START})
