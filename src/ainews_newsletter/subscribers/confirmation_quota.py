"""The per-mailbox daily limit on confirmation mails ([web] confirmations_per_address_per_day),
counted in the database (table `confirmation_mails`), so that neither a restart of `ainews
serve` nor a second process serving the same list starts the count again from zero: a bot
cannot make us mail one inbox more than the limit a day, whatever it does.

The caller names the mailbox (the web's `mailbox_key`: plus-tags dropped, since name+1@ and
name+2@ land in one inbox); this module only counts."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, delete, func, insert, select

from ainews_newsletter import clock
from ainews_newsletter.database import ensure_schema
from ainews_newsletter.subscribers.schema import confirmation_mails

WINDOW = timedelta(days=1)
PRUNE_BATCH = 1000  # old rows deleted per mail: far more than one mail adds


def _lock_key(mailbox: str) -> int:
    """A PostgreSQL advisory lock id for this mailbox (64 bits of a hash: two mailboxes
    sharing one only wait for each other a moment)."""
    digest = hashlib.blake2b(f"confirmation_mails:{mailbox}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _sent_within_a_day(connection: Connection, mailbox: str, now: datetime) -> int:
    return int(connection.execute(
        select(func.count()).select_from(confirmation_mails)
        .where(confirmation_mails.c.mailbox == mailbox,
               confirmation_mails.c.sent_at > now - WINDOW)).scalar_one())


class ConfirmationQuota:
    """Counts confirmation mails per mailbox in the database."""

    def __init__(self, engine: Engine, per_day: int) -> None:
        self.engine, self.per_day = engine, per_day  # the database is first used by `take`

    def take(self, mailbox: str, now: datetime | None = None) -> bool:
        """Count one confirmation mail to `mailbox`; False (and nothing counted) when
        `per_day` were counted in the last 24 hours.

        Two sign-ups of one mailbox at the same moment must not both pass on the last free
        place. Our row is inserted first and the mailbox's rows counted after it, in one
        transaction, and the row deleted again when the count is over the limit. On SQLite
        the insert takes the database's single write lock, held to the commit: the second
        transaction's insert waits (busy_timeout), then counts the first one's row. On
        PostgreSQL (READ COMMITTED) two transactions would not see each other's uncommitted
        rows, so a transaction-scoped advisory lock per mailbox makes them take turns;
        other mailboxes do not wait. The count is then exact on both."""
        ensure_schema(self.engine)
        now, mailbox = now or clock.now(), mailbox[:320]
        with self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(select(func.pg_advisory_xact_lock(_lock_key(mailbox))))
            inserted = connection.execute(insert(confirmation_mails).values(
                mailbox=mailbox, sent_at=now))
            if _sent_within_a_day(connection, mailbox, now) > self.per_day:
                assert inserted.inserted_primary_key is not None
                connection.execute(delete(confirmation_mails).where(
                    confirmation_mails.c.id == inserted.inserted_primary_key[0]))
                return False
        self.prune(now)
        return True

    def prune(self, now: datetime | None = None) -> int:
        """Forget mails older than a day (they count no more), a batch at a time, as new ones
        come: the table holds about a day of mails. Its own transaction, after the count's:
        on PostgreSQL rows another pruner holds are skipped (SKIP LOCKED) rather than waited
        for, so two pruners never wait on each other. Returns how many went."""
        cutoff = (now or clock.now()) - WINDOW
        old = (select(confirmation_mails.c.id).where(confirmation_mails.c.sent_at <= cutoff)
               .limit(PRUNE_BATCH).with_for_update(skip_locked=True))
        with self.engine.begin() as connection:
            return int(connection.execute(delete(confirmation_mails).where(
                confirmation_mails.c.id.in_(old))).rowcount)
