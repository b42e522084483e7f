"""Upgrading a big database (issue 31): a database at schema 0001 with 1,000,000 subscribers
and 5,000,000 delivery rows, brought to the newest schema by `ainews db upgrade`, on SQLite
and on PostgreSQL.

    python benchmarks/migrate_scale.py [--subscribers 1000000] [--deliveries 5000000]
                                       [--databases sqlite,postgresql]

ours:  `ainews db upgrade` as a subprocess (start-up to exit), from 0001 to the newest.
peer:  the migrations' heavy statements in plain SQL, run by `sqlite3` / `psql` on a copy of
       the same database: the work any tool must do to get there (SQLite: the ledger copied
       into a new table, as SQLite cannot add a UNIQUE constraint in place, with its indexes;
       PostgreSQL: the ledger's five indexes built with plain CREATE INDEX, which blocks
       writes, where ours builds them CONCURRENTLY, which does not but scans twice); on both,
       the two backfills from `subscribers` (history and consent records) with their
       indexes. The ratio ours / peer is the price of the migration tool, and on PostgreSQL
       of staying online.
current: `ainews db upgrade` once more, the schema already current: the fixed cost (Python
       start-up, imports, one query) inside "ours".
The data: `subscribers` filled by one INSERT … SELECT (a recursive CTE on SQLite,
generate_series on PostgreSQL), one list with every subscriber in it, and deliveries spread
over ceil(deliveries / subscribers) issues. PostgreSQL is private and throwaway: Debian's
binaries, a temporary folder, a Unix socket only (as tests/conftest.py's postgres_server),
stock settings; it is stopped at the end."""

from __future__ import annotations

import argparse
import math
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(1, str(REPO))  # tests/peers/postgres.py starts the private cluster

NOW = "2026-11-23 08:00:00"


def _migrate_to_0001(url: str) -> None:
    from alembic import command
    from alembic.config import Config as AlembicConfig

    from ainews_newsletter import migrations
    from ainews_newsletter.database import dispose_all, engine_for

    settings = AlembicConfig()
    settings.set_main_option("script_location", str(Path(migrations.__file__).parent))
    with engine_for(url).connect() as connection:
        settings.attributes["connection"] = connection
        command.upgrade(settings, "0001")
        connection.commit()
    dispose_all()


def _fill_statements(subscribers: int, deliveries: int, numbers: str,
                     stamp: str) -> list[str]:
    """INSERT … SELECT statements; `numbers` is a FROM clause giving n = 1..N (":N" stands
    for the count); `stamp` the time as a typed literal (a CASE needs one on PostgreSQL)."""
    issues = max(1, math.ceil(deliveries / subscribers))
    every_subscriber = numbers.replace(":N", str(subscribers))
    every_delivery = numbers.replace(":N", str(deliveries))
    return [
        "INSERT INTO subscribers (id, email, email_normalized, status, token, source, "
        "created_at, updated_at, confirmed_at, unsubscribed_at) "
        "SELECT n, 'reader' || n || '@example.com', 'reader' || n || '@example.com', "
        "CASE WHEN n % 20 = 0 THEN 'unsubscribed' ELSE 'active' END, 'tok' || n, 'import', "
        f"'{NOW}', '{NOW}', '{NOW}', CASE WHEN n % 20 = 0 THEN {stamp} END "
        f"FROM {every_subscriber}",
        f"INSERT INTO lists (id, name, created_at) VALUES (1, 'newsletter', '{NOW}')",
        "INSERT INTO memberships (list_id, subscriber_id, created_at) "
        f"SELECT 1, n, '{NOW}' FROM {every_subscriber}",
        "INSERT INTO issues (id, list_id, period_key, period_start, period_end, timezone, "
        "subject, preheader, html, text, unsubscribe_placeholder, post_count, created_at) "
        f"SELECT n, 'newsletter', '2026-W' || n, '{NOW}', '{NOW}', 'UTC', 's', 'p', 'h', 't', "
        f"'x', 1, '{NOW}' FROM {numbers.replace(':N', str(issues))}",
        "INSERT INTO deliveries (issue_id, subscriber_id, email, token, state, attempts, "
        "updated_at, sent_at) "
        f"SELECT 1 + (n - 1) / {subscribers}, 1 + (n - 1) % {subscribers}, "
        f"'reader' || (1 + (n - 1) % {subscribers}) || '@example.com', 'tok' || n, 'sent', 1, "
        f"'{NOW}', '{NOW}' FROM {every_delivery}",
    ]


_BACKFILLS = """
CREATE TABLE peer_events AS
  SELECT id AS subscriber_id, 'joined' AS kind, 'backfill' AS source, created_at AS at
  FROM subscribers;
INSERT INTO peer_events SELECT id, 'confirmed', 'backfill', confirmed_at FROM subscribers
  WHERE confirmed_at IS NOT NULL;
INSERT INTO peer_events SELECT id, 'unsubscribed', 'backfill', unsubscribed_at FROM subscribers
  WHERE status = 'unsubscribed' AND unsubscribed_at IS NOT NULL;
CREATE INDEX peer_events_1 ON peer_events (kind, at);
CREATE INDEX peer_events_2 ON peer_events (subscriber_id);
CREATE TABLE peer_consents AS
  SELECT id, 'before-records' AS how, source, created_at, confirmed_at FROM subscribers;
"""

PEER_SQLITE = """
CREATE TABLE peer_deliveries AS SELECT *, NULL AS return_tag FROM deliveries;
CREATE UNIQUE INDEX peer_1 ON peer_deliveries (issue_id, subscriber_id);
CREATE UNIQUE INDEX peer_2 ON peer_deliveries (return_tag);
CREATE INDEX peer_3 ON peer_deliveries (subscriber_id);
CREATE INDEX peer_4 ON peer_deliveries (issue_id, state, id);
ALTER TABLE peer_deliveries ADD COLUMN provider_message_id VARCHAR(255);
ALTER TABLE peer_deliveries ADD COLUMN message_digest VARCHAR(24);
CREATE INDEX peer_5 ON peer_deliveries (provider_message_id);
CREATE INDEX peer_6 ON peer_deliveries (message_digest);
""" + _BACKFILLS

PEER_POSTGRES = """
ALTER TABLE deliveries ADD COLUMN return_tag VARCHAR(32),
  ADD COLUMN provider_message_id VARCHAR(255), ADD COLUMN message_digest VARCHAR(24);
CREATE UNIQUE INDEX peer_2 ON deliveries (return_tag);
CREATE INDEX peer_3 ON deliveries (subscriber_id);
CREATE INDEX peer_4 ON deliveries (issue_id, state, id);
CREATE INDEX peer_5 ON deliveries (provider_message_id);
CREATE INDEX peer_6 ON deliveries (message_digest);
""" + _BACKFILLS


def _timed(command: list[str], env: dict[str, str] | None = None,
           stdin: Path | None = None) -> float:
    started = time.perf_counter()
    with (stdin.open("rb") if stdin else open(os.devnull, "rb")) as given:
        finished = subprocess.run(command, env=env, stdin=given, capture_output=True,
                                  check=False)
    elapsed = time.perf_counter() - started
    if finished.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {finished.stderr.decode()[-2000:]}")
    return elapsed


def _upgrade(url: str, _root: Path) -> float:
    env = {**os.environ, "AINEWS_STORAGE__URL": url, "PYTHONPATH": str(REPO / "src")}
    return _timed([sys.executable, "-m", "ainews_newsletter", "db", "upgrade"], env=env)


def _check_newest(url: str) -> None:
    from ainews_newsletter.database import dispose_all, engine_for, schema_version
    from ainews_newsletter.migrations import SCHEMA_HEAD

    try:
        version = schema_version(engine_for(url))
    finally:
        dispose_all()
    if version != SCHEMA_HEAD:
        raise SystemExit(f"the upgrade stopped at {version}, not {SCHEMA_HEAD}")


# -- SQLite ------------------------------------------------------------------------------------

def run_sqlite(root: Path, subscribers: int, deliveries: int) -> tuple[float, float, float, float]:
    path = root / "ainews.db"
    url = f"sqlite:///{path}"
    _migrate_to_0001(url)
    started = time.perf_counter()
    numbers = ("(WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c "
               "WHERE n < :N) SELECT n FROM c)")
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=OFF")  # the fill only: not what is timed
        for statement in _fill_statements(subscribers, deliveries, numbers, f"'{NOW}'"):
            connection.execute(statement)
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    fill = time.perf_counter() - started
    copy = root / "peer.db"
    shutil.copyfile(path, copy)
    script = root / "peer.sql"
    script.write_text(PEER_SQLITE)
    peer = _timed(["sqlite3", str(copy)], stdin=script)
    copy.unlink()
    ours = _upgrade(url, root)
    _check_newest(url)
    return fill, ours, peer, _upgrade(url, root)


# -- PostgreSQL --------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def private_postgres() -> Iterator[tuple[Path, int]]:
    """A throwaway cluster on a Unix socket in a temporary folder (tests/peers/postgres.py,
    durable: the timing includes PostgreSQL's own writes); yields (folder, port)."""
    from tests.peers.postgres import Missing, PrivateCluster

    try:
        cluster = PrivateCluster(_free_port(), prefix="ainews-migrate-pg-")
    except Missing as exc:
        raise SystemExit(str(exc)) from None
    try:
        cluster.start()
        yield cluster.root, cluster.port
    finally:
        cluster.close("fast")


def run_postgres(subscribers: int, deliveries: int) -> tuple[float, float, float, float]:
    import psycopg

    with private_postgres() as (socket_dir, port):
        def connect(database: str) -> psycopg.Connection[tuple[object, ...]]:
            return psycopg.connect(host=str(socket_dir), port=port, user="ainews",
                                   dbname=database, autocommit=True)

        with connect("postgres") as connection:
            connection.execute("CREATE DATABASE ainews_bench")
        url = f"postgresql+psycopg://ainews@/ainews_bench?host={socket_dir}&port={port}"
        _migrate_to_0001(url)
        started = time.perf_counter()
        with connect("ainews_bench") as connection:
            for statement in _fill_statements(subscribers, deliveries,
                                              "generate_series(1, :N) AS n",
                                              f"TIMESTAMP '{NOW}'"):
                connection.execute(statement.encode())
            connection.execute("VACUUM ANALYZE")
        with connect("postgres") as connection:
            connection.execute("CHECKPOINT")
            connection.execute("CREATE DATABASE ainews_peer TEMPLATE ainews_bench")
        fill = time.perf_counter() - started
        script = Path(socket_dir) / "peer.sql"
        script.write_text(PEER_POSTGRES)
        peer = _timed(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(socket_dir),
                       "-p", str(port), "-U", "ainews", "-d", "ainews_peer", "-f", str(script)])
        with connect("postgres") as connection:
            connection.execute("DROP DATABASE ainews_peer")
            connection.execute("CHECKPOINT")
        ours = _upgrade(url, socket_dir)
        _check_newest(url)
        return fill, ours, peer, _upgrade(url, socket_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--deliveries", type=int, default=5_000_000)
    parser.add_argument("--databases", default="sqlite,postgresql",
                        help="which to time, comma-separated (sqlite, postgresql)")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.databases.split(",") if name.strip()]
    print(f"{args.subscribers:,} subscribers, {args.deliveries:,} delivery rows, "
          "schema 0001 → newest")
    print(f"{'database':<12}{'fill s':>9}{'ours s':>9}{'peer s':>9}{'ours/peer':>11}"
          f"{'current s':>11}")
    for name in chosen:
        if name == "sqlite":
            with tempfile.TemporaryDirectory(prefix="ainews-migrate-") as folder:
                fill, ours, peer, current = run_sqlite(Path(folder), args.subscribers,
                                                       args.deliveries)
        elif name == "postgresql":
            fill, ours, peer, current = run_postgres(args.subscribers, args.deliveries)
        else:
            raise SystemExit(f"unknown database {name!r}: sqlite or postgresql")
        print(f"{name:<12}{fill:>9.1f}{ours:>9.1f}{peer:>9.1f}{ours / peer:>11.2f}"
              f"{current:>11.1f}", flush=True)


if __name__ == "__main__":
    main()
