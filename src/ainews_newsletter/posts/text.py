"""Text helpers shared by the Markdown and feed readers: sanitizing and flattening HTML."""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit
from zoneinfo import ZoneInfo

import nh3

from ainews_newsletter.errors import PostError
from ainews_newsletter.html_limits import MAX_HTML_TAGS as MAX_HTML_TAGS
from ainews_newsletter.html_limits import MAX_OPEN_ELEMENTS as MAX_OPEN_ELEMENTS
from ainews_newsletter.html_limits import TooMuchHtml as TooMuchHtml
from ainews_newsletter.html_limits import bounded as _bounded

WORDS_PER_MINUTE = 230
# Post and feed HTML is kept to a safe subset (no script, no event handlers, no javascript:
# URLs) so a post can never inject markup into the email.
_ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "em", "h2", "h3", "h4", "hr", "i", "img",
    "li", "ol", "p", "pre", "strong", "sub", "sup", "ul",
    # Tables stay tables (a feed's comparison or price list): stripped, their cells ran
    # together ("AB12").
    "table", "caption", "thead", "tbody", "tr", "th", "td",
}


@dataclass(frozen=True)
class PostDefaults:
    """What a post may leave out, taken from the config."""

    base_url: str
    tz: ZoneInfo
    summary_chars: int


_URL_SCHEMES = {"http", "https", "mailto"}
# The attributes of _ALLOWED_TAGS that nh3 keeps and that hold a URL.
_URL_ATTRIBUTES = frozenset({"href", "src", "cite"})


def sanitize_html(fragment: str, base: str | None = None) -> str:
    """The fragment kept to the safe subset, or TooMuchHtml (see MAX_HTML_TAGS); relative
    links and images resolved against `base` (an absolute http(s) URL) when given, since
    a mail app has no page to resolve them against; a list's `start` kept only as a
    number of at most 6 digits."""
    return nh3.clean(_bounded(fragment), tags=_ALLOWED_TAGS, url_schemes=_URL_SCHEMES,
                     attribute_filter=_filter(base))


# `<ol start>` is printed before each item of the text part and indents its continuation
# lines: thousands of digits made a 12 KB post 16 million characters of text.
_LIST_START = re.compile(r"-?[0-9]{1,6}")


def _filter(base: str | None) -> Callable[[str, str, str], str | None]:
    def keep(_element: str, attribute: str, value: str) -> str | None:
        if attribute == "start":
            return value.strip() if _LIST_START.fullmatch(value.strip()) else None
        if attribute not in _URL_ATTRIBUTES or base is None:
            return value
        # nh3 checks the scheme before it calls this filter, so the joined URL is checked
        # here; one that does not split is dropped.
        try:
            joined = urljoin(base, value)
            return joined if urlsplit(joined).scheme in _URL_SCHEMES else None
        except ValueError:
            return None

    return keep


def html_to_plain(fragment: str) -> str:
    """Visible text of an HTML fragment, whitespace collapsed; TooMuchHtml as above."""
    return _collapse(nh3.clean(_bounded(fragment), tags=set()))


# In nh3's output every "<" opens a tag (a "<" in text or in an attribute is escaped, and
# so is ">" in an attribute), and there is no comment, script or style left.
_SERIALIZED_TAG = re.compile(r"<[^<>]*>")


def sanitized_to_plain(sanitized: str) -> str:
    """`html_to_plain` of `sanitize_html`'s output, in linear time."""
    return _collapse(_SERIALIZED_TAG.sub("", sanitized))


def _collapse(escaped: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(escaped)).strip()


# Elements after whose end a summary may be cut (at the top level of a fragment).
_BLOCKS = frozenset({"p", "ul", "ol", "blockquote", "pre", "h2", "h3", "h4", "hr", "table"})
_VOID_TAGS = frozenset({"br", "hr", "img"})
_TOKEN = re.compile(r"<(/?)([a-z0-9]+)[^<>]*>|[^<]+")


def text_as_html(text: str) -> str:
    """Plain text (a front-matter `summary:`) as a paragraph of HTML."""
    return f"<p>{html.escape(text, quote=False)}</p>" if text else ""


def cut_html(sanitized: str, limit: int) -> str:
    """`sanitize_html`'s output shortened for a summary: the whole blocks (paragraphs,
    lists, quotes…) whose text fits in `limit` characters; when even the first does not
    fit, that block cut at a word with an ellipsis and its elements closed. Linear."""
    boundaries: list[int] = []  # where a top-level block ends
    open_tags: list[str] = []
    seen = 0
    for match in _TOKEN.finditer(sanitized):
        name = match.group(2)
        if name is None:
            seen += len(_collapse(match.group(0)))
            if seen > limit:
                return sanitized[:boundaries[-1]] if boundaries else \
                    _cut_inside(sanitized, limit)
            continue
        if match.group(1):
            if open_tags and open_tags[-1] == name:
                open_tags.pop()
        elif name not in _VOID_TAGS and not match.group(0).endswith("/>"):
            open_tags.append(name)
        if not open_tags and name in _BLOCKS and seen:
            boundaries.append(match.end())
    return sanitized


def _cut_inside(sanitized: str, limit: int) -> str:
    pieces: list[str] = []
    open_tags: list[str] = []
    seen = 0
    for match in _TOKEN.finditer(sanitized):
        name = match.group(2)
        if name is None:
            if seen + len(_collapse(match.group(0))) > limit:
                pieces.append(html.escape(_cut_text(html.unescape(match.group(0)), limit - seen,
                                                    "pre" in open_tags), quote=False))
                break
            seen += len(_collapse(match.group(0)))
            pieces.append(match.group(0))
            continue
        pieces.append(match.group(0))
        if match.group(1):
            if open_tags and open_tags[-1] == name:
                open_tags.pop()
        elif name not in _VOID_TAGS and not match.group(0).endswith("/>"):
            open_tags.append(name)
    pieces.extend(f"</{name}>" for name in reversed(open_tags))
    return "".join(pieces)


def _cut_text(text: str, room: int, preformatted: bool) -> str:
    """A text node cut for `_cut_inside` with an ellipsis, in about `room` characters;
    inside <pre> its spaces and line breaks kept as written (code's indentation)."""
    if preformatted:
        kept = text[:max(room, 1)]
        if " " in kept.strip(" "):
            kept = kept[:kept.rindex(" ")]
        return kept.rstrip() + "…"
    kept = cut_at_word(" ".join(text.split()), max(room, 2) + 1)
    return kept if kept.endswith("…") else kept + "…"


def shown(value: str, limit: int = 80) -> str:
    """A value for a message: repr, cut to `limit` characters."""
    return repr(value if len(value) <= limit else value[:limit] + "…")


def cut_at_word(text: str, limit: int) -> str:
    """`text` shortened to at most `limit` characters at a word boundary, with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:.-") + "…"


def reading_minutes(plain_text: str) -> int:
    return max(1, math.ceil(len(plain_text.split()) / WORDS_PER_MINUTE))


def check_web_url(value: str, where: str, field: str) -> str:
    """An absolute http(s) URL, or PostError: a `javascript:` or `file:` link must never
    reach an email."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises ValueError for a port like "8O80" or 99999
    except ValueError as exc:
        raise PostError(f"{where}: field {field!r}: {value!r} is not a valid URL ({exc})") \
            from None
    if parts.scheme not in ("http", "https") or not parts.netloc or any(
            ch.isspace() for ch in value):
        raise PostError(f"{where}: field {field!r}: {value!r} is not an absolute http(s) URL")
    return value
