"""The form times of our own page and /embed after review: a stale form on our page posted
with "Origin: null" (our no-referrer pages make browsers send it) is told to reload, not
refused; each form served buys one sign-up (single opt-in made one GET / worth a day of
active strangers); Origin null is no origin (never a Referer's); the subscribe page is not
cached; form times count milliseconds and older stamps still read. Through the ASGI app on
a real database and aiosmtpd, on the app's clock moved by hand."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from starlette.requests import Request
from starlette.testclient import TestClient

from ainews_newsletter import clock
from ainews_newsletter.config import Config, load_config
from ainews_newsletter.web.bots import FormTimes
from ainews_newsletter.web.cross_origin import request_origin
from ainews_newsletter.web.public import create_public_app
from ainews_newsletter.web.scanners import link_scanner
from ainews_newsletter.web.security import CSRF_COOKIE, ConfirmationTokens
from tests.conftest import Project, SmtpServer, smtp_env
from tests.web.signup_pages import SECRET

pytestmark = pytest.mark.clock

OURS = "https://news.example.org"  # the test project's base_url
EXPIRED = "The form had expired"


def _config(project: Project, server: SmtpServer, min_seconds: float = 0,
            **sections: dict[str, Any]) -> Config:
    environ = {**smtp_env(server), "AINEWS_SECRET_KEY": SECRET}
    if project.storage_url is not None:
        environ["AINEWS_STORAGE__URL"] = project.storage_url
    return load_config(project.config_path, environ=environ, overrides={
        "web": {"min_form_seconds": min_seconds}, **sections})


def _client(config: Config) -> TestClient:
    return TestClient(create_public_app(config), base_url=OURS, follow_redirects=False)


class _Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@contextmanager
def _clock_at(at: datetime) -> Iterator[_Clock]:
    moment = _Clock(at)
    with clock.use_clock(moment):
        yield moment


def _emails(project: Project) -> list[str]:
    if not project.query("SELECT name FROM sqlite_master WHERE name = 'subscribers'"):
        return []  # nothing was ever stored: the database is made on the first sign-up
    return sorted(str(row[0]) for row in project.query("SELECT email FROM subscribers"))


def test_a_stale_form_of_our_page_posted_with_origin_null_is_told_to_reload(
        project: Project, smtp_server: SmtpServer) -> None:
    client = _client(_config(project, smtp_server))
    assert client.get("/").status_code == 200
    stamp = client.cookies.get(CSRF_COOKIE) or ""
    # The cookie is gone (a browser restarted with its tabs) or replaced (/confirm opened in
    # another tab); the page's form still carries its form time; the browser says null.
    for cookie in (None, "another-tabs-value"):
        client.cookies.clear()
        if cookie is not None:
            client.cookies.set(CSRF_COOKIE, cookie)
        answer = client.post("/subscribe", data={"email": "stale@example.com", "csrf": stamp},
                             headers={"Origin": "null"})
        assert (answer.status_code, EXPIRED in answer.text) == (400, True), answer.text
    # Even a day-old form of ours: reload.
    old = FormTimes(SECRET).make("page", at=time.time() - 3 * 86400)
    answer = client.post("/subscribe", data={"email": "old@example.com", "csrf": old},
                         headers={"Origin": "null"})
    assert answer.status_code == 400 and EXPIRED in answer.text
    # A forged or other-key stamp, another form's kind, or none: refused as before.
    for csrf in ("page.m1795424400000.AAAAAAAAAAAAAAAA.forged-mac",
                 FormTimes("another-secret-key-entirely").make("page"),
                 FormTimes(SECRET).make("embed"), ""):
        answer = client.post("/subscribe", data={"email": "x@example.com", "csrf": csrf},
                             headers={"Origin": "null"})
        assert answer.status_code == 403, csrf
    assert _emails(project) == [] and smtp_server.recipients() == []


def _request(headers: dict[str, str]) -> Request:
    return Request({"type": "http", "method": "POST", "path": "/subscribe", "headers": [
        (key.lower().encode(), value.encode()) for key, value in headers.items()]})


def test_origin_null_is_no_origin_and_referer_counts_only_without_origin(
        project: Project, smtp_server: SmtpServer) -> None:
    assert request_origin(_request({"Origin": "null", "Referer": f"{OURS}/"})) is None
    assert request_origin(_request({"Origin": "", "Referer": f"{OURS}/"})) is None
    assert request_origin(_request({"Referer": f"{OURS}/page"})) == OURS
    assert request_origin(_request({"Origin": "https://blog.example",
                                    "Referer": f"{OURS}/"})) == "https://blog.example"
    # Through the app: null plus a Referer naming us, no token, is no page of ours.
    client = _client(_config(project, smtp_server))
    answer = client.post("/subscribe", data={"email": "x@example.com"},
                         headers={"Origin": "null", "Referer": f"{OURS}/"})
    assert answer.status_code == 403


def _embed_stamp(client: TestClient) -> str:
    page = client.get("/embed")
    found = re.search(r'name="form_time" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


@pytest.mark.parametrize("single", [True, False], ids=["single-opt-in", "double-opt-in"])
def test_each_form_served_signs_up_once(
        project: Project, smtp_server: SmtpServer, single: bool) -> None:
    sections = {"subscribers": {"double_opt_in": False}} if single else {}
    client = _client(_config(project, smtp_server, **sections))
    first = client.get("/")
    stamp = client.cookies.get(CSRF_COOKIE) or ""
    assert first.headers["cache-control"] == "no-store"
    client.get("/")
    assert client.cookies.get(CSRF_COOKIE) not in (None, stamp)  # a fresh one every GET
    embed = _embed_stamp(client)
    assert _embed_stamp(client) != embed
    answers = []
    for address in ("one@example.com", "two@example.com", "three@example.com"):
        answer = client.post("/subscribe", data={"email": address, "csrf": stamp},
                             headers={"Cookie": f"{CSRF_COOKIE}={stamp}"})
        assert answer.status_code == 200
        answers.append(answer.text.replace(address, "ADDRESS"))
    for address in ("framed@example.com", "framed-again@example.com"):
        answer = client.post("/subscribe", data={"email": address, "form_time": embed},
                             headers={"Origin": OURS})
        assert answer.status_code == 200 and "Check your inbox" in answer.text
    assert len(set(answers)) == 1  # a second post of the same form: the same thank-you
    assert _emails(project) == ["framed@example.com", "one@example.com"]
    expected = ["framed@example.com"] if single else ["one@example.com", "framed@example.com"]
    assert sorted(smtp_server.recipients()) == sorted(expected)


def test_the_minimum_counts_milliseconds_and_older_stamps_still_read(
        project: Project, smtp_server: SmtpServer) -> None:
    client = _client(_config(project, smtp_server, min_seconds=2))
    with _clock_at(datetime(2026, 11, 18, 9, 0, 0, 500_000, tzinfo=UTC)) as moment:
        client.get("/")
        stamp = client.cookies.get(CSRF_COOKIE) or ""
        moment.at += timedelta(seconds=1.9)  # 09:00:02.400: in whole seconds, 2.4 s
        client.post("/subscribe", data={"email": "quick@example.com", "csrf": stamp})
        assert _emails(project) == []
        times = FormTimes(SECRET)
        age = times.age(stamp, "page")
        assert age is not None and abs(age - 1.9) < 0.001
        # A stamp of the older format (whole seconds), from a page served before an upgrade.
        served = int(moment.at.timestamp()) - 30
        body = f"page.{served}.AAAAAAAAAAAAAAAA"
        older = f"{body}.{times._mac(body)}"
        assert times.age(older, "page") == moment.at.timestamp() - served
        client.cookies.set(CSRF_COOKIE, older)
        client.post("/subscribe", data={"email": "older@example.com", "csrf": older})
    assert _emails(project) == ["older@example.com"]


def test_confirmation_links_made_with_the_key_as_it_was_derived_still_read() -> None:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=b"ainews confirmation links").derive(SECRET.encode())
    data = json.dumps({"e": "ada@example.com", "l": None, "n": "Ada"}).encode()
    token = Fernet(base64.urlsafe_b64encode(key)).encrypt(data).decode("ascii")
    read = ConfirmationTokens(SECRET, 3600).read(token)
    assert (read.email, read.name) == ("ada@example.com", "Ada")


def test_fetch_metadata_that_is_no_navigation_marks_a_scanner() -> None:
    issued, later = datetime(2026, 12, 1, 9, tzinfo=UTC), datetime(2026, 12, 1, 10, tzinfo=UTC)
    person = {"user-agent": "Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15 Version/15.6 Safari"}
    clicked = {**person, "sec-fetch-site": "none", "sec-fetch-mode": "navigate",
               "sec-fetch-dest": "document"}
    assert link_scanner("GET", person, issued, later) is None  # no Fetch Metadata: a person
    assert link_scanner("GET", clicked, issued, later) is None
    assert link_scanner("GET", {**clicked, "sec-fetch-site": "cross-site"}, issued,
                        later) is None
    for mode in ("cors", "no-cors", "same-origin", ""):
        why = link_scanner("GET", {**clicked, "sec-fetch-mode": mode}, issued, later)
        assert why is not None and "not a navigation" in why, mode
    assert link_scanner("GET", {**person, "sec-fetch-site": "none"}, issued, later)
