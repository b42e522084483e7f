"""The preview in real Chromium against the real server (uvicorn on 127.0.0.1): the issue in
its frames at 600 and 375 px, the plain-text tab, dark mode as the template's own dark rules,
and a post edited on disk showing up without a manual reload. Screenshots land in
tests/output/preview-desktop.png and preview-mobile.png."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from ainews_newsletter.config import load_config
from ainews_newsletter.models import Window
from ainews_newsletter.web.preview import create_preview_app
from tests.conftest import Project, SmtpServer, smtp_env
from tests.render.test_browser import OUTPUT, browser  # noqa: F401  (the Chromium fixture)
from tests.web.conftest import served

RELOAD_MS = 5000  # "within about a second", with room for a busy two-core machine
# Hero images point at the fictional public site: refuse them rather than wait on DNS.
NOT_LOCAL = re.compile(r"^https?://(?!127\.0\.0\.1[:/])")


@pytest.fixture
def preview_url(project: Project, smtp_server: SmtpServer) -> Iterator[str]:
    # SpamAssassin (seconds per score) has its own TestClient test; here it only costs time.
    environ = {**smtp_env(smtp_server), "AINEWS_LINT__SPAMASSASSIN": "false"}
    config = load_config(project.config_path, environ=environ)
    with served(create_preview_app(config, Window(week="2026-W47"), environ=environ)) as url:
        yield url


@pytest.fixture
def page(browser: Browser, preview_url: str) -> Iterator[Page]:  # noqa: F811
    opened = browser.new_page(viewport={"width": 1440, "height": 900})
    opened.route(NOT_LOCAL, lambda route: route.abort())
    refused: list[str] = []  # what the Content-Security-Policy blocked, if anything
    opened.on("console", lambda message: refused.append(message.text)
              if "Content Security Policy" in message.text else None)
    opened.goto(f"{preview_url}/")
    yield opened
    opened.close()  # before the server stops: the page holds /events open
    assert refused == []


def _inner_width(page: Page, name: str) -> int:
    """Through a frame locator, which waits for the frame to be there."""
    return int(page.frame_locator(f"iframe.{name}").locator("html").evaluate(
        "element => element.ownerDocument.defaultView.innerWidth"))


def test_frames_tabs_and_dark_mode(page: Page) -> None:
    desktop = page.frame_locator("iframe.desktop")
    expect(desktop.locator(".headline").first).to_contain_text("Friday Research Result")
    expect(page.frame_locator("iframe.mobile").locator(".headline").first).to_contain_text(
        "Friday Research Result")
    assert _inner_width(page, "desktop") == 600 and _inner_width(page, "mobile") == 375
    expect(page.locator("#live")).to_have_text("live")
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT / "preview-desktop.png"))

    page.click("[data-view=mobile]")
    expect(page.locator("iframe.desktop")).to_have_count(0)
    expect(page.frame_locator("iframe.mobile").locator(".headline").first).to_contain_text(
        "Friday Research Result")
    assert _inner_width(page, "mobile") == 375
    # Frame locators wait for the frame: the page swaps its iframes on a view change, and
    # page.frame(name=…) could catch the moment between (None: the suite's one flake).
    mobile = page.frame_locator("iframe.mobile")
    scroll = mobile.locator("html").evaluate("element => element.scrollWidth")
    assert scroll <= 375  # the issue fits a phone: no sideways scrolling
    page.screenshot(path=str(OUTPUT / "preview-mobile.png"))

    page.click("[data-tab=text]")
    expect(page.locator("#text-part")).to_be_visible()
    expect(page.locator("#text-part")).to_contain_text("Friday Research Result")
    expect(page.locator("#html")).to_be_hidden()

    page.click("[data-tab=html]")
    body = page.frame_locator("iframe.mobile").locator("body")
    expect(body).to_have_css("background-color", "rgb(244, 244, 247)")  # the template's own
    page.click("[data-toggle=dark]")
    expect(page.locator("[data-toggle=dark]")).to_have_attribute("aria-current", "true")
    expect(body).to_have_css("background-color", "rgb(17, 18, 22)")


def test_saving_a_post_updates_the_open_page(page: Page, project: Project) -> None:
    desktop = page.frame_locator("iframe.desktop")
    expect(desktop.locator(".headline").first).to_contain_text("Friday Research Result")
    page.click("[data-tab=text]")
    post = project.posts / "2026-11-20-friday.md"
    post.write_text(post.read_text(encoding="utf-8").replace(
        "title: 'Friday Research Result'", "title: 'Friday Result, Revised'"), encoding="utf-8")
    # No page.reload(): the server's event makes the page reload itself.
    expect(page.locator("#subject")).to_contain_text("Friday Result, Revised",
                                                     timeout=RELOAD_MS)
    expect(page.locator("#text-part")).to_be_visible()  # the tab survives the reload
    expect(page.locator("#text-part")).to_contain_text("Friday Result, Revised")
    expect(desktop.locator(".headline").first).to_contain_text("Friday Result, Revised")
