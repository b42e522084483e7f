"""`ainews serve` as a real process beside a real `ainews send` process: what TestClient
cannot show (two processes writing one database at once)."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from tests.conftest import Project, SmtpServer
from tests.web.conftest import free_port, serve_environment, wait_for_health

# Run again under libfaketime at awkward dates by scripts/test-clocks.
pytestmark = pytest.mark.clock

SECRET = "test-secret-key-of-enough-length"


@dataclass
class Served:
    base: str
    port: int
    log: str = ""  # what the server printed, once it has stopped


@contextmanager
def _serving(project: Project, server: SmtpServer, **env: str) -> Iterator[Served]:
    """`ainews serve` on a free port; yields once /healthz answers, collects its log after
    it stopped."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "ainews_newsletter", "--config", str(project.config_path),
         "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=serve_environment(project, server, **env), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    served = Served(f"http://127.0.0.1:{port}", port)
    try:
        wait_for_health(process, served.base)
        yield served
    finally:
        process.terminate()
        served.log = process.communicate(timeout=30)[0].decode("utf-8", "replace")


def _one_click(base: str, token: str) -> int:
    request = urllib.request.Request(f"{base}/unsubscribe/{token}",
                                     data=b"List-Unsubscribe=One-Click", method="POST")
    with urllib.request.urlopen(request, timeout=30) as answer:
        return int(answer.status)


def test_nobody_gets_the_issue_after_a_one_click_unsubscribe_mid_send(
        any_project: Project, smtp_server: SmtpServer) -> None:
    """A rate-limited send (5 a second) of 40 readers; while it runs, the last 20 leave by
    one-click POSTs to the public server. Each is asked at their claim, in the claim's
    transaction: none of them gets the issue (it used to be checked once per batch, so
    all 20 got it)."""
    addresses = any_project.import_readers(40)
    tokens = dict(any_project.query("SELECT email, token FROM subscribers"))
    leaving = addresses[20:]
    with _serving(any_project, smtp_server) as served:
        sender = subprocess.Popen(
            [sys.executable, "-m", "ainews_newsletter", "--config",
             str(any_project.config_path), "send", "--yes", "--week", "2026-W47"],
            env=serve_environment(any_project, smtp_server, AINEWS_SMTP__RATE_PER_SECOND="5"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while len(smtp_server.handler.messages) < 2:
            assert sender.poll() is None, sender.communicate()
            assert time.monotonic() < deadline, "the send never got going"
            time.sleep(0.02)
        for address in leaving:
            assert _one_click(served.base, tokens[address]) == 200
        # They all left while the send was still on the first half of the list (else this
        # machine was too slow for the test to mean anything: 18 messages take 3.6 s).
        assert len(smtp_server.handler.messages) < 19
        _, stderr = sender.communicate(timeout=120)
    assert sender.returncode == 0, stderr.decode()
    received = smtp_server.recipients()
    assert sorted(received) == addresses[:20]
    assert any_project.query(
        "SELECT count(*) FROM deliveries WHERE state = 'failed' AND last_reply = ?",
        "not sent: no longer an active subscriber") == [(20,)]


def _raw_connection(served: Served) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", served.port), timeout=30)
    return connection


def _closed_by_server(connection: socket.socket) -> bool:
    """Reads until the server closes (True) or 30 s pass (False)."""
    try:
        while connection.recv(4096):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


def test_a_client_that_hangs_up_mid_body_costs_one_log_line(project: Project,
                                                             smtp_server: SmtpServer) -> None:
    with _serving(project, smtp_server) as served:
        for _ in range(3):
            with _raw_connection(served) as connection:
                connection.sendall(b"POST /subscribe HTTP/1.1\r\nHost: x\r\n"
                                   b"Content-Type: application/x-www-form-urlencoded\r\n"
                                   b"Content-Length: 1000\r\n\r\nemail=a%40exa")
        time.sleep(1)  # let the server notice
        assert _one_click_status(served.base, "no-such-token") == 400  # still serving
    assert "Traceback" not in served.log and "Exception in ASGI" not in served.log
    assert 1 <= served.log.count("client disconnected") <= 3  # one line each at most


def _one_click_status(base: str, token: str) -> int:
    try:
        return _one_click(base, token)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_requests_must_arrive_in_time(project: Project,
                                             smtp_server: SmtpServer) -> None:
    """Slowloris: headers or a body trickling in keep a connection only for [web]
    request_timeout_seconds."""
    with _serving(project, smtp_server, AINEWS_WEB__REQUEST_TIMEOUT_SECONDS="1") as served:
        with _raw_connection(served) as connection:
            started = time.monotonic()
            connection.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            for _ in range(4):  # a header line now and then, never the blank line
                time.sleep(0.4)
                try:
                    connection.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    break
            assert _closed_by_server(connection)
            assert time.monotonic() - started < 15
        with _raw_connection(served) as connection:  # and a body that never ends
            started = time.monotonic()
            connection.sendall(b"POST /subscribe HTTP/1.1\r\nHost: x\r\n"
                               b"Content-Type: application/x-www-form-urlencoded\r\n"
                               b"Content-Length: 100\r\n\r\nemail=")
            assert _closed_by_server(connection)
            assert time.monotonic() - started < 15
        # A normal request on a normal connection is unaffected.
        with urllib.request.urlopen(f"{served.base}/healthz", timeout=10) as answer:
            assert answer.status == 200


def test_a_chunked_body_over_the_cap_is_refused_before_it_is_read_whole(
        project: Project, smtp_server: SmtpServer) -> None:
    with _serving(project, smtp_server) as served:
        with _raw_connection(served) as connection:
            connection.sendall(b"POST /subscribe HTTP/1.1\r\nHost: x\r\n"
                               b"Content-Type: application/x-www-form-urlencoded\r\n"
                               b"Transfer-Encoding: chunked\r\n\r\n")
            chunk = b"x" * 65536
            # Two chunks, over the 64 KiB cap, and then nothing: the body never ends. A
            # server that read bodies whole would still be waiting for the rest.
            connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk) * 2)
            answer = connection.recv(4096)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:100]


def test_tokens_are_masked_in_the_access_log(project: Project,
                                             smtp_server: SmtpServer) -> None:
    project.import_readers(1)
    [(token,)] = project.query("SELECT token FROM subscribers")
    with (_serving(project, smtp_server) as served,
          urllib.request.urlopen(f"{served.base}/unsubscribe/{token}", timeout=10) as page):
        assert page.status == 200
    assert "GET /unsubscribe/… HTTP/1.1" in served.log
    assert token not in served.log


def test_concurrent_sign_ups_of_one_address_are_quiet(project: Project,
                                                      smtp_server: SmtpServer) -> None:
    with _serving(project, smtp_server,
                  AINEWS_WEB__CONFIRMATIONS_PER_ADDRESS_PER_DAY="20") as served:
        with urllib.request.urlopen(f"{served.base}/", timeout=10) as home:
            csrf = re.search(rb'name="csrf" value="([^"]+)"', home.read())
        assert csrf is not None  # the cookie is Secure (base_url is https): sent by hand
        body = b"email=same%40example.com&csrf=" + csrf.group(1)
        cookie = f"ainews_csrf={csrf.group(1).decode()}"
        statuses: list[int] = []

        def sign_up() -> None:
            request = urllib.request.Request(f"{served.base}/subscribe", data=body,
                                             headers={"Cookie": cookie})
            with urllib.request.urlopen(request, timeout=30) as answer:
                statuses.append(answer.status)

        threads = [threading.Thread(target=sign_up) for _ in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        deadline = time.monotonic() + 30
        while not smtp_server.handler.messages:
            assert time.monotonic() < deadline, "no confirmation mail"
            time.sleep(0.05)
        time.sleep(0.5)  # the other sign-ups' background work
    assert statuses == [200] * 10
    assert project.query("SELECT count(*) FROM subscribers") == [(1,)]
    assert "UNIQUE" not in served.log and "Traceback" not in served.log, served.log
