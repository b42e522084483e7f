"""A send in three languages against the same send in one (issue 30: within 5 %), both into
Postfix's smtp-sink on 127.0.0.1, in one run.

    python benchmarks/send_languages.py [--recipients 100000] [--connections 4]
                                        [--workers 0] [--runs 1]

one:   the sample week's issue to --recipients subscribers without a language (SQLite ledger,
       per-message claims and commits as in benchmarks/send.py): one rendering.
three: the same list, a third each in de, ja and none (the newsletter's en): the issue is
       rendered once more per language after the snapshot, stored with the issue, and each
       message built from its language's skeleton.
Each run has its own fresh database and list (imported before the clock starts); the clock
covers the whole `ainews send --week 2026-W47 --yes`, start to exit (start-up, selection,
renders, freeze, snapshot, sending), and the CPU time is the command's and its workers'. With
--runs N the two kinds alternate N times (one, three; three, one; …) and each pair's ratio
three/one is taken; the median of those ratios is the result, for the clock and for the CPU
time (a shared machine swings a single run by 10 % or more, and a best-of-N picks whichever
kind was lucky: the pairs see the same load). Languages without shipped catalogs get an
operator catalog in the run's own folder, so the send has a rendering for each either way.
Needs Debian's postfix package (smtp-sink; no daemon is started)."""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

LANGUAGES = ("de", "ja", "")  # "": no language of their own (the newsletter's, en)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _cpu_seconds() -> float:
    """User + system time of this process and of its waited-for children (the workers)."""
    return sum(usage.ru_utime + usage.ru_stime for usage in (
        resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)))


def _run(port: int, recipients: int, languages: tuple[str, ...], connections: int,
         workers: int) -> tuple[float, float, int, dict[str, int]]:
    """(seconds, CPU seconds, messages sent, readers by language) of one `ainews send` in a
    fresh folder, timed from the command's start to its exit (what the operator waits for).
    CPU time, unlike the clock, barely moves with other load on a shared machine."""
    from ainews_newsletter import translations
    from ainews_newsletter.config import load_config
    from ainews_newsletter.database import dispose_all
    from ainews_newsletter.pipeline.issue import open_subscribers
    from ainews_newsletter.pipeline.send import issue_languages
    from ainews_newsletter.subscribers.formats import open_subscriber_file
    from ainews_newsletter.subscribers.importer import import_rows

    with tempfile.TemporaryDirectory(prefix="ainews-languages-") as folder:
        root = Path(folder)
        shutil.copy(REPO / "config.toml", root / "config.toml")
        shutil.copytree(REPO / "posts", root / "posts")
        for language in filter(None, languages):
            if language not in translations.shipped_languages():
                messages = root / "locale" / translations.folder_name(language) / "LC_MESSAGES"
                messages.mkdir(parents=True)
                (messages / "mail.po").write_text(
                    'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n',
                    encoding="utf-8")
        people = root / "people.csv"
        people.write_text("email,language\n" + "".join(
            f"r{i}@example.com,{languages[i % len(languages)]}\n" for i in range(recipients)))
        database = root / "bench.db"
        # The shell's own AINEWS_* settings would change both kinds' sends: left out.
        environ = {**{key: value for key, value in os.environ.items()
                      if not key.startswith("AINEWS_")},
                   "AINEWS_STORAGE__URL": f"sqlite:///{database}",
                   "AINEWS_SMTP__HOST": "127.0.0.1", "AINEWS_SMTP__PORT": str(port),
                   "AINEWS_SMTP__CONNECTIONS": str(connections),
                   "AINEWS_SMTP__WORKERS": str(workers), "AINEWS_LINT__SPAMASSASSIN": "false",
                   "PYTHONPATH": str(REPO / "src"),
                   # Not the sample's: the lint gate refuses to send with those.
                   "AINEWS_NEWSLETTER__BASE_URL": "https://news.bench.example",
                   "AINEWS_NEWSLETTER__FROM": "digest@news.bench.example",
                   "AINEWS_NEWSLETTER__POSTAL_ADDRESS": "Bench Media, 4 Quay Street, Leith"}
        config = load_config(root / "config.toml", environ=environ)
        import_rows(open_subscribers(config), open_subscriber_file(people).rows)
        dispose_all()
        started, cpu = time.perf_counter(), _cpu_seconds()
        subprocess.run([sys.executable, "-m", "ainews_newsletter", "--config",
                        str(root / "config.toml"), "send", "--week", "2026-W47", "--yes"],
                       env=environ, check=True, stdout=subprocess.DEVNULL)
        seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
        by_language = issue_languages(config, "2026-W47")
        with sqlite3.connect(database) as connection:
            [(sent,)] = connection.execute(
                "SELECT count(*) FROM deliveries WHERE state = 'sent'").fetchall()
        dispose_all()
    return seconds, cpu, int(sent), by_language


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--workers", type=int, default=0,
                        help="processes the connections are spread over (0: automatic)")
    parser.add_argument("--runs", type=int, default=1,
                        help="alternate the kinds this many times; the median pair ratio counts")
    args = parser.parse_args()
    sink = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    if not Path(sink).exists():
        raise SystemExit("needs postfix's smtp-sink (apt-get install postfix)")
    port = _free_port()
    as_root = ["-u", "nobody"] if os.geteuid() == 0 else []  # smtp-sink refuses root
    sink_process = subprocess.Popen([sink, *as_root, f"127.0.0.1:{port}", "1000"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    kinds = {"one language": ("",), "three languages": LANGUAGES}
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    cpu: dict[str, list[float]] = {kind: [] for kind in kinds}
    try:
        for pair in range(args.runs):
            # ABBA: each kind goes first in every other pair, so a drift over the run
            # (a warming cache, a neighbour's job ending) favours neither.
            order = list(kinds.items()) if pair % 2 == 0 else list(kinds.items())[::-1]
            for kind, languages in order:
                seconds, used, sent, by_language = _run(port, args.recipients, languages,
                                                        args.connections, args.workers)
                if sent != args.recipients:
                    raise SystemExit(f"{kind}: sent {sent} of {args.recipients}")
                times[kind].append(seconds)
                cpu[kind].append(used)
                print(f"{kind}: {seconds:.1f} s ({sent / seconds:,.0f} msg/s), CPU "
                      f"{used:.1f} s, readers by language {by_language}", flush=True)
    finally:
        sink_process.terminate()
        sink_process.wait()
    print(f"{args.recipients:,} messages over {args.connections} connection(s) into "
          f"smtp-sink on 127.0.0.1, {args.runs} alternating pair(s)")
    print("| pair | one language: s, CPU s | three languages (de, ja, en): s, CPU s | "
          "ratio three/one: clock, CPU |\n| --- | ---: | ---: | ---: |")
    clock_ratios, cpu_ratios = [], []
    for pair in range(args.runs):
        one, three = times["one language"][pair], times["three languages"][pair]
        cpu_one, cpu_three = cpu["one language"][pair], cpu["three languages"][pair]
        clock_ratios.append(three / one)
        cpu_ratios.append(cpu_three / cpu_one)
        print(f"| {pair + 1} | {one:.1f}, {cpu_one:.1f} | {three:.1f}, {cpu_three:.1f} | "
              f"{three / one:.3f}, {cpu_three / cpu_one:.3f} |")
    clock_ratio, cpu_ratio = statistics.median(clock_ratios), statistics.median(cpu_ratios)
    print(f"median ratio three/one: clock {clock_ratio:.3f} ({clock_ratio - 1:+.1%}), CPU "
          f"{cpu_ratio:.3f} ({cpu_ratio - 1:+.1%}); goal: within 5 %")

if __name__ == "__main__":
    main()
