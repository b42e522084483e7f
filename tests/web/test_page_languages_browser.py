"""The Arabic subscribe page in real Chromium (issue 30), asked for by the browser's own
Accept-Language: right to left, no horizontal scroll on a 375 px phone or a 600 px pane,
and the form's text starts at the right edge of the form (and the fields type right to
left). Screenshots land in tests/output/ for a human to look at."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser

from ainews_newsletter.config import load_config
from ainews_newsletter.web.public import create_public_app
from tests.conftest import Project, SmtpServer, smtp_env
from tests.render.test_browser import OUTPUT, browser  # noqa: F401  (the Chromium fixture)
from tests.web.conftest import SERVE_SECRET, served

# For every label, heading and button: where its text ends on the right and starts on the
# left, beside the form's (or main's) inner right edge.
EDGES = """
() => {
  const main = document.querySelector('main');
  const style = getComputedStyle(main);
  const inner = main.getBoundingClientRect().right - parseFloat(style.paddingRight)
                - parseFloat(style.borderRightWidth);
  const textBox = el => {
    const range = document.createRange();
    range.selectNodeContents(el);
    return range.getBoundingClientRect();
  };
  // The honeypot's label is off-screen on purpose (_bot_fields.html).
  const shown = [...main.querySelectorAll('h1, label[for], p.muted')]
    .filter(el => !el.closest('[aria-hidden="true"]'));
  return shown.map(el => ({
    tag: el.tagName, text: el.textContent.trim().slice(0, 30),
    right: textBox(el).right, left: textBox(el).left, inner,
    innerLeft: main.getBoundingClientRect().left + parseFloat(style.paddingLeft)}));
}
"""


@pytest.mark.parametrize("width", [375, 600])
def test_the_arabic_subscribe_page_reads_right_to_left(
        project: Project, smtp_server: SmtpServer, browser: Browser,  # noqa: F811
        width: int) -> None:
    config = load_config(project.config_path, environ={**smtp_env(smtp_server),
                                                       "AINEWS_SECRET_KEY": SERVE_SECRET})
    with served(create_public_app(config)) as base:
        context = browser.new_context(locale="ar", viewport={"width": width, "height": 900})
        page = context.new_page()
        page.goto(f"{base}/")
        assert page.evaluate("document.documentElement.lang") == "ar"
        assert page.evaluate("document.documentElement.dir") == "rtl"
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        assert page.eval_on_selector("#email", "el => getComputedStyle(el).direction") == "rtl"
        edges = page.evaluate(EDGES)
        assert len(edges) >= 3  # the heading and both labels at least
        for edge in edges:
            # Starts at the right edge (a pixel or two for glyph bearings)...
            assert abs(edge["right"] - edge["inner"]) <= 2, edge
        # ...and the short labels do not reach across to the left one.
        labels = [edge for edge in edges if edge["tag"] == "LABEL"]
        assert labels and all(edge["left"] > edge["innerLeft"] + 20 for edge in labels)
        OUTPUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUTPUT / f"subscribe-ar-{width}.png"), full_page=True)
        context.close()
