"""Running a web app for a real browser: uvicorn on 127.0.0.1 and a free port, in a thread
that stops when the test ends."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from tests.conftest import Project, SmtpServer, smtp_env

SERVE_SECRET = "test-secret-key-of-enough-length"  # AINEWS_SECRET_KEY of `ainews serve` in tests


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def served(app: Any, port: int | None = None) -> Iterator[str]:
    """Yields the base URL (http://127.0.0.1:PORT) while uvicorn serves `app`."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def serve_environment(project: Project, server: SmtpServer, **extra: str) -> dict[str, str]:
    """The environment an `ainews serve` (or `schedule run`) process of a test runs with:
    the test's SMTP server, the secret key, the project's database, SpamAssassin off."""
    env = {**os.environ, **smtp_env(server), "AINEWS_SECRET_KEY": SERVE_SECRET,
           "AINEWS_LINT__SPAMASSASSIN": "false", **extra}
    if project.storage_url is not None:
        env["AINEWS_STORAGE__URL"] = project.storage_url
    return env


def wait_for_health(process: subprocess.Popen[bytes], base: str, timeout: float = 60) -> None:
    """Returns once `base`/healthz answers 200; fails with the process's output when it
    exits first, or after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=5) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        assert process.poll() is None, process.communicate()[0].decode()
        assert time.monotonic() < deadline, "ainews serve did not start"
        time.sleep(0.1)
