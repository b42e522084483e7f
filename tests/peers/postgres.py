"""A private PostgreSQL cluster: Debian's binaries (./scripts/test installs them), a throwaway
data folder, its socket in that folder, and TCP only when asked. The suite's shared database
(tests/conftest.py), the restart tests (which stop and start their own) and the PostgreSQL
benchmarks all start one the same way, here.

No pytest at import: the benchmarks use it too. A missing installation raises `Missing`,
which a fixture turns into a failure and a benchmark into its exit message."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

# What the suite trades for speed: a throwaway cluster needs no durability.
UNSAFE_FAST = ("-c fsync=off -c synchronous_commit=off -c full_page_writes=off")


class Missing(RuntimeError):
    """Debian's postgresql is not installed."""


def binaries() -> Path:
    """The newest installed PostgreSQL's bin folder."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        raise Missing("PostgreSQL is missing: ./scripts/test installs Debian's postgresql "
                      "(apt-get install postgresql)")
    return found[-1].parent


class PrivateCluster:
    """initdb'd at construction (as the postgres user when run as root: initdb refuses
    root), started and stopped by `pg_ctl`, removed by `close`. `settings` are extra
    `-c name=value` server options; `listen` is the TCP address ('' for the socket only)."""

    def __init__(self, port: int, prefix: str = "ainews-pg-", listen: str = "",
                 settings: str = "", fast: bool = False,
                 environ: Mapping[str, str] | None = None) -> None:
        self.binaries = binaries()
        self.root = Path(tempfile.mkdtemp(prefix=prefix))
        self.root.chmod(0o755)
        self.run_as: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            self.run_as = ["runuser", "-u", "postgres", "--"]
        self.data, self.port, self.listen = self.root / "data", port, listen
        self.environ = dict(environ) if environ is not None else None
        self.options = " ".join(part for part in (
            f"-c listen_addresses='{listen}' -k {self.root} -p {port}",
            UNSAFE_FAST if fast else "", settings) if part)
        try:
            subprocess.run([*self.run_as, str(self.binaries / "initdb"), "-D", str(self.data),
                            "-A", "trust", "-U", "ainews", "-E", "UTF8",
                            *(["--no-sync"] if fast else [])],
                           check=True, capture_output=True)
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run([*self.run_as, str(self.binaries / "pg_ctl"), "-D", str(self.data),
                        "-o", self.options, "-l", str(self.root / "log"), "-w", "-t", "60",
                        *args], check=True, capture_output=True, timeout=90, env=self.environ)

    def start(self) -> None:
        self._pg_ctl("start")

    def stop(self, mode: str = "fast") -> None:
        """"fast" ends every session ("terminating connection due to administrator
        command"), as a failover or a minor upgrade does; "immediate" does not wait."""
        self._pg_ctl("stop", "-m", mode)

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def create_database(self, name: str) -> str:
        """A new empty database; its SQLAlchemy URL (over TCP when the cluster listens)."""
        import psycopg

        host = self.listen or str(self.root)
        with psycopg.connect(host=host, port=self.port, user="ainews", dbname="postgres",
                             autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        if self.listen:
            return f"postgresql+psycopg://ainews@{self.listen}:{self.port}/{name}"
        return f"postgresql+psycopg://ainews@/{name}?host={self.root}&port={self.port}"

    def close(self, mode: str = "immediate") -> None:
        """Stop (not checked: it may be stopped already) and remove the data folder."""
        subprocess.run([*self.run_as, str(self.binaries / "pg_ctl"), "-D", str(self.data),
                        "-m", mode, "stop"], check=False, capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)
