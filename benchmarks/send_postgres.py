"""PostgreSQL scale-out: 1, 2, 4 concurrent `ainews send --resume` processes sharing one issue,
against Postfix's smtp-source with as many sessions, all into Postfix's smtp-sink on
127.0.0.1, in one run.

    python benchmarks/send_postgres.py [--recipients 100000] [--processes 1,2,4]
                                       [--connections 1] [--synchronous-commit off]

ours:  one frozen issue (the sample week) to --recipients subscribers, its audience
       snapshotted once; then, for each count N in --processes, the ledger's rows are put
       back to queued and N real CLI processes (`ainews send --resume --yes`, each with
       --connections SMTP connections) start at once and claim rows one by one with
       FOR UPDATE SKIP LOCKED; timed from the first start until the last exit (start-up
       included), then the ledger must say every row sent once, and smtp-sink's counter
       must have grown by exactly that many messages (no duplicates).
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
packages (smtp-sink and smtp-source; no Postfix daemon is started) and psycopg."""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

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
    """A throwaway cluster on 127.0.0.1 (see tests/conftest.py `postgres_server`); yields the
    SQLAlchemy URL of an empty database and the postmaster's pid."""
    import psycopg

    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        raise SystemExit("needs Debian's postgresql (apt-get install postgresql)")
    binaries = found[-1].parent
    root = Path(tempfile.mkdtemp(prefix="ainews-bench-pg-"))
    root.chmod(0o755)
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(root, "postgres", "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", _free_port()
    try:
        subprocess.run([*run_as, str(binaries / "initdb"), "-D", str(data), "-A", "trust",
                        "-U", "ainews", "-E", "UTF8"], check=True, capture_output=True)
        options = (f"-c listen_addresses=127.0.0.1 -k {root} -p {port} "
                   f"-c synchronous_commit={synchronous_commit}")
        subprocess.run([*run_as, str(binaries / "pg_ctl"), "-D", str(data), "-o", options,
                        "-l", str(root / "log"), "-w", "start"], check=True,
                       capture_output=True)
        postmaster = int((data / "postmaster.pid").read_text().split()[0])
        with psycopg.connect(host="127.0.0.1", port=port, user="ainews", dbname="postgres",
                             autocommit=True) as connection:
            connection.execute("CREATE DATABASE ainews_bench")
        yield f"postgresql+psycopg://ainews@127.0.0.1:{port}/ainews_bench", postmaster
    finally:
        subprocess.run([*run_as, str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast",
                        "stop"], check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


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


def _reset(url: str, issue_id: int) -> None:
    """Every row of the issue back to queued, the table vacuumed and checkpointed, so each
    run starts from the same ledger."""
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(
            "UPDATE deliveries SET state = 'queued', attempts = 0, next_attempt_at = NULL, "
            "last_code = NULL, last_reply = NULL, sent_at = NULL WHERE issue_id = %s",
            (issue_id,))
        connection.execute("VACUUM (ANALYZE) deliveries")
        connection.execute("CHECKPOINT")


def _ledger_check(url: str, issue_id: int) -> tuple[dict[str, int], int, float]:
    """Rows by state, rows claimed more than once, and seconds from first to last sent_at."""
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as connection:
        states: dict[str, int] = dict(connection.execute(
            "SELECT state, count(*) FROM deliveries WHERE issue_id = %s GROUP BY state",
            (issue_id,)).fetchall())
        again, first, last = connection.execute(
            "SELECT count(*) FILTER (WHERE attempts > 1), min(sent_at), max(sent_at) "
            "FROM deliveries WHERE issue_id = %s", (issue_id,)).fetchone() or (0, None, None)
    window = (last - first).total_seconds() if first is not None and last is not None else 0.0
    return {str(k): int(v) for k, v in states.items()}, int(again), window


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


def _print_results(args: argparse.Namespace, size: int, ours: list[Run],
                   peers: list[Run]) -> None:
    n = args.recipients
    cores = os.cpu_count() or 1
    print(f"\n{n:,} messages of {size:,} bytes into smtp-sink on 127.0.0.1; PostgreSQL "
          f"(synchronous_commit={args.synchronous_commit}) on 127.0.0.1; {cores} CPU cores; "
          f"{args.connections} SMTP connection(s) per ainews process\n")
    print("| processes | sessions | ainews s | ainews msg/s | speed-up | sending msg/s "
          "| smtp-source msg/s | its speed-up | ours/peer |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    base_ours, base_peer = n / ours[0].seconds, n / peers[0].seconds
    for run, peer in zip(ours, peers, strict=True):
        rate, peer_rate = n / run.seconds, n / peer.seconds
        sending = f"{n / run.window:,.0f}" if run.window else "–"
        print(f"| {run.senders} | {run.sessions} | {run.seconds:.1f} | {rate:,.0f} "
              f"| {rate / base_ours:.2f}x | {sending} | {peer_rate:,.0f} "
              f"| {peer_rate / base_peer:.2f}x | {rate / peer_rate:.0%} |")
    print("\n(ainews msg/s: from the first process's start to the last one's exit; sending "
          "msg/s: first to last sent_at in the ledger, start-up excluded)\n")
    print(f"CPU during each run, in cores busy on average (CPU seconds / wall seconds; the "
          f"machine has {cores}):\n")
    print("| run | wall s | senders | postgres | smtp-sink | whole machine | rest |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, run in ([(f"ainews x {r.senders}", r) for r in ours]
                       + [(f"smtp-source -s {p.sessions}", p) for p in peers]):
        c, w = run.cpu, run.seconds
        rest = c.machine - c.clients - c.postgres - c.sink
        print(f"| {label} | {w:.1f} | {c.clients / w:.2f} | {c.postgres / w:.2f} "
              f"| {c.sink / w:.2f} | {c.machine / w:.2f} | {rest / w:.2f} |")
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
                print(f"{args.recipients:,} readers imported, issue {key} frozen and "
                      f"snapshotted ({time.perf_counter() - began:.0f} s)", flush=True)
                environ = {**os.environ, "AINEWS_STORAGE__URL": url,
                           "AINEWS_SMTP__HOST": "127.0.0.1", "AINEWS_SMTP__PORT": str(port),
                           "AINEWS_SMTP__CONNECTIONS": str(args.connections),
                           "AINEWS_LINT__SPAMASSASSIN": "false",
                           "PYTHONPATH": os.pathsep.join(
                               [str(REPO / "src"), *filter(None, [
                                   os.environ.get("PYTHONPATH")])])}
                meter = CpuMeter(postmaster, sink_process.pid)
                ours: list[Run] = []
                peers: list[Run] = []
                for processes in counts:
                    _reset(url, issue_id)
                    run = _run_ours(args, environ, processes, meter, sink_counter, root)
                    states, again, run.window = _ledger_check(url, issue_id)
                    ours.append(run)
                    print(f"ainews x {processes}: {run.seconds:.1f} s; ledger {states}, "
                          f"{again} rows claimed more than once; smtp-sink received "
                          f"{run.received:,} ({run.received - states.get('sent', 0):+,} "
                          f"against the ledger's sent)", flush=True)
                    if states != {"sent": args.recipients} or run.received != args.recipients:
                        raise SystemExit(f"ainews x {processes}: the ledger says {states}, "
                                         f"smtp-sink received {run.received}; expected "
                                         f"{args.recipients} sent and received")
                    peers.append(_run_peer(source, args.recipients,
                                           processes * args.connections, size, port, meter,
                                           sink_counter))
                    print(f"smtp-source -s {processes * args.connections}: "
                          f"{peers[-1].seconds:.1f} s; smtp-sink received "
                          f"{peers[-1].received:,}", flush=True)
        finally:
            sink_process.terminate()
            sink_process.wait()
    _print_results(args, size, ours, peers)
    print(f"\nwhole script: {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
