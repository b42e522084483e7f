"""Which links of an issue are counted, and how a send puts the click links in their place.

The counted links are the absolute http(s) links of the rendered HTML (`href="…"`) except the
newsletter's own pages: its home, the archive ("View in browser"), subscribe, unsubscribe,
confirm and preferences pages, and the unsubscribe placeholder. With the shipped templates
that leaves the posts' headline, image and "Read more" links and the "More this week" list.
Each distinct URL is one link, numbered from 1 in order of first appearance; the ledger
keeps them (issue_links) when the issue is frozen.

A send does not look for links per reader: `mark_links` puts a slot per link position into
the issue's HTML and text once, and the message skeleton fills each slot per reader with
`base_url/c/<token>` (see message.PersonalBody)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape, unescape
from urllib.parse import urlsplit

from ainews_newsletter.delivery.clicktokens import ClickTokens
from ainews_newsletter.models import RenderedIssue

# css-inline (html5ever) writes every attribute double-quoted.
_HREF = re.compile(r'href="([^"]*)"')
# A URL in the plain-text part runs to the next space; a sentence's full stop or a closing
# bracket after it is not part of it.
_TEXT_URL = re.compile(r"https?://[^\s<>\"]+")
_TRAILING = ".,;:!?)]}'"
# The newsletter's own pages (first path segment under base_url): never counted.
_OWN_PAGES = {"", "issues", "subscribe", "unsubscribe", "confirm", "preferences", "c",
              "feed.xml", "healthz"}

# One slot per link position, ASCII that no encoder touches and no issue contains by chance.
SLOT_PATTERN = rb"ainews-click-(\d+)-7f3c"
_SLOT_TEXT = re.compile(SLOT_PATTERN.decode("ascii"))


def slot(position: int) -> str:
    return f"ainews-click-{position}-7f3c"


def _own_page(url: str, base_url: str) -> bool:
    base = base_url.rstrip("/")
    if url.rstrip("/") == base:
        return True
    if not url.startswith(base + "/"):
        return False
    first = re.split(r"[/?#]", url[len(base) + 1:], maxsplit=1)[0]
    return first in _OWN_PAGES


def post_links(rendered: RenderedIssue, base_url: str) -> list[str]:
    """The links of the issue that clicks are counted for, in order, each once."""
    found: dict[str, None] = {}
    for match in _HREF.finditer(rendered.html):
        url = unescape(match.group(1)).strip()
        if (urlsplit(url).scheme.lower() in ("http", "https")
                and rendered.unsubscribe_placeholder not in url
                and not _own_page(url, base_url)):
            found.setdefault(url, None)
    return list(found)


def mark_links(rendered: RenderedIssue, links: Sequence[str]) -> RenderedIssue:
    """The issue with each of `links` (link 1 first) replaced by its slot: in the HTML part
    where it is an href, in the text part where it stands as a whole URL."""
    if _SLOT_TEXT.search(rendered.html) or _SLOT_TEXT.search(rendered.text):
        # A post quoting our slot text would get a reader's link put in its place.
        raise ValueError("message skeleton: the issue already contains a click-link slot")
    positions = {url: number for number, url in enumerate(links, start=1)}

    def in_html(match: re.Match[str]) -> str:
        number = positions.get(unescape(match.group(1)).strip())
        return match.group(0) if number is None else f'href="{slot(number)}"'

    def in_text(match: re.Match[str]) -> str:
        url = match.group(0)
        stripped = url.rstrip(_TRAILING)
        for candidate in (url, stripped):
            number = positions.get(candidate)
            if number is not None:
                return slot(number) + url[len(candidate):]
        return url

    return dataclasses.replace(rendered, html=_HREF.sub(in_html, rendered.html),
                               text=_TEXT_URL.sub(in_text, rendered.text))


@dataclass(frozen=True)
class ClickLinks:
    """What a send needs to give each reader their own click links."""

    base_url: str
    tokens: ClickTokens
    links: tuple[str, ...]  # the issue's counted links, link 1 first

    def urls_for(self, delivery_id: int) -> list[str]:
        """`base_url/c/<token>` for each link, link 1 first."""
        prefix = f"{self.base_url}/c/"
        return [prefix + self.tokens.make(delivery_id, number)
                for number in range(1, len(self.links) + 1)]


def with_click_links(rendered: RenderedIssue, clicks: ClickLinks,
                     delivery_id: int) -> RenderedIssue:
    """The issue as one delivery's copy carries it, built with plain string operations: the
    reference the message skeleton is checked against."""
    marked = mark_links(rendered, clicks.links)
    urls = clicks.urls_for(delivery_id)
    return dataclasses.replace(
        marked,
        html=_SLOT_TEXT.sub(lambda m: escape(urls[int(m.group(1)) - 1]), marked.html),
        text=_SLOT_TEXT.sub(lambda m: urls[int(m.group(1)) - 1], marked.text))
