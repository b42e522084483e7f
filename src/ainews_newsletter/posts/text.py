"""Text helpers shared by the Markdown and feed readers: sanitizing and flattening HTML."""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass
from urllib.parse import urlsplit
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


def sanitize_html(fragment: str) -> str:
    return nh3.clean(fragment, tags=_ALLOWED_TAGS, url_schemes={"http", "https", "mailto"})


def html_to_plain(fragment: str) -> str:
    """Visible text of an HTML fragment, whitespace collapsed."""
    stripped = nh3.clean(fragment, tags=set())
    return re.sub(r"\s+", " ", html.unescape(stripped)).strip()


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
