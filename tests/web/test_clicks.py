"""`/c/<token>` through the real public app (Starlette's TestClient) on a real SQLite project,
after a real send to aiosmtpd: the redirect and the click row, scanners counted apart,
and every forged, unknown or open-redirect attempt a 404 without a Location. The archive
copy and the preview keep the real links."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from html import unescape
from typing import cast

import pytest
from starlette.testclient import TestClient

from ainews_newsletter import clock
from ainews_newsletter.config import Config, load_config
from ainews_newsletter.delivery.clickstats import click_counts
from ainews_newsletter.delivery.clicktokens import ClickTokens
from ainews_newsletter.models import Window
from ainews_newsletter.pipeline.issue import open_ledger
from ainews_newsletter.pipeline.send import execute_send, plan_send
from ainews_newsletter.web.preview import create_preview_app
from ainews_newsletter.web.public import create_public_app
from tests.conftest import Project, SmtpServer, smtp_env

SECRET = "click-secret-key-of-enough-length"
SITE = "https://news.example.org"
CLICK = re.compile(re.escape(SITE) + r"/c/([A-Za-z0-9_-]+)")
W46, W47 = Window(week="2026-W46"), Window(week="2026-W47")


def _config(project: Project, server: SmtpServer) -> Config:
    return load_config(project.config_path, environ={**smtp_env(server),
                                                     "AINEWS_SECRET_KEY": SECRET})


@pytest.fixture
def config(project: Project, smtp_server: SmtpServer) -> Config:
    """Clicks counted; W47 (three posts) sent to two readers."""
    project.write_config("[tracking]\nclicks = true\n")
    project.import_readers(2)
    config = _config(project, smtp_server)
    execute_send(config, plan_send(config, W47))
    return config


@pytest.fixture
def client(config: Config) -> Iterator[TestClient]:
    with TestClient(create_public_app(config), base_url="https://testserver",
                    follow_redirects=False) as test_client:
        yield test_client


def _tokens(server: SmtpServer, index: int = 0) -> list[str]:
    """The "Read more" click tokens of the index-th message received, post 1 first."""
    text = server.handler.messages[index].message.get_body(("plain",))
    assert text is not None
    return re.findall(r"Read more: " + CLICK.pattern, text.get_content())


def _links(project: Project, issue: str = "2026-W47") -> list[str]:
    return [url for (url,) in project.query(
        "SELECT l.url FROM issue_links l JOIN issues i ON i.id = l.issue_id "
        "WHERE i.period_key = ? ORDER BY l.position", issue)]


def _sent_at(project: Project) -> datetime:
    [(sent,)] = project.query("SELECT max(sent_at) FROM deliveries")
    return datetime.fromisoformat(str(sent))


def _at(when: datetime) -> clock.Clock:
    return clock.frozen(when if when.tzinfo else when.replace(tzinfo=clock.now().tzinfo))


def _clicks(project: Project) -> list[tuple[int, int, int]]:
    return cast(list[tuple[int, int, int]], project.query(
        "SELECT delivery_id, position, scanner FROM clicks ORDER BY id"))


def _issue_id(project: Project, key: str = "2026-W47") -> int:
    [(issue_id,)] = project.query("SELECT id FROM issues WHERE period_key = ?", key)
    return int(issue_id)


def test_a_click_redirects_to_the_post_and_is_counted_once(
        project: Project, smtp_server: SmtpServer, client: TestClient, config: Config) -> None:
    tokens, links = _tokens(smtp_server), _links(project)
    with clock.use_clock(_at(_sent_at(project) + timedelta(hours=2))):
        answer = client.get(f"/c/{tokens[1]}")
    assert answer.status_code == 302 and answer.headers["location"] == links[1]
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["referrer-policy"] == "no-referrer"  # the post never sees the token
    ref = ClickTokens(SECRET).read(tokens[1])
    assert ref is not None and _clicks(project) == [(ref.delivery_id, 2, 0)]
    counts = click_counts(open_ledger(config).engine, _issue_id(project))
    assert counts is not None and (counts.total, counts.unique, counts.scanner) == (1, 1, 0)
    assert counts.links[0].url == links[1] and counts.links[0].total == 1
    assert [link.total for link in counts.links] == [1, 0, 0]


def test_head_requests_are_counted_as_scanners(project: Project, smtp_server: SmtpServer,
                                               client: TestClient, config: Config) -> None:
    with clock.use_clock(_at(_sent_at(project) + timedelta(hours=2))):
        answer = client.head(f"/c/{_tokens(smtp_server)[0]}")
    assert answer.status_code == 302 and answer.headers["location"] == _links(project)[0]
    assert [scanner for _, _, scanner in _clicks(project)] == [1]
    counts = click_counts(open_ledger(config).engine, _issue_id(project))
    assert counts is not None and (counts.total, counts.unique, counts.scanner) == (0, 0, 1)


def test_a_burst_over_three_links_in_ten_seconds_is_a_scanner(
        project: Project, smtp_server: SmtpServer, client: TestClient, config: Config) -> None:
    later = _sent_at(project) + timedelta(hours=2)
    scanned, read = _tokens(smtp_server, 0), _tokens(smtp_server, 1)
    for offset, token in zip((0, 3, 8), scanned, strict=True):  # one reader's copy: a gateway
        with clock.use_clock(_at(later + timedelta(seconds=offset))):
            assert client.get(f"/c/{token}").status_code == 302
    for offset, token in zip((0, 4, 30), read, strict=True):  # the other: a person, unhurried
        with clock.use_clock(_at(later + timedelta(seconds=offset))):
            assert client.get(f"/c/{token}").status_code == 302
    scanner = [flag for delivery, _, flag in _clicks(project)
               if delivery == ClickTokens(SECRET).read(scanned[0]).delivery_id]  # type: ignore[union-attr]
    assert scanner == [1, 1, 1]  # the first two are marked once the third shows the burst
    counts = click_counts(open_ledger(config).engine, _issue_id(project))
    assert counts is not None and (counts.total, counts.unique, counts.scanner) == (3, 1, 3)


def test_three_links_in_the_first_minute_after_sending_are_a_scanner(
        project: Project, smtp_server: SmtpServer, client: TestClient) -> None:
    sent = _sent_at(project)
    for offset, token in zip((5, 25, 50), _tokens(smtp_server), strict=True):
        with clock.use_clock(_at(sent + timedelta(seconds=offset))):
            client.get(f"/c/{token}")
    assert [flag for _, _, flag in _clicks(project)] == [1, 1, 1]


def _refused(client: TestClient, path: str, method: str = "GET") -> None:
    answer = client.request(method, path)
    assert answer.status_code == 404, path
    assert "location" not in answer.headers, path
    assert "evil" not in answer.text
    if method == "GET":
        assert "Not found" in answer.text  # the site's own page, not a bare error


def test_forged_unknown_and_open_redirect_attempts_get_404_and_no_location(
        project: Project, smtp_server: SmtpServer, client: TestClient, config: Config) -> None:
    token = _tokens(smtp_server)[0]
    for index in (0, 5, len(token) - 1):  # one character changed anywhere
        changed = "A" if token[index] != "A" else "B"
        _refused(client, f"/c/{token[:index]}{changed}{token[index + 1:]}")
        _refused(client, f"/c/{token[:index]}{changed}{token[index + 1:]}", "HEAD")
    signer = ClickTokens(SECRET)
    _refused(client, f"/c/{signer.make(999_999, 1)}")  # a delivery that does not exist
    # W46 (one post) sent too: its delivery with W47's link 3, which W46 never carried.
    execute_send(config, plan_send(config, W46, force=True))
    assert len(_links(project, "2026-W46")) == 1 and len(_links(project)) == 3
    [(w46_delivery,)] = project.query(
        "SELECT d.id FROM deliveries d JOIN issues i ON i.id = d.issue_id "
        "WHERE i.period_key = '2026-W46' LIMIT 1")
    _refused(client, f"/c/{signer.make(int(w46_delivery), 3)}")
    _refused(client, f"/c/{ClickTokens('another-secret-of-enough-length').make(1, 1)}")
    for path in ("/c/https://evil.example", "/c/https:%2F%2Fevil.example", "/c/",
                 "/c/evil.example", "/c//evil.example", f"/c/{token}/https://evil.example",
                 "/c/x?url=https://evil.example", "/c/%0d%0aLocation:%20https://evil.example"):
        _refused(client, path)
    assert _clicks(project) == []
    # A valid token ignores whatever the request adds: the Location is the stored link.
    answer = client.get(f"/c/{token}?url=https://evil.example&next=//evil.example")
    assert answer.status_code == 302 and answer.headers["location"] == _links(project)[0]


def test_the_archive_copy_keeps_the_real_links(project: Project, client: TestClient) -> None:
    page = client.get("/issues/2026-W47")
    assert page.status_code == 200
    hrefs = {unescape(href) for href in re.findall(r'href="([^"]*)"', page.text)}
    assert set(_links(project)) <= hrefs
    assert "/c/" not in page.text


def test_the_preview_keeps_the_real_links(project: Project, smtp_server: SmtpServer,
                                          config: Config) -> None:
    app = create_preview_app(config, W47, watch=False, environ=smtp_env(smtp_server))
    with TestClient(app, base_url="http://127.0.0.1:8025") as preview:
        page = preview.get("/").text
    assert "/c/" not in unescape(page)
    for link in _links(project):
        assert link in unescape(page)  # in the text tab and the HTML frame
