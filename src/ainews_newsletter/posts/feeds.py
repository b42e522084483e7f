"""RSS 2.0 and Atom feeds, read with feedparser from a URL or a local file. Each item becomes
a Post: date from published, then updated; guid from the item's guid/id; the item's HTML
sanitized (nh3) and flattened into the lead. A bad feed or item is a problem naming the feed."""

from __future__ import annotations

import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import feedparser

from ainews_newsletter import __version__
from ainews_newsletter.errors import PostError
from ainews_newsletter.models import Post
from ainews_newsletter.posts.text import (
    PostDefaults,
    check_web_url,
    cut_at_word,
    html_to_plain,
    reading_minutes,
    sanitize_html,
)

MAX_FEED_BYTES = 20 * 1024 * 1024  # a feed larger than this is not a news feed
# feedparser flags these but still reads the feed correctly; anything else means broken XML.
_HARMLESS_BOZO = (feedparser.CharacterEncodingOverride,)


def fetch(url: str, timeout: float) -> bytes:
    """The feed's bytes, or PostError saying which feed and why (timeout from config)."""
    request = urllib.request.Request(url, headers={
        "User-Agent": f"ainews-newsletter/{__version__}",
        "Accept": "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.1",
    })
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data: bytes = response.read(MAX_FEED_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise PostError(f"feed {url}: the server answered {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise PostError(f"feed {url}: cannot be reached: {exc.reason}") from None
    except TimeoutError:
        raise PostError(f"feed {url}: no answer within {timeout:g}s "
                        "([posts] feed_timeout)") from None
    except OSError as exc:
        raise PostError(f"feed {url}: cannot be reached: {exc}") from None
    if len(data) > MAX_FEED_BYTES:
        raise PostError(f"feed {url}: larger than {MAX_FEED_BYTES // 2**20} MB")
    return data


def read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise PostError(f"feed {path}: file not found") from None
    except OSError as exc:
        raise PostError(f"feed {path}: cannot read: {exc.strerror}") from None


def _when(entry: Any, where: str) -> datetime:
    for key in ("published_parsed", "updated_parsed"):
        parsed = entry.get(key)
        if parsed:
            year, month, day, hour, minute, second = parsed[:6]
            return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    raise PostError(f"{where}: field 'published': the item has no published or updated date")


def _text(entry: Any, key: str) -> str:
    """A text field; feedparser hands HTML-typed titles over as HTML, so flatten those."""
    value = str(entry.get(key) or "").strip()
    detail = entry.get(f"{key}_detail") or {}
    return html_to_plain(value) if "html" in str(detail.get("type", "")) else value


def _post(entry: Any, index: int, source: str, defaults: PostDefaults) -> Post:
    guid = str(entry.get("id") or "").strip() or None
    link = str(entry.get("link") or "").strip() or None
    where = f"feed {source}: item {index} ({guid or link or 'no id'})"
    title = _text(entry, "title")
    if not title:
        raise PostError(f"{where}: field 'title' is required")
    if link is None and guid is not None and urlsplit(guid).scheme in ("http", "https"):
        link = guid  # an Atom id or a permalink guid is often the link itself
    if link is None:
        raise PostError(f"{where}: field 'link': the item has no link")
    check_web_url(link, where, "link")
    contents = entry.get("content") or []
    body = str(contents[0].get("value", "")) if contents else str(entry.get("summary") or "")
    body_html = sanitize_html(body)
    lead = html_to_plain(sanitize_html(str(entry.get("summary") or ""))) or html_to_plain(body_html)
    tags = tuple(str(tag.get("term")).strip() for tag in entry.get("tags") or []
                 if str(tag.get("term") or "").strip())
    slug = urlsplit(link).path.rstrip("/").rsplit("/", 1)[-1] or f"item-{index}"
    return Post(
        title=title,
        published=_when(entry, where),
        url=link,
        slug=slug,
        summary=cut_at_word(lead, defaults.summary_chars),
        body_html=body_html,
        category=tags[0] if tags else None,
        author=str(entry.get("author") or "").strip() or None,
        tags=tags,
        source=source,
        reading_minutes=reading_minutes(html_to_plain(body_html)),
        guid=guid,
    )


def parse_feed(data: bytes, source: str, defaults: PostDefaults,
               ) -> tuple[list[Post], list[PostError]]:
    """Posts of a feed document and a problem per bad item; a document that is not an RSS or
    Atom feed is one problem for the whole source."""
    parsed = feedparser.parse(data)
    problem = parsed.get("bozo_exception")
    if parsed.get("bozo") and not isinstance(problem, _HARMLESS_BOZO):
        return [], [PostError(f"feed {source}: not a valid RSS or Atom feed (XML error: "
                              f"{problem})")]
    if not parsed.get("version"):
        return [], [PostError(f"feed {source}: not an RSS or Atom feed")]
    posts: list[Post] = []
    problems: list[PostError] = []
    for index, entry in enumerate(parsed.entries, start=1):
        try:
            posts.append(_post(entry, index, source, defaults))
        except PostError as exc:
            problems.append(exc)
    return posts, problems
