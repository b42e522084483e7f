"""The public site in its readers' languages (issue 30), through Starlette's TestClient on a
real project: Accept-Language picks among the shipped catalogs (q-values honoured, unknown
tags fall back to the newsletter's language), a reader's own language wins on the pages
their link opens, the headers say which language and what it varied with, the preferences
page saves a reader's choice (CSRF-checked, unknown values refused), the confirmation mail
goes out (real SMTP) in the language the page was shown in, the archive and the feed speak
the newsletter's language, and no Accept-Language header, however hostile, gets a 500."""

from __future__ import annotations

import email
import email.policy
import re
import xml.etree.ElementTree as ElementTree
from email.message import EmailMessage
from typing import cast

import pytest
from starlette.testclient import TestClient

from ainews_newsletter.config import Config, load_config
from ainews_newsletter.delivery.transports import MemoryTransport
from ainews_newsletter.models import Window
from ainews_newsletter.pipeline.issue import open_subscribers
from ainews_newsletter.pipeline.send import execute_send, plan_send
from ainews_newsletter.web.public import create_public_app
from ainews_newsletter.web.security import CSRF_COOKIE
from tests.conftest import Project, SmtpServer, smtp_env

SECRET = "test-secret-key-of-enough-length"
HTTPS = "https://testserver"
GERMAN = {"Accept-Language": "de-DE,de;q=0.9"}


def _config(project: Project, server: SmtpServer, language: str | None = None) -> Config:
    if language is not None:
        project.write_config(f'language = "{language}"\n')
    return load_config(project.config_path, environ={**smtp_env(server),
                                                     "AINEWS_SECRET_KEY": SECRET})


def _client(config: Config) -> TestClient:
    return TestClient(create_public_app(config), base_url=HTTPS, follow_redirects=False)


def _html_lang(text: str) -> tuple[str, str]:
    found = re.search(r'<html lang="([^"]+)" dir="([^"]+)">', text)
    assert found, text[:200]
    return found.group(1), found.group(2)


def _vary(headers: object) -> list[str]:
    values = cast("list[str]", headers.get_list("vary"))  # type: ignore[attr-defined]
    return [part.strip().lower() for value in values for part in value.split(",")]


def test_the_subscribe_page_follows_accept_language(project: Project,
                                                     smtp_server: SmtpServer) -> None:
    client = _client(_config(project, smtp_server))
    page = client.get("/", headers=GERMAN)
    assert page.status_code == 200
    assert _html_lang(page.text) == ("de", "ltr")
    assert "Test Digest abonnieren" in page.text and ">Abonnieren</button>" in page.text
    assert "Subscribe to" not in page.text
    assert page.headers["content-language"] == "de"
    assert "accept-language" in _vary(page.headers)
    # Nothing asked for: the newsletter's language (English here), still varying.
    plain = client.get("/")
    assert _html_lang(plain.text) == ("en", "ltr") and "Subscribe to Test Digest" in plain.text
    assert plain.headers["content-language"] == "en"
    assert "accept-language" in _vary(plain.headers)
    arabic = client.get("/", headers={"Accept-Language": "ar-EG"})
    assert _html_lang(arabic.text) == ("ar", "rtl") and "اشترك في Test Digest" in arabic.text


def test_unknown_languages_get_the_newsletters(project: Project,
                                               smtp_server: SmtpServer) -> None:
    client = _client(_config(project, smtp_server, language="fr"))
    page = client.get("/", headers={"Accept-Language": "xx"})
    assert _html_lang(page.text) == ("fr", "ltr") and "S’abonner à Test Digest" in page.text
    assert page.headers["content-language"] == "fr"
    # A language turned down with q=0 is not taken either.
    refused = client.get("/", headers={"Accept-Language": "de;q=0, xx"})
    assert _html_lang(refused.text)[0] == "fr"


def test_q_values_choose_between_languages(project: Project,
                                           smtp_server: SmtpServer) -> None:
    client = _client(_config(project, smtp_server))
    for header, expected in (("fr;q=0.5, ja;q=0.8, de;q=0.1", "ja"),
                             ("de;q=0.2, it", "it"),  # no q is q=1
                             ("xx, nl;q=0.3, es;q=0.4", "es"),
                             ("pt", "pt-BR"),  # a language finds its regional catalog
                             ("PT-br", "pt-BR")):
        page = client.get("/", headers={"Accept-Language": header})
        assert _html_lang(page.text)[0] == expected, header
        assert page.headers["content-language"] == expected


def test_messages_of_the_python_code_are_translated(project: Project,
                                                    smtp_server: SmtpServer) -> None:
    client = _client(_config(project, smtp_server))
    missing = client.get("/nothing-here", headers=GERMAN)
    assert missing.status_code == 404 and "Nicht gefunden" in missing.text
    assert _html_lang(missing.text)[0] == "de"
    bad = client.get("/confirm/forged", headers={"Accept-Language": "it"})
    assert bad.status_code == 400
    assert "Questo link non funziona" in bad.text and "link di conferma non è valido" in bad.text
    # A fetch() from a page gets its error for people in the reader's language too.
    answer = client.post("/subscribe", content=b"[1, 2]", headers={
        "Content-Type": "application/json", "Accept-Language": "nl"})
    assert answer.status_code == 400
    assert answer.json() == {"error": "De inhoud van het verzoek is geen JSON-object."}
    help_page = client.get("/unsubscribe", headers={"Accept-Language": "ja"})
    assert "配信停止" in help_page.text and _html_lang(help_page.text) == ("ja", "ltr")


def test_a_readers_own_language_wins_on_their_pages(project: Project,
                                                    smtp_server: SmtpServer) -> None:
    config = _config(project, smtp_server)
    store = open_subscribers(config)
    reader = store.add("ana@example.com")
    store.set_language(reader.id, "ar")
    other = store.add("bo@example.com")
    client = _client(config)
    for path in (f"/preferences/{reader.token}", f"/unsubscribe/{reader.token}",
                 f"/preferences/{reader.token}/erase"):
        page = client.get(path, headers=GERMAN)
        assert page.status_code == 200, path
        assert _html_lang(page.text) == ("ar", "rtl"), path
        assert page.headers["content-language"] == "ar"
        # The reader's choice, not the header, made this page.
        assert "accept-language" not in _vary(page.headers), path
    unsubscribed = client.post(f"/unsubscribe/{reader.token}",
                               data={"List-Unsubscribe": "One-Click"}, headers=GERMAN)
    assert "تم إلغاء اشتراكك" in unsubscribed.text
    # Without a language of their own, the header decides.
    page = client.get(f"/preferences/{other.token}", headers=GERMAN)
    assert _html_lang(page.text)[0] == "de" and "Ihre Listen" in page.text
    assert "accept-language" in _vary(page.headers)
    # A region without a catalog of its own (an import may store one) finds its language.
    store.set_language(other.id, "de-AT")
    page = client.get(f"/preferences/{other.token}", headers={"Accept-Language": "ja"})
    assert _html_lang(page.text)[0] == "de" and page.headers["content-language"] == "de"


def test_the_confirmation_link_speaks_the_readers_language(project: Project,
                                                           smtp_server: SmtpServer) -> None:
    config = _config(project, smtp_server)
    client = _client(config)
    client.get("/", headers={"Accept-Language": "es"})
    client.post("/subscribe", data={"email": "eva@example.com",
                                    "csrf": client.cookies.get(CSRF_COOKIE)},
                headers={"Accept-Language": "es"})
    path = re.search(r"https://news\.example\.org(/confirm/\S+)", _last_mail(smtp_server)
                     .get_content())
    assert path
    store = open_subscribers(config)
    store.set_language(store.require("eva@example.com").id, "nl")
    page = client.get(path.group(1), headers=GERMAN)
    assert _html_lang(page.text)[0] == "nl" and "Ja, meld me aan" in page.text


@pytest.mark.parametrize("language", ["it", "", "xx"])
def test_the_preferences_page_saves_a_language(any_project: Project, smtp_server: SmtpServer,
                                               language: str) -> None:
    config = _config(any_project, smtp_server)
    store = open_subscribers(config)
    reader = store.add("lu@example.com")
    store.set_language(reader.id, "fr")
    client = _client(config)
    page = client.get(f"/preferences/{reader.token}")
    # Every shipped language by its own name, the reader's current one chosen.
    for name in ("Deutsch", "日本語", "العربية", "Español", "Português (Brasil)"):
        assert name in page.text, name
    assert '<option value="fr" lang="fr" selected>Français</option>' in page.text
    target = f"/preferences/{reader.token}/language"
    refused = client.post(target, data={"language": "it"})  # no CSRF token
    assert refused.status_code == 400
    assert store.require("lu@example.com").language == "fr"
    answer = client.post(target, data={"language": language,
                                       "csrf": client.cookies.get(CSRF_COOKIE)})
    saved = store.require("lu@example.com").language
    if language == "xx":
        assert answer.status_code == 400 and saved == "fr"
        assert "Cette langue ne fait pas partie de celles proposées." in answer.text
    elif language == "it":
        assert answer.status_code == 200 and saved == "it"
        assert _html_lang(answer.text)[0] == "it" and "Salvato." in answer.text
        assert '<option value="it" lang="it" selected>' in answer.text
    else:  # back to the newsletter's language
        assert answer.status_code == 200 and saved is None
        assert _html_lang(answer.text)[0] == "en" and "Saved." in answer.text
        assert '<option value="" selected>' in answer.text


def _last_mail(server: SmtpServer) -> EmailMessage:
    return cast(EmailMessage, email.message_from_bytes(server.handler.messages[-1].data,
                                                       policy=email.policy.default))


@pytest.mark.parametrize(("header", "subject", "words"), [
    ("de-DE,de;q=0.9", "Bestätigen Sie Ihr Abonnement von Test Digest",
     "Hier bestätigen (der Link gilt 48 Stunden):"),
    ("ar", "أكّد اشتراكك في Test Digest", "أكّد من هنا (يعمل الرابط لمدة 48 ساعة):"),
    ("xx", "Confirm your subscription to Test Digest",
     "Confirm here (the link works for 48 hours):"),
])
def test_the_confirmation_mail_speaks_the_pages_language(
        project: Project, smtp_server: SmtpServer, header: str, subject: str,
        words: str) -> None:
    client = _client(_config(project, smtp_server))
    client.get("/", headers={"Accept-Language": header})
    answer = client.post("/subscribe", data={"email": "mo@example.com",
                                             "csrf": client.cookies.get(CSRF_COOKIE)},
                         headers={"Accept-Language": header})
    assert answer.status_code == 200
    # The thanks page varies with the header and (the sign-up's CORS rule) with Origin.
    assert {"accept-language", "origin"} <= set(_vary(answer.headers))
    assert smtp_server.recipients() == ["mo@example.com"]
    mail = _last_mail(smtp_server)
    assert mail["Subject"] == subject
    body = mail.get_content()
    assert words in body and "https://news.example.org/confirm/" in body


def test_the_archive_and_the_feed_speak_the_newsletters_language(
        project: Project, smtp_server: SmtpServer) -> None:
    config = _config(project, smtp_server, language="de")
    open_subscribers(config).add("kim@example.com")
    execute_send(config, plan_send(config, Window(week="2026-W47")),
                 transport=MemoryTransport([]))
    client = _client(config)
    archive = client.get("/issues/", headers={"Accept-Language": "ja"})
    assert archive.status_code == 200
    assert _html_lang(archive.text)[0] == "de" and "frühere Ausgaben" in archive.text
    assert "16.–22. November 2026" in archive.text  # CLDR's German interval
    assert archive.headers["content-language"] == "de"
    assert "accept-language" not in _vary(archive.headers)
    issue = client.get("/issues/2026-W47", headers={"Accept-Language": "ja"})
    assert issue.status_code == 200 and issue.headers["content-language"] == "de"
    feed = ElementTree.fromstring(client.get("/feed.xml").content)
    assert feed.get("{http://www.w3.org/XML/1998/namespace}lang") == "de"


HOSTILE: list[str | bytes] = [
    "de," * 50_000,  # 100 KB
    "," * 5_000,
    "de;q=abc, fr;q=, ja;q=-1, it;q=nan, nl;q=inf, es;q=1e999",
    ";;;;=;=;q=;q;",
    "x" * 100_000,
    "de-" + "a" * 300 + ";q=1",
    "*;q=0.5, *",
    b"\xff\xfe\xfd; q=0.9, \x80de",  # not text in any encoding a browser uses
    "ar;q=0.9, 日本語;q=1".encode(),
    " ",
    "q=1",
    "de;q=0.5;q=0.9;q=x" * 2_000,
]


@pytest.mark.parametrize("header", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_accept_language_headers_get_a_page(project: Project, smtp_server: SmtpServer,
                                                    header: str | bytes) -> None:
    client = _client(_config(project, smtp_server))
    for path, status in (("/", 200), ("/nothing-here", 404), ("/unsubscribe", 200)):
        page = client.get(path, headers={"Accept-Language": header})
        assert page.status_code == status, path
        assert _html_lang(page.text)[0] in ("en", "de", "fr", "es", "ja", "it", "nl", "pt-BR",
                                            "ar")


def test_one_page_environment_per_language_made_once(project: Project,
                                                     smtp_server: SmtpServer) -> None:
    from ainews_newsletter.web.templating import PublicPages

    pages = PublicPages(_config(project, smtp_server))
    german = pages.environment("de")
    assert pages.environment("de") is german  # kept, not rebuilt per request
    assert pages.environment("ja") is not german
    assert german.globals["language"] == "de" and german.globals["direction"] == "ltr"
    assert pages.environment("ar").globals["direction"] == "rtl"
