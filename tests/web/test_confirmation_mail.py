"""The sign-up confirmation mail: its words are a template the operator may override
(templates/confirmation.txt.j2 and templates/confirmation_subject.txt.j2); the shipped one
writes, for the same inputs, exactly what the text built in Python used to."""

from __future__ import annotations

import email
import email.policy
import re
import textwrap
from email.message import EmailMessage
from typing import Any, cast

import pytest
from starlette.testclient import TestClient

from ainews_newsletter.config import load_config
from ainews_newsletter.errors import RenderError
from ainews_newsletter.web.public import create_public_app
from ainews_newsletter.web.security import CSRF_COOKIE
from tests.conftest import Project, SmtpServer, smtp_env

SECRET = "test-secret-key-of-enough-length"
# Written from the Python that built the mail before it became a template.
OLD_TEXT = ("Someone (hopefully you) asked to receive {name} at this address.\n\n"
            "Confirm here (the link works for {hours} hours):\n{link}\n\n"
            "If it was not you, ignore this message: nothing will be sent to you.\n\n"
            "--\n{name}\n{postal}\n")
OLD_SUBJECT = "Confirm your subscription to {name}"


def _confirmation_mail(project: Project, server: SmtpServer,
                       **overrides: dict[str, Any]) -> EmailMessage:
    config = load_config(project.config_path,
                         environ={**smtp_env(server), "AINEWS_SECRET_KEY": SECRET},
                         overrides=overrides or None)
    client = TestClient(create_public_app(config), base_url="https://testserver")
    assert client.get("/").status_code == 200
    answer = client.post("/subscribe", data={"email": "ada@example.com", "name": "Ada",
                                             "csrf": client.cookies.get(CSRF_COOKIE) or ""})
    assert answer.status_code == 200 and server.recipients() == ["ada@example.com"]
    return cast(EmailMessage, email.message_from_bytes(server.handler.messages[-1].data,
                                                       policy=email.policy.default))


def _expected(text: str, **values: object) -> str:
    """The old text with this mail's link, in the CR LF lines SMTP carries."""
    return OLD_TEXT.format(link=_link(text), **values).replace("\n", "\r\n")


def _link(text: str) -> str:
    found = re.search(r"https://news\.example\.org/confirm/\S+", text)
    assert found, text
    return found.group(0)


def test_the_shipped_confirmation_is_the_old_text(project: Project,
                                                  smtp_server: SmtpServer) -> None:
    """A name with markup characters and fractional hours: the text part is not escaped and
    the hours are whole, as before."""
    name = "Tom & Jerry's <News>"
    message = _confirmation_mail(project, smtp_server, newsletter={"name": name},
                                 web={"confirm_link_hours": 12.5})
    text = message.get_content()
    assert text == _expected(text, name=name, hours=12, postal="1 Test Road, Testville")
    assert message["Subject"] == OLD_SUBJECT.format(name=name)


def test_the_default_confirmation(project: Project, smtp_server: SmtpServer) -> None:
    message = _confirmation_mail(project, smtp_server)
    text = message.get_content()
    assert text == _expected(text, name="Test Digest", hours=48,
                             postal="1 Test Road, Testville")
    assert message["Subject"] == OLD_SUBJECT.format(name="Test Digest")


def _operator_file(project: Project, name: str, text: str) -> None:
    path = project.root / "templates" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")


def test_a_folder_without_the_confirmation_templates_sends_the_shipped_one(
        project: Project, smtp_server: SmtpServer) -> None:
    """An operator's templates/ made before the confirmation was a template."""
    _operator_file(project, "digest.txt.j2", "Ours. {{ unsubscribe_url }}\n")
    message = _confirmation_mail(project, smtp_server)
    text = message.get_content()
    assert text == _expected(text, name="Test Digest", hours=48,
                             postal="1 Test Road, Testville")
    assert message["Subject"] == OLD_SUBJECT.format(name="Test Digest")


def test_the_operators_confirmation_templates_are_used(project: Project,
                                                       smtp_server: SmtpServer) -> None:
    _operator_file(project, "confirmation.txt.j2", """\
        Hello {{ reader.name }} <{{ reader.email }}>,
        please confirm within {{ link_hours }} hours: {{ confirm_url }}
        {{ newsletter.name }} & co.
        """)
    _operator_file(project, "confirmation_subject.txt.j2", """\
        {{ newsletter.name }}: one more step
        """)
    message = _confirmation_mail(project, smtp_server)
    text = message.get_content()
    assert text == (f"Hello Ada <ada@example.com>,\r\nplease confirm within 48 hours: "
                    f"{_link(text)}\r\nTest Digest & co.\r\n")
    assert message["Subject"] == "Test Digest: one more step"


def test_a_broken_confirmation_override_stops_serve_at_start(project: Project,
                                                             smtp_server: SmtpServer) -> None:
    _operator_file(project, "confirmation.txt.j2", "Hello\n{{ reader.name }\n")
    config = load_config(project.config_path,
                         environ={**smtp_env(smtp_server), "AINEWS_SECRET_KEY": SECRET})
    with pytest.raises(RenderError, match=r"confirmation.txt.j2:2: template syntax error"):
        create_public_app(config)
