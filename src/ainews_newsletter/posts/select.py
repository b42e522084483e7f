"""Pure selection: which posts an issue carries, and why the others are left out.
No I/O, no clock: the caller passes the posts (in source order), the window and what earlier
issues carried."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from ainews_newsletter.models import Period, Post, PostRef, Unplaced
from ainews_newsletter.posts.windows import week_containing


class Reason(enum.StrEnum):
    OUT_OF_WINDOW = "out of window"
    DUPLICATE = "duplicate"
    ALREADY_SENT = "already sent"


@dataclass(frozen=True)
class Excluded:
    post: Post
    reason: Reason
    detail: str  # which post it duplicates, which issue carried it, or the window


@dataclass(frozen=True)
class Selection:
    period: Period
    posts: list[Post]  # carried in full, newest first
    more: list[Post] = field(default_factory=list)  # over max_posts: listed as links only
    excluded: list[Excluded] = field(default_factory=list)
    unplaced: list[Unplaced] = field(default_factory=list)  # feed items no date/link placed

    @property
    def in_window(self) -> int:
        return len(self.posts) + len(self.more)


def canonical_url(url: str) -> str:
    """The identity of a link: scheme and host lower-cased, default port, fragment, trailing
    slash and utm_* tracking parameters dropped, so the same story shared with different
    tracking or spelling is recognised as one."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    if port is not None and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    path = parts.path.rstrip("/")
    query = urlencode([(key, value) for key, value in parse_qsl(parts.query, keep_blank_values=True)
                       if not key.lower().startswith("utm_")])
    return urlunsplit((scheme, host, path, query, ""))


def post_ref(post: Post) -> PostRef:
    return PostRef(guid=post.guid, url=canonical_url(post.url), title=post.title)


@dataclass(frozen=True)
class Carried:
    """What earlier issues carried: guid → issue key and canonical url → issue key."""

    guids: Mapping[str, str] = field(default_factory=dict)
    urls: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_refs(cls, refs: Iterable[tuple[str, PostRef]]) -> Carried:
        guids: dict[str, str] = {}
        urls: dict[str, str] = {}
        for issue_key, ref in refs:
            if ref.guid:
                guids.setdefault(ref.guid, issue_key)
            urls.setdefault(ref.url, issue_key)
        return cls(guids, urls)

    def issue_of(self, post: Post) -> str | None:
        if post.guid and post.guid in self.guids:
            return self.guids[post.guid]
        return self.urls.get(canonical_url(post.url))


def _newest_first(posts: list[Post]) -> list[Post]:
    ordered = sorted(posts, key=lambda post: post.title)  # stable tie-break
    return sorted(ordered, key=lambda post: post.published, reverse=True)


def select(posts: Iterable[Post], period: Period, max_posts: int,
           carried: Carried | None = None, unplaced: Iterable[Unplaced] = ()) -> Selection:
    """Window first, then duplicates (the first source listed wins: same guid, or same
    canonical url), then posts an earlier issue carried; newest first, capped at max_posts
    with the rest kept as links. `unplaced` feed items are passed through, to be shown."""
    carried = carried or Carried()
    excluded: list[Excluded] = []
    kept: list[Post] = []
    seen_guids: dict[str, Post] = {}
    seen_urls: dict[str, Post] = {}
    for post in posts:
        if not period.contains(post.published):
            excluded.append(Excluded(post, Reason.OUT_OF_WINDOW, period.key))
            continue
        url = canonical_url(post.url)
        original = (seen_guids.get(post.guid) if post.guid else None) or seen_urls.get(url)
        if original is not None:
            excluded.append(Excluded(post, Reason.DUPLICATE,
                                     f"same story as {original.source}: {original.title}"))
            continue
        if post.guid:
            seen_guids[post.guid] = post
        seen_urls[url] = post
        issue = carried.issue_of(post)
        if issue is not None:
            excluded.append(Excluded(post, Reason.ALREADY_SENT, f"carried by issue {issue}"))
            continue
        kept.append(post)
    ordered = _newest_first(kept)
    return Selection(period=period, posts=ordered[:max_posts], more=ordered[max_posts:],
                     excluded=excluded, unplaced=list(unplaced))


def latest_week_with_posts(posts: Iterable[Post], tz: ZoneInfo) -> Period | None:
    newest = max((post.published for post in posts), default=None)
    return None if newest is None else week_containing(newest, tz)
