"""Real mail servers (Postfix, Dovecot) started privately on 127.0.0.1 for the tests.

Both daemons detach into a session of their own; what is here finds every process of such a
session so that a fixture leaves nothing running. Every wait is a bounded `time.sleep` loop:
the suite also runs under libfaketime, where threading waits with a timeout can hang."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path


def free_port() -> int:
    """A loopback TCP port nobody listens on right now (the server binds it a moment later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def session_members(session: int) -> list[int]:
    """The pids whose session id is `session` (a daemon's master calls setsid())."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # "pid (comm) state ppid pgrp session …": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 3 and int(fields[3]) == session and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def wait_until(check: Callable[[], object], timeout: float, step: float = 0.1) -> bool:
    """Poll `check()` (a callable returning truth) until true or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)


def end_session(session: int, timeout: float = 10.0) -> list[int]:
    """Wait for the session's processes to leave after a polite stop; SIGKILL what stays.
    Returns the pids that had to be killed (empty: the server stopped cleanly)."""
    if wait_until(lambda: not session_members(session), timeout):
        # The leader, orphaned, stays a zombie until init reaps it: give that a moment so a
        # `pgrep` right after the tests finds nothing.
        wait_until(lambda: not Path(f"/proc/{session}").exists(), 2.0)
        return []
    stubborn = session_members(session)
    for pid in stubborn:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not session_members(session), 5.0)
    return stubborn


def listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1:`port` (or on all addresses), read from
    /proc/net/tcp rather than by connecting: a probe connection would keep a login process
    of the server busy, and Dovecot then takes seconds to stop."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        address, _, hex_port = fields[1].partition(":")
        if (int(hex_port, 16) == port and fields[3] == "0A"
                and address in ("0100007F", "00000000")):
            return True
    return False


def system_binary(name: str, package: str) -> str:
    """The Debian program `name` (in PATH or /usr/sbin), or fail saying what installs it."""
    import pytest

    found = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists()
                                   else None)
    if found is None:
        pytest.fail(f"{name} is missing: ./scripts/test installs Debian's {package}")
    return found


def read_pid(path: Path) -> int | None:
    """A daemon's pid file, or None while it is absent or half written."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def open_to_daemon_users(tmp: Path, daemon: str) -> None:
    """Daemons drop to their own users, which must reach `tmp`: every parent folder must be
    searchable by others (pytest's tmp_path is not; a mkdtemp in /tmp is)."""
    import pytest

    tmp.chmod(0o755)
    for folder in tmp.parents:
        if not folder.stat().st_mode & 0o001:
            pytest.fail(f"{folder} is not searchable by others; {daemon}'s users cannot reach "
                        f"{tmp} (use tempfile.mkdtemp, as the {daemon.lower()}_peer fixture "
                        "does)")


def await_stopped(pid: int, daemon: str, log: Callable[[], str]) -> None:
    """After asking a daemon to stop: the master detached into a session of its own, so
    wait for the whole session; leftovers are killed and the test fails with the log."""
    killed = end_session(pid, timeout=15)
    if killed:
        raise AssertionError(f"{daemon} processes {killed} did not stop when asked and were "
                             f"killed; log:\n{log()}")
