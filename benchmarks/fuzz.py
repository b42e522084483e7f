"""The long fuzz run for before a release (issue 27): the suite's runners (tests/fuzz) for N
minutes with fresh seeds, every way in in turn.

    python benchmarks/fuzz.py --minutes 30 [--seed S] [--workers 2] [--out DIR]
    python benchmarks/fuzz.py --replay 'bounces parse' SEED [--suite]  # one case again

Each case is a real file (repository samples and ../shared/corpora) mutated from
(way in, seed), run as the real `ainews` command in its own process with a 10 s kill and a
1 GB address-space cap. Per way in it records the cases, the failures by class (traceback,
stall, memory, bad exit, half-stored, leak), the slowest input under 1 MB (wall seconds) and
the highest peak RSS (the child's own rusage), and writes each failing input with a note of
what happened into DIR (outside the repository; default /tmp/ainews-fuzz-SEED) for replay.
The issue's bar for a 30-minute run: no failure, no input under 1 MB slower than 5 s, no
process over 300 MB."""

from __future__ import annotations

import argparse
import itertools
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(1, str(REPO / "src"))

from tests.fuzz.ways import (  # noqa: E402  (the repository root on sys.path first)
    WAY_BY_NAME,
    WAYS,
    Case,
    Outcome,
    Way,
    make_case,
    run_case,
    seed_database,
)

ONE_MB = 1 << 20


@dataclass
class Tally:
    cases: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    slowest: tuple[float, str] = (0.0, "")
    peak_rss: tuple[float, str] = (0.0, "")


def _keep(case: Case, outcome: Outcome, out: Path) -> Path:
    """The failing input and a note to replay it, in out/<way>/."""
    folder = out / case.way.replace(" ", "-")
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{outcome.failure}-seed{case.seed}"
    saved = folder / f"{stem}{case.source.suffix}"
    saved.write_bytes(case.data)
    saved.with_suffix(".txt").write_text(
        f"{case.label}\nfailure: {outcome.failure}, exit {outcome.exit_code}, "
        f"{outcome.seconds:.2f} s, {outcome.peak_rss_mb:.0f} MB\nstderr: {outcome.stderr_tail}\n"
        f"replay: python benchmarks/fuzz.py --replay '{case.way}' {case.seed}\n")
    return saved


def _record(tally: Tally, case: Case, outcome: Outcome) -> None:
    tally.cases += 1
    if outcome.failure:
        tally.failures[outcome.failure] += 1
    if len(case.data) < ONE_MB and outcome.seconds > tally.slowest[0]:
        tally.slowest = (outcome.seconds, case.label)
    if outcome.peak_rss_mb > tally.peak_rss[0]:
        tally.peak_rss = (outcome.peak_rss_mb, case.label)


def _table(tallies: dict[str, Tally], minutes: float, seed: int) -> str:
    classes = ["traceback", "stall", "memory", "bad exit", "half-stored", "leak"]
    lines = [f"{sum(t.cases for t in tallies.values())} cases in {minutes:g} min, seeds from "
             f"{seed}", "",
             "| way in | cases | " + " | ".join(classes) + " | slowest < 1 MB, s | peak RSS, MB |",
             "| --- | ---: | " + " | ".join("---:" for _ in classes) + " | ---: | ---: |"]
    for name, tally in tallies.items():
        counts = [sum(n for kind, n in tally.failures.items() if cls in kind) for cls in classes]
        lines.append(f"| {name} | {tally.cases} | " + " | ".join(map(str, counts))
                     + f" | {tally.slowest[0]:.2f} | {tally.peak_rss[0]:.0f} |")
    lines.append("")
    for name, tally in tallies.items():
        if tally.cases:
            lines.append(f"- {name}: slowest {tally.slowest[0]:.2f} s: {tally.slowest[1]}")
            lines.append(f"  peak {tally.peak_rss[0]:.0f} MB: {tally.peak_rss[1]}")
    return "\n".join(lines)


def fuzz(minutes: float, seed: int, workers: int, out: Path) -> dict[str, Tally]:
    tallies = {way.name: Tally() for way in WAYS}
    pools = {way.name: way.pool() for way in WAYS}
    ways = [way for way in WAYS if pools[way.name]]
    lock = threading.Lock()
    with tempfile.TemporaryDirectory(prefix="ainews-fuzz-") as scratch:
        root = Path(scratch)
        template = seed_database(root / "template")
        numbers = itertools.count()
        # The five webhook parsers share one shape of input: together they get as many
        # cases as two of the other ways in, not five times as many.
        turns = [way for way in ways for _ in range(1 if way.name.startswith("webhook") else 2)]
        counters = {way.name: itertools.count(seed) for way in ways}
        schedule = ((way, next(counters[way.name])) for way in itertools.cycle(turns))
        deadline = time.monotonic() + minutes * 60

        def one(way: Way, case_seed: int) -> None:
            case = make_case(way, case_seed, pools[way.name])
            folder = root / f"case-{next(numbers)}"
            outcome = run_case(case, folder, template)
            shutil.rmtree(folder, ignore_errors=True)
            with lock:
                _record(tallies[way.name], case, outcome)
                if outcome.failure:
                    saved = _keep(case, outcome, out)
                    print(f"{outcome.failure}: {case.label} -> {saved}", flush=True)

        with ThreadPoolExecutor(workers) as executor:
            running: set[Future[None]] = set()
            while time.monotonic() < deadline:
                while len(running) < workers:
                    running.add(executor.submit(one, *next(schedule)))
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    future.result()
            wait(running)
    return tallies


def replay(way_name: str, seed: int, out: Path, suite: bool) -> int:
    way = WAY_BY_NAME[way_name]
    case = make_case(way, seed, suite=suite)
    with tempfile.TemporaryDirectory(prefix="ainews-fuzz-") as scratch:
        root = Path(scratch)
        outcome = run_case(case, root / "case", seed_database(root / "template"))
    print(case.label)
    print(f"-> {outcome.failure or 'fine'}: exit {outcome.exit_code}, {outcome.seconds:.2f} s, "
          f"{outcome.peak_rss_mb:.0f} MB; {outcome.stderr_tail}")
    saved = out / case.way.replace(" ", "-") / f"replay-seed{seed}{case.source.suffix}"
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_bytes(case.data)
    print(f"input: {saved}")
    return 1 if outcome.failure else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=None,
                        help="first seed (default: from the clock, printed)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None,
                        help="where failing inputs go (default /tmp/ainews-fuzz-SEED)")
    parser.add_argument("--replay", nargs=2, metavar=("WAY", "SEED"),
                        help=f"run one case again; WAY is one of: {', '.join(WAY_BY_NAME)}")
    parser.add_argument("--suite", action="store_true",
                        help="with --replay: a case of the suite (tests/fuzz/test_fuzz.py)")
    arguments = parser.parse_args()
    if arguments.replay:
        way_name, seed_text = arguments.replay
        out = arguments.out or Path(tempfile.gettempdir()) / "ainews-fuzz-replay"
        return replay(way_name, int(seed_text), out, arguments.suite)
    seed = arguments.seed if arguments.seed is not None else int(time.time()) * 1000
    out = arguments.out or Path(tempfile.gettempdir()) / f"ainews-fuzz-{seed}"
    print(f"fuzzing for {arguments.minutes:g} min from seed {seed}, {arguments.workers} "
          f"workers; failing inputs go to {out}", flush=True)
    tallies = fuzz(arguments.minutes, seed, arguments.workers, out)
    print()
    print(_table(tallies, arguments.minutes, seed))
    return 1 if any(t.failures for t in tallies.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
