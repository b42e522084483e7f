"""Reports on a million: `ainews report --json` and `ainews report --growth --json` on a
SQLite database of 1,000,000 subscribers and one issue of 1,000,000 deliveries, against the
`sqlite3` shell running the bare counting queries behind them (the floor: no Python, no
start-up, no formatting).

    python benchmarks/report_scale.py [--rows 1000000] [--runs 3]

The database is made with plain SQL (recursive CTEs) after `ainews db upgrade`: subscribers
joined over the last 12 weeks, one issue with every delivery sent (1 % failed, half of those
with a bounce event), 0.05 % complaints, 0.3 % unsubscribes attributed to the issue. Prints
the median wall time of each, the ratio to the floor, and whether each answers in under 2 s
(the issue's target)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIG = """\
[newsletter]
name = "Scale Weekly"
from = "digest@news.example.org"
base_url = "https://news.example.org"
postal_address = "1 Bench Road"
timezone = "Europe/Berlin"
"""


def _populate(database: Path, rows: int) -> None:
    script = f"""
PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
INSERT INTO subscribers (id, email, email_normalized, status, token, source, created_at,
                         updated_at, confirmed_at, hard_bounces)
SELECT i, 'r' || i || '@example.com', 'r' || i || '@example.com',
       CASE WHEN i % 333 = 0 THEN 'unsubscribed' ELSE 'active' END, 't' || i, 'import',
       datetime('now', '-' || (i % 84) || ' days'), datetime('now'),
       datetime('now', '-' || (i % 84) || ' days'), 0 FROM n;
INSERT INTO subscriber_events (subscriber_id, kind, source, at)
SELECT id, 'joined', 'import', created_at FROM subscribers;
INSERT INTO issues (id, list_id, period_key, period_start, period_end, timezone, subject,
                    preheader, html, text, unsubscribe_placeholder, post_count, created_at,
                    snapshot_at)
VALUES (1, 'newsletter', '2026-W47', datetime('now', '-8 days'), datetime('now', '-1 days'),
        'Europe/Berlin', 'Scale', '', '<p>x</p>', 'x', 'UNSUB', 3, datetime('now', '-1 hours'),
        datetime('now', '-1 hours'));
INSERT INTO deliveries (issue_id, subscriber_id, email, token, state, attempts, updated_at,
                        sent_at, last_code)
SELECT 1, id, email, token, CASE WHEN id % 100 = 0 THEN 'failed' ELSE 'sent' END, 1,
       datetime('now'), CASE WHEN id % 100 = 0 THEN NULL
       ELSE datetime('now', '-' || (3600 - id * 3600 / {rows}) || ' seconds') END,
       CASE WHEN id % 100 = 0 THEN 550 ELSE 250 END FROM subscribers;
INSERT INTO feedback_events (dedup_key, received_at, kind, email, status, action, diagnostic,
                             source, matched_by, delivery_id, issue_id, subscriber_id, effect)
SELECT 'k' || id, datetime('now'), CASE WHEN id % 2000 = 0 THEN 'complaint'
       WHEN id % 200 = 0 THEN 'hard' ELSE 'soft' END, email, '5.1.1', 'failed', 'x', 'smtp',
       'sent', id, 1, subscriber_id, 'none'
FROM deliveries WHERE id % 200 = 0 OR id % 300 = 7;
INSERT INTO subscriber_events (subscriber_id, kind, source, issue_id, at)
SELECT id, 'unsubscribed', 'one-click', 1, datetime('now', '-30 minutes')
FROM subscribers WHERE id % 333 = 0;
COMMIT;
ANALYZE;
"""
    subprocess.run(["sqlite3", str(database)], input=script, text=True, check=True,
                   stdout=subprocess.DEVNULL)


FLOOR = """
SELECT state, count(*) FROM deliveries WHERE issue_id = 1 GROUP BY state;
SELECT kind, count(DISTINCT subscriber_id) FROM feedback_events WHERE issue_id = 1 GROUP BY kind;
SELECT count(DISTINCT subscriber_id) FROM subscriber_events
 WHERE issue_id = 1 AND kind = 'unsubscribed';
SELECT min(sent_at), max(sent_at) FROM deliveries WHERE issue_id = 1;
SELECT substr(sent_at, 1, 16) AS m, count(*) FROM deliveries
 WHERE issue_id = 1 AND sent_at IS NOT NULL GROUP BY m;
SELECT kind, count(*) FROM subscriber_events WHERE at >= datetime('now', '-84 days')
 GROUP BY kind;
SELECT count(*) FROM subscribers WHERE status IN ('active', 'pending');
"""


def _timed(command: list[str], runs: int, **kwargs: object) -> tuple[float, str]:
    times, output = [], ""
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=True,
                              **kwargs)  # type: ignore[call-overload]
        times.append(time.perf_counter() - started)
        output = done.stdout
    return statistics.median(times), output


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "config.toml").write_text(CONFIG, encoding="utf-8")
        env = {**os.environ, "AINEWS_CONFIG": str(folder / "config.toml")}
        ainews = [sys.executable, "-m", "ainews_newsletter"]
        subprocess.run([*ainews, "db", "upgrade"], env=env, check=True, capture_output=True)
        started = time.perf_counter()
        _populate(folder / "data" / "ainews.db", args.rows)
        print(f"database: {args.rows:,} subscribers and deliveries, made in "
              f"{time.perf_counter() - started:.1f} s")
        floor, _ = _timed(["sqlite3", str(folder / "data" / "ainews.db")], args.runs,
                          input=FLOOR)
        report, out = _timed([*ainews, "report", "--json"], args.runs, env=env)
        growth, grown = _timed([*ainews, "report", "--growth", "--weeks", "12", "--json"],
                               args.runs, env=env)
        numbers = json.loads(out)
        print(f"report: sent {numbers['sent']:,}, failed {numbers['failed']:,}, bounces "
              f"{numbers['bounces']}, unsubscribes {numbers['unsubscribes']:,}; growth weeks "
              f"{len(json.loads(grown)['weeks'])}")
        print(f"peer floor (sqlite3 shell, the bare queries): {floor:.2f} s")
        for name, seconds in (("ainews report --json", report),
                              ("ainews report --growth --json", growth)):
            verdict = "under 2 s" if seconds < 2 else "OVER 2 s"
            print(f"{name}: {seconds:.2f} s median of {args.runs} ({seconds / floor:.2f}x the "
                  f"floor; {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
