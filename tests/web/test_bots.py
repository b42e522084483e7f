"""Bots kept out of the sign-up forms (web/bots.py): a honeypot field people never see, a
signed form time on the forms we serve (too soon, over a day old or forged: dropped), and the
optional proof of work. A bot gets the answer a person gets; nothing is stored or mailed.
The clocks these tests need are their own (clock.use_clock, or form times they sign
themselves), never a sleep."""

from __future__ import annotations

import hashlib
import itertools
import logging
import re
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Browser
from starlette.testclient import TestClient

from ainews_newsletter import clock
from ainews_newsletter.config import Config, load_config
from ainews_newsletter.errors import ConfigError
from ainews_newsletter.web.bots import POW_BITS, FormTimes, solved
from ainews_newsletter.web.public import create_public_app
from ainews_newsletter.web.security import CSRF_COOKIE
from tests.conftest import Project, SmtpServer, smtp_env
from tests.render.test_browser import browser  # noqa: F401  (the Chromium fixture)
from tests.web.signup_pages import SECRET, post, serving, wait_for_mail

OURS = "https://news.example.org"  # the test project's base_url
BLOG = "https://blog.example"
THANKS = "Check your inbox"


def _config(project: Project, server: SmtpServer, **web: object) -> Config:
    environ = {**smtp_env(server), "AINEWS_SECRET_KEY": SECRET}
    if project.storage_url is not None:
        environ["AINEWS_STORAGE__URL"] = project.storage_url
    return load_config(project.config_path, environ=environ, overrides={
        "web": {"min_form_seconds": 2, "allowed_origins": [BLOG], **web}})


def _client(config: Config) -> TestClient:
    return TestClient(create_public_app(config), base_url=OURS, follow_redirects=False)


class _Clock:
    """The app's clock, moved by hand."""

    def __init__(self) -> None:
        self.at = datetime(2026, 11, 18, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.at

    def later(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


@contextmanager
def _moved_by_hand() -> Iterator[_Clock]:
    moment = _Clock()
    with clock.use_clock(moment):
        yield moment


def _dropped(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage().split("dropped: ", 1)[1] for record in caplog.records
            if "dropped: " in record.getMessage()]


# -- our page and /embed, through the ASGI app -------------------------------------------

@pytest.mark.clock
def test_our_page_a_person_after_two_seconds_and_bots_otherwise(
        any_project: Project, smtp_server: SmtpServer,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ainews")
    config = _config(any_project, smtp_server)
    client = _client(config)
    answers: dict[str, str] = {}

    def sign_up(address: str, after: float, **extra: str) -> None:
        """Load the page, wait `after` seconds (of the app's clock), send the form."""
        assert client.get("/").status_code == 200
        moment.later(after)
        answer = client.post("/subscribe", data={
            "email": address, "csrf": client.cookies.get(CSRF_COOKIE) or "", **extra})
        assert answer.status_code == 200
        answers[address] = answer.text.replace(address, "ADDRESS")

    with _moved_by_hand() as moment:
        sign_up("at-once@example.com", 0)
        sign_up("quick@example.com", 1.9)
        sign_up("person@example.com", 3)
        sign_up("a-day-later@example.com", 86_401)
        sign_up("honeypot@example.com", 3, website="https://spam.example")
        for name, stamp in (
                ("forged", "page.1795424400.AAAAAAAAAAAAAAAA.forged-mac"),
                ("other-key", FormTimes("another-secret-key-entirely").make(
                    "page", at=moment.at.timestamp() - 10)),
                ("embed-kind", FormTimes(SECRET).make(
                    "embed", at=moment.at.timestamp() - 10))):
            # Cookie and field agree (the CSRF check passes); the form time does not.
            fresh = _client(config)
            answer = fresh.post("/subscribe", data={"email": f"{name}@example.com",
                                                    "csrf": stamp},
                                headers={"Cookie": f"{CSRF_COOKIE}={stamp}"})
            assert answer.status_code == 200
            answers[f"{name}@example.com"] = answer.text.replace(f"{name}@example.com",
                                                                 "ADDRESS")
    assert len(set(answers.values())) == 1 and THANKS in answers["person@example.com"]
    assert smtp_server.recipients() == ["person@example.com"]
    assert any_project.query("SELECT email FROM subscribers") == [("person@example.com",)]
    assert _dropped(caplog) == [
        "sent too soon after the form was served", "sent too soon after the form was served",
        "its form is more than a day old", "the hidden field was filled in",
        *["its form time is missing or forged"] * 3]


@pytest.mark.clock
def test_the_embed_form_carries_its_own_form_time(
        project: Project, smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ainews")
    client = _client(_config(project, smtp_server))

    def form_time() -> str:
        page = client.get("/embed")
        found = re.search(r'name="form_time" value="([^"]+)"', page.text)
        assert found, page.text
        return found.group(1)

    def send(address: str, stamp: str | None, origin: str = OURS,
             **extra: str) -> tuple[int, str]:
        data = {"email": address, **extra}
        if stamp is not None:
            data["form_time"] = stamp
        answer = client.post("/subscribe", data=data, headers={"Origin": origin})
        return answer.status_code, answer.text

    with _moved_by_hand() as moment:
        stamp = form_time()
        at_once = send("at-once@example.com", stamp)
        honeypot = send("honeypot@example.com", stamp, website="x")
        page_kind = send("page-kind@example.com",
                         FormTimes(SECRET).make("page", at=moment.at.timestamp() - 10))
        moment.later(3)
        person = send("framed@example.com", stamp)
        # Our origin, neither a form time nor a CSRF token: our page's form gone stale.
        stale = send("stale@example.com", None)
        other_site = send("other@example.com", form_time(), origin="https://evil.example")
    for status, text in (at_once, honeypot, page_kind, person):
        assert status == 200 and THANKS in text and "<form" not in text  # the frame's answer
    assert stale[0] == 400 and "The form had expired" in stale[1]
    assert other_site[0] == 403
    assert smtp_server.recipients() == ["framed@example.com"]
    assert project.query("SELECT email FROM subscribers") == [("framed@example.com",)]
    assert _dropped(caplog) == ["sent too soon after the form was served",
                                "the hidden field was filled in",
                                "its form time is missing or forged"]


@pytest.mark.clock
def test_another_sites_form_has_the_honeypot_only(
        project: Project, smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture) -> None:
    """No form time can be pasted into a static page: a post from an allowed site is a
    person's unless the hidden field is filled in."""
    caplog.set_level(logging.INFO, logger="ainews")
    client = _client(_config(project, smtp_server))
    for address, trap in (("bot@example.com", "http://spam.example"),
                          ("reader@example.com", "")):
        answer = client.post("/subscribe", json={"email": address, "website": trap},
                             headers={"Origin": BLOG})
        assert (answer.status_code, answer.json()) == (200, {"status": "pending"})
    assert smtp_server.recipients() == ["reader@example.com"]
    assert project.query("SELECT email FROM subscribers") == [("reader@example.com",)]
    assert _dropped(caplog) == ["the hidden field was filled in"]


# -- proof of work --------------------------------------------------------------------------

def _solve(challenge: str) -> str:
    return next(str(n) for n in itertools.count() if solved(challenge, str(n)))


def test_form_times_and_the_puzzle() -> None:
    times = FormTimes(SECRET)
    stamp = times.make("page", at=time.time() - 30)
    age = times.age(stamp, "page")
    assert age is not None and 29 <= age <= 3600
    assert times.age(stamp, "embed") is None
    assert times.age(stamp[:-1] + ("A" if stamp[-1] != "A" else "B"), "page") is None
    assert times.age(stamp + "x" * 200, "page") is None
    assert times.age("page.12.x", "page") is None and times.age("", "page") is None
    answer = _solve(stamp)
    digest = hashlib.sha256(f"{stamp}{answer}".encode()).digest()
    assert int.from_bytes(digest[:4], "big") >> (32 - POW_BITS) == 0
    assert not solved(stamp, "") and not solved(stamp, "-1") and not solved(stamp, "\u0661")


@pytest.mark.clock
def test_proof_of_work_our_page_and_embed(
        project: Project, smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ainews")
    client = _client(_config(project, smtp_server, proof_of_work=True, min_form_seconds=0))
    for path in ("/", "/embed"):
        page = client.get(path)
        nonce = re.search(r"script-src 'nonce-([^']+)'", page.headers["content-security-policy"])
        assert nonce and f'<script nonce="{nonce.group(1)}"' in page.text
        assert page.text.count("<script") == 1
    home = client.get("/")
    stamp = client.cookies.get(CSRF_COOKIE) or ""
    assert f'data-challenge="{stamp}"' in home.text

    def send(address: str, **extra: str) -> None:
        answer = client.post("/subscribe", data={"email": address, "csrf": stamp, **extra})
        assert answer.status_code == 200 and THANKS in answer.text

    answer = _solve(stamp)
    send("no-answer@example.com")
    send("wrong@example.com", pow=next(str(n) for n in itertools.count()
                                       if not solved(stamp, str(n))))
    send("solved@example.com", pow=answer)
    send("again@example.com", pow=answer)  # one solution, one sign-up
    cross = client.post("/subscribe", json={"email": "cross@example.com"},
                        headers={"Origin": BLOG})
    assert cross.json() == {"status": "pending"}  # a static form cannot solve it
    assert smtp_server.recipients() == ["solved@example.com"]
    assert project.query("SELECT email FROM subscribers") == [("solved@example.com",)]
    assert _dropped(caplog) == [
        "no solved puzzle ([web] proof_of_work)", "no solved puzzle ([web] proof_of_work)",
        "its puzzle was solved for an earlier post", "no solved puzzle ([web] proof_of_work)"]


def test_proof_of_work_refuses_a_page_override_without_the_puzzle(
        project: Project, smtp_server: SmtpServer) -> None:
    folder = project.root / "templates" / "web"
    folder.mkdir(parents=True)
    (folder / "subscribe.html").write_text(
        '<form method="post" action="/subscribe"><input name="csrf" value="{{ csrf }}">'
        '<input name="email"></form>', encoding="utf-8")
    create_public_app(_config(project, smtp_server))  # without the puzzle: fine
    with pytest.raises(ConfigError, match=r"subscribe.html has no puzzle field"):
        create_public_app(_config(project, smtp_server, proof_of_work=True))


# -- in Chromium, against `ainews serve` ------------------------------------------------------

def test_a_bot_filling_every_input_stores_and_mails_nothing(
        project: Project, smtp_server: SmtpServer, browser: Browser) -> None:  # noqa: F811
    with serving(project, smtp_server) as served:
        context = browser.new_context()
        page = context.new_page()
        for path in ("/", "/embed"):
            page.goto(f"{served.base}{path}")
            for field in page.query_selector_all("input:not([type=hidden])"):
                kind = field.get_attribute("type")
                field.fill("bot@example.com" if kind == "email" else "https://spam.example",
                           force=True)  # the honeypot is off-screen, not hidden
            page.click("button[type=submit]")
            page.wait_for_selector(f"text={THANKS}")
        # A person on the same page: fills what they see.
        page.goto(f"{served.base}/")
        page.fill("#email", "person@example.com")
        page.click("button[type=submit]")
        page.wait_for_selector(f"text={THANKS}")
        wait_for_mail(smtp_server, "person@example.com")
        context.close()
    assert smtp_server.recipients() == ["person@example.com"]
    assert project.query("SELECT email FROM subscribers") == [("person@example.com",)]
    assert served.log.count("dropped: the hidden field was filled in") == 2


def test_a_form_sent_at_once_stores_and_mails_nothing(
        project: Project, smtp_server: SmtpServer, browser: Browser) -> None:  # noqa: F811
    """Filled and sent by a script the moment it arrives: with [web] min_form_seconds at 600
    for this server, "at once" holds on any machine; then forms timed by the test itself."""
    with serving(project, smtp_server, AINEWS_WEB__MIN_FORM_SECONDS="600") as served:
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"{served.base}/")
        page.fill("#email", "hasty@example.com")
        page.click("button[type=submit]")
        page.wait_for_selector(f"text={THANKS}")
        context.close()
        times = FormTimes(SECRET)
        for address, served_at in (("fresh@example.com", time.time()),
                                   ("patient@example.com", time.time() - 700)):
            stamp = times.make("page", at=served_at)
            status, _, body = post(
                f"{served.base}/subscribe",
                urllib.parse.urlencode({"email": address, "csrf": stamp}).encode(),
                {"Cookie": f"{CSRF_COOKIE}={stamp}",
                 "Content-Type": "application/x-www-form-urlencoded"})
            assert status == 200 and THANKS.encode() in body
        wait_for_mail(smtp_server, "patient@example.com")
    assert smtp_server.recipients() == ["patient@example.com"]
    assert project.query("SELECT email FROM subscribers") == [("patient@example.com",)]
    assert served.log.count("dropped: sent too soon after the form was served") == 2


def test_proof_of_work_in_chromium_with_and_without_javascript(
        project: Project, smtp_server: SmtpServer, browser: Browser) -> None:  # noqa: F811
    with serving(project, smtp_server, AINEWS_WEB__PROOF_OF_WORK="true") as served:
        without_js = browser.new_context(java_script_enabled=False)
        page = without_js.new_page()
        page.goto(f"{served.base}/")
        assert page.is_visible("text=This form needs JavaScript")
        page.fill("#email", "no-script@example.com")
        page.click("button[type=submit]")
        page.wait_for_selector(f"text={THANKS}")
        without_js.close()
        with_js = browser.new_context()
        page = with_js.new_page()
        blocked: list[str] = []
        page.on("console", lambda message: blocked.append(message.text)
                if "Content Security Policy" in message.text else None)
        for path, address in (("/", "solver@example.com"), ("/embed", "framed@example.com")):
            page.goto(f"{served.base}{path}")
            assert not page.is_visible("text=This form needs JavaScript")
            page.fill("#email", address)
            page.click("button[type=submit]")
            page.wait_for_selector(f"text={THANKS}")
            wait_for_mail(smtp_server, address)
        with_js.close()
    assert blocked == []
    assert sorted(smtp_server.recipients()) == ["framed@example.com", "solver@example.com"]
    assert sorted(project.query("SELECT email FROM subscribers")) == [
        ("framed@example.com",), ("solver@example.com",)]
    assert served.log.count("dropped: no solved puzzle") == 1
