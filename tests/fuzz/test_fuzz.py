"""Every way in survives hostile input (issue 27): seeded mutations of real files (the
repository's samples and ../shared/corpora) run through the real `ainews` command, each in its
own process, killed after 10 s (30 s for "post rendered", a whole build: a stall is the one
timing check the suite holds) and capped at
1 GB of address space (a memory blow-up). A case fails on a traceback on stderr, an exit code
other than 0 or 1, a stall, the memory cap, a database changed by an import that failed, or
an external entity's content in the output.

The cases are fixed: seeds 0..N-1 per way in, seed i taking the i-th kind of mutation (the
format-aware ones first: alias bombs, nested multiparts, odd encodings...) and drawing the
file and the details from its own `random.Random(f"{way}/{seed}")`, never from the global
generator, so pytest-randomly's shuffling and reseeding change neither the cases nor their
outcome. A failure lists (way in, seed, mutation, file, what happened);
`python benchmarks/fuzz.py --replay WAY SEED --suite` runs that one case again and keeps its
input. The long run for before a release is
`python benchmarks/fuzz.py --minutes 30`."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.fuzz.ways import CORPORA, WAYS, Case, Outcome, Way, make_case, run_case, seed_database

# Cases per way in: about 55 processes of ~1.5 s on two workers, under a minute in all when
# nothing stalls (a stall costs its 10 s).
CASES = {"bounces parse": 8, "bounces ingest": 6, "subscribers import": 8, "posts check": 8,
         "post rendered": 8, "feed by path": 8, "catalog override": 11}
CASES_PER_PROVIDER = 3
WORKERS = 2


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seeded database every storing case starts from (copied, never changed)."""
    return seed_database(tmp_path_factory.mktemp("fuzz-template"))


@pytest.mark.parametrize("way", WAYS, ids=[way.name for way in WAYS])
def test_hostile_input_is_one_clear_line(way: Way, template: Path, tmp_path: Path) -> None:
    pool = way.pool()
    if not pool:
        pytest.skip(f"{way.name}: no repository file to mutate and {CORPORA} is not here (the "
                    "shared corpora sit beside the repository, ../shared/corpora)")
    cases = [make_case(way, seed, pool, suite=True)
             for seed in range(CASES.get(way.name, CASES_PER_PROVIDER))]

    def run(numbered: tuple[int, Case]) -> tuple[Case, Outcome]:
        number, case = numbered
        return case, run_case(case, tmp_path / f"case-{number}", template)

    with ThreadPoolExecutor(WORKERS) as pool_of_workers:
        outcomes = list(pool_of_workers.map(run, enumerate(cases)))
    failures = [f"{outcome.failure}: {case.label} (exit {outcome.exit_code}, "
                f"{outcome.seconds:.1f} s, {outcome.peak_rss_mb:.0f} MB) {outcome.stderr_tail}"
                for case, outcome in outcomes if outcome.failure]
    if failures:
        replay = f"python benchmarks/fuzz.py --replay '{way.name}' SEED --suite"
        pytest.fail(f"{len(failures)} of {len(cases)} hostile inputs failed (replay: {replay}):\n"
                    + "\n".join(failures), pytrace=False)
