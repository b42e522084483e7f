"""The cost of the consent records on import (issue 29): a ROWS-row CSV imported into a
fresh SQLite file by `import_rows`, without and with the records (an Agreement), in turn,
RUNS times each; prints each run's wall and CPU time and the medians.

    python benchmarks/consent_import.py [--rows 100000] [--runs 5]"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from ainews_newsletter.database import dispose_all, engine_for, ensure_schema
from ainews_newsletter.subscribers.consent_records import Agreement
from ainews_newsletter.subscribers.formats import open_subscriber_file
from ainews_newsletter.subscribers.importer import import_rows
from ainews_newsletter.subscribers.store import SubscriberStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    file = folder / "big.csv"
    file.write_text("email,name\n" + "".join(f"user{i:07d}@example.com,User {i}\n"
                                            for i in range(args.rows)), encoding="utf-8")
    cpu: dict[str, list[float]] = {"without": [], "with": []}
    wall: dict[str, list[float]] = {"without": [], "with": []}
    for run in range(args.runs):
        for label, agreement in (("without", None),
                                 ("with", Agreement("import", "big.csv (csv)"))):
            database = folder / f"{label}{run}.db"
            engine = engine_for(f"sqlite:///{database}")
            ensure_schema(engine)
            started, used = time.perf_counter(), time.process_time()
            summary = import_rows(SubscriberStore(engine), open_subscriber_file(file).rows,
                                  agreement=agreement)
            wall[label].append(time.perf_counter() - started)
            cpu[label].append(time.process_time() - used)
            dispose_all()
            with sqlite3.connect(database) as connection:
                records = connection.execute("SELECT count(*) FROM consents").fetchone()[0]
            print(f"{label:8} run {run}: {wall[label][-1]:6.2f} s wall, "
                  f"{cpu[label][-1]:6.2f} s CPU, {summary.imported} imported, "
                  f"{records} consent records", flush=True)
    for label in ("without", "with"):
        print(f"{label:8} median {statistics.median(cpu[label]):.2f} s CPU, "
              f"{statistics.median(wall[label]):.2f} s wall")


if __name__ == "__main__":
    main()
