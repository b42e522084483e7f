"""The per-mailbox daily limit on confirmation mails, counted in the database: exact when
sign-ups of one mailbox race each other (SQLite's write lock, PostgreSQL's advisory lock),
a day long, and pruned as it goes."""

from __future__ import annotations

import threading
from datetime import timedelta

from ainews_newsletter import clock
from ainews_newsletter.database import engine_for
from ainews_newsletter.subscribers.confirmation_quota import ConfirmationQuota


def _rows(quota: ConfirmationQuota) -> list[tuple[str, object]]:
    from sqlalchemy import select

    from ainews_newsletter.subscribers.schema import confirmation_mails

    with quota.engine.connect() as connection:
        return [(row.mailbox, row.sent_at) for row in connection.execute(
            select(confirmation_mails).order_by(confirmation_mails.c.id))]


def test_racing_sign_ups_of_one_mailbox_never_pass_the_limit(database_url: str) -> None:
    quota = ConfirmationQuota(engine_for(database_url), per_day=3)
    quota.take("warm@example.com")  # the schema exists before the race starts
    racers = 12
    start = threading.Barrier(racers)
    results: list[bool] = []
    lock = threading.Lock()

    def sign_up() -> None:
        start.wait()
        allowed = quota.take("ada@example.com")
        with lock:
            results.append(allowed)

    threads = [threading.Thread(target=sign_up) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * (racers - 3) + [True] * 3
    assert [mailbox for mailbox, _ in _rows(quota)].count("ada@example.com") == 3


def test_the_limit_is_a_day_long_and_old_rows_are_pruned(database_url: str) -> None:
    quota = ConfirmationQuota(engine_for(database_url), per_day=2)
    start = clock.now()
    assert quota.take("bo@example.com", start)
    assert quota.take("bo@example.com", start + timedelta(hours=1))
    assert not quota.take("bo@example.com", start + timedelta(hours=23))
    assert quota.take("cy@example.com", start + timedelta(hours=23))  # another mailbox
    # A day after the first mail, one place is free again; the first row is gone.
    assert quota.take("bo@example.com", start + timedelta(hours=24, seconds=1))
    assert not quota.take("bo@example.com", start + timedelta(hours=24, seconds=2))
    assert [mailbox for mailbox, _ in _rows(quota)] == [
        "bo@example.com", "cy@example.com", "bo@example.com"]
    assert quota.prune(start + timedelta(days=3)) == 3
    assert _rows(quota) == []
