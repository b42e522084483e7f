"""The report page and /dashboard in real Chromium at 375 and 1024 px: nothing wider than the
screen, every chart drawn, no script run. Screenshots go to tests/output/ (report-375.png,
report-1024.png, dashboard-375.png, dashboard-1024.png)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser

from ainews_newsletter.config import Config, load_config
from ainews_newsletter.models import Window
from ainews_newsletter.pipeline.send import execute_send, plan_send
from ainews_newsletter.web.preview import create_preview_app
from tests.conftest import Project, SmtpServer, smtp_env
from tests.render.test_browser import OUTPUT, browser  # noqa: F401  (the Chromium fixture)
from tests.web.conftest import free_port, served


def _sent_with_refusals(project: Project, server: SmtpServer) -> Config:
    readers = project.import_readers(12)
    server.handler.replies = {readers[0]: "550 5.1.1 No such user here",
                              readers[1]: "554 5.7.1 Refused as spam"}
    config = load_config(project.config_path, environ=smtp_env(server))
    execute_send(config, plan_send(config, Window(week="2026-W47")))
    return config


def _overflow(page: object) -> int:
    return int(page.evaluate(  # type: ignore[attr-defined]
        "document.documentElement.scrollWidth - window.innerWidth"))


@pytest.mark.parametrize("width", [375, 1024])
def test_the_report_page_fits_and_draws(project: Project, smtp_server: SmtpServer,
                                        browser: Browser, width: int,  # noqa: F811
                                        tmp_path: Path) -> None:
    config = _sent_with_refusals(project, smtp_server)
    result = project.run("report", "--html", str(tmp_path / "report.html"),
                         env=smtp_env(smtp_server))
    assert result.exit_code == 0, result.output
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<script" not in html.lower()
    page = browser.new_page(viewport={"width": width, "height": 900},
                            java_script_enabled=True)
    page.goto((tmp_path / "report.html").as_uri())
    assert page.locator("figure svg[role=img]").count() == 3  # funnel, timeline, growth
    assert page.locator(".card b").first.inner_text() == "12"  # readers
    assert _overflow(page) <= 0
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / f"report-{width}.png"), full_page=True)
    page.close()
    assert config.newsletter.name in html


@pytest.mark.parametrize("width", [375, 1024])
def test_the_dashboard_is_the_report_and_refreshes_only_while_sending(
        project: Project, smtp_server: SmtpServer, browser: Browser,  # noqa: F811
        width: int) -> None:
    config = _sent_with_refusals(project, smtp_server)
    port = free_port()
    with served(create_preview_app(config, Window(), watch=False), port):
        page = browser.new_page(viewport={"width": width, "height": 900})
        response = page.goto(f"http://127.0.0.1:{port}/dashboard")
        assert response is not None and response.status == 200
        assert "script-src 'nonce-" in response.headers["content-security-policy"]
        assert page.locator("figure svg[role=img]").count() == 3
        assert page.locator("meta[http-equiv=refresh]").count() == 0  # the send is done
        assert _overflow(page) <= 0
        page.screenshot(path=str(OUTPUT / f"dashboard-{width}.png"), full_page=True)
        page.close()
    # A send still running (rows queued) makes the page reload itself.
    project.query("UPDATE deliveries SET state = 'queued' WHERE id = "
                  "(SELECT max(id) FROM deliveries)")
    html = pipeline_report_html(config)
    assert '<meta http-equiv="refresh" content="5">' in html


def pipeline_report_html(config: Config) -> str:
    from ainews_newsletter.pipeline.reports import report_html

    return report_html(config, None, 12, refresh=5)
