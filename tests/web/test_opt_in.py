"""Confirmation as the operator chooses, through the ASGI app on a real database and a real
aiosmtpd server: single opt-in on our own page (and only there, and never for an address
that left), confirm-on-click that a link scanner cannot trigger, and the per-mailbox daily
limit on confirmation mails counted in the database (it outlives the app)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from starlette.testclient import TestClient

from ainews_newsletter.config import Config, load_config
from ainews_newsletter.models import SubscriberStatus
from ainews_newsletter.pipeline.issue import open_subscribers
from ainews_newsletter.web.double_opt_in import DoubleOptIn
from ainews_newsletter.web.public import create_public_app
from ainews_newsletter.web.scanners import SCANNER_AGENTS, link_scanner
from ainews_newsletter.web.security import CSRF_COOKIE, ConfirmationTokens
from tests.conftest import Project, SmtpServer, smtp_env, utc

# Confirmation links carry their time: run again under libfaketime by scripts/test-clocks.
pytestmark = pytest.mark.clock

SECRET = "test-secret-key-of-enough-length"
BROWSER = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/131.0.0.0 Safari/537.36")


def _config(project: Project, server: SmtpServer, **sections: dict[str, Any]) -> Config:
    environ = {**smtp_env(server), "AINEWS_SECRET_KEY": SECRET}
    if project.storage_url is not None:
        environ["AINEWS_STORAGE__URL"] = project.storage_url
    return load_config(project.config_path, environ=environ, overrides=sections or None)


def _client(config: Config) -> TestClient:
    return TestClient(create_public_app(config), base_url="https://testserver",
                      follow_redirects=False, headers={"user-agent": BROWSER})


def _sign_up(client: TestClient, address: str, name: str = "") -> str:
    assert client.get("/").status_code == 200
    answer = client.post("/subscribe", data={"email": address, "name": name,
                                             "csrf": client.cookies.get(CSRF_COOKIE) or ""})
    assert answer.status_code == 200
    return answer.text


def _status(project: Project, address: str) -> str | None:
    found = project.query("SELECT status FROM subscribers WHERE email = ?", address)
    return str(found[0][0]) if found else None


@pytest.fixture
def welcomed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The addresses `after_joined` (the welcome mail's hook) was called for."""
    calls: list[str] = []
    monkeypatch.setattr(DoubleOptIn, "after_joined",
                        lambda self, email: calls.append(email))
    return calls


SINGLE = {"subscribers": {"double_opt_in": False}}
ON_CLICK = {"subscribers": {"confirm_on_click": True}}


# -- single opt-in ---------------------------------------------------------------------------

def test_single_opt_in_on_our_own_page_is_active_at_once_without_a_mail(
        project: Project, smtp_server: SmtpServer, welcomed: list[str]) -> None:
    client = _client(_config(project, smtp_server, **SINGLE))
    page = _sign_up(client, "ada@example.com", "Ada")
    assert "Thank you" in page and "Check your inbox" not in page
    assert project.query("SELECT status, name, source FROM subscribers") == [
        ("active", "Ada", "web")]
    assert smtp_server.handler.messages == []  # no confirmation mail
    assert welcomed == ["ada@example.com"]
    # Signing up again changes nothing and welcomes nobody twice.
    _sign_up(client, "ada@example.com")
    assert welcomed == ["ada@example.com"] and smtp_server.handler.messages == []
    kinds = project.query("SELECT kind, source FROM subscriber_events ORDER BY id")
    assert kinds == [("joined", "web")]


def test_single_opt_in_makes_a_pending_sign_up_active(
        project: Project, smtp_server: SmtpServer, welcomed: list[str]) -> None:
    config = _config(project, smtp_server, **SINGLE)
    open_subscribers(config).add("bo@example.com", status=SubscriberStatus.PENDING,
                                 source="web")
    _sign_up(_client(config), "bo@example.com", "Bo")
    assert _status(project, "bo@example.com") == "active"
    assert welcomed == ["bo@example.com"] and smtp_server.handler.messages == []


def test_a_cross_origin_sign_up_is_double_opt_in_whatever_the_setting(
        project: Project, smtp_server: SmtpServer, welcomed: list[str]) -> None:
    config = _config(project, smtp_server, **SINGLE)
    opt_in = DoubleOptIn(config, SECRET)
    opt_in.sign_up_and_mail("cy@example.com", "Cy", cross_origin=True)
    assert _status(project, "cy@example.com") == "pending"
    assert smtp_server.recipients() == ["cy@example.com"]  # the confirmation link
    assert welcomed == []
    opt_in.sign_up_and_mail("di@example.com", "Di")  # the same, from our own page
    assert _status(project, "di@example.com") == "active"
    assert smtp_server.recipients() == ["cy@example.com"] and welcomed == ["di@example.com"]


def test_single_opt_in_never_brings_back_an_address_that_left(
        project: Project, smtp_server: SmtpServer, welcomed: list[str]) -> None:
    config = _config(project, smtp_server, **SINGLE)
    store = open_subscribers(config)
    store.mark_left(store.add("bounced@example.com").id, SubscriberStatus.BOUNCED)
    store.unsubscribe(store.add("left@example.com").email)
    store.unsubscribe(store.add("gone@example.com").email)
    store.remove("gone@example.com")  # its row deleted, its address suppressed
    assert store.suppression("gone@example.com") == "unsubscribed"
    client = _client(config)
    for address in ("bounced@example.com", "left@example.com", "gone@example.com"):
        assert "Thank you" in _sign_up(client, address)  # the same page for everyone
    assert welcomed == []
    assert _status(project, "bounced@example.com") == "bounced"  # and it is mailed nothing
    assert _status(project, "left@example.com") == "unsubscribed"
    assert _status(project, "gone@example.com") == "pending"
    assert store.suppression("gone@example.com") == "unsubscribed"  # until they confirm
    # Who left by unsubscribing may come back, by confirming, as with double opt-in.
    assert sorted(smtp_server.recipients()) == ["gone@example.com", "left@example.com"]


# -- confirm on click ------------------------------------------------------------------------

def _pending_link(config: Config, address: str, seconds_ago: float) -> str:
    open_subscribers(config).add(address, status=SubscriberStatus.PENDING, source="web")
    token = ConfirmationTokens(SECRET, config.web.confirm_link_hours * 3600).make(
        address, None, issued_at=time.time() - seconds_ago)
    return f"/confirm/{token}"


@pytest.mark.parametrize("agent", [
    "Mozilla/5.0 (compatible; BingPreview/1.0b)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Proofpoint URL Defense",
    "Mimecast-URL-Protect/1.0",
    "Google-Safety",
    "",
], ids=["safe-links", "proofpoint", "mimecast", "google-safety", "no-agent"])
def test_a_scanners_user_agent_gets_the_button(project: Project, smtp_server: SmtpServer,
                                               welcomed: list[str], agent: str) -> None:
    config = _config(project, smtp_server, **ON_CLICK)
    path = _pending_link(config, "eve@example.com", seconds_ago=600)
    page = _client(config).get(path, headers={"user-agent": agent})
    assert page.status_code == 200 and "Yes, subscribe me" in page.text
    assert _status(project, "eve@example.com") == "pending" and welcomed == []


def test_head_and_the_first_ten_seconds_get_the_button(
        project: Project, smtp_server: SmtpServer, welcomed: list[str]) -> None:
    config = _config(project, smtp_server, **ON_CLICK)
    client = _client(config)
    old = _pending_link(config, "fay@example.com", seconds_ago=600)
    assert client.head(old).status_code == 200
    assert _status(project, "fay@example.com") == "pending"
    fresh = _pending_link(config, "gus@example.com", seconds_ago=0)  # as the mail arrives
    page = client.get(fresh)
    assert "Yes, subscribe me" in page.text and _status(project, "gus@example.com") == "pending"
    assert welcomed == []


def test_a_persons_click_confirms_at_once_and_welcomes(
        project: Project, smtp_server: SmtpServer, welcomed: list[str]) -> None:
    config = _config(project, smtp_server, **ON_CLICK)
    path = _pending_link(config, "hal@example.com", seconds_ago=60)
    page = _client(config).get(path)
    assert page.status_code == 200 and "You are subscribed" in page.text
    assert _status(project, "hal@example.com") == "active"
    assert welcomed == ["hal@example.com"]


def test_without_confirm_on_click_a_persons_click_still_gets_the_button(
        project: Project, smtp_server: SmtpServer, welcomed: list[str]) -> None:
    config = _config(project, smtp_server)
    path = _pending_link(config, "ivy@example.com", seconds_ago=60)
    assert "Yes, subscribe me" in _client(config).get(path).text
    assert _status(project, "ivy@example.com") == "pending" and welcomed == []


PEOPLE = [
    BROWSER,
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    # A phone whose model name ends in "bot" (why the list names bots one by one)
    "Mozilla/5.0 (Linux; Android 10; CUBOT X30) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Mobile Safari/537.36",
]


def test_the_scanner_rules_one_by_one() -> None:
    issued = utc(2026, 12, 1, 9, 0)
    later = utc(2026, 12, 1, 9, 5)
    person = {"user-agent": BROWSER}
    for agent in PEOPLE:
        assert link_scanner("GET", {"user-agent": agent}, issued, later) is None, agent
    assert link_scanner("HEAD", person, issued, later) == "a HEAD request"
    assert link_scanner("GET", {}, issued, later) == "no user agent"
    assert link_scanner("GET", {**person, "sec-purpose": "prefetch"}, issued, later)
    assert link_scanner("GET", person, issued, utc(2026, 12, 1, 9, 0, 9))
    assert link_scanner("GET", person, issued, utc(2026, 12, 1, 9, 0, 10)) is None
    for part in SCANNER_AGENTS:  # each entry catches, whatever its case in the header
        assert part == part.lower()
        assert link_scanner("GET", {"user-agent": f"X/1 ({part.upper()})"}, issued, later)


# -- the per-mailbox limit, in the database --------------------------------------------------

def test_the_mailbox_limit_outlives_the_app_on_both_databases(
        any_project: Project, smtp_server: SmtpServer) -> None:
    """Two apps on one database (two processes, or one restarted): plus-tags and all, one
    mailbox gets `confirmations_per_address_per_day` mails, and a sign-up over it stores
    nothing."""
    config = _config(any_project, smtp_server, web={"confirmations_per_address_per_day": 2})
    first, second = _client(config), _client(config)
    _sign_up(first, "wes+1@example.com")
    _sign_up(second, "wes+2@example.com")
    _sign_up(first, "wes@example.com")
    restarted = _client(config)
    _sign_up(restarted, "wes+3@example.com")
    assert smtp_server.recipients() == ["wes+1@example.com", "wes+2@example.com"]
    stored = {row[0] for row in any_project.query("SELECT email FROM subscribers")}
    assert stored == {"wes+1@example.com", "wes+2@example.com"}
    assert any_project.query("SELECT mailbox FROM confirmation_mails") == [
        ("wes@example.com",), ("wes@example.com",)]
    _sign_up(restarted, "other@example.com")  # another mailbox is not held back
    assert smtp_server.recipients()[-1] == "other@example.com"
