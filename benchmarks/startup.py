"""Start-up: `ainews --help` and `ainews subscribers count` against `sqlite-utils --help`,
another click command line (the peer; `pip install sqlite-utils`), each a fresh process.

    python benchmarks/startup.py [--runs 10] [--repeat 3] [--subscribers 1000] [--bytecode cached]

The count runs on a temporary newsletter (SQLite database at the current schema,
SUBSCRIBERS imported) in three configurations, each loaded and checked whole as every
command does:
  file         config.toml only (AINEWS_CONFIG names it);
  environment  no config file: every setting from AINEWS_ variables, as a container or a
               systemd unit configured by its environment alone (the storage URL, the
               [newsletter] keys, the relay and its password, the secret key);
  both         config.toml, and the secrets and an override from the environment (a systemd
               EnvironmentFile with AINEWS_SMTP__PASSWORD and AINEWS_SECRET_KEY).
The commands run in turn, A B C A B C …, RUNS times each after one warm-up round; a table
gives each one's median wall time (min–max), its median CPU time (user + system, less
disturbed by other load on the machine), and the ratios of the medians to the peer's. The
targets: --help at most 1.0x, count at most 1.5x, judged against the peer without numpy
(sqlite-utils imports numpy when it can; on a fresh machine it cannot). `python -c pass`,
the interpreter's own start, is the floor. With --repeat N the whole measurement runs N
times and the last table gives each ratio's min, median and max over the N.

Bytecode: with PYTHONDONTWRITEBYTECODE=1 an editable install compiles its modules from
source at every start, while the peer, installed in site-packages, runs from the .pyc files
pip wrote. `--bytecode env` measures the environment as it is; `cached` (the default) gives
every command the same fresh PYTHONPYCACHEPREFIX (written by the warm-up round), as a
regular install would have; `both` prints a table for each.

The console scripts are taken from the folder of this Python (so that a pyenv shim, a shell
script, is not timed), else from PATH."""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NEWSLETTER = {"name": "Startup Weekly", "from": "digest@news.example.org",
              "base_url": "https://news.example.org", "postal_address": "1 Bench Road",
              "timezone": "Europe/Berlin"}
CONFIG = "[newsletter]\n" + "".join(f'{key} = "{value}"\n' for key, value in NEWSLETTER.items())
SMTP = {"AINEWS_SMTP__HOST": "smtp.example.org", "AINEWS_SMTP__PORT": "587",
        "AINEWS_SMTP__SECURITY": "starttls", "AINEWS_SMTP__USERNAME": "digest"}
SECRETS = {"AINEWS_SMTP__PASSWORD": "not-a-real-password",
           "AINEWS_SECRET_KEY": "startup-benchmark-secret-key"}
HELP = "ainews --help"
COUNTS = {"file": "ainews subscribers count (config.toml)",
          "environment": "ainews subscribers count (environment)",
          "both": "ainews subscribers count (config.toml + environment)"}
PEER = "sqlite-utils --help"
# sqlite-utils imports numpy when it can (scipy brought it onto this machine); on a fresh
# machine it cannot. The targets are judged against this faster peer.
LEAN_PEER = "sqlite-utils --help (no numpy)"
FLOOR = "python -c pass"
TARGETS = {HELP: 1.0, **{name: 1.5 for name in COUNTS.values()}}
NO_NUMPY = "raise ImportError('numpy hidden by benchmarks/startup.py')\n"


def _script(name: str) -> str | None:
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else shutil.which(name)


def _environments(folder: Path, ainews: str, subscribers: int) -> dict[str, dict[str, str]]:
    """A newsletter in FOLDER with SUBSCRIBERS active addresses; the environment of each
    configuration, and the peers' (no AINEWS_ variable at all)."""
    (folder / "config.toml").write_text(CONFIG, encoding="utf-8")
    plain = {key: value for key, value in os.environ.items()
             if not key.upper().startswith("AINEWS_")}
    from_file = {**plain, "AINEWS_CONFIG": str(folder / "config.toml")}
    database = folder / "data" / "ainews.db"
    from_environment = {**plain, "AINEWS_STORAGE__URL": f"sqlite:///{database}", **SMTP,
                        **SECRETS, **{f"AINEWS_NEWSLETTER__{key.upper()}": value
                                      for key, value in NEWSLETTER.items()}}
    both = {**from_file, **SECRETS, "AINEWS_SMTP__PORT": "587"}
    addresses = folder / "list.csv"
    addresses.write_text("email\n" + "".join(f"reader{i}@example.org\n"
                                             for i in range(subscribers)), encoding="utf-8")
    subprocess.run([ainews, "subscribers", "import", str(addresses)], env=from_file,
                   check=True, capture_output=True)
    hidden = folder / "no-numpy"
    hidden.mkdir()
    (hidden / "numpy.py").write_text(NO_NUMPY, encoding="utf-8")
    return {HELP: plain, COUNTS["file"]: from_file, COUNTS["environment"]: from_environment,
            COUNTS["both"]: both, PEER: plain, LEAN_PEER: {**plain, "PYTHONPATH": str(hidden)},
            FLOOR: plain}


def _time(commands: dict[str, list[str]], envs: dict[str, dict[str, str]], cwd: Path,
          runs: int, extra: dict[str, str]) -> dict[str, list[tuple[float, float]]]:
    """(wall, CPU) seconds of each command, taken in turn; one untimed round first."""
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for round_ in range(runs + 1):
        for name, command in commands.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            done = subprocess.run(command, env={**envs[name], **extra}, cwd=cwd,
                                  capture_output=True)
            elapsed = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if done.returncode != 0:
                raise SystemExit(f"{name} failed ({done.returncode}): "
                                 f"{done.stderr.decode().strip()}")
            if name in COUNTS.values() and done.stdout.strip() == b"":
                raise SystemExit(f"{name} printed no count")
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            if round_:
                times[name].append((elapsed, cpu))
    return times


def _ratios(times: dict[str, list[tuple[float, float]]]) -> dict[str, tuple[float, float]]:
    """Each command's median wall and CPU time over the peer-without-numpy's."""
    lean_wall = statistics.median(wall for wall, _ in times[LEAN_PEER])
    lean_cpu = statistics.median(cpu for _, cpu in times[LEAN_PEER])
    return {name: (statistics.median(wall for wall, _ in found) / lean_wall,
                   statistics.median(cpu for _, cpu in found) / lean_cpu)
            for name, found in times.items()}


def _table(title: str, times: dict[str, list[tuple[float, float]]]) -> None:
    peer = statistics.median(wall for wall, _ in times[PEER])
    ratios = _ratios(times)
    print(f"\n{title} (load average {os.getloadavg()[0]:.2f})\n")
    print("| command | median ms | min–max ms | CPU ms | vs peer | vs peer without numpy "
          "| CPU vs peer without numpy | target |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, found in times.items():
        walls = [wall for wall, _ in found]
        median = statistics.median(walls)
        cpu = statistics.median(cpu for _, cpu in found)
        verdict = _verdict(name, ratios[name][0])
        print(f"| `{name}` | {median * 1000:.0f} | {min(walls) * 1000:.0f}–"
              f"{max(walls) * 1000:.0f} | {cpu * 1000:.0f} | {median / peer:.2f}x | "
              f"{ratios[name][0]:.2f}x | {ratios[name][1]:.2f}x | {verdict} |")


def _verdict(name: str, worst: float) -> str:
    """The target column: empty for a command without a target, else met or MISSED by
    `worst`, the ratio to the peer without numpy that must stay under it."""
    target = TARGETS.get(name)
    return "" if target is None else f"≤ {target:.1f}x {'met' if worst <= target else 'MISSED'}"


def _summary(measured: list[dict[str, tuple[float, float]]]) -> None:
    print(f"\nover {len(measured)} measurements: the ratio of each median to the peer "
          "without numpy's, min / median / max\n")
    print("| command | wall: min / median / max | CPU: min / median / max | target |")
    print("| --- | ---: | ---: | ---: |")
    for name in measured[0]:
        walls = sorted(ratios[name][0] for ratios in measured)
        cpus = sorted(ratios[name][1] for ratios in measured)
        verdict = _verdict(name, max(walls))
        print(f"| `{name}` | {walls[0]:.2f} / {statistics.median(walls):.2f} / "
              f"{walls[-1]:.2f} | {cpus[0]:.2f} / {statistics.median(cpus):.2f} / "
              f"{cpus[-1]:.2f} | {verdict} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--bytecode", choices=["env", "cached", "both"], default="cached")
    args = parser.parse_args()
    ainews, peer = _script("ainews"), _script("sqlite-utils")
    if peer is None:
        raise SystemExit("needs the peer `sqlite-utils` on PATH: pip install sqlite-utils")
    if ainews is None:
        raise SystemExit("needs `ainews` on PATH: pip install -e .")
    count = [ainews, "subscribers", "count"]
    commands = {HELP: [ainews, "--help"], PEER: [peer, "--help"],
                **{name: count for name in COUNTS.values()},
                LEAN_PEER: [peer, "--help"], FLOOR: [sys.executable, "-c", "pass"]}
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {args.runs} runs each, "
          f"{args.subscribers:,} subscribers; ainews: {ainews}; peer: {peer}")
    modes = {"env": "environment as it is (PYTHONDONTWRITEBYTECODE="
                    f"{os.environ.get('PYTHONDONTWRITEBYTECODE') or 'unset'})",
             "cached": "bytecode cached for every command (a fresh PYTHONPYCACHEPREFIX)"}
    with tempfile.TemporaryDirectory(prefix="ainews-startup-") as scratch:
        folder = Path(scratch)
        envs = _environments(folder, ainews, args.subscribers)
        # The working folder has no config.toml: the environment-only count must not
        # find one there.
        cwd = folder / "elsewhere"
        cwd.mkdir()
        for mode in (["env", "cached"] if args.bytecode == "both" else [args.bytecode]):
            extra = ({} if mode == "env" else
                     {"PYTHONPYCACHEPREFIX": str(folder / "pycache"),
                      "PYTHONDONTWRITEBYTECODE": ""})
            measured = []
            for repeat in range(args.repeat):
                times = _time(commands, envs, cwd, args.runs, extra)
                _table(f"{modes[mode]}, measurement {repeat + 1} of {args.repeat}", times)
                measured.append(_ratios(times))
            if args.repeat > 1:
                _summary(measured)


if __name__ == "__main__":
    main()
