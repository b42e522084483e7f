"""Double opt-in end to end in real Chromium: the subscribe page, the confirmation mail as
the aiosmtpd server received it, the link opened, the button pressed, the reader active."""

from __future__ import annotations

import email
import email.policy
import re
import time
from email.message import EmailMessage
from typing import cast

from playwright.sync_api import Browser

from ainews_newsletter.config import load_config
from ainews_newsletter.web.public import create_public_app
from tests.conftest import Project, SmtpServer, smtp_env
from tests.render.test_browser import OUTPUT, browser  # noqa: F401  (the Chromium fixture)
from tests.web.conftest import free_port, served


def test_subscribe_confirm_in_a_browser(project: Project, smtp_server: SmtpServer,
                                        browser: Browser) -> None:  # noqa: F811
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = load_config(project.config_path,
                         environ={**smtp_env(smtp_server), "AINEWS_SECRET_KEY": "k" * 32},
                         overrides={"newsletter": {"base_url": base}})
    with served(create_public_app(config), port):
        page = browser.new_page(viewport={"width": 420, "height": 900})
        page.goto(f"{base}/")
        OUTPUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUTPUT / "subscribe.png"), full_page=True)
        page.fill("#email", "lena@example.com")
        page.fill("#name", "Lena Park")
        page.click("button[type=submit]")
        page.wait_for_selector("text=Check your inbox")
        # The mail goes after the response (so timing reveals nothing): wait for it.
        deadline = time.monotonic() + 10
        while not smtp_server.handler.messages:
            assert time.monotonic() < deadline, "no confirmation mail"
            time.sleep(0.05)
        [received] = smtp_server.handler.messages
        mail = cast(EmailMessage, email.message_from_bytes(received.data,
                                                           policy=email.policy.default))
        assert received.rcpt_tos == ["lena@example.com"]
        link = re.search(r"(http://127\.0\.0\.1:\d+/confirm/\S+)", mail.get_content())
        assert link is not None
        page.goto(link.group(1))
        assert project.query("SELECT status FROM subscribers") == [("pending",)]
        page.click("#confirm")
        page.wait_for_selector("text=You are subscribed")
        page.close()
    assert project.query("SELECT status, name FROM subscribers") == [("active", "Lena Park")]
