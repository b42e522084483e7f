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

WORDS_PER_MINUTE = 230
# Post and feed HTML is kept to a safe subset (no script, no event handlers, no javascript:
# URLs) so a post can never inject markup into the email.
_ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "em", "h2", "h3", "h4", "hr", "i", "img",
    "li", "ol", "p", "pre", "strong", "sub", "sup", "ul",
}


@dataclass(frozen=True)
class PostDefaults:
    """What a post may leave out, taken from the config."""

    base_url: str
    tz: ZoneInfo
    summary_chars: int


# nh3 (html5ever) is quadratic in how many elements a fragment leaves open: each start tag
# scans the stack of open elements (the "in scope" checks) and re-opens the active formatting
# elements. 100,000 unclosed <div> took 22 s, 20,000 took 0.9 s, 2,000 take 0.02 s; closed
# elements cost nothing of the kind (100,000 well-formed tags: 0.4 s) (BENCHMARKS.md,
# "Hostile input"). So no fragment whose elements stand more than MAX_OPEN_ELEMENTS deep at
# any point (unclosed, or nested) reaches nh3, counted per element name (a stray </span>
# does not close a <div>), leaving out the void elements and those HTML closes by itself
# (<p>, <li>, …: the next one closes them). A long but well-formed post or article passes;
# MAX_HTML_TAGS bounds the rest. HTML that nh3 has
# already sanitized is flattened by a linear pattern (`sanitized_to_plain`).
MAX_OPEN_ELEMENTS = 2_000
MAX_HTML_TAGS = 50_000
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*)")
_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
                   "param", "source", "track", "wbr"})
_CLOSED_BY_THE_NEXT = frozenset({"p", "li", "dt", "dd", "tr", "td", "th", "option",
                                 "optgroup", "thead", "tbody", "tfoot", "rb", "rt", "rp",
                                 "colgroup", "caption"})


class TooMuchHtml(ValueError):
    """A fragment the sanitizer is not given: too many elements left open, or too many
    tags (MAX_OPEN_ELEMENTS, MAX_HTML_TAGS)."""


def _bounded(fragment: str) -> str:
    if fragment.count("<") <= MAX_OPEN_ELEMENTS:
        return fragment
    open_by_name: dict[str, int] = {}
    tags = depth = deepest = 0
    for match in _TAG.finditer(fragment):
        tags += 1
        name = match.group(2).lower()
        if name in _VOID or name in _CLOSED_BY_THE_NEXT:
            continue
        if not match.group(1):
            open_by_name[name] = open_by_name.get(name, 0) + 1
            depth += 1
            deepest = max(deepest, depth)
        elif open_by_name.get(name, 0) > 0:  # a stray end tag closes nothing
            open_by_name[name] -= 1
            depth -= 1
    if tags > MAX_HTML_TAGS:
        raise TooMuchHtml(f"its HTML has {tags:,} tags, more than the {MAX_HTML_TAGS:,} a "
                          "post may have")
    if deepest > MAX_OPEN_ELEMENTS:
        raise TooMuchHtml(f"its HTML nests {deepest:,} elements deep (or leaves them "
                          f"unclosed), more than the {MAX_OPEN_ELEMENTS:,} a post may have")
    return fragment


_URL_SCHEMES = {"http", "https", "mailto"}
# The attributes of _ALLOWED_TAGS that nh3 keeps and that hold a URL.
_URL_ATTRIBUTES = frozenset({"href", "src", "cite"})


def sanitize_html(fragment: str, base: str | None = None) -> str:
    """The fragment kept to the safe subset, or TooMuchHtml (see MAX_HTML_TAGS); relative
    links and images resolved against `base` (an absolute http(s) URL) when given, since
    a mail app has no page to resolve them against."""
    return nh3.clean(_bounded(fragment), tags=_ALLOWED_TAGS, url_schemes=_URL_SCHEMES,
                     attribute_filter=None if base is None else _resolver(base))


def _resolver(base: str) -> Callable[[str, str, str], str | None]:
    def resolve(_element: str, attribute: str, value: str) -> str | None:
        if attribute not in _URL_ATTRIBUTES:
            return value
        # nh3 checks the scheme before it calls this filter, so the joined URL is checked
        # here; one that does not split is dropped.
        try:
            joined = urljoin(base, value)
            return joined if urlsplit(joined).scheme in _URL_SCHEMES else None
        except ValueError:
            return None

    return resolve


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
