"""Proof of consent for web sign-ups (issue 29), through the ASGI app on SQLite and
PostgreSQL: our page with each [privacy] store_ip, an IPv6 reader, the user agent, a post
from another site naming its origin, the confirmation time, single opt-in."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

from ainews_newsletter.config import Config, load_config
from ainews_newsletter.database import engine_for
from ainews_newsletter.subscribers.consent_records import ConsentRecord, read, text_hash
from ainews_newsletter.web.bots import FORM_TIME_FIELD
from ainews_newsletter.web.consent_wording import visible_text
from ainews_newsletter.web.public import create_public_app
from ainews_newsletter.web.security import CSRF_COOKIE, ConfirmationTokens
from tests.conftest import Project, SmtpServer, smtp_env

# Confirmation links and form times carry their time: rerun under libfaketime too.
pytestmark = pytest.mark.clock

SECRET = "test-secret-key-of-enough-length"
OURS = "https://news.example.org"
BLOG = "https://blog.example"
AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0 " + "x" * 400


def _config(project: Project, server: SmtpServer, **sections: dict[str, Any]) -> Config:
    environ = {**smtp_env(server), "AINEWS_SECRET_KEY": SECRET}
    if project.storage_url is not None:
        environ["AINEWS_STORAGE__URL"] = project.storage_url
    overrides: dict[str, Any] = {"web": {"allowed_origins": [BLOG]}, **sections}
    return load_config(project.config_path, environ=environ, overrides=overrides)


def _client(config: Config, host: str = "203.0.113.77") -> TestClient:
    return TestClient(create_public_app(config), base_url=OURS, follow_redirects=False,
                      client=(host, 50000), headers={"user-agent": AGENT})


def _sign_up_on_our_page(client: TestClient, address: str) -> None:
    assert client.get("/").status_code == 200
    answer = client.post("/subscribe", data={"email": address,
                                             "csrf": client.cookies.get(CSRF_COOKIE) or ""})
    assert answer.status_code == 200


def _consent(config: Config, address: str) -> ConsentRecord:
    engine = engine_for(config.database_url)
    with engine.connect() as connection:
        subscriber_id = connection.execute(text(
            "SELECT id FROM subscribers WHERE email = :e"), {"e": address}).scalar_one()
    found = read(engine, subscriber_id)
    assert found is not None
    return found


@pytest.mark.parametrize(("store_ip", "host", "kept"), [
    ("none", "203.0.113.77", None),
    ("truncated", "203.0.113.77", "203.0.113.0/24"),
    ("full", "203.0.113.77", "203.0.113.77"),
    ("truncated", "2001:db8:1234:5678::1", "2001:db8:1234::/48"),
    ("full", "2001:db8:1234:5678::1", "2001:db8:1234:5678::1"),
])
def test_our_page_records_the_page_the_ip_as_configured_and_the_wording(
        any_project: Project, smtp_server: SmtpServer, store_ip: str, host: str,
        kept: str | None) -> None:
    config = _config(any_project, smtp_server, privacy={"store_ip": store_ip})
    client = _client(config, host)
    _sign_up_on_our_page(client, "ada@example.com")
    consent = _consent(config, "ada@example.com")
    assert (consent.how, consent.source, consent.ip) == ("web", "our page", kept)
    assert consent.user_agent is None  # [privacy] store_user_agent is off by default
    assert consent.confirmed_at is None  # double opt-in: not until the link is followed
    # The hash of what the reader read: the page's visible wording, which tells them a
    # confirmation link comes first.
    page = client.get("/").text
    assert "We send a confirmation link first" in visible_text(page)
    assert consent.consent_text == text_hash(visible_text(page))
    assert len(consent.consent_text) == 16


def test_following_the_link_records_the_confirmation_time_once(
        any_project: Project, smtp_server: SmtpServer) -> None:
    config = _config(any_project, smtp_server, privacy={"store_user_agent": True})
    client = _client(config)
    _sign_up_on_our_page(client, "bo@example.com")
    before = _consent(config, "bo@example.com")
    assert before.user_agent == AGENT[:300]
    token = ConfirmationTokens(SECRET, 48 * 3600).make("bo@example.com", None)
    client.get(f"/confirm/{token}")
    done = client.post(f"/confirm/{token}", data={"csrf": client.cookies.get(CSRF_COOKIE)})
    assert "You are subscribed" in done.text
    after = _consent(config, "bo@example.com")
    assert after.confirmed_at is not None and after.confirmed_at >= after.given_at
    assert after.given_at == before.given_at and after.source == "our page"
    client.post(f"/confirm/{token}", data={"csrf": client.cookies.get(CSRF_COOKIE)})
    assert _consent(config, "bo@example.com").confirmed_at == after.confirmed_at


def test_a_post_from_another_site_records_its_origin(
        any_project: Project, smtp_server: SmtpServer) -> None:
    config = _config(any_project, smtp_server)
    client = _client(config)
    answer = client.post("/subscribe", content=json.dumps({"email": "cy@example.com"}),
                         headers={"Content-Type": "application/json", "Origin": BLOG})
    assert answer.status_code == 200
    consent = _consent(config, "cy@example.com")
    assert (consent.how, consent.source, consent.ip) == ("web", BLOG, "203.0.113.0/24")
    assert consent.consent_text is None  # the other site's wording: we never see it


def test_embed_records_its_page_and_its_own_wording(
        any_project: Project, smtp_server: SmtpServer) -> None:
    config = _config(any_project, smtp_server)
    client = _client(config)
    page = client.get("/embed").text
    stamp = re.search(f'name="{FORM_TIME_FIELD}" value="([^"]+)"', page)
    assert stamp is not None
    answer = client.post("/subscribe", data={"email": "di@example.com",
                                             FORM_TIME_FIELD: stamp.group(1)},
                         headers={"Origin": OURS})
    assert answer.status_code == 200
    consent = _consent(config, "di@example.com")
    assert consent.source == "/embed"
    assert consent.consent_text == text_hash(visible_text(page))
    own = text_hash(visible_text(client.get("/").text))
    assert consent.consent_text != own  # another wording, another hash


def test_single_opt_in_is_confirmed_as_it_is_given(
        any_project: Project, smtp_server: SmtpServer) -> None:
    config = _config(any_project, smtp_server, subscribers={"double_opt_in": False,
                                                            "welcome": False})
    _sign_up_on_our_page(_client(config), "eve@example.com")
    consent = _consent(config, "eve@example.com")
    assert consent.how == "web" and consent.source == "our page"
    assert consent.confirmed_at == consent.given_at


def test_signing_up_again_after_leaving_replaces_the_record(
        any_project: Project, smtp_server: SmtpServer) -> None:
    config = _config(any_project, smtp_server)
    assert any_project.run("subscribers", "add", "fay@example.com").exit_code == 0
    assert any_project.run("subscribers", "unsubscribe", "fay@example.com").exit_code == 0
    assert _consent(config, "fay@example.com").how == "cli"
    _sign_up_on_our_page(_client(config), "fay@example.com")
    consent = _consent(config, "fay@example.com")
    assert (consent.how, consent.source, consent.confirmed_at) == ("web", "our page", None)
    assert any_project.query("SELECT count(*) FROM consents") == [(1,)]
