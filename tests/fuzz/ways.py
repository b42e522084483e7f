"""The ways in, each run as the real `ainews` command in its own process (issue 27).

A case is (way in, seed): the seed picks a real file from the way's pool and a mutation, so
`case(way, seed)` rebuilds the same bytes anywhere the same files are. `run_case` writes it into
a fresh project folder (config, empty posts folder, a copy of a seeded SQLite database), runs
the command with a hard 10 s kill (a way's kill_seconds) and a 1 GB address-space cap
(RLIMIT_AS, so a memory blow-up is a failure here rather than the machine's problem), reads
the child's own rusage (peak RSS), and classifies what happened:

- "stall"        killed by the 10 s guard
- "memory"       MemoryError, an allocation failure, killed by a signal it did not get from us,
                 or a peak RSS over 300 MB (also when the 10 s guard killed it first)
- "traceback"    "Traceback" on stderr (a handled error must be one clear line)
- "bad exit"     an exit code other than 0 or 1
- "half-stored"  an import that failed or refused the file left the database changed
- "leak"         an external entity's content (/etc/passwd) reached the output
- "private mark"  a private-use character (render/plain.py's marks) in a built text part"""

from __future__ import annotations

import hashlib
import os
import random
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.fuzz import mutations
from tests.fuzz.mutations import Mutation

REPO = Path(__file__).resolve().parents[2]
CORPORA = Path(os.environ.get("SHARED_CORPORA") or REPO.parent / "shared" / "corpora")
KILL_SECONDS = 10.0
MEMORY_CAP = 1 << 30
MEMORY_BAR_MB = 300  # the bar: no process over 300 MB, whatever the input
PROVIDERS = ("sendgrid", "ses", "mailgun", "postmark", "postal")
MEMORY_SIGNS = ("MemoryError", "memory allocation of", "Cannot allocate memory",
                "std::bad_alloc", "out of memory")
CONFIG = """\
[newsletter]
name = "Fuzz Weekly"
from = "digest@fuzz.example.org"
base_url = "https://fuzz.example.org"
postal_address = "1 Fuzz Road, Testville"
timezone = "UTC"

[posts]
sources = [{sources}]

[storage]
url = "sqlite:///data/ainews.db"

[lint]
spamassassin = false
"""
MARKDOWN_SOURCE = '{ type = "markdown", path = "posts" }'


def _files(base: Path, *patterns: str) -> list[Path]:
    return sorted({path for pattern in patterns for path in base.glob(pattern)
                   if path.is_file() and path.name not in ("SOURCE.md", "expected.tsv")})


@dataclass(frozen=True)
class Way:
    """A way in: its name, its pool of real files (repository files first, then the corpora's),
    what attacks its format, and the command (after `ainews --config config.toml`)."""

    name: str
    repo_files: Callable[[], list[Path]]
    corpus_files: Callable[[], list[Path]]
    special: Callable[[Path], tuple[Mutation, ...]]
    command: Callable[[str], list[str]]
    # "posts": the input is the only post; "feed": the only source; "catalog": the German
    # override catalog beside the sample posts
    layout: str = "plain"
    database: bool = False  # a seeded database copied in first
    whole: bool = False  # the database must be unchanged when the command fails
    # The stall guard: a whole build (MJML, the CSS inliner, html2text) takes longer than
    # a parse even on good input, so its guard is more generous; a stall is still a stall.
    kill_seconds: float = KILL_SECONDS

    def pool(self) -> list[Path]:
        corpus = self.corpus_files() if CORPORA.is_dir() else []
        return self.repo_files() + corpus


def _mail_repo() -> list[Path]:
    return _files(REPO / "tests" / "fixtures" / "bounces", "*")


def _mail_corpus() -> list[Path]:
    return _files(CORPORA, "bounces/eml/*", "bounces/mbox/*", "bounces/flanker/*.eml",
                  "bounces/not-bounce/*", "mime/*.eml")


def _webhook(provider: str) -> Way:
    return Way(f"webhook {provider}", list,
               lambda: _files(CORPORA / "webhooks" / provider, "*.json"),
               lambda _: mutations.JSON,
               lambda path: ["bounces", "ingest", "--provider", provider, path], database=True)


WAYS: tuple[Way, ...] = (
    Way("bounces parse", _mail_repo, _mail_corpus, lambda _: mutations.MAIL,
        lambda path: ["bounces", "parse", "--json", path]),
    Way("bounces ingest", _mail_repo, _mail_corpus, lambda _: mutations.MAIL,
        lambda path: ["bounces", "ingest", path], database=True),
    Way("subscribers import",
        lambda: _files(REPO, "tests/fixtures/subscribers/*", "subscribers/sample.csv"),
        lambda: _files(CORPORA / "csv", "**/*.csv", "**/*.json", "**/*.txt"),
        lambda path: mutations.export_mutations(path.suffix),
        lambda path: ["subscribers", "import", "--json", path], database=True, whole=True),
    Way("posts check", lambda: _files(REPO / "posts", "*.md"), list,
        lambda _: mutations.POSTS, lambda _: ["posts", "check", "--json"], layout="posts"),
    # The same post files built into an issue with text_part = "full": the body through
    # the sanitizer, MJML and html2text (render/plain.py) into both parts.
    Way("post rendered", lambda: _files(REPO / "posts", "*.md"), list,
        lambda _: mutations.RENDERED,
        lambda _: ["build", "--since", "2000-01-01", "--until", "2100-01-01", "--out", "out"],
        layout="rendered", kill_seconds=30.0),
    Way("feed by path", lambda: _files(REPO / "tests" / "fixtures" / "feeds", "*"),
        lambda: _files(CORPORA / "feeds", "**/*.xml", "**/*.json", "**/*.html"),
        lambda path: mutations.JSON if path.suffix == ".json" else mutations.FEEDS,
        lambda _: ["posts", "list", "--all", "--json"], layout="feed"),
    # An operator's catalog override (issue 30), read when a command starts: the German
    # issue is built with the mutated mail.po or web.po in locale/de/LC_MESSAGES.
    Way("catalog override", lambda: _files(REPO / "locale", "de/LC_MESSAGES/*.po",
                                            "ar/LC_MESSAGES/*.po"), list,
        lambda _: mutations.PO, lambda _: ["build", "--week", "2026-W47", "--out", "out"],
        layout="catalog"),
    *(_webhook(provider) for provider in PROVIDERS),
)
WAY_BY_NAME = {way.name: way for way in WAYS}


@dataclass(frozen=True)
class Case:
    way: str
    seed: int
    source: Path
    mutation: str
    data: bytes
    suite: bool = False

    @property
    def label(self) -> str:
        shown = self.source.relative_to(CORPORA) if self.source.is_relative_to(CORPORA) else \
            self.source.relative_to(REPO)
        seed = f"{self.seed} (suite)" if self.suite else str(self.seed)
        return f"{self.way} seed={seed} file={shown} {self.mutation} ({len(self.data):,} B)"


def make_case(way: Way, seed: int, pool: list[Path] | None = None, suite: bool = False) -> Case:
    """The case (way, seed): the same bytes for the same seed and pool. `suite`: the seed
    also picks the mutation in turn (the format-aware ones first), as the suite's few cases
    do, so each kind is tried; else the mutation is drawn at random."""
    files = way.pool() if pool is None else pool
    rng = random.Random(f"{way.name}/{seed}")
    source = rng.choice(files)
    data, note = mutations.mutate(rng, source.read_bytes(), way.special(source),
                                  turn=seed if suite else None)
    return Case(way.name, seed, source, note, data, suite)


@dataclass(frozen=True)
class Outcome:
    failure: str | None
    exit_code: int | None
    seconds: float
    peak_rss_mb: float
    stderr_tail: str


def seed_database(folder: Path) -> Path:
    """A project folder whose database holds a few subscribers (from the repository's
    sample), made once and copied into every case that stores."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "posts").mkdir(exist_ok=True)
    (folder / "config.toml").write_text(CONFIG.format(sources=MARKDOWN_SOURCE))
    subprocess.run(_ainews(folder, ["subscribers", "import", str(REPO / "subscribers" /
                                                                  "sample.csv")]),
                   cwd=folder, env=_environment(), check=True, capture_output=True)
    return folder / "data"


def _ainews(folder: Path, arguments: list[str]) -> list[str]:
    return [sys.executable, "-m", "ainews_newsletter", "--config", str(folder / "config.toml"),
            *arguments]


def _environment() -> dict[str, str]:
    environment = {name: value for name, value in os.environ.items()
                   if not name.upper().startswith("AINEWS_")}
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(REPO / "src"), str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    return environment


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def database_digest(data_folder: Path) -> str:
    """Every row of every table, hashed (WAL read through by sqlite3 itself)."""
    digest = hashlib.sha256()
    database = data_folder / "ainews.db"
    if not database.exists():
        return "no database"
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        tables = [row[0] for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        for table in tables:
            rows = sorted(repr(row) for row in connection.execute(f'SELECT * FROM "{table}"'))
            digest.update(f"{table}:{len(rows)}:{rows}".encode())
    finally:
        connection.close()
    return digest.hexdigest()


def _prepare(way: Way, case: Case, folder: Path, template: Path | None) -> str:
    """The project folder for `case`; the input's path as the command names it."""
    folder.mkdir(parents=True)
    (folder / "posts").mkdir()
    sources = MARKDOWN_SOURCE
    config = CONFIG
    if way.layout in ("posts", "rendered"):
        target = folder / "posts" / case.source.name
        if way.layout == "rendered":
            config = CONFIG.replace('timezone = "UTC"\n', 'timezone = "UTC"\ntext_part = "full"\n')
    elif way.layout == "catalog":
        target = folder / "locale" / "de" / "LC_MESSAGES" / case.source.name
        target.parent.mkdir(parents=True)
        for post in (REPO / "posts").glob("*.md"):
            shutil.copy(post, folder / "posts" / post.name)
        config = CONFIG.replace('timezone = "UTC"\n', 'timezone = "UTC"\nlanguage = "de"\n')
    else:
        target = folder / f"input{case.source.suffix}"
        if way.layout == "feed":
            sources = f'{{ type = "feed", path = "{target.name}" }}'
    target.write_bytes(case.data)
    (folder / "config.toml").write_text(config.format(sources=sources))
    if way.database and template is not None:
        shutil.copytree(template, folder / "data")
    return str(target)


def _high_water_kb(pid: int) -> int:
    """The process's peak RSS so far (VmHWM, of its own address space since exec), 0 when
    it is gone. rusage's ru_maxrss cannot serve: Linux folds the forking parent's peak into
    the child's at exec, so inside a long pytest run every child "peaked" at pytest's size."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _wait(process: subprocess.Popen[bytes], kill_seconds: float = KILL_SECONDS,
          ) -> tuple[int, int, bool]:
    """(wait status, the child's peak RSS in KiB as sampled, killed by the guard): polled,
    so the kill can never hit a reaped (reused) process id."""
    deadline = time.monotonic() + kill_seconds
    pause = 0.005
    peak_kb = 0
    while True:
        peak_kb = max(peak_kb, _high_water_kb(process.pid))
        pid, status, _ = os.wait4(process.pid, os.WNOHANG)
        if pid:
            return status, peak_kb, False
        if time.monotonic() >= deadline:
            os.killpg(process.pid, signal.SIGKILL)
            _, status, _ = os.wait4(process.pid, 0)
            return status, peak_kb, True
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


_PRIVATE_USE = re.compile("[\ue000-\uf8ff]")


def _private_use(out: Path) -> bool:
    """Whether a built text part holds a private-use character (U+E000 to U+F8FF): the
    marks render/plain.py uses while html2text works must never reach a reader."""
    return any(_PRIVATE_USE.search(path.read_text("utf-8", "replace"))
               for path in out.glob("*.txt"))


def run_case(case: Case, folder: Path, template: Path | None) -> Outcome:
    """Run `case` in the new folder `folder` (kept for inspection) and classify it."""
    way = WAY_BY_NAME[case.way]
    path = _prepare(way, case, folder, template)
    before = database_digest(folder / "data") if way.whole else ""
    with (folder / "stdout").open("wb") as out, (folder / "stderr").open("wb") as err:
        started = time.monotonic()
        process = subprocess.Popen(_ainews(folder, way.command(path)), cwd=folder,
                                   env=_environment(), stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=err, preexec_fn=_cap_memory, start_new_session=True)
        status, peak_kb, killed = _wait(process, way.kill_seconds)
        seconds = time.monotonic() - started
    code = os.waitstatus_to_exitcode(status)
    process.returncode = code
    stderr = (folder / "stderr").read_text("utf-8", "replace")
    stdout = (folder / "stdout").read_bytes()
    failure: str | None = None
    peak_mb = peak_kb / 1024
    if any(sign in stderr for sign in MEMORY_SIGNS) or peak_mb > MEMORY_BAR_MB or (
            code == -signal.SIGKILL and not killed):  # a SIGKILL not ours: the OOM killer
        failure = "memory"
    elif killed:
        failure = "stall"
    elif "Traceback" in stderr:
        failure = "traceback"
    elif code not in (0, 1):
        failure = "bad exit"
    elif b"root:x:0:0" in stdout or "root:x:0:0" in stderr:
        failure = "leak"
    elif way.layout == "rendered" and _private_use(folder / "out"):
        failure = "private mark"
    refused = failure is not None or (code != 0 and not stdout.lstrip().startswith(b"{"))
    if way.whole and refused and database_digest(folder / "data") != before:
        failure = f"{failure}+half-stored" if failure else "half-stored"
    tail = stderr.strip().splitlines()[-1][:300] if stderr.strip() else ""
    return Outcome(failure, None if killed else code, seconds, peak_mb, tail)
