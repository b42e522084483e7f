"""The welcome mail through a real `ainews serve` process and a real aiosmtpd, on SQLite and
PostgreSQL: it arrives exactly once after the confirmation, also when `serve` is killed
with SIGKILL while the welcome is on its way (the next start sends it), and when the
process died between the confirmation's commit and the welcome's queueing."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import dkim
import pytest

from ainews_newsletter.config import Config, load_config
from ainews_newsletter.database import dispose_all
from ainews_newsletter.pipeline.issue import open_subscribers
from ainews_newsletter.subscribers.signups import SignUps
from ainews_newsletter.web.security import CSRF_COOKIE, CSRF_FIELD
from tests.conftest import Project, SmtpServer, running_smtp_server, smtp_env
from tests.doctor.test_dkim_keygen import dns_for, record_of
from tests.web.conftest import free_port, serve_environment, wait_for_health
from tests.web.test_welcome import (
    DKIM_SECTION,
    SECRET,
    WELCOME_ON,
    parsed,
    pending_link,
    welcomes_to,
)

# Run again under libfaketime at awkward dates by scripts/test-clocks.
pytestmark = pytest.mark.clock


def _config(project: Project, server: SmtpServer) -> Config:
    environ = {**smtp_env(server), "AINEWS_SECRET_KEY": SECRET}
    if project.storage_url is not None:
        environ["AINEWS_STORAGE__URL"] = project.storage_url
    return load_config(project.config_path, environ=environ)


def _wait_until(condition: Callable[[], bool], process: subprocess.Popen[bytes] | None = None,
                timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            raise AssertionError("ainews serve stopped:\n"
                                 + process.communicate()[0].decode("utf-8", "replace"))
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@contextmanager
def _serving(project: Project, server: SmtpServer,
             **env: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`ainews serve` on a free port, once /healthz answers; stopped (if still running) on
    leaving."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "ainews_newsletter", "--config", str(project.config_path),
         "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=serve_environment(project, server, **env), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(process, base)
        yield base, process
    finally:
        if process.poll() is None:
            process.terminate()
        process.communicate(timeout=60)


def _confirm(base: str, path: str) -> int:
    """The confirmation page's GET (for its CSRF cookie), then its button's POST."""
    with urllib.request.urlopen(base + path, timeout=30) as page:
        cookies = page.headers.get_all("Set-Cookie") or []
    [csrf] = [cookie.split(";", 1)[0].split("=", 1)[1] for cookie in cookies
              if cookie.startswith(f"{CSRF_COOKIE}=")]
    request = urllib.request.Request(
        base + path, data=urllib.parse.urlencode({CSRF_FIELD: csrf}).encode(),
        headers={"Cookie": f"{CSRF_COOKIE}={csrf}"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as answer:
        return int(answer.status)


def _rows(project: Project) -> list[tuple[Any, ...]]:
    return project.query("SELECT email, state, attempts FROM welcomes ORDER BY id")


def test_the_welcome_arrives_once_after_confirmation(any_project: Project,
                                                     smtp_server: SmtpServer) -> None:
    any_project.write_config(DKIM_SECTION + WELCOME_ON)
    made = any_project.run("dkim", "keygen", "--selector", "s1")
    assert made.exit_code == 0, made.output
    dnsfunc = dns_for(*record_of(made.output))
    path = pending_link(_config(any_project, smtp_server), "ada@example.com", "Ada")
    dispose_all()
    with _serving(any_project, smtp_server) as (base, process):
        assert _confirm(base, path) == 200
        _wait_until(lambda: _rows(any_project) == [("ada@example.com", "sent", 1)], process)
        assert _confirm(base, path) == 200  # confirmed again: no second welcome
    [received] = welcomes_to(smtp_server)
    assert received.rcpt_tos == ["ada@example.com"]
    assert dkim.verify(received.data, dnsfunc=dnsfunc)
    [(token,)] = any_project.query("SELECT token FROM subscribers")
    message = parsed(received)
    assert f"<https://news.example.org/unsubscribe/{token}>" in message["List-Unsubscribe"]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    body = message.get_body(("plain",))
    assert body is not None and body.get_content().splitlines()[0] == "Hello Ada,"
    assert _rows(any_project) == [("ada@example.com", "sent", 1)]


def test_sigkill_between_confirmation_and_welcome_still_welcomes_once(
        any_project: Project) -> None:
    """The relay takes the welcome's envelope and then stalls; `serve` is killed (-9) with
    the welcome claimed and unsent. The next start, with a working relay, sends it once
    its claim is older than claim_timeout_seconds: one welcome in all."""
    any_project.write_config(WELCOME_ON)
    lease = {"AINEWS_DELIVERY__CLAIM_TIMEOUT_SECONDS": "1"}
    with running_smtp_server() as stalling, running_smtp_server() as working:
        path = pending_link(_config(any_project, stalling), "ada@example.com", "Ada")
        dispose_all()
        stalling.handler.data_delay = 3600  # takes the message, answers in an hour
        arrived: list[str] = []
        stalling.handler.on_rcpt = arrived.append
        with _serving(any_project, stalling, **lease) as (base, process):
            assert _confirm(base, path) == 200
            _wait_until(lambda: arrived == ["ada@example.com"], process)
            assert _rows(any_project) == [("ada@example.com", "sending", 1)]
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        assert stalling.handler.messages == []  # the stalled relay never accepted it
        with _serving(any_project, working, **lease) as (base, process):
            _wait_until(lambda: _rows(any_project) == [("ada@example.com", "sent", 2)],
                        process)
            assert _confirm(base, path) == 200  # and confirming again changes nothing
        assert [received.rcpt_tos for received in welcomes_to(working)] == [
            ["ada@example.com"]]
        assert _rows(any_project) == [("ada@example.com", "sent", 2)]


def test_a_confirmation_whose_welcome_was_never_queued_is_welcomed_at_the_next_start(
        any_project: Project, smtp_server: SmtpServer) -> None:
    """The process committed the confirmation and died before queueing the welcome: `serve`
    finds the web reader without one when it starts, and welcomes them."""
    any_project.write_config(WELCOME_ON)
    config = _config(any_project, smtp_server)
    signups = SignUps(open_subscribers(config))
    signups.sign_up("bo@example.com", "Bo", None)
    signups.confirm("bo@example.com")
    dispose_all()
    with _serving(any_project, smtp_server) as (_, process):
        _wait_until(lambda: _rows(any_project) == [("bo@example.com", "sent", 1)], process)
    assert [received.rcpt_tos for received in welcomes_to(smtp_server)] == [
        ["bo@example.com"]]


def test_the_scheduler_sends_the_welcomes_that_wait(any_project: Project,
                                                    smtp_server: SmtpServer) -> None:
    """`ainews schedule run`: a web reader whose welcome was never queued, and a welcome an
    import left queued with the server down, both go out in its first round."""
    any_project.write_config(WELCOME_ON)
    config = _config(any_project, smtp_server)
    signups = SignUps(open_subscribers(config))
    signups.sign_up("web@example.com", None, None)
    signups.confirm("web@example.com")
    csv_file = any_project.root / "list.csv"
    csv_file.write_text("email\nimported@example.com\n", encoding="utf-8")
    down = {"AINEWS_SMTP__HOST": "127.0.0.1", "AINEWS_SMTP__PORT": str(free_port())}
    assert any_project.run("subscribers", "import", str(csv_file), "--welcome",
                           env=down).exit_code == 1
    # Its retry time come (NULL: due now; another process's clock may be behind ours).
    any_project.query("UPDATE welcomes SET next_attempt_at = NULL")
    dispose_all()
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "ainews_newsletter", "--config", str(any_project.config_path),
         "schedule", "run"], env=serve_environment(any_project, smtp_server),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_until(lambda: sorted(_rows(any_project)) == [
            ("imported@example.com", "sent", 1), ("web@example.com", "sent", 1)], scheduler)
    finally:
        scheduler.send_signal(signal.SIGTERM)
        log = scheduler.communicate(timeout=60)[0].decode("utf-8", "replace")
    assert scheduler.returncode == 0, log
    assert "Traceback" not in log and "welcomes: sent 2" in log
    assert sorted(r.rcpt_tos[0] for r in welcomes_to(smtp_server)) == [
        "imported@example.com", "web@example.com"]
