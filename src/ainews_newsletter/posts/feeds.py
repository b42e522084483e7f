"""RSS and Atom feeds, read with feedparser from a URL or a local file, as other people's
software writes them. Each item becomes a Post: date from published, then updated (read
strictly, never invented: see `dates`); guid from the item's guid/id; links resolved against
xml:base, then the feed's own link, then its URL; the item's HTML sanitized (nh3) and
flattened into the lead; an untitled item titled by its first words. An item that cannot be
placed (no readable date, no usable link) is left out with its reason (`Unplaced`); a
document that is not a feed at all is a problem naming the feed."""

from __future__ import annotations

import urllib.error
import urllib.request
import xml.parsers.expat
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from ainews_newsletter import __version__
from ainews_newsletter.errors import PostError
from ainews_newsletter.models import Post, Unplaced
from ainews_newsletter.posts.dates import parse_feed_date
from ainews_newsletter.posts.text import (
    PostDefaults,
    TooMuchHtml,
    check_web_url,
    cut_at_word,
    cut_html,
    html_to_plain,
    reading_minutes,
    sanitize_html,
    sanitized_to_plain,
    shown,
)

# A news feed is well under 1 MB (the largest of the real feeds in the test corpus is under
# 300 KB), and feedparser's work grows with the entries (linear, but slow per entry: figures
# under "Hostile input" in BENCHMARKS.md): a larger file is refused before it is parsed, so
# no feed can hold up a build or the preview for long.
MAX_FEED_BYTES = 4 * 1024 * 1024
# feedparser visits every element at 20 to 30 µs, in its strict and in its loose parser, and
# more when they nest (<a> nested 100,000 deep: 2.7 s); a real feed has under 1,000 (the test
# corpus' largest: 783). A document with more is refused before feedparser sees it (50,000:
# at most about 1.5 s of feedparser's time); counted by expat (`_elements`), which comments,
# CDATA, attributes and encodings cannot fool the way a count of "<" bytes can.
MAX_FEED_ELEMENTS = 50_000
# feedparser (imported where a feed is read: a newsletter of Markdown posts never loads it)
# flags a CharacterEncodingOverride but still reads the feed correctly; any other flag
# means broken XML.
# What feedparser itself raises on hostile bytes instead of flagging them: an XML declaration
# naming a codec Python has but cannot decode with ("undefined", "punycode": UnicodeError),
# a character reference to a surrogate (&#xD800;: UnicodeEncodeError) or of thousands of
# digits (ValueError over int()'s 4,300 digits, OverflowError for chr()).
_FEEDPARSER_FAILURES = (ValueError, LookupError, OverflowError, RecursionError, TypeError)
# A date string longer than this is no date (the longest real form is about 40 characters).
_MAX_DATE_CHARS = 200


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
    """A local feed's bytes, held to the same MAX_FEED_BYTES as a fetched one (read up to
    one byte past it: a FIFO or a device has no size to ask first)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FEED_BYTES + 1)
    except FileNotFoundError:
        raise PostError(f"feed {path}: file not found") from None
    except OSError as exc:
        raise PostError(f"feed {path}: cannot read: {exc.strerror}") from None
    if len(data) > MAX_FEED_BYTES:
        raise PostError(f"feed {path}: larger than {MAX_FEED_BYTES // 2**20} MB")
    return data


# How long a title made from an item's first words may be (feed readers cut about here).
DERIVED_TITLE_CHARS = 80


class _Unusable(Exception):
    """This item cannot be placed; the message says why."""


def _when(entry: Any) -> datetime:
    """The item's date from the raw strings, published first, else updated (never
    feedparser's *_parsed tuples, which fill what they cannot read from today's clock)."""
    unreadable: str | None = None
    for key in ("published", "updated", "created"):
        # Not entry.get: feedparser answers a missing "updated" with "published" (deprecated)
        raw = str(entry[key] if key in entry else "").strip()  # noqa: SIM401
        if raw:
            when = parse_feed_date(raw) if len(raw) <= _MAX_DATE_CHARS else None
            if when is not None:
                return when
            unreadable = unreadable or raw
    if unreadable is not None:
        raise _Unusable(f"its date {shown(unreadable)} cannot be read")
    raise _Unusable("it has no date (published or updated)")


def _scheme(url: str) -> str | None:
    """The URL's scheme, or None when it does not even split ("http://[oops")."""
    try:
        return urlsplit(url).scheme
    except ValueError:
        return None


def _text(entry: Any, key: str) -> str:
    """A text field; feedparser hands HTML-typed titles over as HTML, so flatten those."""
    value = str(entry.get(key) or "").strip()
    detail = entry.get(f"{key}_detail") or {}
    try:
        return html_to_plain(value) if "html" in str(detail.get("type", "")) else value
    except TooMuchHtml as exc:
        raise _Unusable(f"its {key}: {exc}") from None


def _absolute(link: str, base: str | None) -> str:
    scheme = _scheme(link)
    if scheme is None:
        raise _Unusable(f"its link {link!r} is not a URL")
    if scheme:
        return link
    if base is None:
        raise _Unusable(f"its link {link!r} is relative and the feed gives no base to "
                        "resolve it against")
    try:
        return urljoin(base, link)
    except ValueError:
        raise _Unusable(f"its link {link!r} is not a URL") from None


@dataclass(frozen=True)
class _Item:
    index: int
    source: str
    base: str | None  # the feed's own link or URL, for relative links xml:base left


def _post(entry: Any, item: _Item, defaults: PostDefaults) -> Post:
    guid = str(entry.get("id") or "").strip() or None
    link = str(entry.get("link") or "").strip() or None
    where = f"feed {item.source}: item {item.index} ({guid or link or 'no id'})"
    if link is None and guid is not None and _scheme(guid) in ("http", "https"):
        link = guid  # an Atom id or a permalink guid is often the link itself
    if link is None:
        raise _Unusable("it has no link")
    link = _absolute(link, item.base)
    try:
        check_web_url(link, where, "link")
        slug = urlsplit(link).path.rstrip("/").rsplit("/", 1)[-1] or f"item-{item.index}"
    except (PostError, ValueError) as exc:
        raise _Unusable(f"its link is not usable: {exc}") from None
    published = _when(entry)
    contents = entry.get("content") or []
    summary = str(entry.get("summary") or "")
    summary_base = _content_base(entry.get("summary_detail"), item.base)
    body = str(contents[0].get("value", "")) if contents else summary
    body_base = _content_base(contents[0], item.base) if contents else summary_base
    try:
        body_html = sanitize_html(body, body_base)
        # An RSS item's description is both: sanitized once (nh3 is the costly step).
        summary_html = body_html if summary == body and summary_base == body_base \
            else sanitize_html(summary, summary_base)
        lead = sanitized_to_plain(summary_html) or sanitized_to_plain(body_html)
    except TooMuchHtml as exc:
        raise _Unusable(str(exc)) from None
    title, derived = _text(entry, "title"), False
    if not title:
        title, derived = cut_at_word(lead, DERIVED_TITLE_CHARS), True
        if not title:
            raise _Unusable("it has neither a title nor any text to make one from")
    tags = tuple(str(tag.get("term")).strip() for tag in entry.get("tags") or []
                 if str(tag.get("term") or "").strip())
    return Post(
        title=title,
        published=published,
        url=link,
        slug=slug,
        summary=cut_at_word(lead, defaults.summary_chars),
        summary_html=cut_html(summary_html if sanitized_to_plain(summary_html) else body_html,
                              defaults.summary_chars),
        body_html=body_html,
        category=tags[0] if tags else None,
        author=str(entry.get("author") or "").strip() or None,
        tags=tags,
        source=item.source,
        reading_minutes=reading_minutes(sanitized_to_plain(body_html)),
        guid=guid,
        title_derived=derived,
    )


def _content_base(detail: Any, feed_base: str | None) -> str | None:
    """What an item's HTML resolves its relative links against: its xml:base (feedparser
    records it in the content's `base`), itself resolved against the feed's base; None
    when that gives no absolute http(s) URL (the links stay as they are)."""
    declared = str((detail or {}).get("base") or "")
    try:
        base = urljoin(feed_base or "", declared)
    except ValueError:
        return None
    return base if _scheme(base) in ("http", "https") else None


def _reported_title(entry: Any) -> str:
    """The title of an item left out, for the report (never failing: the raw text, cut,
    when it is HTML too large to flatten)."""
    try:
        return _text(entry, "title") or "(untitled)"
    except _Unusable:
        return cut_at_word(str(entry.get("title") or ""), DERIVED_TITLE_CHARS)


@dataclass
class FeedRead:
    posts: list[Post] = field(default_factory=list)
    problems: list[PostError] = field(default_factory=list)  # the whole feed failed
    unplaced: list[Unplaced] = field(default_factory=list)  # items left out, with why


def _feed_base(parsed: Any, source: str) -> str | None:
    """What relative links resolve against once xml:base is applied (feedparser does that):
    the feed's own self or alternate link when absolute, else the URL it came from."""
    feed = parsed.get("feed") or {}
    links = feed.get("links") or []
    # RSS items link into the site (the channel's <link>); Atom's own rule is the document's
    # address (its self link).
    order = ("alternate", "self") if str(parsed.get("version", "")).startswith("rss") \
        else ("self", "alternate")
    for rel in order:
        for link in links:
            href = str(link.get("href") or "")
            if link.get("rel") == rel and _scheme(href) in ("http", "https"):
                return href
    return source if _scheme(source) in ("http", "https") else None


class _TooManyElements(Exception):
    pass


def _elements(data: bytes, cap: int) -> int:
    """About how many tags feedparser's parsers will visit, at C speed, stopping past `cap`:
    the elements expat reads in the document decoded as feedparser decodes it (so a UTF-16
    or an EBCDIC feed counts its real tags, and comments and CDATA count none); from a
    syntax error on (feedparser then reads the document again with its loose parser), every
    "<" counts."""
    from feedparser.encodings import convert_to_utf8

    utf8 = convert_to_utf8({}, data, {})
    parser = xml.parsers.expat.ParserCreate()
    count = 0

    def start(_name: str, _attributes: Any) -> None:
        nonlocal count
        count += 1
        if count > cap:
            raise _TooManyElements

    parser.StartElementHandler = start
    try:
        parser.Parse(utf8, True)
    except _TooManyElements:
        pass
    except xml.parsers.expat.ExpatError:
        count += utf8.count(b"<", max(parser.CurrentByteIndex, 0))
    return count


def parse_feed(data: bytes, source: str, defaults: PostDefaults) -> FeedRead:
    """Posts of a feed document, the items left out and why; a document that is not an RSS
    or Atom feed is one problem for the whole source."""
    import feedparser

    if data[:1].isspace() and data.lstrip()[:5] == b"<?xml":
        data = data.lstrip()  # whitespace before the XML declaration: harmless in practice
    read = FeedRead()
    try:
        if _elements(data, MAX_FEED_ELEMENTS) > MAX_FEED_ELEMENTS:
            read.problems.append(PostError(f"feed {source}: more than {MAX_FEED_ELEMENTS:,} XML "
                                           "elements, more than a feed may have"))
            return read
        # feedparser's own sanitizer and link resolver are off: nh3 sanitizes and resolves
        # (sanitize_html), and feedparser's passes are slow on deep markup (an item of
        # <a> nested 100,000 deep: 4.3 s with them, 1.3 s without; BENCHMARKS.md).
        parsed = feedparser.parse(data, sanitize_html=False, resolve_relative_uris=False)
    except _FEEDPARSER_FAILURES as exc:
        reason = str(exc)[:200].encode("utf-8", "backslashreplace").decode("utf-8")
        read.problems.append(PostError(f"feed {source}: not a readable RSS or Atom feed "
                                       f"({type(exc).__name__}: {reason})"))
        return read
    problem = parsed.get("bozo_exception")
    if parsed.get("bozo") and not isinstance(problem, feedparser.CharacterEncodingOverride):
        read.problems.append(PostError(f"feed {source}: not a valid RSS or Atom feed (XML "
                                       f"error: {problem})"))
        return read
    if not parsed.get("version"):
        read.problems.append(PostError(f"feed {source}: not an RSS or Atom feed"))
        return read
    base = _feed_base(parsed, source)
    for index, entry in enumerate(parsed.entries, start=1):
        try:
            read.posts.append(_post(entry, _Item(index, source, base), defaults))
        except _Unusable as exc:
            read.unplaced.append(Unplaced(
                source=source, item=index, title=_reported_title(entry),
                link=str(entry.get("link") or "").strip() or None,
                guid=str(entry.get("id") or "").strip() or None, reason=str(exc)))
    return read
