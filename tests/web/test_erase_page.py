"""The reader's own "Erase me" (issue 29): /preferences/{token}/erase shows what it means,
erases on a CSRF-checked POST (and only then), and the erased reader can still come back
through their own double opt-in, which lifts the erased mark."""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage
from typing import cast

import pytest
from starlette.testclient import TestClient

from ainews_newsletter.config import Config, load_config
from ainews_newsletter.pipeline.issue import open_subscribers
from ainews_newsletter.subscribers.erased import erased_mark
from ainews_newsletter.web.public import create_public_app
from ainews_newsletter.web.security import CSRF_COOKIE
from tests.conftest import Project, SmtpServer, smtp_env

pytestmark = pytest.mark.clock

SECRET = "test-secret-key-of-enough-length"
ADDRESS = "Quinlan.Erasable@example.com"
NAME = "Quinlan Vestergaard"


def _config(project: Project, server: SmtpServer, **subscribers: bool) -> Config:
    overrides: dict[str, object] = {}
    if project.storage_url is not None:
        overrides["storage"] = {"url": project.storage_url}
    if subscribers:
        overrides["subscribers"] = subscribers
    return load_config(project.config_path, environ={**smtp_env(server),
                                                     "AINEWS_SECRET_KEY": SECRET},
                       overrides=overrides)


def _client(config: Config) -> TestClient:
    return TestClient(create_public_app(config), base_url="https://testserver",
                      follow_redirects=False)


def _confirmation_path(server: SmtpServer) -> str:
    message = cast(EmailMessage, email.message_from_bytes(server.handler.messages[-1].data,
                                                          policy=email.policy.default))
    found = re.search(r"https://news\.example\.org(/confirm/\S+)", message.get_content())
    assert found
    return found.group(1)


def test_erase_me_shows_then_erases_with_csrf_only(any_project: Project,
                                                   smtp_server: SmtpServer) -> None:
    config = _config(any_project, smtp_server)
    store = open_subscribers(config)
    token = store.add(ADDRESS, name=NAME).token
    store.add("stays@example.com")
    client = _client(config)
    preferences = client.get(f"/preferences/{token}")
    assert f'href="/preferences/{token}/erase"' in preferences.text
    page = client.get(f"/preferences/{token}/erase")
    csrf = client.cookies.get(CSRF_COOKIE)
    assert page.status_code == 200 and "Erase me" in page.text and ADDRESS in page.text
    assert csrf and f'value="{csrf}"' in page.text
    assert store.get(ADDRESS) is not None  # a GET changes nothing (link scanners follow it)
    for form in ({}, {"csrf": "forged"}):
        refused = client.post(f"/preferences/{token}/erase", data=form)
        assert refused.status_code == 400
    assert store.get(ADDRESS) is not None
    done = client.post(f"/preferences/{token}/erase", data={"csrf": csrf})
    assert done.status_code == 200 and "You are erased" in done.text
    assert store.get(ADDRESS) is None and store.get("stays@example.com") is not None
    assert any_project.query("SELECT reason FROM suppressions WHERE email_normalized = ?",
                             erased_mark(SECRET, ADDRESS.lower())) == [("erased",)]
    # The link went with the row: a second POST (a reload) finds nothing to erase.
    again = client.post(f"/preferences/{token}/erase", data={"csrf": csrf})
    assert again.status_code == 400 and "erased already" in again.text
    assert client.get(f"/preferences/{token}").status_code == 400


def test_an_erased_reader_comes_back_through_double_opt_in(any_project: Project,
                                                           smtp_server: SmtpServer) -> None:
    config = _config(any_project, smtp_server)
    store = open_subscribers(config)
    token = store.add(ADDRESS, name=NAME).token
    client = _client(config)
    client.get(f"/preferences/{token}/erase")
    client.post(f"/preferences/{token}/erase", data={"csrf": client.cookies.get(CSRF_COOKIE)})
    assert store.suppression(ADDRESS) == "erased"
    client.get("/")
    signed = client.post("/subscribe", data={"email": ADDRESS, "name": NAME,
                                              "csrf": client.cookies.get(CSRF_COOKIE)})
    assert signed.status_code == 200 and "Check your inbox" in signed.text
    assert smtp_server.recipients() == [ADDRESS]  # the confirmation mail went
    assert store.require(ADDRESS).status.value == "pending"
    assert store.suppression(ADDRESS) == "erased"  # until its owner confirms
    path = _confirmation_path(smtp_server)
    client.get(path)
    confirmed = client.post(path, data={"csrf": client.cookies.get(CSRF_COOKIE)})
    assert confirmed.status_code == 200 and "You are subscribed" in confirmed.text
    assert store.require(ADDRESS).status.value == "active"
    assert store.suppression(ADDRESS) is None
    assert any_project.query(
        "SELECT count(*) FROM suppressions WHERE reason <> 'key-check'") == [(0,)]


def test_single_opt_in_never_applies_to_an_erased_address(project: Project,
                                                          smtp_server: SmtpServer) -> None:
    config = _config(project, smtp_server, double_opt_in=False)
    store = open_subscribers(config)
    token = store.add(ADDRESS).token
    client = _client(config)
    client.get(f"/preferences/{token}/erase")
    client.post(f"/preferences/{token}/erase", data={"csrf": client.cookies.get(CSRF_COOKIE)})
    client.get("/")
    client.post("/subscribe", data={"email": ADDRESS, "csrf": client.cookies.get(CSRF_COOKIE)})
    assert smtp_server.recipients() == [ADDRESS]  # a confirmation, not a welcome
    assert store.require(ADDRESS).status.value == "pending"


def test_the_page_refuses_plainly_when_the_key_is_not_the_erases_key(
        project: Project, smtp_server: SmtpServer) -> None:
    """The operator changed AINEWS_SECRET_KEY after an earlier erase: the page says it
    cannot erase now and whom to write to (503), and changes nothing."""
    config = _config(project, smtp_server)
    store = open_subscribers(config)
    store.add("first@example.com")
    token = store.add(ADDRESS, name=NAME).token
    assert project.run("subscribers", "erase", "first@example.com", "--yes",
                       env={"AINEWS_SECRET_KEY": "the-key-earlier-erases-used"}).exit_code == 0
    client = _client(config)
    client.get(f"/preferences/{token}/erase")
    refused = client.post(f"/preferences/{token}/erase",
                          data={"csrf": client.cookies.get(CSRF_COOKIE)})
    assert refused.status_code == 503 and "Nothing was changed" in refused.text
    assert store.get(ADDRESS) is not None
    assert project.query("SELECT count(*) FROM memberships WHERE subscriber_id = "
                         "(SELECT id FROM subscribers WHERE email = ?)", ADDRESS) == [(1,)]
    assert project.query("SELECT count(*) FROM suppressions") == [(2,)]  # mark, fingerprint
