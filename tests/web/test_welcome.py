"""The welcome mail ([subscribers] welcome) through the real public app (Starlette's
TestClient, whose background tasks run before the call returns) and the real CLI, over a
real aiosmtpd, on SQLite and PostgreSQL: one welcome per reader, signed, with the reader's
own one-click unsubscribe; a 5xx fails it and `ainews status` says so; it is never an
issue; imports welcome only with --welcome; the scheduler's round sends what waits.
`ainews serve` as a process, killed between confirmation and welcome: test_welcome_serve.py."""

from __future__ import annotations

import email
import email.policy
import json
import textwrap
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast

import dkim
import pytest
from starlette.testclient import TestClient

from ainews_newsletter.config import Config, load_config
from ainews_newsletter.errors import RenderError
from ainews_newsletter.init import NewNewsletter, create
from ainews_newsletter.pipeline.issue import open_subscribers
from ainews_newsletter.pipeline.welcome import Welcomes
from ainews_newsletter.schedule.job import send_welcomes
from ainews_newsletter.subscribers.signups import SignUps
from ainews_newsletter.web.public import create_public_app
from ainews_newsletter.web.security import CSRF_COOKIE, ConfirmationTokens
from tests.conftest import Project, Received, SmtpServer, smtp_env
from tests.doctor.test_dkim_keygen import dns_for, record_of

# Run again under libfaketime at awkward dates by scripts/test-clocks.
pytestmark = pytest.mark.clock

SECRET = "test-secret-key-of-enough-length"
WELCOME_ON = "[subscribers]\nwelcome = true\n"
DKIM_SECTION = ('[dkim]\nselector = "s1"\ndomain = "news.example.org"\n'
                'private_key_path = "dkim/s1.private.pem"\n')


def parsed(received: Received) -> EmailMessage:
    return cast(EmailMessage, email.message_from_bytes(received.data,
                                                       policy=email.policy.default))


def welcomes_to(server: SmtpServer, address: str | None = None) -> list[Received]:
    """The welcome mails the server took (to `address`), in order."""
    return [received for received in server.handler.messages
            if str(parsed(received)["Subject"]).startswith("Welcome to")
            and (address is None or received.rcpt_tos == [address])]


def _config(project: Project, server: SmtpServer, **overrides: Any) -> Config:
    environ = {**smtp_env(server), "AINEWS_SECRET_KEY": SECRET}
    if project.storage_url is not None:
        environ["AINEWS_STORAGE__URL"] = project.storage_url
    return load_config(project.config_path, environ=environ, overrides=overrides or None)


def _client(config: Config) -> TestClient:
    return TestClient(create_public_app(config), base_url="https://testserver",
                      follow_redirects=False)


def pending_link(config: Config, address: str, name: str = "") -> str:
    """A web sign-up waiting for its confirmation, and the path of the link its mail
    carries: made as `serve` makes them, without going through /subscribe (whose bot
    checks are another part's tests)."""
    SignUps(open_subscribers(config)).sign_up(address, name or None, None)
    token = ConfirmationTokens(SECRET, config.web.confirm_link_hours * 3600).make(
        address, None, name or None)
    return f"/confirm/{token}"


def _join(client: TestClient, config: Config, address: str, name: str = "") -> str:
    """Sign up and confirm through the confirmation page; returns the link's path."""
    path = pending_link(config, address, name)
    _confirm(client, path)
    return path


def _confirm(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 200
    answer = client.post(path, data={"csrf": client.cookies.get(CSRF_COOKIE) or ""})
    assert answer.status_code == 200 and "You are subscribed" in answer.text


def _welcome_rows(project: Project) -> list[tuple[Any, ...]]:
    return project.query("SELECT email, state, attempts, last_code FROM welcomes ORDER BY id")


def test_a_confirmed_reader_is_welcomed_once_signed_and_personally(
        any_project: Project, smtp_server: SmtpServer) -> None:
    any_project.write_config(DKIM_SECTION + WELCOME_ON)
    made = any_project.run("dkim", "keygen", "--selector", "s1")
    assert made.exit_code == 0, made.output
    dnsfunc = dns_for(*record_of(made.output))
    config = _config(any_project, smtp_server)
    client = _client(config)
    path = _join(client, config, "ada@example.com", name="Ada Lovelace")
    _confirm(client, path)  # twice: still one welcome
    [received] = welcomes_to(smtp_server)
    assert received.rcpt_tos == ["ada@example.com"]
    assert received.data.startswith(b"DKIM-Signature:")
    assert dkim.verify(received.data, dnsfunc=dnsfunc)
    [(token,)] = any_project.query("SELECT token FROM subscribers WHERE email = ?",
                                   "ada@example.com")
    message = parsed(received)
    own_link = f"https://news.example.org/unsubscribe/{token}"
    assert message["Subject"] == "Welcome to Test Digest"
    assert message["To"] == "Ada Lovelace <ada@example.com>"
    assert f"<{own_link}>" in message["List-Unsubscribe"]
    assert "mailto:" in message["List-Unsubscribe"]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Id"] is not None and message["Message-ID"].startswith("<welcome.")
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    assert "Hello Ada Lovelace," in text.get_content()
    assert own_link in text.get_content() and f'href="{own_link}"' in html.get_content()
    assert "ada@example.com" in text.get_content()  # "because ada@… subscribed"
    assert "ainews-reader" not in text.get_content() + html.get_content()  # all filled in
    assert "unsubscribe.invalid" not in text.get_content() + html.get_content()
    assert _welcome_rows(any_project) == [("ada@example.com", "sent", 1, 250)]


def test_a_reader_without_a_name_is_greeted_without_one(project: Project,
                                                        smtp_server: SmtpServer) -> None:
    project.write_config(WELCOME_ON)
    config = _config(project, smtp_server)
    client = _client(config)
    _join(client, config, "bo@example.com")
    _join(client, config, "cy@example.com", name="Cy <b>&</b>")
    [plain] = welcomes_to(smtp_server, "bo@example.com")
    [named] = welcomes_to(smtp_server, "cy@example.com")
    body = parsed(plain).get_body(("plain",))
    assert body is not None and body.get_content().splitlines()[0] == "Hello,"
    named_html = parsed(named).get_body(("html",))
    named_text = parsed(named).get_body(("plain",))
    assert named_html is not None and named_text is not None
    assert "Hello Cy &lt;b&gt;&amp;&lt;/b&gt;," in named_html.get_content()  # escaped
    assert named_text.get_content().splitlines()[0] == "Hello Cy <b>&</b>,"  # as typed


def test_without_the_setting_nobody_is_welcomed(project: Project,
                                                smtp_server: SmtpServer) -> None:
    config = _config(project, smtp_server)
    _join(_client(config), config, "ada@example.com")
    assert welcomes_to(smtp_server) == [] and _welcome_rows(project) == []
    assert "welcomes" not in project.run("status").output


def test_a_5xx_fails_the_welcome_and_status_says_so(any_project: Project,
                                                    smtp_server: SmtpServer) -> None:
    any_project.write_config(WELCOME_ON)
    config = _config(any_project, smtp_server)
    client = _client(config)
    path = pending_link(config, "gone@example.com")
    smtp_server.handler.replies["gone@example.com"] = "550 5.1.1 no such user"
    _confirm(client, path)
    _confirm(client, path)  # a failed welcome is not tried again either
    assert welcomes_to(smtp_server) == []
    assert _welcome_rows(any_project) == [("gone@example.com", "failed", 1, 550)]
    status = any_project.run("status")  # no issue yet: exit 1, after the welcomes' news
    assert status.exit_code == 1 and "no issue has been sent yet" in status.stderr
    assert "welcomes: queued 0, sending 0, sent 0, failed 1" in status.output
    assert "last failed welcome: gone@example.com" in status.output
    assert "550 5.1.1 no such user" in status.output
    as_json = json.JSONDecoder().raw_decode(any_project.run("status", "--json").output)[0]
    assert as_json["welcomes"]["failed"] == 1
    assert as_json["welcomes"]["last_failure"]["code"] == 550


def test_a_4xx_is_tried_again_later(any_project: Project, smtp_server: SmtpServer) -> None:
    any_project.write_config(WELCOME_ON)
    config = _config(any_project, smtp_server)
    client = _client(config)
    path = pending_link(config, "grey@example.com")
    smtp_server.handler.replies["grey@example.com"] = "451 4.7.1 greylisted, try later"
    _confirm(client, path)
    assert _welcome_rows(any_project) == [("grey@example.com", "queued", 1, 451)]
    status = any_project.run("status").output
    assert "welcomes: queued 1 (1 to retry)" in status
    del smtp_server.handler.replies["grey@example.com"]
    assert Welcomes(config).send_due().sent == 0  # not before its retry time
    any_project.query("UPDATE welcomes SET next_attempt_at = created_at")  # time passes
    assert Welcomes(config).send_due().sent == 1
    assert len(welcomes_to(smtp_server, "grey@example.com")) == 1
    assert _welcome_rows(any_project) == [("grey@example.com", "sent", 2, 250)]


def test_a_welcome_is_never_an_issue(any_project: Project, smtp_server: SmtpServer) -> None:
    """Not in the archive, the feed, issue reports, `status` of an issue or `send
    --resume`: its own table, nothing in issues or deliveries."""
    any_project.write_config(WELCOME_ON)
    config = _config(any_project, smtp_server)
    client = _client(config)
    _join(client, config, "ada@example.com")
    assert len(welcomes_to(smtp_server)) == 1
    assert any_project.query("SELECT count(*) FROM issues") == [(0,)]
    assert any_project.query("SELECT count(*) FROM deliveries") == [(0,)]
    archive = client.get("/issues/")
    assert archive.status_code == 200 and "No issue has been sent yet." in archive.text
    assert "<entry>" not in client.get("/feed.xml").text
    report = any_project.run("report")
    assert report.exit_code == 1 and "no issue has been sent yet" in report.stderr
    resumed = any_project.run("send", "--resume", "--yes", env=smtp_env(smtp_server))
    assert resumed.exit_code == 1 and "nothing to resume" in resumed.stderr
    assert len(welcomes_to(smtp_server)) == 1  # and nobody got anything more


def test_the_welcome_can_name_the_latest_issue(project: Project,
                                               smtp_server: SmtpServer) -> None:
    project.write_config(WELCOME_ON + "welcome_with_latest_issue = true\n")
    project.run("subscribers", "add", "early@example.com")
    sent = project.run("send", "--week", "2026-W47", "--yes", env=smtp_env(smtp_server))
    assert sent.exit_code == 0, sent.output
    [(subject,)] = project.query("SELECT subject FROM issues")
    config = _config(project, smtp_server)
    _join(_client(config), config, "late@example.com")
    [received] = welcomes_to(smtp_server, "late@example.com")
    text = parsed(received).get_body(("plain",))
    html = parsed(received).get_body(("html",))
    assert text is not None and html is not None
    link = "https://news.example.org/issues/2026-W47"
    assert link in text.get_content() and f'href="{link}"' in html.get_content()
    assert subject.split(" (+")[0] in " ".join(text.get_content().split())


def test_the_operators_templates_are_used_and_a_broken_one_stops_serve(
        project: Project, smtp_server: SmtpServer) -> None:
    project.write_config(WELCOME_ON)
    folder = project.root / "templates"
    folder.mkdir()
    (folder / "welcome_subject.txt.j2").write_text("Hi from {{ newsletter.name }}\n")
    (folder / "welcome.txt.j2").write_text(textwrap.dedent("""\
        Dear {{ reader.name or "reader" }}, leave here: {{ unsubscribe_url }}
        """))
    config = _config(project, smtp_server)
    _join(_client(config), config, "ada@example.com", name="Ada")
    [received] = [r for r in smtp_server.handler.messages
                  if parsed(r)["Subject"] == "Hi from Test Digest"]
    text = parsed(received).get_body(("plain",))
    assert text is not None and text.get_content().startswith("Dear Ada, leave here: https://")
    (folder / "welcome.mjml.j2").write_text("<mjml>{{ unsubscribe_url }\n</mjml>\n")
    with pytest.raises(RenderError, match=r"welcome.mjml.j2:\d+: template syntax error"):
        create_public_app(_config(project, smtp_server))


def _import(project: Project, rows: str, *options: str,
            env: dict[str, str] | None = None) -> Any:
    csv_file = project.root / "import.csv"
    csv_file.write_text("email,name,status\n" + textwrap.dedent(rows), encoding="utf-8")
    return project.run("subscribers", "import", str(csv_file), *options, env=env)


def test_an_import_welcomes_the_readers_it_adds_only_when_asked(
        any_project: Project, smtp_server: SmtpServer) -> None:
    env = smtp_env(smtp_server)
    assert any_project.run("subscribers", "add", "known@example.com").exit_code == 0
    plain = _import(any_project, "first@example.com,First,active\n", env=env)
    assert plain.exit_code == 0 and welcomes_to(smtp_server) == []  # no flag: nobody
    result = _import(any_project, """\
        known@example.com,Known,active
        first@example.com,First,active
        new1@example.com,New One,active
        new2@example.com,,active
        gone@example.com,Gone,unsubscribed
        """, "--welcome", "--json", env=env)
    assert result.exit_code == 0, result.output + result.stderr
    summary = json.loads(result.output)
    assert summary["welcomes"] == {"queued": 2, "sent": 2, "to_retry": 0, "failed": 0,
                                   "error": None}
    assert sorted(r.rcpt_tos[0] for r in welcomes_to(smtp_server)) == [
        "new1@example.com", "new2@example.com"]
    again = _import(any_project, "new1@example.com,New One,active\n", "--welcome", env=env)
    assert again.exit_code == 0 and "welcomes: queued 0, sent 0" in again.output
    assert len(welcomes_to(smtp_server)) == 2


def test_an_import_with_the_server_down_leaves_the_welcomes_queued(
        project: Project, smtp_server: SmtpServer, unused_port: int) -> None:
    down = {"AINEWS_SMTP__HOST": "127.0.0.1", "AINEWS_SMTP__PORT": str(unused_port)}
    result = _import(project, "new@example.com,New,active\n", "--welcome", env=down)
    assert result.exit_code == 1
    assert "welcomes: cannot connect" in result.stderr and "stay queued" in result.stderr
    assert "Traceback" not in result.stderr
    assert project.query("SELECT email, state, attempts FROM welcomes") == [
        ("new@example.com", "queued", 0)]
    config = _config(project, smtp_server)
    project.query("UPDATE welcomes SET next_attempt_at = created_at")  # its retry time
    send_welcomes(config, lambda: False)  # the scheduler's round
    assert [r.rcpt_tos for r in welcomes_to(smtp_server)] == [["new@example.com"]]


def test_the_scheduler_round_welcomes_a_reader_whose_welcome_was_never_queued(
        any_project: Project, smtp_server: SmtpServer) -> None:
    """The process that confirmed died before queueing the welcome: the catch-up finds
    the web reader without one. Readers from elsewhere (the CLI) are not its business."""
    any_project.write_config(WELCOME_ON)
    config = _config(any_project, smtp_server)
    store = open_subscribers(config)
    signups = SignUps(store)
    signups.sign_up("ada@example.com", "Ada", None)
    signups.confirm("ada@example.com")  # committed; no after_joined: the process "died"
    store.add("cli@example.com")
    send_welcomes(config, lambda: False)
    send_welcomes(config, lambda: False)
    assert [r.rcpt_tos for r in welcomes_to(smtp_server)] == [["ada@example.com"]]
    assert _welcome_rows(any_project) == [("ada@example.com", "sent", 1, 250)]


def test_init_turns_the_welcome_on_and_ships_its_templates(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    create(folder, NewNewsletter("Mine", "digest@news.example.org", "https://news.example.org",
                                 "1 Test Road", "Europe/Berlin"))
    config = load_config(folder / "config.toml", environ={})
    assert config.subscribers.welcome is True
    assert config.subscribers.welcome_with_latest_issue is False
    for name in ("welcome.mjml.j2", "welcome.txt.j2", "welcome_subject.txt.j2"):
        assert (folder / "templates" / name).is_file()
    assert load_config(None, environ={}).subscribers.welcome is False  # the default
