"""The public pages through Starlette's TestClient, on a real SQLite project and a real
aiosmtpd server: double opt-in, one-click unsubscribe, tokens, CSRF, throttles, archive."""

from __future__ import annotations

import email
import email.policy
import re
import time
import xml.etree.ElementTree as ElementTree
from email.message import EmailMessage
from typing import cast

import pytest
from starlette.testclient import TestClient

from ainews_newsletter.config import Config, load_config
from ainews_newsletter.delivery.transports import MemoryTransport
from ainews_newsletter.models import Window
from ainews_newsletter.pipeline.issue import open_subscribers
from ainews_newsletter.pipeline.send import execute_send, freeze_issue, plan_send
from ainews_newsletter.web.public import create_public_app
from ainews_newsletter.web.security import CSRF_COOKIE, ConfirmationTokens, Throttle
from tests.conftest import Project, SmtpServer, smtp_env

# Run again under libfaketime at awkward dates by scripts/test-clocks.
pytestmark = pytest.mark.clock

SECRET = "test-secret-key-of-enough-length"
HTTPS = "https://testserver"  # the project's base_url is https: the CSRF cookie is Secure


def _config(project: Project, server: SmtpServer, **web: int) -> Config:
    return load_config(project.config_path, environ={**smtp_env(server),
                                                     "AINEWS_SECRET_KEY": SECRET},
                       overrides={"web": web} if web else None)


def _client(config: Config) -> TestClient:
    return TestClient(create_public_app(config), base_url=HTTPS, follow_redirects=False)


def _csrf(client: TestClient, path: str = "/") -> str:
    page = client.get(path)
    assert page.status_code == 200
    token = client.cookies.get(CSRF_COOKIE)
    assert token and f'value="{token}"' in page.text
    return token


def _status(project: Project, address: str) -> str:
    [(status,)] = project.query("SELECT status FROM subscribers WHERE email = ?", address)
    return str(status)


def _confirmation_path(server: SmtpServer) -> str:
    message = cast(EmailMessage, email.message_from_bytes(server.handler.messages[-1].data,
                                                          policy=email.policy.default))
    text = message.get_content()
    found = re.search(r"https://news\.example\.org(/confirm/\S+)", text)
    assert found, text
    return found.group(1)


def test_double_opt_in(project: Project, smtp_server: SmtpServer) -> None:
    client = _client(_config(project, smtp_server))
    csrf = _csrf(client)
    answer = client.post("/subscribe", data={"email": "ada@example.com", "name": "Ada",
                                             "csrf": csrf})
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    assert smtp_server.recipients() == ["ada@example.com"]
    assert _status(project, "ada@example.com") == "pending"  # nothing is sent to pending
    path = _confirmation_path(smtp_server)
    page = client.get(path)
    assert page.status_code == 200 and "Yes, subscribe me" in page.text
    assert _status(project, "ada@example.com") == "pending"  # a GET never changes state
    confirmed = client.post(path, data={"csrf": client.cookies.get(CSRF_COOKIE)})
    assert confirmed.status_code == 200 and "You are subscribed" in confirmed.text
    assert _status(project, "ada@example.com") == "active"


def test_confirm_needs_the_csrf_token(project: Project, smtp_server: SmtpServer) -> None:
    client = _client(_config(project, smtp_server))
    client.post("/subscribe", data={"email": "bo@example.com", "csrf": _csrf(client)})
    path = _confirmation_path(smtp_server)
    client.get(path)
    for form in ({}, {"csrf": "forged"}):
        assert client.post(path, data=form).status_code == 400
    assert _status(project, "bo@example.com") == "pending"


def test_forged_altered_and_expired_confirmation_links(
        project: Project, smtp_server: SmtpServer) -> None:
    config = _config(project, smtp_server)
    client = _client(config)
    client.post("/subscribe", data={"email": "cy@example.com", "csrf": _csrf(client)})
    good = _confirmation_path(smtp_server).rsplit("/", 1)[1]
    other_key = ConfirmationTokens("another-secret-key-entirely", 3600).make(
        "cy@example.com", None)
    altered = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    expired = ConfirmationTokens(SECRET, 48 * 3600).make(
        "cy@example.com", None, issued_at=time.time() - 3 * 86400)
    for token, says in ((other_key, "not valid"), (altered, "not valid"),
                        (expired, "expired"), ("nonsense", "not valid")):
        csrf = client.cookies.get(CSRF_COOKIE) or ""
        for response in (client.get(f"/confirm/{token}"),
                         client.post(f"/confirm/{token}", data={"csrf": csrf})):
            assert response.status_code == 400 and says in response.text
    assert _status(project, "cy@example.com") == "pending"


def test_one_click_unsubscribe_is_idempotent_and_get_changes_nothing(
        project: Project, smtp_server: SmtpServer) -> None:
    config = _config(project, smtp_server)
    store = open_subscribers(config)
    token = store.add("dee@example.com").token
    client = _client(config)
    page = client.get(f"/unsubscribe/{token}")
    assert page.status_code == 200 and 'value="One-Click"' in page.text
    assert _status(project, "dee@example.com") == "active"  # link scanners follow GETs
    for _ in range(2):
        response = client.post(f"/unsubscribe/{token}",
                               data={"List-Unsubscribe": "One-Click"})
        assert response.status_code == 200 and "location" not in response.headers
        assert _status(project, "dee@example.com") == "unsubscribed"
    [(first_time,)] = project.query("SELECT unsubscribed_at FROM subscribers")
    client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    assert project.query("SELECT unsubscribed_at FROM subscribers") == [(first_time,)]


def test_unsubscribe_refuses_unknown_tokens_and_other_bodies(
        project: Project, smtp_server: SmtpServer) -> None:
    config = _config(project, smtp_server)
    token = open_subscribers(config).add("eve@example.com").token
    client = _client(config)
    assert client.post(f"/unsubscribe/{token}", data={"x": "y"}).status_code == 400
    assert client.post("/unsubscribe/not-a-token",
                       data={"List-Unsubscribe": "One-Click"}).status_code == 400
    assert client.get("/unsubscribe/not-a-token").status_code == 400
    assert _status(project, "eve@example.com") == "active"


def test_plus_tags_share_one_mailbox_throttle(project: Project,
                                              smtp_server: SmtpServer) -> None:
    client = _client(_config(project, smtp_server, confirmations_per_address_per_day=1))
    csrf = _csrf(client)
    for tag in range(4):
        client.post("/subscribe", data={"email": f"wes+{tag}@example.com", "csrf": csrf})
    assert smtp_server.recipients() == ["wes+0@example.com"]


def test_the_throttle_forgets_quiet_keys() -> None:
    now = [0.0]
    throttle = Throttle(2, 60, clock_=lambda: now[0])
    for key in range(1500):
        assert throttle.allow(f"k{key}")
    now[0] = 120.0
    for key in range(1000):
        throttle.allow(f"new{key}")
    assert len(throttle._events) <= 1000  # the 1,500 quiet keys are gone


def test_sign_ups_are_throttled_per_network_and_per_address(
        project: Project, smtp_server: SmtpServer) -> None:
    client = _client(_config(project, smtp_server, signups_per_ip_per_hour=3,
                             confirmations_per_address_per_day=1))
    # Each post from a page of its own: a form served signs up once (web/bots.py).
    for _ in range(2):  # the same address twice: one confirmation mail only
        assert client.post("/subscribe", data={"email": "fay@example.com",
                                               "csrf": _csrf(client)}).status_code == 200
    assert smtp_server.recipients() == ["fay@example.com"]
    assert client.post("/subscribe", data={"email": "gus@example.com",
                                           "csrf": _csrf(client)}).status_code == 200
    blocked = client.post("/subscribe", data={"email": "hal@example.com",
                                              "csrf": _csrf(client)})
    assert blocked.status_code == 429
    assert smtp_server.recipients() == ["fay@example.com", "gus@example.com"]


def test_subscribe_needs_csrf_and_escapes_what_it_shows(
        project: Project, smtp_server: SmtpServer) -> None:
    config = _config(project, smtp_server)
    client = _client(config)
    # Naming no site and carrying no token, a post could come from anyone's page: refused.
    # From our own origin, it is our page's form gone stale: reload and send again.
    assert client.post("/subscribe", data={"email": "ivy@example.com"}).status_code == 403
    assert client.post("/subscribe", data={"email": "ivy@example.com"},
                       headers={"Origin": "https://news.example.org"}).status_code == 400
    csrf = _csrf(client)
    evil = '<script>alert(1)</script>"@x'
    response = client.post("/subscribe", data={"email": evil, "csrf": csrf})
    assert response.status_code == 400 and "<script>alert(1)" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text
    assert smtp_server.handler.messages == []
    assert open_subscribers(config).count() == 0


def test_preferences_change_lists_with_csrf(project: Project, smtp_server: SmtpServer) -> None:
    config = _config(project, smtp_server)
    store = open_subscribers(config)
    store.add_list("research", "long reads")
    store.add_list("staff-internal", "not for readers")
    token = store.add("jo@example.com").token
    store.add("jo@example.com", list_name="research")
    client = _client(config)
    page = client.get(f"/preferences/{token}")
    csrf = client.cookies.get(CSRF_COOKIE)
    assert "research" in page.text and "staff-internal" not in page.text
    form = {"list:research": "on", "list:staff-internal": "on"}
    assert client.post(f"/preferences/{token}", data=form).status_code == 400  # no CSRF
    saved = client.post(f"/preferences/{token}", data={**form, "csrf": csrf})
    assert saved.status_code == 200 and "Saved." in saved.text
    # Left the default list; could not join a list that was never offered.
    assert store.require("jo@example.com").lists == ("research",)
    assert client.get("/preferences/forged").status_code == 400


def test_an_old_confirmation_link_cannot_bring_back_someone_who_left(
        project: Project, smtp_server: SmtpServer) -> None:
    config = _config(project, smtp_server)
    client = _client(config)
    client.post("/subscribe", data={"email": "lou@example.com", "csrf": _csrf(client)})
    path = _confirmation_path(smtp_server)
    client.get(path)
    csrf = client.cookies.get(CSRF_COOKIE)
    assert client.post(path, data={"csrf": csrf}).status_code == 200
    time.sleep(1.1)  # links carry their time to the second
    token = open_subscribers(config).require("lou@example.com").token
    client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    replay = client.post(path, data={"csrf": csrf})
    assert replay.status_code == 400 and "older than your unsubscribe" in replay.text
    assert _status(project, "lou@example.com") == "unsubscribed"
    project.query("UPDATE subscribers SET status = 'complained'")
    client.post("/subscribe", data={"email": "lou@example.com", "csrf": csrf})
    fresh = _confirmation_path(smtp_server)
    assert client.post(fresh, data={"csrf": csrf}).status_code == 400
    assert _status(project, "lou@example.com") == "complained"


def test_the_confirming_sign_up_sets_the_name(project: Project,
                                              smtp_server: SmtpServer) -> None:
    """Someone else signing an address up first cannot choose the name its owner is
    greeted with: the name comes with the link that is confirmed."""
    client = _client(_config(project, smtp_server))
    client.post("/subscribe", data={"email": "vic@example.com", "name": "Mallory Was Here",
                                    "csrf": _csrf(client)})
    csrf = _csrf(client)  # a page of its own: a form served signs up once
    client.post("/subscribe", data={"email": "vic@example.com", "name": "Victoria",
                                    "csrf": csrf})
    path = _confirmation_path(smtp_server)  # the owner's (second) link
    assert client.post(path, data={"csrf": csrf}).status_code == 200
    assert project.query("SELECT name, status FROM subscribers") == [("Victoria", "active")]


def test_archive_issue_pages_and_feed(project: Project, smtp_server: SmtpServer) -> None:
    config = _config(project, smtp_server)
    token = open_subscribers(config).add("kim@example.com").token
    plan = plan_send(config, Window(week="2026-W47"))
    execute_send(config, plan, transport=MemoryTransport([]))
    draft = plan_send(config, Window(week="2026-W46"), force=True)
    freeze_issue(config, draft)  # frozen, never sent: not public
    client = _client(config)
    archive = client.get("/issues/")
    assert archive.status_code == 200 and plan.subject in archive.text
    assert "2026-W46" not in archive.text
    page = client.get("/issues/2026-W47")
    assert page.status_code == 200 and "Monday Chip News" in page.text
    assert token not in page.text  # the archive copy is nobody's
    assert "script-src" not in page.headers["content-security-policy"]
    assert "default-src 'none'" in page.headers["content-security-policy"]
    for path in ("/issues/2026-W46", "/issues/2026-W99", "/issues/..%2f..%2fetc",
                 "/nothing-here", "/issues/a b"):
        assert client.get(path).status_code == 404, path
    feed = client.get("/feed.xml")
    assert feed.headers["content-type"].startswith("application/atom+xml")
    atom = "{http://www.w3.org/2005/Atom}"
    entries = ElementTree.fromstring(feed.content).findall(f"{atom}entry")
    assert [e.findtext(f"{atom}title") for e in entries] == [plan.subject]
    link = entries[0].find(f"{atom}link")
    assert link is not None and link.get("href") == "https://news.example.org/issues/2026-W47"
    assert client.get("/healthz").text == "ok"


def test_serve_refuses_to_start_without_a_secret_key(project: Project) -> None:
    result = project.run("serve")
    assert result.exit_code == 1 and "AINEWS_SECRET_KEY must be set" in result.stderr


def test_a_locked_database_answers_503_not_500(project: Project, smtp_server: SmtpServer,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Mail providers retry a one-click unsubscribe that gets a 5xx; 503 says "again soon"."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from ainews_newsletter.subscribers.store import SubscriberStore

    config = _config(project, smtp_server)
    token = open_subscribers(config).add("max@example.com").token

    def locked(self: SubscriberStore, token: str) -> None:
        raise OperationalError("UPDATE subscribers", {}, sqlite3.OperationalError("locked"))

    monkeypatch.setattr(SubscriberStore, "unsubscribe_token", locked)
    response = _client(config).post(f"/unsubscribe/{token}",
                                    data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 503 and "try again" in response.text
