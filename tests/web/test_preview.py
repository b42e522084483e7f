"""The writer's preview through Starlette's TestClient, on the project fixture (real posts,
real SQLite, a real aiosmtpd server): what the page shows, errors as readable text, the
test send (CSRF, Origin, ledger untouched), escaping, config reload and what the watcher
reacts to."""

from __future__ import annotations

import asyncio
import html
import re
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from watchfiles import Change

from ainews_newsletter.config import Config, load_config
from ainews_newsletter.models import Window
from ainews_newsletter.pipeline.issue import build
from ainews_newsletter.web.live_reload import Hub, watch_targets
from ainews_newsletter.web.preview import create_preview_app, force_dark
from tests.conftest import REPO, Project, SmtpServer, post_text, smtp_env, write_post

LOCAL = "http://127.0.0.1:8025"
W47 = Window(week="2026-W47")


def _config(project: Project, server: SmtpServer) -> Config:
    return load_config(project.config_path, environ=smtp_env(server))


@pytest.fixture
def client(project: Project, smtp_server: SmtpServer) -> Iterator[TestClient]:
    app = create_preview_app(_config(project, smtp_server), W47, watch=False,
                             environ=smtp_env(smtp_server))
    with TestClient(app, base_url=LOCAL) as test_client:
        yield test_client


def _posts(page: str) -> dict[str, str]:
    """Post title → the badge it is listed with (carried, more, or why it is left out)."""
    rows = re.findall(r'<li class="post"><span class="badge \w+">([^<]+)</span>'
                      r"(?:<a [^>]*>)?([^<]+)", page)
    return {html.unescape(title.strip()): badge for badge, title in rows}


def _panel(page: str, element: str, id_: str) -> str:
    found = re.search(rf'<{element}[^>]* id="{id_}"[^>]*>(.*?)</{element}>', page, re.S)
    assert found, f"no #{id_} in the page"
    return html.unescape(found.group(1))


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found
    return found.group(1)


def test_page_shows_the_issue_and_why_each_post_is_in_or_out(
        client: TestClient, project: Project, smtp_server: SmtpServer) -> None:
    page = client.get("/")
    assert page.status_code == 200
    expected = build(_config(project, smtp_server), W47).subject
    assert expected.startswith("Friday Research Result")
    assert _panel(page.text, "p", "subject") == expected
    assert _posts(page.text) == {"Friday Research Result": "carried",
                                 "Wednesday Policy Update": "carried",
                                 "Monday Chip News": "carried",
                                 "Older Story From Last Week": "out of window"}
    assert "out of window: 2026-W47" in page.text
    assert page.text.count('sandbox=""') == 2  # 375 px and 600 px, scripts off in both
    assert 'class="mobile"' in page.text and 'class="desktop"' in page.text
    assert 'value="2026-W46"' not in page.text and "?week=2026-W46" in page.text  # previous
    assert "?week=2026-W48" in page.text


def test_more_than_max_posts_are_listed_as_more(project: Project,
                                                smtp_server: SmtpServer) -> None:
    project.write_config("[posts]\nmax_posts = 2\n")
    app = create_preview_app(_config(project, smtp_server), W47, watch=False)
    with TestClient(app, base_url=LOCAL) as client:
        posts = _posts(client.get("/").text)
    assert posts["Monday Chip News"] == "more"  # the oldest of three in W47
    assert list(posts.values()).count("carried") == 2


def test_text_and_headers_tabs(client: TestClient) -> None:
    page = client.get("/").text
    text = _panel(page, "pre", "text-part")
    assert "Friday Research Result" in text and "Wednesday Policy Update" in text
    assert "https://news.example.org/unsubscribe/" in text  # filled in for a sample reader
    headers = dict(re.findall(r'<tr><th scope="row">([^<]+)</th><td>([^<]*)', page))
    headers = {name: html.unescape(value).strip() for name, value in headers.items()}
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "https://news.example.org/unsubscribe/" in headers["List-Unsubscribe"]
    assert headers["Subject"].startswith("Friday Research Result")
    assert "digest@news.example.org" in headers["From"]
    assert headers["Message-ID"].startswith("<") and headers["Date"]
    size = int(headers["Size"].split(" bytes")[0].replace(",", ""))
    assert size > len(text)
    source = _panel(page, "pre", "html-source")  # the HTML source tab, escaped in the page
    assert source.startswith("<!DOCTYPE html><html") and "Friday Research Result" in source
    assert "&lt;html" in page and "<html lang" not in page.split('id="html-source"')[1]


def test_a_week_without_posts_shows_the_reason_not_a_500(client: TestClient) -> None:
    page = client.get("/?week=2026-W10")
    assert page.status_code == 200
    error = _panel(page.text, "div", "build-error")
    assert "only 0 posts in window, min_posts is 1 (2026-W10)" in error
    assert "<iframe" not in page.text
    # The posts are still listed, each with why it is not in this week.
    assert set(_posts(page.text).values()) == {"out of window"}


def test_a_bad_week_is_a_readable_error(client: TestClient) -> None:
    page = client.get("/", params={"week": "<b>soon</b>"})
    assert page.status_code == 200
    assert "&lt;b&gt;soon&lt;/b&gt;" in page.text and "<b>soon</b>" not in page.text
    assert "<b>soon</b>" in _panel(page.text, "div", "build-error")


def test_send_test_delivers_one_copy_and_leaves_the_ledger_alone(
        client: TestClient, project: Project, smtp_server: SmtpServer) -> None:
    csrf = _csrf(client.get("/").text)
    answer = client.post("/send-test", data={"csrf": csrf, "address": "writer@example.org",
                                             "week": "2026-W47"}, headers={"Origin": LOCAL})
    assert answer.status_code == 200  # after the redirect back to the page
    assert answer.history and answer.history[0].status_code == 303
    outcome = _panel(answer.text, "div", "send-outcome")
    assert "sent" in outcome and "250" in outcome and "writer@example.org" in outcome
    assert smtp_server.recipients() == ["writer@example.org"]
    assert smtp_server.handler.messages[0].message["Subject"].startswith("Friday Research")
    assert project.query("SELECT COUNT(*) FROM deliveries") == [(0,)]
    assert project.query("SELECT COUNT(*) FROM issues") == [(0,)]
    client.get(answer.url)  # what a live reload does: nothing is sent again
    assert len(smtp_server.handler.messages) == 1


@pytest.mark.parametrize("token", [None, "", "forged-token"])
def test_send_test_needs_the_csrf_token(client: TestClient, smtp_server: SmtpServer,
                                        token: str | None) -> None:
    client.get("/")
    data = {"address": "writer@example.org"} | ({"csrf": token} if token is not None else {})
    answer = client.post("/send-test", data=data)
    assert answer.status_code == 400
    assert smtp_server.handler.messages == []


def test_send_test_refuses_another_origin(client: TestClient, smtp_server: SmtpServer) -> None:
    csrf = _csrf(client.get("/").text)
    for origin in ("https://evil.example", "null", "http://127.0.0.1.evil.example"):
        answer = client.post("/send-test", data={"csrf": csrf, "address": "a@example.org"},
                             headers={"Origin": origin})
        assert answer.status_code == 403, origin
    assert smtp_server.handler.messages == []


def test_a_foreign_host_name_is_refused(client: TestClient) -> None:
    # A DNS-rebinding page (evil.example resolving to 127.0.0.1) must not read the token.
    assert client.get("/", headers={"Host": "evil.example:8025"}).status_code == 400
    assert client.get("/healthz").text == "ok"


def test_post_text_is_escaped(project: Project, smtp_server: SmtpServer) -> None:
    write_post(project.posts, "2026-11-21-xss.md",
               post_text("<script>alert(1)</script> Leak", "2026-11-21T10:00:00Z"))
    app = create_preview_app(_config(project, smtp_server), W47, watch=False)
    with TestClient(app, base_url=LOCAL) as client:
        page = client.get("/").text
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Leak" in page
    assert _posts(page)["<script>alert(1)</script> Leak"] == "carried"


def test_config_edits_are_picked_up_and_a_broken_config_is_shown(
        client: TestClient, project: Project) -> None:
    text = project.config_path.read_text(encoding="utf-8")
    project.config_path.write_text(text.replace("Test Digest", "Renamed Digest"),
                                   encoding="utf-8")
    page = client.get("/").text
    assert "| Renamed Digest" in _panel(page, "p", "subject")
    project.config_path.write_text(text + "\n[smtp]\nprot = 25\n", encoding="utf-8")
    broken = client.get("/")
    assert broken.status_code == 200
    assert "unknown key 'smtp.prot'" in html.unescape(broken.text)
    assert "| Renamed Digest" in _panel(broken.text, "p", "subject")  # last good config
    project.config_path.write_text(text, encoding="utf-8")
    assert "unknown key" not in client.get("/").text


def test_dark_mode_makes_the_templates_dark_rules_apply(client: TestClient) -> None:
    light, dark = client.get("/").text, client.get("/?dark=1").text
    assert "prefers-color-scheme: dark" in html.unescape(light)
    frame = html.unescape(re.findall(r'srcdoc="([^"]*)"', dark)[0])
    assert "prefers-color-scheme" not in frame
    assert '<meta name="color-scheme" content="dark">' in frame
    assert "@media (min-width: 0px)" in frame  # the dark block, now unconditional


def test_force_dark_keeps_light_only_rules_off() -> None:
    source = ("<html><head><meta name='color-scheme' content='light dark'><style>"
              "@media (prefers-color-scheme: light) { a {} } "
              "@media screen and (prefers-color-scheme: dark) { b {} }</style></head></html>")
    forced = force_dark(source)
    assert "content='light dark'" not in forced
    assert "@media (max-width: 0px) and (min-width: 1px) { a {} }" in forced
    assert "@media screen and (min-width: 0px) { b {} }" in forced


def test_spam_score_is_served_separately(project: Project, smtp_server: SmtpServer) -> None:
    project.write_config("[lint]\nspamassassin = true\n")
    app = create_preview_app(_config(project, smtp_server), W47, watch=False)
    with TestClient(app, base_url=LOCAL) as client:
        data = client.get("/spam").json()
    if shutil.which("spamassassin"):
        assert isinstance(data["score"], float) and data["score"] < 3
    else:
        assert data == {"note": "SpamAssassin is not installed"}


def test_what_the_watcher_reacts_to(project: Project, smtp_server: SmtpServer) -> None:
    shutil.copytree(REPO / "templates", project.root / "templates")
    targets = watch_targets(_config(project, smtp_server))
    root = project.root.resolve()
    assert targets(Change.modified, str(root / "posts" / "2026-11-18-wednesday.md"))
    assert targets(Change.added, str(root / "posts" / "new.md"))
    assert targets(Change.modified, str(root / "config.toml"))
    assert targets(Change.modified, str(root / "templates" / "partials" / "post.mjml.j2"))
    # The database beside the config changes on every page load: it must not reload it.
    assert not targets(Change.modified, str(root / "data" / "ainews.db-wal"))
    assert not targets(Change.modified, str(root / "posts" / ".wednesday.md.swp"))
    assert not targets(Change.modified, str(root / "notes.txt"))
    assert root in targets.folders and root / "posts" in targets.folders
    assert targets.trees == (root / "templates",)  # only the templates are watched deep


async def collect(stream: AsyncIterator[str]) -> list[str]:
    return [chunk async for chunk in stream]


def test_events_stream_the_version_then_each_change_until_closed() -> None:
    async def scenario() -> list[str]:
        hub = Hub()
        stream = hub.stream()
        first = await anext(stream)
        hub.changed()
        second = await anext(stream)
        hub.close()  # the server stopping: open streams end instead of holding it up
        rest = await asyncio.wait_for(collect(stream), 10)  # fails rather than hangs
        return [first, second, hub.version, *rest]

    first, second, version, *rest = asyncio.run(scenario())
    assert first.startswith("retry: 1000\nevent: version\ndata: ") and first.endswith("-0\n\n")
    assert second == f"event: version\ndata: {version}\n\n" and version.endswith("-1")
    assert rest == []


def test_templates_folder_is_found(project: Project, smtp_server: SmtpServer) -> None:
    targets = watch_targets(_config(project, smtp_server))
    shipped = _config(project, smtp_server).templates_dir.resolve()
    assert targets.trees == (shipped,)
    assert Path(shipped, "digest.mjml.j2").is_file()
