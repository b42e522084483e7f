"""SMTP send throughput: ours against Postfix's smtp-source, both into Postfix's smtp-sink on
127.0.0.1, in one run.

    python benchmarks/send.py [--recipients 20000] [--connections 1] [--workers 0]
    python benchmarks/send.py --recipients 1000000 --rss    # peak memory of a big send

ours:  the sample week's issue to --recipients subscribers (SQLite ledger, one row claimed,
       sent and recorded per message: the crash-safety contract), over --connections
       spread over --workers processes (0: one per connection, at most one per core; 1: all
       connections as threads of one process)
peer:  smtp-source sending the same number of messages of the same size over the same number
       of connections (no ledger, no message building)
--rss: instead, `ainews send --yes` in a child process (the real CLI, progress bar and all),
       reporting its peak RSS and rate; the list is imported beforehand in this process.
Needs Debian's postfix package (smtp-sink and smtp-source; no daemon is started)."""

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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _measure_cli_send(database: Path, port: int, connections: int, workers: int,
                      recipients: int) -> None:
    environ = {**os.environ, "AINEWS_STORAGE__URL": f"sqlite:///{database}",
               "AINEWS_SMTP__HOST": "127.0.0.1", "AINEWS_SMTP__PORT": str(port),
               "AINEWS_SMTP__CONNECTIONS": str(connections),
               "AINEWS_SMTP__WORKERS": str(workers),
               "AINEWS_LINT__SPAMASSASSIN": "false"}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ainews_newsletter", "--config",
                    str(REPO / "config.toml"), "send", "--week", "2026-W47", "--yes"],
                   env=environ, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    # ru_maxrss of waited-for children, in KiB on Linux: only the send has been waited for.
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"`ainews send` to {recipients:,} subscribers over {connections} connection(s): "
          f"{seconds:.0f} s ({recipients / seconds:,.0f} msg/s including start-up), "
          f"peak RSS {peak_mib:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--workers", type=int, default=0,
                        help="processes the connections are spread over (0: automatic)")
    parser.add_argument("--rss", action="store_true",
                        help="measure the peak memory of `ainews send` in a child process")
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

    port = _free_port()
    as_root = ["-u", "nobody"] if os.geteuid() == 0 else []  # smtp-sink refuses root
    sink_process = subprocess.Popen([sink, *as_root, f"127.0.0.1:{port}", "1000"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        with tempfile.TemporaryDirectory(prefix="ainews-send-") as folder:
            root = Path(folder)
            people = root / "people.csv"
            people.write_text("email\n" + "".join(f"r{i}@example.com\n"
                                                  for i in range(args.recipients)))
            config = load_config(REPO / "config.toml", environ={}, overrides={
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
