"""Retention on a large ledger (issue 29): `ainews db prune` as a real process over a SQLite
file holding ROWS deliveries older than keep_addresses_in_ledger_days (the first pass
hashes every address, by chunks of 2,000); then the same again (the daily pass: nothing
left to do). Prints each pass's wall time in seconds.

    python benchmarks/retention_prune.py [--rows 200000]"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ainews_newsletter.database import dispose_all, engine_for, ensure_schema

CONFIG = """[newsletter]
name = "Bench"
from = "digest@news.example.org"
base_url = "https://news.example.org"
postal_address = "1 Bench Road"
timezone = "UTC"
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp())
    (root / "config.toml").write_text(CONFIG, encoding="utf-8")
    (root / "data").mkdir()
    database = root / "data" / "ainews.db"
    ensure_schema(engine_for(f"sqlite:///{database}"))
    dispose_all()
    old = "2020-01-01 00:00:00.000000"
    with sqlite3.connect(database) as connection:
        connection.execute(
            "INSERT INTO issues (id, list_id, period_key, period_start, period_end, timezone,"
            " subject, preheader, html, text, unsubscribe_placeholder, post_count, created_at)"
            " VALUES (1, 'default', '2020-W01', ?, ?, 'UTC', 's', 'p', 'h', 't', 'u', 1, ?)",
            (old, old, old))
        connection.executemany(
            "INSERT INTO deliveries (issue_id, subscriber_id, email, name, token, state,"
            " attempts, last_reply, updated_at, sent_at) VALUES (1, ?, ?, ?, ?, 'sent', 1,"
            " '250 ok', ?, ?)",
            ((n, f"reader{n:07d}@example.com", f"Reader {n}", f"t{n}", old, old)
             for n in range(args.rows)))
    environ = {**os.environ, "AINEWS_SECRET_KEY": "benchmark-secret-of-enough-length"}
    for label in ("first pass", "daily pass"):
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "ainews_newsletter", "--config",
                               str(root / "config.toml"), "db", "prune", "--json"],
                              env=environ, cwd=root, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(done.stdout + done.stderr)
        hashed = json.loads(done.stdout)["deliveries_hashed"]
        print(f"{label}: {seconds:.2f} s ({hashed} deliveries hashed)")


if __name__ == "__main__":
    main()
