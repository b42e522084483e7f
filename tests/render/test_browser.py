"""The sample issue in real Chromium (Debian's, driven by Playwright): no horizontal scroll on
a 375 px phone or a 600 px desktop pane, every image has alt text, and text keeps a readable
contrast in light and dark mode. Screenshots land in tests/output/ for a human to look at."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.render.test_snapshots import SNAPSHOTS

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
OUTPUT = Path(__file__).resolve().parents[1] / "output"
# WCAG AA for body text.
MIN_CONTRAST = 4.5

# Relative luminance and contrast ratio (WCAG 2.x), computed in the page for every element
# that has text of its own, against the first opaque background found walking up.
CONTRAST_SCRIPT = """
() => {
  const parse = c => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = el => {
    for (let node = el; node; node = node.parentElement) {
      const c = parse(getComputedStyle(node).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const results = [];
  for (const el of document.body.querySelectorAll('*')) {
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    const style = getComputedStyle(el);
    if (!own || style.display === 'none' || el.closest('.preheader')) continue;
    const fg = lum(parse(style.color).slice(0, 3)), bg = lum(background(el));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    results.push({text: el.textContent.trim().slice(0, 40), ratio});
  }
  return results;
}
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: ./scripts/test installs Debian's chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


def _open(browser: Browser, width: int, dark: bool = False) -> Page:
    page = browser.new_page(viewport={"width": width, "height": 900},
                            color_scheme="dark" if dark else "light")
    # Hero images point at the (fictional) public site: answer them with nothing rather
    # than let Chromium try the network. Layout must not depend on them loading.
    page.route("**/*", lambda route: route.abort() if not route.request.url.startswith(
        "data:") else route.continue_())
    page.set_content((SNAPSHOTS / "sample-week.html").read_text(encoding="utf-8"))
    return page


@pytest.mark.parametrize("width", [375, 600])
def test_no_horizontal_overflow_and_every_image_has_alt(browser: Browser, width: int) -> None:
    page = _open(browser, width)
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width
    images = page.eval_on_selector_all("img", "els => els.map(e => e.getAttribute('alt'))")
    assert images and all(alt and alt.strip() for alt in images)
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / f"sample-week-{width}.png"), full_page=True)
    page.close()


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_text_contrast(browser: Browser, dark: bool) -> None:
    page = _open(browser, 600, dark=dark)
    measured = page.evaluate(CONTRAST_SCRIPT)
    assert len(measured) > 20  # the check saw the whole issue
    poor = [item for item in measured if item["ratio"] < MIN_CONTRAST]
    assert poor == [], poor
    if dark:
        body = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert body == "rgb(17, 18, 22)"  # the dark palette applied, not just tolerated
        OUTPUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUTPUT / "sample-week-600-dark.png"), full_page=True)
    page.close()


def test_preheader_is_hidden_but_present(browser: Browser) -> None:
    page = _open(browser, 600)
    hidden = page.eval_on_selector(".preheader", "el => [el.textContent, el.offsetHeight]")
    assert hidden[0].startswith("Northwind Labs describes") and hidden[1] == 0
    color = page.eval_on_selector(".preheader", "el => el.getAttribute('style')")
    assert "color" not in color  # hidden by layout, not by white-on-white text
    page.close()
