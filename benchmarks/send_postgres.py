"""PostgreSQL scale-out: 1, 2, 4 concurrent `ainews send --resume` processes sharing one issue,
against one SQLite sender and Postfix's smtp-source with as many sessions, all into
Postfix's smtp-sink on 127.0.0.1, in one run.

    python benchmarks/send_postgres.py [--recipients 100000] [--processes 1,2,4]
                                       [--connections 1] [--synchronous-commit off]
                                       [--rounds 3]

ours:  one frozen issue (the sample week) to --recipients subscribers, its audience
       snapshotted once; then, for each count N in --processes, the ledger's rows are put
       back to queued and N real CLI processes (`ainews send --resume --yes`, each with
       --connections SMTP connections) start at once and claim rows one by one with
       FOR UPDATE SKIP LOCKED; timed from the first start until the last exit (start-up
       included), then the ledger must say every row sent once, and smtp-sink's counter
       must have grown by exactly that many messages (no duplicates).
sqlite: the same readers and issue in an SQLite file, sent by ONE `ainews send --resume` (the
       same --connections) into the same sink, timed the same way: one PostgreSQL sender's
       rate over this one's is the ratio issue 32 asks about (>= 0.7).
peer:  smtp-source sending the same number of messages of the same size over N x
       --connections sessions into the same sink (no ledger, no message building).
cpu:   the CPU seconds (user + sys) the ainews processes, PostgreSQL (postmaster, its
       backends and helpers) and smtp-sink spent during each run, and the whole machine's
       busy time, against os.cpu_count(): which of them is the limit when the speed-up
       flattens (other load on the machine shows as "rest").
PostgreSQL is private and throwaway: Debian's binaries (initdb as the postgres user when
root), a temporary data folder, 127.0.0.1 on a free port, stock settings except
synchronous_commit (default off: what SQLite's WAL + synchronous=NORMAL gives the SQLite
benchmark; `on` flushes the WAL at every commit). Needs Debian's postgresql and postfix
packages (smtp-sink and smtp-source; no Postfix daemon is started) and psycopg.

Each round runs SQLite x 1, then PostgreSQL x N for every N, then smtp-source for every N,
so the peers alternate; --rounds rounds, and the tables give min / median / max."""

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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(1, str(REPO))  # tests/peers/postgres.py starts the private cluster

WEEK = "2026-W47"
TICKS = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- CPU accounting ---------------------------------------------------------------------------

def _stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat from field 3 (state) on: comm may hold spaces and parentheses."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rfind(")") + 2:].split()


def _process_seconds(pid: int, children_too: bool = False) -> float:
    """user + sys of a live process; with `children_too` also of its waited-for children."""
    fields = _stat_fields(pid)
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if children_too:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / TICKS


def _tree_seconds(root_pid: int) -> float:
    """A server's CPU so far: the root (postmaster) with the backends it has reaped, plus its
    live children (checkpointer, walwriter, backends still open)."""
    total = _process_seconds(root_pid, children_too=True)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = _stat_fields(int(entry.name))
        except (OSError, ValueError):
            continue  # gone meanwhile
        if int(fields[1]) == root_pid:
            total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def _children_seconds() -> float:
    """user + sys of this process's children that have been waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent not idle (all cores, all processes)."""
    values = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values[:8]) - idle) / TICKS  # guest time is counted in user already


@dataclass
class Cpu:
    clients: float  # the ainews processes, or smtp-source
    postgres: float
    sink: float
    machine: float


class CpuMeter:
    def __init__(self, postmaster: int, sink: int) -> None:
        self.postmaster, self.sink = postmaster, sink

    def read(self) -> Cpu:
        return Cpu(_children_seconds(), _tree_seconds(self.postmaster),
                   _process_seconds(self.sink), _machine_busy_seconds())

    @contextmanager
    def measure(self) -> Iterator[list[Cpu]]:
        """Yields a list that holds the difference once the block has ended."""
        box: list[Cpu] = []
        before = self.read()
        yield box
        time.sleep(0.2)  # let closed backends be reaped by the postmaster
        after = self.read()
        box.append(Cpu(after.clients - before.clients, after.postgres - before.postgres,
                       after.sink - before.sink, after.machine - before.machine))


# -- the peers --------------------------------------------------------------------------------

@contextmanager
def private_postgres(synchronous_commit: str) -> Iterator[tuple[str, int]]:
    """A throwaway cluster on 127.0.0.1 (tests/peers/postgres.py); yields the SQLAlchemy URL
    of an empty database and the postmaster's pid."""
    from tests.peers.postgres import Missing, PrivateCluster

    try:
        cluster = PrivateCluster(_free_port(), prefix="ainews-bench-pg-", listen="127.0.0.1",
                                 settings=f"-c synchronous_commit={synchronous_commit}")
    except Missing as exc:
        raise SystemExit(str(exc)) from None
    try:
        cluster.start()
        yield cluster.create_database("ainews_bench"), cluster.postmaster_pid()
    finally:
        cluster.close("fast")


def _sink_count(path: Path) -> int:
    """smtp-sink -c's running counter: the last `mesg=N` it wrote."""
    with path.open("rb") as counter:
        counter.seek(0, os.SEEK_END)
        counter.seek(max(0, counter.tell() - 4096))
        tail = counter.read().decode("ascii", "replace")
    marks = tail.rsplit("mesg=", 1)
    return int(marks[1].split()[0]) if len(marks) == 2 else 0


# -- the runs ---------------------------------------------------------------------------------

@dataclass
class Run:
    senders: int
    sessions: int
    seconds: float
    cpu: Cpu
    received: int  # messages smtp-sink counted
    window: float = 0.0  # ours: first to last sent_at (start-up excluded)


_RESET = ("UPDATE deliveries SET state = 'queued', attempts = 0, next_attempt_at = NULL, "
          "last_code = NULL, last_reply = NULL, sent_at = NULL WHERE issue_id = {}")
_STATES = "SELECT state, count(*) FROM deliveries WHERE issue_id = {} GROUP BY state"
_SPAN = ("SELECT sum(CASE WHEN attempts > 1 THEN 1 ELSE 0 END), min(sent_at), max(sent_at) "
         "FROM deliveries WHERE issue_id = {}")


def _reset(url: str, issue_id: int) -> None:
    """Every row of the issue back to queued, the table vacuumed and checkpointed, so each
    run starts from the same ledger."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
            connection.execute(_RESET.format("?"), (issue_id,))
        with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(_RESET.format("%s"), (issue_id,))
        connection.execute("VACUUM (ANALYZE) deliveries")
        connection.execute("CHECKPOINT")


def _when(value: object) -> datetime | None:
    """A stored time: SQLite's text, PostgreSQL's datetime."""
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    return value if isinstance(value, datetime) else None


def _ledger_check(url: str, issue_id: int) -> tuple[dict[str, int], int, float]:
    """Rows by state, rows claimed more than once, and seconds from first to last sent_at."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as lite:
            states = dict(lite.execute(_STATES.format("?"), (issue_id,)).fetchall())
            again, first, last = lite.execute(_SPAN.format("?"), (issue_id,)).fetchone()
    else:
        import psycopg

        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn) as connection:
            states = dict(connection.execute(_STATES.format("%s"), (issue_id,)).fetchall())
            again, first, last = connection.execute(
                _SPAN.format("%s"), (issue_id,)).fetchone() or (0, None, None)
    first, last = _when(first), _when(last)
    window = (last - first).total_seconds() if first is not None and last is not None else 0.0
    return {str(k): int(v) for k, v in states.items()}, int(again or 0), window


def _run_ours(args: argparse.Namespace, environ: dict[str, str], processes: int,
              meter: CpuMeter, sink_counter: Path, logs: Path) -> Run:
    command = [sys.executable, "-m", "ainews_newsletter", "--config", str(REPO / "config.toml"),
               "send", "--resume", "--yes"]
    before = _sink_count(sink_counter)
    outputs = [logs / f"send-{processes}-{k}.log" for k in range(processes)]
    with meter.measure() as cpu:
        started = time.perf_counter()
        children = [subprocess.Popen(command, env=environ, stdin=subprocess.DEVNULL,
                                     stdout=output.open("wb"), stderr=subprocess.STDOUT)
                    for output in outputs]
        codes = [child.wait() for child in children]
        seconds = time.perf_counter() - started
    for code, output in zip(codes, outputs, strict=True):
        if code != 0:
            raise SystemExit(f"`ainews send --resume` ({processes} at once) exited {code}; "
                             f"its output:\n{output.read_text(errors='replace')[-3000:]}")
    time.sleep(0.3)  # smtp-sink writes its counter after the session's QUIT
    return Run(processes, processes * args.connections, seconds, cpu[0],
               _sink_count(sink_counter) - before)


def _checked_run(args: argparse.Namespace, label: str, url: str, issue_id: int,
                 environ: dict[str, str], processes: int, meter: CpuMeter,
                 sink_counter: Path, logs: Path) -> Run:
    """One timed run of `processes` senders from a reset ledger; the ledger and the sink
    must then say every row sent exactly once."""
    _reset(url, issue_id)
    run = _run_ours(args, {**environ, "AINEWS_STORAGE__URL": url}, processes, meter,
                    sink_counter, logs)
    states, again, run.window = _ledger_check(url, issue_id)
    print(f"{label} x {processes}: {run.seconds:.1f} s ({args.recipients / run.seconds:,.0f} "
          f"msg/s); ledger {states}, {again} rows claimed more than once; smtp-sink received "
          f"{run.received:,} ({run.received - states.get('sent', 0):+,} against the ledger's "
          f"sent); load average {os.getloadavg()[0]:.2f}", flush=True)
    if states != {"sent": args.recipients} or run.received != args.recipients:
        raise SystemExit(f"{label} x {processes}: the ledger says {states}, smtp-sink "
                         f"received {run.received}; expected {args.recipients} sent and "
                         "received")
    return run


def _run_peer(source: str, recipients: int, sessions: int, size: int, port: int,
              meter: CpuMeter, sink_counter: Path) -> Run:
    before = _sink_count(sink_counter)
    with meter.measure() as cpu:
        started = time.perf_counter()
        subprocess.run([source, "-m", str(recipients), "-s", str(sessions), "-l", str(size),
                        "-f", "digest@ainews.example", "-t", "reader@example.com",
                        f"127.0.0.1:{port}"], check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - started
    time.sleep(0.3)
    return Run(sessions, sessions, seconds, cpu[0], _sink_count(sink_counter) - before)


def _prepare_issue(url: str, port: int, recipients: int, root: Path) -> tuple[int, int, str]:
    """Import the readers, freeze the issue and snapshot its audience once, sending nothing;
    returns the issue's id, the message size and the issue's key."""
    from ainews_newsletter.config import load_config
    from ainews_newsletter.database import dispose_all
    from ainews_newsletter.models import Window
    from ainews_newsletter.pipeline.issue import (
        audience_list,
        open_ledger,
        open_subscribers,
        sample_message,
        sample_recipient,
    )
    from ainews_newsletter.pipeline.send import delivery_status, execute_send, plan_send
    from ainews_newsletter.subscribers.formats import open_subscriber_file
    from ainews_newsletter.subscribers.importer import import_rows

    people = root / "people.csv"
    people.write_text("email\n" + "".join(f"r{i}@example.com\n" for i in range(recipients)))
    config = load_config(REPO / "config.toml", environ={}, overrides={
        "storage": {"url": url}, "smtp": {"host": "127.0.0.1", "port": port},
        "lint": {"spamassassin": False}})
    import_rows(open_subscribers(config), open_subscriber_file(people).rows)
    plan = plan_send(config, Window(week=WEEK))
    size = len(sample_message(config, plan.rendered,
                                       sample_recipient(config)))
    # Freeze + snapshot through the send itself, told to stop before its first claim; any
    # row it sent anyway is put back by the reset before each run.
    execute_send(config, plan, should_stop=lambda: True)
    issue = open_ledger(config).find_issue(audience_list(config),
                                                    plan.period_key)
    assert issue is not None and issue.snapshot_at is not None
    snapshotted = delivery_status(config, plan.period_key).total
    if snapshotted != recipients:
        raise SystemExit(f"the snapshot holds {snapshotted} rows, not {recipients}")
    dispose_all()
    return issue.id, size, plan.period_key


def _spread(values: list[float], form: str = "{:,.0f}") -> str:
    """min / median / max."""
    return " / ".join(form.format(v) for v in (min(values), statistics.median(values),
                                              max(values)))


def _print_results(args: argparse.Namespace, size: int, lite: list[Run],
                   ours: dict[int, list[Run]], peers: dict[int, list[Run]]) -> None:
    n = args.recipients
    cores = os.cpu_count() or 1
    print(f"\n{n:,} messages of {size:,} bytes into smtp-sink on 127.0.0.1; PostgreSQL "
          f"(synchronous_commit={args.synchronous_commit}) on 127.0.0.1; {cores} CPU cores; "
          f"{args.connections} SMTP connection(s) per ainews process; {len(lite)} rounds\n")
    print("One sender, PostgreSQL against SQLite in the same round:\n")
    print("| round | SQLite msg/s | PostgreSQL msg/s | PostgreSQL/SQLite | SQLite sending msg/s "
          "| PostgreSQL sending msg/s | sending PostgreSQL/SQLite |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    first = ours[min(ours)]
    ratios, sending_ratios = [], []
    for k, (one, pg) in enumerate(zip(lite, first, strict=True), 1):
        ratio = one.seconds / pg.seconds
        sending = one.window / pg.window if one.window and pg.window else 0.0
        ratios.append(ratio)
        sending_ratios.append(sending)
        print(f"| {k} | {n / one.seconds:,.0f} | {n / pg.seconds:,.0f} | {ratio:.2f} "
              f"| {n / one.window:,.0f} | {n / pg.window:,.0f} | {sending:.2f} |")
    print(f"\nPostgreSQL/SQLite, whole process (min / median / max): "
          f"**{_spread(ratios, '{:.2f}')}**; sending phase: {_spread(sending_ratios, '{:.2f}')}"
          "\n")
    print("| processes | sessions | ainews msg/s | speed-up | sending msg/s "
          "| smtp-source msg/s | its speed-up | ours/peer |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    base_ours = statistics.median(n / run.seconds for run in first)
    base_peer = statistics.median(n / run.seconds for run in peers[min(peers)])
    for count in ours:
        rates = [n / run.seconds for run in ours[count]]
        peer_rates = [n / run.seconds for run in peers[count]]
        windows = [n / run.window for run in ours[count] if run.window]
        mid, peer_mid = statistics.median(rates), statistics.median(peer_rates)
        print(f"| {count} | {ours[count][0].sessions} | {_spread(rates)} "
              f"| {mid / base_ours:.2f}x | {_spread(windows) if windows else '–'} "
              f"| {_spread(peer_rates)} | {peer_mid / base_peer:.2f}x | {mid / peer_mid:.0%} |")
    print("\n(msg/s: min / median / max; ainews msg/s: from the first process's start to the "
          "last one's exit; sending msg/s: first to last sent_at in the ledger, start-up "
          "excluded)\n")
    print(f"CPU during each run, in cores busy on average (CPU seconds / wall seconds; the "
          f"machine has {cores}), the median of the rounds:\n")
    print("| run | wall s | senders | postgres | smtp-sink | whole machine | rest |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    labelled = ([("SQLite ainews x 1", lite)]
                + [(f"PostgreSQL ainews x {count}", runs) for count, runs in ours.items()]
                + [(f"smtp-source -s {runs[0].sessions}", runs) for runs in peers.values()])
    for label, runs in labelled:
        def median(part: str, runs: list[Run] = runs) -> float:
            return statistics.median(float(getattr(run.cpu, part)) / run.seconds
                                     for run in runs)

        rest = statistics.median(
            (r.cpu.machine - r.cpu.clients - r.cpu.postgres - r.cpu.sink) / r.seconds
            for r in runs)
        print(f"| {label} | {statistics.median(r.seconds for r in runs):.1f} "
              f"| {median('clients'):.2f} | {median('postgres'):.2f} | {median('sink'):.2f} "
              f"| {median('machine'):.2f} | {rest:.2f} |")
    print("\n(senders: the ainews processes or smtp-source, user + sys; rest: everything else "
          "on the machine, e.g. other jobs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--processes", default="1,2,4",
                        help="comma-separated numbers of concurrent `ainews send --resume`")
    parser.add_argument("--connections", type=int, default=1,
                        help="SMTP connections per ainews process")
    parser.add_argument("--synchronous-commit", choices=("on", "off"), default="off",
                        help="PostgreSQL's synchronous_commit (off: like SQLite's WAL "
                             "with synchronous=NORMAL)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of SQLite x 1, PostgreSQL x N, smtp-source")
    args = parser.parse_args()
    counts = [int(part) for part in args.processes.split(",") if part.strip()]
    sink = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    source = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    if not (Path(sink).exists() and Path(source).exists()):
        raise SystemExit("needs postfix's smtp-sink and smtp-source (apt-get install postfix)")

    began = time.perf_counter()
    port = _free_port()
    as_root = ["-u", "nobody"] if os.geteuid() == 0 else []  # smtp-sink refuses root
    with tempfile.TemporaryDirectory(prefix="ainews-send-pg-") as folder:
        root = Path(folder)
        sink_counter = root / "sink-counter"
        with sink_counter.open("wb") as counter_file:
            sink_process = subprocess.Popen([sink, *as_root, "-c", f"127.0.0.1:{port}",
                                             "1000"], stdout=counter_file,
                                            stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            with private_postgres(args.synchronous_commit) as (url, postmaster):
                issue_id, size, key = _prepare_issue(url, port, args.recipients, root)
                lite_url = f"sqlite:///{root / 'ainews.db'}"
                lite_issue, _, _ = _prepare_issue(lite_url, port, args.recipients, root)
                print(f"{args.recipients:,} readers imported, issue {key} frozen and "
                      f"snapshotted in PostgreSQL and SQLite "
                      f"({time.perf_counter() - began:.0f} s)", flush=True)
                environ = {**os.environ,
                           "AINEWS_SMTP__HOST": "127.0.0.1", "AINEWS_SMTP__PORT": str(port),
                           "AINEWS_SMTP__CONNECTIONS": str(args.connections),
                           "AINEWS_LINT__SPAMASSASSIN": "false",
                           "PYTHONPATH": os.pathsep.join(
                               [str(REPO / "src"), *filter(None, [
                                   os.environ.get("PYTHONPATH")])])}
                meter = CpuMeter(postmaster, sink_process.pid)
                lite: list[Run] = []
                ours: dict[int, list[Run]] = {count: [] for count in counts}
                peers: dict[int, list[Run]] = {count: [] for count in counts}
                for _ in range(args.rounds):
                    lite.append(_checked_run(args, "SQLite", lite_url, lite_issue, environ, 1,
                                             meter, sink_counter, root))
                    for processes in counts:
                        ours[processes].append(_checked_run(
                            args, "PostgreSQL", url, issue_id, environ, processes, meter,
                            sink_counter, root))
                    for processes in counts:
                        peer = _run_peer(source, args.recipients,
                                         processes * args.connections, size, port, meter,
                                         sink_counter)
                        peers[processes].append(peer)
                        print(f"smtp-source -s {processes * args.connections}: "
                              f"{peer.seconds:.1f} s; smtp-sink received {peer.received:,}",
                              flush=True)
        finally:
            sink_process.terminate()
            sink_process.wait()
    _print_results(args, size, lite, ours, peers)
    print(f"\nwhole script: {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
