"""For the tests of the sign-up forms (test_embed_form.py, test_bots.py): `ainews serve` as a
real process on a port chosen first (so base_url can name it), a second site on another
local origin serving static pages, and waiting for the confirmation mails."""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import Project, SmtpServer, smtp_env
from tests.web.conftest import free_port, wait_for_health

SECRET = "test-secret-key-of-enough-length"


@dataclass
class Served:
    base: str
    log: str = ""  # what the server printed, once it has stopped


def serve_environment(project: Project, server: SmtpServer, base: str,
                      **extra: str) -> dict[str, str]:
    env = {**os.environ, **smtp_env(server), "AINEWS_SECRET_KEY": SECRET,
           "AINEWS_NEWSLETTER__BASE_URL": base, **extra}
    if project.storage_url is not None:
        env["AINEWS_STORAGE__URL"] = project.storage_url
    return env


@contextmanager
def serving(project: Project, server: SmtpServer, **env: str) -> Iterator[Served]:
    """`ainews serve` on 127.0.0.1 and a free port, base_url pointing at it; yields once
    /healthz answers."""
    port = free_port()
    served = Served(f"http://127.0.0.1:{port}")
    process = subprocess.Popen(
        [sys.executable, "-m", "ainews_newsletter", "--config", str(project.config_path),
         "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=serve_environment(project, server, served.base, **env),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for_health(process, served.base)
        yield served
    finally:
        process.terminate()
        served.log = process.communicate(timeout=30)[0].decode("utf-8", "replace")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def another_site(folder: Path, host: str = "localhost") -> Iterator[str]:
    """The files of `folder` served on a free port; yields the site's origin. "localhost"
    is another site than 127.0.0.1 to a browser (not only another origin), as the operator's
    blog is another site than their newsletter's."""
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def page_around(body: str, title: str = "A blog post") -> str:
    """An operator's page with a pasted snippet in it."""
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}'
            f"</title></head>\n<body><h1>{title}</h1>\n{body}\n</body></html>\n")


def wait_for_mail(server: SmtpServer, address: str, timeout: float = 30) -> None:
    """Until a message to `address` arrived (the mail goes after the response)."""
    deadline = time.monotonic() + timeout
    while address not in server.recipients():
        assert time.monotonic() < deadline, f"no mail to {address}: {server.recipients()}"
        time.sleep(0.05)


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """A POST without following redirects: (status, headers in lower case, body)."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with opener.open(request, timeout=30) as answer:
            return answer.status, _lower(answer.headers.items()), answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, _lower(exc.headers.items()), exc.read()


def _lower(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers}
