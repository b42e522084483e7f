"""SMTP send throughput: ours against Postfix's smtp-source, both into Postfix's smtp-sink on
127.0.0.1, in one run.

    python benchmarks/send.py [--recipients 20000] [--connections 1] [--workers 0] [--runs 3]
    python benchmarks/send.py --phase-only ...     # the sending phase alone, in this process
    python benchmarks/send.py --recipients 1000000 --rss    # peak memory of a big send

ours:  `ainews send --week 2026-W47 --yes`, the real command in a child process (the sample
       config in a project as `ainews init` lays one out: see _project), timed from
       its start to its exit (what an operator waits for: start-up, selecting and rendering
       the issue, the lint gate, freezing it, the audience snapshot, sending, the last
       records), the sample week's issue to --recipients subscribers (SQLite ledger, one row
       claimed, sent and recorded per message: the crash-safety contract), over
       --connections spread over --workers processes (0: one per connection, at most one
       per core; 1: all connections as threads of one process). Each run has a fresh
       database with the list imported before the clock starts. The phases are read from
       the ledger afterwards: start-up (process start to the issue row's created_at), snapshot
       and first message (to the first row recorded), sending (first to last row recorded),
       closing (last row to the process's exit).
peer:  smtp-source sending the same number of messages of the same size over the same number
       of connections (no ledger, no message building), run right after each of ours.
With --runs N the two alternate N times; each pair's ratio is printed, then the min, median
and max of the ratios (a shared machine swings single runs; a pair sees the same load).
--phase-only: the old measurement, execute_send alone in this process (no start-up, no
       rendering, no snapshot): kept to compare with earlier figures.
--rss: instead, `ainews send --yes` in a child process (the real CLI, progress bar and all),
       reporting its peak RSS and rate; the list is imported beforehand in this process.
Needs Debian's postfix package (smtp-sink and smtp-source; no daemon is started)."""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYCACHE = Path(tempfile.gettempdir()) / "ainews-bench-pycache"
sys.path.insert(0, str(REPO / "src"))


def _project(root: Path) -> Path:
    """The sample configuration in a project laid out as `ainews init` makes one (config.toml,
    posts/, templates/; no locale/ of its own), returning its config.toml. Not the
    repository's config.toml in place: the repository's locale/ beside it would count as the
    operator's own catalogs, compiled from their .po at every start (an installed package
    reads its shipped catalogs' compiled .mo)."""
    project = root / "project"
    if not project.exists():
        project.mkdir()
        shutil.copy(REPO / "config.toml", project / "config.toml")
        (project / "posts").symlink_to(REPO / "posts", target_is_directory=True)
        shutil.copytree(REPO / "templates", project / "templates")
    return project / "config.toml"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _peak_kib(pid: int) -> int:
    """A process's peak RSS so far (VmHWM: its own address space since exec; ru_maxrss
    would start from the forking parent's size), 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.update(int(child) for child in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def _measure_cli_send(database: Path, port: int, connections: int, workers: int,
                      recipients: int) -> None:
    """`ainews send` in a child process, its peak RSS and its workers' read from /proc
    every 20 ms while it runs."""
    environ = _cli_environ(database, port, connections, workers)
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "ainews_newsletter", "--config",
                              str(_project(database.parent)), "send", "--week", "2026-W47",
                              "--yes"], env=environ, stdout=subprocess.DEVNULL)
    peaks: dict[int, int] = {}
    while child.poll() is None:
        for pid in {child.pid, *_children(child.pid)}:
            peaks[pid] = max(peaks.get(pid, 0), _peak_kib(pid))
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    if child.returncode:
        raise SystemExit(f"ainews send exited with {child.returncode}")
    own = peaks.pop(child.pid, 0) / 1024
    worker_peak = max(peaks.values(), default=0) / 1024
    print(f"`ainews send` to {recipients:,} subscribers over {connections} connection(s): "
          f"{seconds:.0f} s ({recipients / seconds:,.0f} msg/s including start-up), "
          f"peak RSS {own:.0f} MiB (the sending process), {worker_peak:.0f} MiB (the "
          f"largest of {len(peaks)} worker process(es)), {own + sum(peaks.values()) / 1024:.0f}"
          " MiB all peaks together")


def _cli_environ(database: Path, port: int, connections: int, workers: int) -> dict[str, str]:
    """The command's environment: the shell's AINEWS_* left out, and the bytecode of an
    installed package (a regular install has its .pyc files; this checkout's are compiled
    once into PYCACHE, else PYTHONDONTWRITEBYTECODE=1 would compile every module from source
    at every start)."""
    environ = {key: value for key, value in os.environ.items()
               if not key.startswith("AINEWS_") and key != "PYTHONDONTWRITEBYTECODE"}
    return {**environ, "PYTHONPYCACHEPREFIX": str(PYCACHE),
            "AINEWS_STORAGE__URL": f"sqlite:///{database}",
            "AINEWS_SMTP__HOST": "127.0.0.1", "AINEWS_SMTP__PORT": str(port),
            "AINEWS_SMTP__CONNECTIONS": str(connections),
            "AINEWS_SMTP__WORKERS": str(workers),
            "AINEWS_LINT__SPAMASSASSIN": "false", "PYTHONPATH": str(REPO / "src"),
            # Not the sample's: the lint gate refuses to send with those.
            "AINEWS_NEWSLETTER__BASE_URL": "https://news.bench.example",
            "AINEWS_NEWSLETTER__FROM": "digest@news.bench.example",
            "AINEWS_NEWSLETTER__POSTAL_ADDRESS": "Bench Media, 4 Quay Street, Leith"}


def _ledger_times(database: Path) -> tuple[float, float, float, int]:
    """(issue created, first row recorded, last row recorded) as Unix times, and rows sent."""
    import sqlite3
    from datetime import UTC, datetime

    def unix(text: str) -> float:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:  # stored as UTC
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()

    with sqlite3.connect(database) as connection:
        created = connection.execute("SELECT created_at FROM issues").fetchone()[0]
        first, last, sent = connection.execute(
            "SELECT min(updated_at), max(updated_at), count(*) FROM deliveries "
            "WHERE state = 'sent'").fetchone()
    return unix(created), unix(first), unix(last), int(sent)


def _whole_command(root: Path, people: Path, port: int, args: argparse.Namespace,
                   run: int) -> tuple[float, int, dict[str, float]]:
    """One `ainews send --yes` in a child process on a fresh database: (seconds start to
    exit, messages sent, phases in seconds)."""
    from ainews_newsletter.config import load_config
    from ainews_newsletter.database import dispose_all
    from ainews_newsletter.pipeline.issue import open_subscribers
    from ainews_newsletter.subscribers.formats import open_subscriber_file
    from ainews_newsletter.subscribers.importer import import_rows

    database = root / f"run{run}.db"
    config = load_config(_project(root), environ={}, overrides={
        "storage": {"url": f"sqlite:///{database}"}})
    import_rows(open_subscribers(config), open_subscriber_file(people).rows)
    dispose_all()
    environ = _cli_environ(database, port, args.connections, args.workers)
    started_unix, started = time.time(), time.perf_counter()
    subprocess.run([sys.executable, "-m", "ainews_newsletter", "--config",
                    str(_project(root)), "send", "--week", "2026-W47", "--yes"],
                   env=environ, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    ended_unix = started_unix + seconds
    created, first, last, sent = _ledger_times(database)
    phases = {"start-up": created - started_unix, "snapshot": first - created,
              "sending": last - first, "closing": ended_unix - last}
    return seconds, sent, phases


def _smtp_source(source: str, port: int, recipients: int, connections: int,
                 size: int) -> float:
    started = time.perf_counter()
    subprocess.run([source, "-m", str(recipients), "-s", str(connections), "-l", str(size),
                    "-f", "digest@ainews.example", "-t", "reader@example.com",
                    f"127.0.0.1:{port}"], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def _whole_runs(root: Path, port: int, source: str, args: argparse.Namespace) -> None:
    from ainews_newsletter.config import load_config
    from ainews_newsletter.models import Window
    from ainews_newsletter.pipeline.issue import sample_message, sample_recipient
    from ainews_newsletter.pipeline.send import plan_send

    people = root / "people.csv"
    people.write_text("email\n" + "".join(f"r{i}@example.com\n"
                                          for i in range(args.recipients)))
    config = load_config(_project(root), environ={}, overrides={
        "storage": {"url": f"sqlite:///{root / 'size.db'}"}, "lint": {"spamassassin": False}})
    size = len(sample_message(config, plan_send(config, Window(week="2026-W47")).rendered,
                              sample_recipient(config)))
    print(f"{args.recipients:,} messages of {size:,} bytes over {args.connections} "
          f"connection(s), workers {args.workers} (0: automatic), into smtp-sink on 127.0.0.1; "
          f"{os.cpu_count()} cores; load average before: {os.getloadavg()[0]:.2f}")
    print("| run | `ainews send` s (start to exit) | msg/s | start-up | snapshot | sending | "
          "closing | smtp-source s | msg/s | ratio |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    ratios = []
    for run in range(1, args.runs + 1):
        ours, sent, phases = _whole_command(root, people, port, args, run)
        peer = _smtp_source(source, port, args.recipients, args.connections, size)
        ratio = (sent / ours) / (args.recipients / peer)
        ratios.append(ratio)
        print(f"| {run} | {ours:.2f} | {sent / ours:,.0f} | "
              + " | ".join(f"{phases[name]:.2f}" for name in
                           ("start-up", "snapshot", "sending", "closing"))
              + f" | {peer:.2f} | {args.recipients / peer:,.0f} | {ratio:.2f} |", flush=True)
        if sent != args.recipients:
            raise SystemExit(f"run {run}: sent {sent} of {args.recipients}")
    ratios.sort()
    print(f"ratio ours/peer over {len(ratios)} runs: min {ratios[0]:.2f}, median "
          f"{statistics.median(ratios):.2f}, max {ratios[-1]:.2f}; load average after: "
          f"{os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--workers", type=int, default=0,
                        help="processes the connections are spread over (0: automatic)")
    parser.add_argument("--rss", action="store_true",
                        help="measure the peak memory of `ainews send` in a child process")
    parser.add_argument("--runs", type=int, default=3,
                        help="pairs of (ours, peer) for the whole-command measurement")
    parser.add_argument("--phase-only", action="store_true",
                        help="time execute_send alone in this process (the old measurement)")
    args = parser.parse_args()
    sink = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    source = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    if not (Path(sink).exists() and Path(source).exists()):
        raise SystemExit("needs postfix's smtp-sink and smtp-source (apt-get install postfix)")

    from ainews_newsletter.config import load_config
    from ainews_newsletter.database import dispose_all
    from ainews_newsletter.models import Window
    from ainews_newsletter.pipeline.issue import open_subscribers, sample_message, sample_recipient
    from ainews_newsletter.pipeline.send import execute_send, plan_send
    from ainews_newsletter.subscribers.formats import open_subscriber_file
    from ainews_newsletter.subscribers.importer import import_rows

    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "src")],
                   env={**os.environ, "PYTHONPYCACHEPREFIX": str(PYCACHE)}, check=True)
    port = _free_port()
    as_root = ["-u", "nobody"] if os.geteuid() == 0 else []  # smtp-sink refuses root
    sink_process = subprocess.Popen([sink, *as_root, f"127.0.0.1:{port}", "1000"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        if not (args.rss or args.phase_only):
            with tempfile.TemporaryDirectory(prefix="ainews-send-") as folder:
                _whole_runs(Path(folder), port, source, args)
            return
        with tempfile.TemporaryDirectory(prefix="ainews-send-") as folder:
            root = Path(folder)
            people = root / "people.csv"
            people.write_text("email\n" + "".join(f"r{i}@example.com\n"
                                                  for i in range(args.recipients)))
            config = load_config(_project(root), environ={}, overrides={
                "storage": {"url": f"sqlite:///{root / 'bench.db'}"},
                "smtp": {"host": "127.0.0.1", "port": port,
                         "connections": args.connections, "workers": args.workers},
                "lint": {"spamassassin": False}})
            store = open_subscribers(config)
            import_rows(store, open_subscriber_file(people).rows)
            if args.rss:
                dispose_all()
                _measure_cli_send(root / "bench.db", port, args.connections, args.workers,
                                  args.recipients)
                return
            plan = plan_send(config, Window(week="2026-W47"))
            size = len(sample_message(config, plan.rendered,
                                               sample_recipient(config)))
            cpu_before = (resource.getrusage(resource.RUSAGE_SELF),
                          resource.getrusage(resource.RUSAGE_CHILDREN))
            started = time.perf_counter()
            counts = execute_send(config, plan)
            ours = time.perf_counter() - started
            cpu_main, cpu_workers = (
                after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
                for before, after in zip(cpu_before, (
                    resource.getrusage(resource.RUSAGE_SELF),
                    resource.getrusage(resource.RUSAGE_CHILDREN)), strict=True))
            dispose_all()
        started = time.perf_counter()
        subprocess.run([source, "-m", str(args.recipients), "-s", str(args.connections),
                        "-l", str(size), "-f", "digest@ainews.example",
                        "-t", "reader@example.com", f"127.0.0.1:{port}"],
                       check=True, stdout=subprocess.DEVNULL)
        peer = time.perf_counter() - started
    finally:
        sink_process.terminate()
        sink_process.wait()
    ours_rate, peer_rate = counts.sent / ours, args.recipients / peer
    processes = config.smtp.worker_processes()
    print(f"{args.recipients:,} messages of {size:,} bytes over {args.connections} "
          f"connection(s) in {processes} process(es) into smtp-sink on 127.0.0.1")
    print("| sender | seconds | msg/s |\n| --- | ---: | ---: |")
    print(f"| ainews send (ledger, per-message commits) | {ours:.1f} | {ours_rate:,.0f} |")
    print(f"| smtp-source (peer) | {peer:.1f} | {peer_rate:,.0f} |")
    print(f"ratio ours/peer: {ours_rate / peer_rate:.0%} (sent {counts.sent}, failed "
          f"{counts.failed}, deferred {counts.deferred})")
    per_message = 1e6 / max(counts.sent, 1)
    print(f"CPU of ours: sending process {cpu_main:.1f} s ({cpu_main * per_message:.0f} µs a "
          f"message), worker processes {cpu_workers:.1f} s ({cpu_workers * per_message:.0f} µs "
          f"a message); {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
