"""With [dkim] set every message the project sends is signed, not only the issue: the
double opt-in confirmation (through the real public app), `ainews send --to` test copies
and the draft copies the scheduler mails to [schedule] notify. Each verifies with dkimpy
against the record `ainews dkim keygen` printed, over a real aiosmtpd."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import dkim
import pytest
from starlette.testclient import TestClient

from ainews_newsletter import clock
from ainews_newsletter.config import load_config
from ainews_newsletter.web.public import create_public_app
from ainews_newsletter.web.security import CSRF_COOKIE
from tests.conftest import Project, SmtpServer, smtp_env
from tests.doctor.test_dkim_keygen import dns_for, record_of

DKIM_SECTION = ('[dkim]\nselector = "s1"\ndomain = "news.example.org"\n'
                'private_key_path = "dkim/s1.private.pem"\n')


@pytest.fixture
def signing_project(project: Project) -> tuple[Project, object]:
    """The project signing with a key `ainews dkim keygen` made; and a stand-in for DNS
    serving the record it printed."""
    project.write_config(DKIM_SECTION)
    made = project.run("dkim", "keygen", "--selector", "s1")
    assert made.exit_code == 0, made.output
    name, record = record_of(made.output)
    return project, dns_for(name, record)


def _assert_signed(data: bytes, dnsfunc: object) -> None:
    assert data.startswith(b"DKIM-Signature:"), data[:200]
    assert dkim.verify(data, dnsfunc=dnsfunc)
    tampered = data.replace(b"Subject: ", b"Subject: Re: ", 1)
    assert not dkim.verify(tampered, dnsfunc=dnsfunc)  # the signature covers the Subject


def test_the_confirmation_mail_is_signed(signing_project: tuple[Project, object],
                                         smtp_server: SmtpServer) -> None:
    project, dnsfunc = signing_project
    config = load_config(project.config_path, environ={
        **smtp_env(smtp_server), "AINEWS_SECRET_KEY": "test-secret-key-of-enough-length"})
    client = TestClient(create_public_app(config), base_url="https://testserver",
                        follow_redirects=False)
    assert client.get("/").status_code == 200
    answer = client.post("/subscribe", data={"email": "ada@example.com",
                                             "csrf": client.cookies.get(CSRF_COOKIE)})
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    [received] = smtp_server.handler.messages
    assert received.rcpt_tos == ["ada@example.com"]
    assert "Confirm your subscription" in str(received.message["Subject"])
    _assert_signed(received.data, dnsfunc)


def test_the_confirmation_mail_is_unsigned_without_dkim(project: Project,
                                                        smtp_server: SmtpServer) -> None:
    """The check above can tell: without [dkim] no signature is added."""
    config = load_config(project.config_path, environ={
        **smtp_env(smtp_server), "AINEWS_SECRET_KEY": "test-secret-key-of-enough-length"})
    client = TestClient(create_public_app(config), base_url="https://testserver",
                        follow_redirects=False)
    client.get("/")
    client.post("/subscribe", data={"email": "ada@example.com",
                                    "csrf": client.cookies.get(CSRF_COOKIE)})
    [received] = smtp_server.handler.messages
    assert b"DKIM-Signature" not in received.data


def test_a_test_copy_is_signed(signing_project: tuple[Project, object],
                               smtp_server: SmtpServer) -> None:
    project, dnsfunc = signing_project
    result = project.run("send", "--week", "2026-W47", "--to", "editor@example.com",
                         env=smtp_env(smtp_server))
    assert result.exit_code == 0, result.output
    [received] = smtp_server.handler.messages
    assert received.rcpt_tos == ["editor@example.com"]
    _assert_signed(received.data, dnsfunc)


@pytest.fixture
def on_monday_after_w47() -> Iterator[None]:
    with clock.use_clock(clock.frozen(datetime(2026, 11, 23, 8, 0,
                                               tzinfo=ZoneInfo("Europe/Berlin")))):
        yield


def test_a_draft_copy_to_the_editor_is_signed(signing_project: tuple[Project, object],
                                              smtp_server: SmtpServer,
                                              on_monday_after_w47: None) -> None:
    project, dnsfunc = signing_project
    project.write_config(DKIM_SECTION + '[schedule]\nmode = "draft"\n'
                         'notify = ["editor@example.com"]\n')
    assert project.run("subscribers", "add", "reader@example.com").exit_code == 0
    result = project.run("schedule", "once", env=smtp_env(smtp_server))
    assert result.exit_code == 0, result.output
    [received] = smtp_server.handler.messages
    assert received.rcpt_tos == ["editor@example.com"]
    _assert_signed(received.data, dnsfunc)
