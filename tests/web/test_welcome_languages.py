"""The welcome mail in each reader's language (issue 30), over the real store and aiosmtpd,
on SQLite and PostgreSQL: a German reader of an English newsletter is welcomed in German, an
Arabic one right to left, the others (no language, or one the newsletter lacks) in the
newsletter's; the mail is rendered once per language present (and kind: with a name or
without), never once per reader."""

from __future__ import annotations

from typing import Any

import jinja2
import pytest

from ainews_newsletter.pipeline.issue import open_subscribers
from ainews_newsletter.pipeline.welcome import Welcomes
from ainews_newsletter.render import welcome as welcome_render
from ainews_newsletter.subscribers.signups import SignUps
from tests.conftest import Project, SmtpServer
from tests.web.test_welcome import WELCOME_ON, _config, parsed

pytestmark = pytest.mark.clock

# address → (name, language); "sv" has no catalog: that reader gets the newsletter's.
READERS = {
    "ada@example.com": ("Ada", "de"),
    "bo@example.com": ("Bo", "de"),
    "cy@example.com": ("Cy", "de"),
    "dee@example.com": ("Dee", None),
    "eve@example.com": ("Eve", "sv"),
    "fay@example.com": ("Fay", "ar"),
}


def _messages(server: SmtpServer) -> dict[str, tuple[str, str, str]]:
    """Address → (subject, text, html) of each mail the server took."""
    found = {}
    for received in server.handler.messages:
        message = parsed(received)
        text, html = message.get_body(("plain",)), message.get_body(("html",))
        assert text is not None and html is not None
        [address] = received.rcpt_tos
        found[address] = (str(message["Subject"]), text.get_content().replace("\r\n", "\n"),
                          html.get_content())
    return found


def test_each_reader_is_welcomed_in_their_language_rendered_once_per_language(
        any_project: Project, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    any_project.write_config(WELCOME_ON)  # [newsletter] language: en, the default
    config = _config(any_project, smtp_server)
    signups = SignUps(open_subscribers(config))
    for address, (name, language) in READERS.items():
        signups.sign_up(address, name, None)
        signups.confirm(address)
        any_project.query("UPDATE subscribers SET language = ? WHERE email = ?",
                          language, address)
    renders: list[str] = []
    original = welcome_render.render_welcome

    def counted(environment: jinja2.Environment, *args: Any, **kwargs: Any) -> Any:
        renders.append(str(environment.globals["language"]))
        return original(environment, *args, **kwargs)

    monkeypatch.setattr(welcome_render, "render_welcome", counted)
    welcomes = Welcomes(config)
    assert welcomes.catch_up() == len(READERS)
    assert welcomes.send_due().sent == len(READERS)
    assert sorted(renders) == ["ar", "de", "en"]  # three languages, six readers

    mails = _messages(smtp_server)
    assert sorted(mails) == sorted(READERS)
    for address in ("ada@example.com", "bo@example.com", "cy@example.com"):
        subject, text, html = mails[address]
        name = READERS[address][0]
        assert subject == "Willkommen bei Test Digest"
        assert text.startswith(f"Hallo {name},\n")
        assert "Ihr Abonnement ist bestätigt" in text and "Frühere Ausgaben" in text
        assert f"weil {address} auf " in text  # the reader's own address, filled in
        assert '<html lang="de" dir="ltr"' in html and f"Hallo {name}," in html
        assert "Welcome" not in text and "Hello" not in html
    for address in ("dee@example.com", "eve@example.com"):
        subject, text, html = mails[address]
        assert subject == "Welcome to Test Digest"
        assert text.startswith(f"Hello {READERS[address][0]},\n")
        assert "your subscription is confirmed" in text
        assert '<html lang="en" dir="ltr"' in html
    subject, text, html = mails["fay@example.com"]
    assert subject == "مرحبًا بك في Test Digest"
    assert text.startswith("مرحبًا Fay،\n")
    assert '<html lang="ar" dir="rtl"' in html and "direction:rtl" in html

    # Later readers in a language already rendered cost no render.
    signups.sign_up("gus@example.com", "Gus", None)
    signups.confirm("gus@example.com")
    any_project.query("UPDATE subscribers SET language = 'de' WHERE email = ?",
                      "gus@example.com")
    assert welcomes.catch_up() == 1 and welcomes.send_due().sent == 1
    assert len(renders) == 3
    assert _messages(smtp_server)["gus@example.com"][0] == "Willkommen bei Test Digest"


def test_a_german_newsletter_welcomes_its_readers_in_german(
        project: Project, smtp_server: SmtpServer) -> None:
    """[newsletter] language decides for readers without one of their own; no name: the
    greeting without one."""
    project.write_config(WELCOME_ON)
    config = _config(project, smtp_server, newsletter={"language": "de"})
    signups = SignUps(open_subscribers(config))
    signups.sign_up("ada@example.com", None, None)
    signups.confirm("ada@example.com")
    welcomes = Welcomes(config)
    assert welcomes.catch_up() == 1 and welcomes.send_due().sent == 1
    subject, text, html = _messages(smtp_server)["ada@example.com"]
    assert subject == "Willkommen bei Test Digest"
    assert text.startswith("Hallo,\n") and '<html lang="de"' in html


def test_the_latest_issue_is_named_as_the_reader_got_it(project: Project,
                                                       smtp_server: SmtpServer) -> None:
    """welcome_with_latest_issue: a German reader's welcome names the German rendering
    frozen with the latest issue (its subject and period), an Austrian reader's too (the
    nearest language, as for the issues), an English reader's the issue's own."""
    from tests.conftest import smtp_env
    from tests.web.test_welcome import WELCOME_ON as ON

    project.write_config(ON + "welcome_with_latest_issue = true\n")
    assert project.run("subscribers", "add", "early@example.com", "--language",
                       "de").exit_code == 0
    sent = project.run("send", "--week", "2026-W47", "--yes", env=smtp_env(smtp_server))
    assert sent.exit_code == 0, sent.output
    [(english,)] = project.query("SELECT subject FROM issues")
    [(german,)] = project.query("SELECT subject FROM issue_renderings WHERE language = 'de'")
    assert german != english
    config = _config(project, smtp_server)
    signups = SignUps(open_subscribers(config))
    # de-AT has no catalog: that reader's issues and welcome are the German ones.
    for address, language in (("late-de@example.com", "de-AT"),
                              ("late-en@example.com", None)):
        signups.sign_up(address, None, None)
        signups.confirm(address)
        project.query("UPDATE subscribers SET language = ? WHERE email = ?", language, address)
    welcomes = Welcomes(config)
    assert welcomes.catch_up() == 2 and welcomes.send_due().sent == 2
    mails = _messages(smtp_server)

    def flat(text: str) -> str:
        return " ".join(text.split())

    # The headline is the post's; "(+2 weitere)" against "(+2 more)" tells them apart.
    assert mails["late-de@example.com"][0] == "Willkommen bei Test Digest"
    assert flat(german) in flat(mails["late-de@example.com"][1])
    assert flat(english) not in flat(mails["late-de@example.com"][1])
    assert flat(english) in flat(mails["late-en@example.com"][1])
