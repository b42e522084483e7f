"""A million-subscriber import: ours against a plain `sqlite3 .import` of the same file.

    python benchmarks/import_1m.py [--rows 1000000] [--runs 1]

Generates a CSV (email,name; 0.1% invalid addresses, 1% repeats differing in case), then
runs, each as its own process on a fresh SQLite file:
  ours:  ainews subscribers import FILE --json   (validates every address, normalizes,
         merges duplicates, tokens, list memberships, a consent record and a "joined"
         event per new subscriber; batches of 50,000 per transaction)
  peer:  sqlite3 DB ".mode csv" ".import FILE raw"   (loads the text, checks nothing)
With --floor a second peer runs too: sqlite3 alone making the same writes into the same
schema (every new subscriber's row with its email, token and status index entries, its
"joined" event, consent record and membership, in transactions of 50,000, WAL and the same
pragmas), with no Python between: what SQLite itself needs for the import on this machine.
It checks nothing and generates its tokens with randomblob.
Prints wall time, CPU time (user + system), rows/s and peak RSS of each, the ratio, and
how long `count` and `list --limit 20` take on the imported million. With --runs N the two
run alternately N times (each on a fresh database) and the medians are printed as well: on a
shared machine one run says little."""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def _generate(path: Path, rows: int) -> None:
    first = ["ada", "ben", "chen", "dara", "eli", "fay", "gus", "hana", "ivo", "juno"]
    rng = random.Random(2026)
    domains = ["example.com", "example.org", "mail.example.net"]
    last_domain = domains[0]
    with path.open("w", encoding="utf-8") as handle:
        handle.write("email,name\n")
        for index in range(rows):
            name = first[index % 10]
            domain = domains[rng.randrange(3)]
            if index % 1000 == 999:
                handle.write(f"broken-{index}-at-{domain},{name.title()}\n")
            elif index % 100 == 98:  # the previous row again, in other case
                previous = first[(index - 1) % 10]
                handle.write(f"{previous.upper()}.{index - 1}@{last_domain.upper()},X\n")
            else:
                handle.write(f"{name}.{index}@{domain},{name.title()} {index}\n")
            last_domain = domain


def _tree_rss_kib(pid: int) -> int:
    """VmRSS of a process and its children together (the import reads its file in a child
    process: ru_maxrss would give the bigger of the two, not their sum)."""
    total, pids = 0, [pid]
    while pids:
        current = pids.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{current}/task").iterdir():
                pids.extend(int(child) for child in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue  # ended between two reads
    return total


def _run(command: list[str], env: dict[str, str] | None = None,
         ) -> tuple[float, float, str, float]:
    """(seconds, peak RSS in MB, stdout, CPU seconds) of one child process. The peak RSS is
    the larger of its own peak (ru_maxrss) and the peak sum over it and its children
    (sampled every 20 ms)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               env=env)
    assert process.stdout is not None
    peak_sum = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak_sum[0] = max(peak_sum[0], _tree_rss_kib(process.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output = process.stdout.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    if status != 0 and "ainews" not in command[0]:
        raise SystemExit(f"{command[0]} failed with status {status}")
    return (seconds, max(usage.ru_maxrss, peak_sum[0]) / 1024, output,
            usage.ru_utime + usage.ru_stime)


BATCH = 50_000  # the importer's transaction size (subscribers/importer.py BATCH_SIZE)


def _floor_script(source: Path, rows: int) -> str:
    """The SQL for sqlite3 alone (see --floor): the file loaded into a temporary table, then
    per 50,000 rows one transaction with the four INSERT … SELECTs the importer's batch
    makes, the new rows found by their ids as the importer finds them."""
    now = "2026-12-07 00:00:00.000000"
    lines = ["PRAGMA journal_mode=WAL;", "PRAGMA synchronous=NORMAL;",
             "PRAGMA foreign_keys=ON;", "PRAGMA cache_size=-65536;",
             f".import --csv --schema temp {source} raw",  # the header names the columns
             "INSERT INTO lists (name, description, created_at) "
             f"VALUES ('default', NULL, '{now}');",
             "CREATE TEMP TABLE mark (id INTEGER);", "INSERT INTO temp.mark VALUES (0);"]
    for first in range(1, rows + 1, BATCH):
        last = first + BATCH - 1
        prefix = f"b{first // BATCH:03d}"  # a batch's tokens side by side, as arrivals.py
        after = "(SELECT id FROM temp.mark)"
        lines += [
            "BEGIN;",
            "UPDATE temp.mark SET id = (SELECT coalesce(max(id), 0) FROM subscribers);",
            "INSERT OR IGNORE INTO subscribers (email, email_normalized, name, status, "
            "attributes, token, source, created_at, updated_at, confirmed_at, language) "
            f"SELECT email, lower(email), name, 'active', NULL, '{prefix}' || "
            f"lower(hex(randomblob(12))), 'import', '{now}', '{now}', '{now}', NULL "
            f"FROM temp.raw WHERE rowid BETWEEN {first} AND {last} AND instr(email, '@') > 0;",
            "INSERT INTO subscriber_events (subscriber_id, kind, source, issue_id, at) "
            f"SELECT id, 'joined', 'import', NULL, '{now}' FROM subscribers "
            f"WHERE id > {after};",
            "INSERT INTO consents (subscriber_id, how, source, ip, user_agent, consent_text, "
            f"given_at, confirmed_at) SELECT id, 'import', '{source.name} (csv)', NULL, NULL, "
            f"NULL, '{now}', '{now}' FROM subscribers WHERE id > {after};",
            "INSERT INTO memberships (list_id, subscriber_id, created_at) "
            f"SELECT 1, id, '{now}' FROM subscribers WHERE id > {after};",
            "COMMIT;"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=1,
                        help="run ours and the peer alternately this many times")
    parser.add_argument("--floor", action="store_true",
                        help="also time sqlite3 alone making the same writes (see above)")
    args = parser.parse_args()
    ainews = shutil.which("ainews")
    sqlite3 = shutil.which("sqlite3")
    if ainews is None or sqlite3 is None:
        raise SystemExit("needs `ainews` (pip install -e .) and `sqlite3` (apt-get install "
                         "sqlite3) on PATH")
    ours: list[tuple[float, float, float]] = []  # (seconds, CPU seconds, MB) per run
    peer: list[tuple[float, float, float]] = []
    floor: list[tuple[float, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="ainews-bench-") as folder:
        root = Path(folder)
        source = root / "subscribers.csv"
        _generate(source, args.rows)
        config = str(Path(__file__).resolve().parent.parent / "config.toml")
        script = root / "floor.sql"  # the same SQL every run
        if args.floor:
            script.write_text(_floor_script(source, args.rows))
        for run in range(args.runs):
            for stale in root.glob("*.db*"):
                stale.unlink()
            env = {**os.environ, "AINEWS_STORAGE__URL": f"sqlite:///{root / 'ours.db'}",
                   "AINEWS_CONFIG": config}
            ours_s, ours_mb, output, ours_cpu = _run(
                [ainews, "subscribers", "import", str(source), "--json"], env)
            peer_s, peer_mb, _, peer_cpu = _run([sqlite3, str(root / "peer.db"), ".mode csv",
                                                 f".import {source} raw"])
            ours.append((ours_s, ours_cpu, ours_mb))
            peer.append((peer_s, peer_cpu, peer_mb))
            if args.floor:
                floor_env = {**env, "AINEWS_STORAGE__URL": f"sqlite:///{root / 'floor.db'}"}
                _run([ainews, "subscribers", "count"], floor_env)  # the schema, empty
                floor_s, floor_mb, _, floor_cpu = _run(
                    [sqlite3, str(root / "floor.db"), f".read {script}"])
                floor.append((floor_s, floor_cpu, floor_mb))
                import sqlite3 as driver

                with driver.connect(root / "floor.db") as connection:
                    made = [connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                            for table in ("subscribers", "subscriber_events", "consents",
                                          "memberships")]
                print(f"run {run + 1}: sqlite3 alone, the same writes: {floor_s:.1f} s "
                      f"({floor_cpu:.1f} s CPU, {floor_mb:.0f} MB; subscribers, events, "
                      f"consents, memberships: {', '.join(f'{n:,}' for n in made)})",
                      flush=True)
            if args.runs > 1:
                print(f"run {run + 1}: ours {ours_s:.1f} s ({ours_cpu:.1f} s CPU, "
                      f"{ours_mb:.0f} MB), peer {peer_s:.1f} s ({peer_cpu:.1f} s CPU, "
                      f"{peer_mb:.0f} MB), load average {os.getloadavg()[0]:.1f}",
                      flush=True)
        count_s, _, count, _ = _run([ainews, "subscribers", "count"], env)
        list_s, _, _, _ = _run([ainews, "subscribers", "list", "--limit", "20"], env)
        query_count, query_list = _query_times(f"sqlite:///{root / 'ours.db'}")
    summary = output[output.index("{"):] if "{" in output else output
    print(f"{args.rows:,} rows ({source.name}); import summary: {' '.join(summary.split())}")
    median = "median of " + str(args.runs) + " runs, " if args.runs > 1 else ""
    print(f"| tool ({median}each its own process) | seconds | CPU seconds | rows/s "
          "| peak RSS, MB |\n| --- | ---: | ---: | ---: | ---: |")
    tools = [("ainews subscribers import", ours), ("sqlite3 .import (peer)", peer)]
    if floor:
        tools.append(("sqlite3 alone, the same writes (--floor)", floor))
    for tool, runs in tools:
        seconds, cpu, mb = (statistics.median(run[i] for run in runs) for i in range(3))
        print(f"| {tool} | {seconds:.1f} | {cpu:.1f} | {args.rows / seconds:,.0f} | "
              f"{mb:.0f} |")
    ratio = statistics.median(o[0] / p[0] for o, p in zip(ours, peer, strict=True))
    print(f"ratio ours/peer: {ratio:.1f}x the time of a raw load")
    for tool, runs in (("ours", ours), ("peer", peer), ("floor", floor)):
        if not runs:
            continue
        times = sorted(run[0] for run in runs)
        print(f"{tool}: min {times[0]:.1f} s, median {statistics.median(times):.1f} s, "
              f"max {times[-1]:.1f} s; peak RSS max {max(run[2] for run in runs):.0f} MB")
    print(f"on the imported store: `ainews subscribers count` -> {count.strip()} in "
          f"{count_s:.2f} s and `list --limit 20` in {list_s:.2f} s as whole processes "
          f"(Python start and imports included); the queries themselves: count "
          f"{query_count * 1000:.0f} ms, first 20 rows {query_list * 1000:.0f} ms")


def _query_times(url: str) -> tuple[float, float]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    from ainews_newsletter.database import engine_for
    from ainews_newsletter.subscribers.store import SubscriberStore

    store = SubscriberStore(engine_for(url))
    started = time.perf_counter()
    store.count()
    counted = time.perf_counter() - started
    started = time.perf_counter()
    rows = []
    for subscriber in store.iter_subscribers(batch_size=20, with_lists=True):
        rows.append(subscriber)
        if len(rows) == 20:
            break
    return counted, time.perf_counter() - started


if __name__ == "__main__":
    main()
