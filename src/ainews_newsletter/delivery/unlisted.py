"""Queued rows for readers who left while they were being queued. A send on PostgreSQL reads
its audience in one transaction and writes the ledger rows in another (a welcome round
likewise, on either database; a send on SQLite copies it in one statement, snapshot.py), so an
erase that commits in between would find no row to hash, and the row written after it would
keep the erased address and name (issue 29: "found nowhere"). The writer therefore asks, in
the transaction that writes the rows, which of those readers are still listed under the
same address, and deletes the queued rows of the others.

Asking is the caller's part (the subscriber list is another room): `StillListed` returns
the (id, address) pairs still present. On PostgreSQL it takes a share lock on those rows,
so an erase that has not committed yet is waited for (and then seen), and one that starts
later waits for this transaction (and then finds the new rows to hash). On SQLite the
rows are written first, which takes the database's write lock, so the question that
follows sees every erase committed before."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import Connection, Table, delete

from ainews_newsletter.models import Recipient

StillListed = Callable[[Connection, Sequence[int]], set[tuple[int, str]]]


def drop_unlisted(connection: Connection, table: Table, batch: Sequence[Recipient],
                  still_listed: StillListed, queued: str, **match: object) -> list[Recipient]:
    """Delete the rows just written to `table` (state `queued`, and the columns in `match`,
    e.g. the issue) for readers of `batch` no longer listed at the address they were read
    with. Returns those readers."""
    present = still_listed(connection, [r.subscriber_id for r in batch])
    gone = [r for r in batch if (r.subscriber_id, r.email) not in present]
    for reader in gone:
        connection.execute(delete(table).where(
            table.c.subscriber_id == reader.subscriber_id, table.c.email == reader.email,
            table.c.state == queued, *(table.c[column] == value
                                       for column, value in match.items())))
    return gone
