"""Start-up: `ainews --help` and `ainews subscribers count` against `sqlite-utils --help`,
another click command line (the peer; `pip install sqlite-utils`), each a fresh process.

    python benchmarks/startup.py [--runs 10] [--subscribers 1000] [--bytecode both]

The count runs on a temporary newsletter (config.toml, SQLite database at the current
schema, SUBSCRIBERS imported). The commands run in turn, A B C A B C …, RUNS times each,
after one warm-up round; the table has the median wall time of each, min–max, and the ratio
to the peer (targets: --help at most 1.0x, count at most 1.5x, judged against the peer
without numpy, which sqlite-utils imports when it can: on a fresh machine it cannot). The
count reads a SQLite file at the newest schema with the standard library; "(full config)"
is the same count with a setting in the environment, which takes the path through the
pydantic config and SQLAlchemy. Two floors for scale: `python -c pass`, the interpreter's
own start, and the full path's libraries imported with nothing run: click, SQLAlchemy, our
config module (pydantic, pydantic-settings) and email-validator.

Bytecode: with PYTHONDONTWRITEBYTECODE=1 an editable install compiles its modules from
source at every start, while the peer, installed in site-packages, runs from the .pyc files
pip wrote. `--bytecode env` measures the environment as it is; `cached` gives every command
the same fresh PYTHONPYCACHEPREFIX (written by the warm-up round), as a regular install
would have; `both` (the default) prints a table for each.

The console scripts are taken from the folder of this Python (so that a pyenv shim, a shell
script, is not timed), else from PATH."""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIG = """\
[newsletter]
name = "Startup Weekly"
from = "digest@news.example.org"
base_url = "https://news.example.org"
postal_address = "1 Bench Road"
timezone = "Europe/Berlin"
"""
TARGETS = {"ainews --help": 1.0, "ainews subscribers count": 1.5}
PEER = "sqlite-utils --help"
# sqlite-utils imports numpy when it can (98 ms here, where scipy brought it in); on a fresh
# machine it cannot. The targets are judged against this faster peer.
LEAN_PEER = "sqlite-utils --help (no numpy)"
LIBRARIES = "import click, sqlalchemy, email_validator, ainews_newsletter.config.loading"
NO_NUMPY = "raise ImportError('numpy hidden by benchmarks/startup.py')\n"


def _script(name: str) -> str | None:
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else shutil.which(name)


def _project(folder: Path, ainews: str, subscribers: int) -> dict[str, str]:
    """A newsletter in FOLDER with SUBSCRIBERS active addresses; its environment."""
    (folder / "config.toml").write_text(CONFIG, encoding="utf-8")
    env = {**os.environ, "AINEWS_CONFIG": str(folder / "config.toml")}
    env = {key: value for key, value in env.items()
           if not key.startswith("AINEWS_") or key == "AINEWS_CONFIG"}
    addresses = folder / "list.csv"
    addresses.write_text("email\n" + "".join(f"reader{i}@example.org\n"
                                             for i in range(subscribers)), encoding="utf-8")
    subprocess.run([ainews, "subscribers", "import", str(addresses)], env=env, check=True,
                   capture_output=True)
    return env


def _time(commands: dict[str, list[str]], env: dict[str, str], cwd: Path,
          runs: int) -> dict[str, list[float]]:
    """Wall seconds of each command, taken in turn; one untimed round first."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    hidden = cwd / "no-numpy"
    hidden.mkdir(exist_ok=True)
    (hidden / "numpy.py").write_text(NO_NUMPY, encoding="utf-8")
    special = {LEAN_PEER: {**env, "PYTHONPATH": str(hidden)},
               "ainews subscribers count (full config)": {**env, "AINEWS_SMTP__PORT": "25"}}
    for round_ in range(runs + 1):
        for name, command in commands.items():
            started = time.perf_counter()
            done = subprocess.run(command, env=special.get(name, env), cwd=cwd,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            elapsed = time.perf_counter() - started
            if done.returncode != 0:
                raise SystemExit(f"{name} failed ({done.returncode}): "
                                 f"{done.stderr.decode().strip()}")
            if round_:
                times[name].append(elapsed)
    return times


def _table(title: str, times: dict[str, list[float]]) -> None:
    peer = statistics.median(times[PEER])
    lean = statistics.median(times[LEAN_PEER])
    print(f"\n{title}\n")
    print("| command | median ms | min–max ms | vs peer | vs peer without numpy | target |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, seconds in times.items():
        median = statistics.median(seconds)
        target = TARGETS.get(name)
        verdict = "" if target is None else (
            f"≤ {target:.1f}x {'met' if median / lean <= target else 'MISSED'}")
        print(f"| `{name}` | {median * 1000:.0f} | {min(seconds) * 1000:.0f}–"
              f"{max(seconds) * 1000:.0f} | {median / peer:.2f}x | {median / lean:.2f}x | "
              f"{verdict} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--bytecode", choices=["env", "cached", "both"], default="both")
    args = parser.parse_args()
    ainews, peer = _script("ainews"), _script("sqlite-utils")
    if peer is None:
        raise SystemExit("needs the peer `sqlite-utils` on PATH: pip install sqlite-utils")
    if ainews is None:
        raise SystemExit("needs `ainews` on PATH: pip install -e .")
    commands = {"ainews --help": [ainews, "--help"],
                "ainews subscribers count": [ainews, "subscribers", "count"],
                PEER: [peer, "--help"],
                LEAN_PEER: [peer, "--help"],
                "ainews subscribers count (full config)": [ainews, "subscribers", "count"],
                "python -c pass": [sys.executable, "-c", "pass"],
                "imports of the full config path": [sys.executable, "-c", LIBRARIES]}
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {args.runs} runs each, "
          f"{args.subscribers:,} subscribers; ainews: {ainews}; peer: {peer}")
    with tempfile.TemporaryDirectory(prefix="ainews-startup-") as scratch:
        folder = Path(scratch)
        env = _project(folder, ainews, args.subscribers)
        if args.bytecode in ("env", "both"):
            bytecode = os.environ.get("PYTHONDONTWRITEBYTECODE") or "unset"
            _table(f"environment as it is (PYTHONDONTWRITEBYTECODE={bytecode})",
                   _time(commands, env, folder, args.runs))
        if args.bytecode in ("cached", "both"):
            cached = {key: value for key, value in env.items()
                      if key != "PYTHONDONTWRITEBYTECODE"}
            cached["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
            _table("bytecode cached for every command (a fresh PYTHONPYCACHEPREFIX)",
                   _time(commands, cached, folder, args.runs))


if __name__ == "__main__":
    main()
