"""`ainews serve`'s pages are the newsletter's own: `templates/web/<name>.html` beside the
config overrides the shipped page file by file, `[web] tagline` is the subscribe page's
pitch; and a confirmation mail that is not sent leaves one line in the log, address masked,
never a traceback for a refusal or a server that is down."""

from __future__ import annotations

import logging
import re
import textwrap
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from ainews_newsletter.config import Config, WebConfig, load_config
from ainews_newsletter.resources import shipped
from ainews_newsletter.web.public import create_public_app
from ainews_newsletter.web.security import CSRF_COOKIE, mask_address
from tests.conftest import Project, SmtpServer, smtp_env
from tests.web.test_serve_process import _serving

SECRET = "test-secret-key-of-enough-length"
DEFAULT_TAGLINE = WebConfig().tagline


def _config(project: Project, server: SmtpServer, **env: str) -> Config:
    return load_config(project.config_path, environ={**smtp_env(server),
                                                     "AINEWS_SECRET_KEY": SECRET, **env})


def _client(config: Config) -> TestClient:
    return TestClient(create_public_app(config), base_url="https://testserver",
                      follow_redirects=False)


def _override(project: Project, name: str, text: str) -> Path:
    path = project.root / "templates" / "web" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _sign_up(client: TestClient, address: str) -> str:
    assert client.get("/").status_code == 200
    answer = client.post("/subscribe", data={"email": address,
                                             "csrf": client.cookies.get(CSRF_COOKIE) or ""})
    assert answer.status_code == 200
    return answer.text


# -- templates ------------------------------------------------------------------------------

def test_the_shipped_web_pages_are_the_repositorys_templates_web() -> None:
    """One copy: the folder users copy is the one the package serves."""
    folder = shipped("templates") / "web"
    assert (folder / "subscribe.html").is_file() and (folder / "base.html").is_file()


def test_an_override_beside_the_config_is_used_and_the_rest_is_shipped(
        project: Project, smtp_server: SmtpServer) -> None:
    _override(project, "subscribe.html", """\
        {% extends "base.html" %}
        {% block main %}<h1 id="ours">Join {{ newsletter.name }}</h1>
        <form method="post" action="/subscribe">
          <input type="hidden" name="{{ csrf_field }}" value="{{ csrf }}">
          <input name="email"></form>{% endblock %}
        """)
    client = _client(_config(project, smtp_server))
    page = client.get("/")
    assert page.status_code == 200 and '<h1 id="ours">Join Test Digest</h1>' in page.text
    assert DEFAULT_TAGLINE not in page.text  # the shipped subscribe.html was not used
    assert "1 Test Road, Testville" in page.text  # ...but the shipped base.html it extends was
    # The form still works: the override carries the CSRF token.
    assert "Check your inbox" in _sign_up(client, "ada@example.com")
    archive = client.get("/issues/")  # not overridden: the shipped page
    assert archive.status_code == 200 and "No issue has been sent yet." in archive.text


def test_without_an_override_the_shipped_page_is_served(
        project: Project, smtp_server: SmtpServer) -> None:
    # A templates/ folder for the email only (no web/) must not hide the shipped pages.
    (project.root / "templates" / "partials").mkdir(parents=True)
    page = _client(_config(project, smtp_server)).get("/")
    assert page.status_code == 200
    assert "Subscribe to Test Digest" in page.text and DEFAULT_TAGLINE in page.text


def test_the_tagline_comes_from_the_config_and_is_escaped(
        project: Project, smtp_server: SmtpServer) -> None:
    project.write_config('[web]\ntagline = "Robots, <b>weekly</b> & briefly."\n')
    page = _client(_config(project, smtp_server)).get("/")
    assert page.status_code == 200
    assert "Robots, &lt;b&gt;weekly&lt;/b&gt; &amp; briefly." in page.text
    assert "<b>weekly" not in page.text and DEFAULT_TAGLINE not in page.text


def test_a_broken_override_stops_serve_at_start_up_naming_the_file(
        project: Project) -> None:
    path = _override(project, "subscribe.html", """\
        {% extends "base.html" %}
        {% block main %}{{ newsletter.name }{% endblock %}
        """)
    # An address no interface has: were the error missed, serve would fail to listen at
    # once instead of serving for ever.
    result = project.run("serve", "--host", "192.0.2.1", env={"AINEWS_SECRET_KEY": SECRET})
    assert result.exit_code == 1
    assert f"{path}:2: template syntax error" in result.output
    assert "Traceback" not in result.output and "Serving" not in result.output


def test_an_override_that_fails_while_rendering_is_one_log_line_and_a_500(
        project: Project, smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture) -> None:
    """A syntax error is caught at start-up; a call on something undefined only shows when
    the page is rendered: the reader gets a 500, the log one line naming file and line."""
    path = _override(project, "subscribe.html", """\
        {% extends "base.html" %}
        {% block main %}
        {{ nothing.call() }}
        {% endblock %}
        """)
    client = _client(_config(project, smtp_server))
    caplog.set_level(logging.INFO, logger="ainews")
    page = client.get("/")
    assert page.status_code == 500 and "Something went wrong" in page.text
    [record] = [r for r in caplog.records if r.name.startswith("ainews")]
    assert f"{path}:3: UndefinedError" in record.getMessage()
    assert record.exc_info is None
    assert client.get("/issues/").status_code == 200  # the other pages still work


# -- confirmation mails not sent ------------------------------------------------------------

def test_mask_address_keeps_the_domain_only() -> None:
    assert mask_address("jo.smith@example.com") == "j***@example.com"
    assert mask_address("not-an-address") == "***"


def test_a_refused_confirmation_mail_is_one_masked_log_line(
        project: Project, smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture) -> None:
    smtp_server.handler.replies["jo.smith@example.com"] = "550 5.1.1 No such user"
    client = _client(_config(project, smtp_server))
    caplog.set_level(logging.INFO, logger="ainews")
    assert "Check your inbox" in _sign_up(client, "jo.smith@example.com")
    [record] = [r for r in caplog.records if r.name.startswith("ainews")]
    line = record.getMessage()
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert "j***@example.com" in line and "550" in line and "No such user" in line
    assert "jo.smith" not in caplog.text
    [(status,)] = project.query("SELECT status FROM subscribers WHERE email = ?",
                                "jo.smith@example.com")
    assert status == "pending"


def test_a_sent_confirmation_mail_logs_nothing(
        project: Project, smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture) -> None:
    client = _client(_config(project, smtp_server))
    caplog.set_level(logging.INFO, logger="ainews")
    _sign_up(client, "ok@example.com")
    assert smtp_server.recipients() == ["ok@example.com"]
    assert not [r for r in caplog.records if r.name.startswith("ainews")]


def _post_sign_up(base: str, address: str) -> str:
    """GET / for the CSRF cookie and field, then POST the form, as a browser does."""
    with urllib.request.urlopen(f"{base}/", timeout=30) as page:
        cookie = page.headers["set-cookie"].split(";", 1)[0]
        found = re.search(r'name="csrf" value="([^"]+)"', page.read().decode())
    assert found
    body = urllib.parse.urlencode({"email": address, "csrf": found.group(1)}).encode()
    request = urllib.request.Request(f"{base}/subscribe", data=body,
                                     headers={"Cookie": cookie}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 200
        return str(answer.read().decode())


def test_serve_with_the_smtp_server_down_logs_one_line_without_a_traceback(
        project: Project, smtp_server: SmtpServer, unused_port: int) -> None:
    with _serving(project, smtp_server, AINEWS_SMTP__PORT=str(unused_port)) as served:
        answer = _post_sign_up(served.base, "jo.smith@example.com")
    assert "Check your inbox" in answer  # the reader's answer is the usual one
    lines = [line for line in served.log.splitlines() if "ainews.web" in line]
    assert len(lines) == 1, served.log
    assert "j***@example.com" in lines[0] and f"127.0.0.1:{unused_port}" in lines[0]
    assert "Traceback" not in served.log and "jo.smith" not in served.log
