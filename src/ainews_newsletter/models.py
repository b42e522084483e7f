"""Plain data passed between rooms. Frozen dataclasses: once built, an issue cannot change
under the renderer or the sender."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from typing import Any


@dataclass(frozen=True)
class Post:
    """One news post, loaded from a source and validated."""

    title: str
    published: datetime  # aware, UTC
    url: str
    slug: str
    summary: str  # plain text lead (the preheader, reports, `posts list`)
    body_html: str  # sanitized HTML of the body
    category: str | None = None
    image: str | None = None
    image_alt: str | None = None
    author: str | None = None
    tags: tuple[str, ...] = ()
    source: str = ""  # where it came from: a file path or a feed URL
    reading_minutes: int = 1
    guid: str | None = None  # a feed item's guid/id; Markdown posts are known by their url
    # True when the feed gave no title and it was made from the item's first words (RSS 2.0
    # allows untitled items; micro.blog writes them).
    title_derived: bool = False
    # The lead as sanitized HTML, cut at a block boundary: what the digest shows of the post
    # ([newsletter] text_part = "summary"); "" means the plain `summary` as one paragraph.
    summary_html: str = ""


@dataclass(frozen=True)
class Unplaced:
    """A feed item the project cannot use (no date, an impossible date, no usable link):
    left out with its reason, while the rest of the feed and the issue go on."""

    source: str
    item: int  # its position in the feed, from 1
    title: str
    link: str | None
    guid: str | None
    reason: str

    def describe(self) -> str:
        return f"feed {self.source}: item {self.item} ({self.guid or self.link or self.title})"


@dataclass(frozen=True)
class PostRef:
    """What the ledger remembers of a post an issue carried, to never carry it again."""

    guid: str | None
    url: str  # canonical form
    title: str


@dataclass(frozen=True)
class Period:
    """A half-open window [start, end) in the newsletter's timezone, with a stable key."""

    key: str  # e.g. "2026-W47"; the identity of an issue for its list
    start: datetime  # aware, newsletter timezone
    end: datetime  # aware, newsletter timezone

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


@dataclass(frozen=True)
class Issue:
    """What one digest carries: frozen before rendering."""

    period: Period
    posts: tuple[Post, ...]  # carried in full, newest first
    subject: str
    preheader: str
    newsletter_name: str
    more: tuple[Post, ...] = ()  # over max_posts: listed as "More this week" links
    group_by_category: bool = False


@dataclass(frozen=True)
class RenderedIssue:
    """An issue rendered once: everything the sender needs, nothing that needs the posts.
    Stored in the ledger when a send starts, so a resumed send mails the same issue even if
    a post or template was edited in between. The unsubscribe URL is a placeholder that
    `personalize` fills per recipient."""

    period: Period
    subject: str
    preheader: str
    html: str
    text: str
    unsubscribe_placeholder: str
    post_count: int
    # The links the posts carry (their own URLs and the links in what is shown of them),
    # which the lint gate looks for in the text part; not stored in the ledger.
    post_links: tuple[str, ...] = ()

    @property
    def html_bytes(self) -> int:
        return len(self.html.encode("utf-8"))

    @property
    def text_bytes(self) -> int:
        return len(self.text.encode("utf-8"))

    def personalize(self, unsubscribe_url: str) -> tuple[str, str]:
        """The (html, text) one subscriber receives: the URL is inserted, not re-rendered."""
        html = self.html.replace(self.unsubscribe_placeholder, escape(unsubscribe_url))
        text = self.text.replace(self.unsubscribe_placeholder, unsubscribe_url)
        return html, text


@dataclass(frozen=True)
class RenderedWelcome:
    """The welcome mail rendered once (for readers with a name, or for those without): the
    reader's name, address and unsubscribe URL are placeholders `personalize` fills."""

    subject: str
    html: str
    text: str
    unsubscribe_placeholder: str
    name_placeholder: str
    email_placeholder: str

    def personalize(self, unsubscribe_url: str, name: str,
                    email: str) -> tuple[str, str, str]:
        """(subject, html, text) for one reader. One pass per part, so a name that happens
        to hold a placeholder's text is never filled in again."""
        values = {self.unsubscribe_placeholder: unsubscribe_url,
                  self.name_placeholder: name, self.email_placeholder: email}
        pattern = re.compile("|".join(re.escape(key) for key in values))

        def fill(text: str, escaped: bool) -> str:
            return pattern.sub(lambda found: (escape(values[found.group(0)]) if escaped
                                              else values[found.group(0)]), text)

        return fill(self.subject, False), fill(self.html, True), fill(self.text, False)


class SubscriberStatus(enum.StrEnum):
    PENDING = "pending"  # signed up, not confirmed yet: receives nothing
    ACTIVE = "active"  # receives every issue of their lists
    UNSUBSCRIBED = "unsubscribed"  # left; an import never brings them back
    BOUNCED = "bounced"  # the address does not take mail
    COMPLAINED = "complained"  # marked an issue as spam

    @property
    def has_left(self) -> bool:
        """Statuses only the subscriber (or a resubscribe by hand) can undo."""
        return self in (SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED,
                        SubscriberStatus.COMPLAINED)


@dataclass(frozen=True)
class Subscriber:
    id: int
    email: str  # as given
    email_normalized: str
    name: str | None
    status: SubscriberStatus
    token: str  # opaque, random; identifies the subscriber in unsubscribe links
    created_at: datetime
    unsubscribed_at: datetime | None = None
    source: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    confirmed_at: datetime | None = None
    lists: tuple[str, ...] = ()
    language: str | None = None  # their own (BCP 47); None: the newsletter's


@dataclass(frozen=True)
class Recipient:
    """One row of an issue's audience snapshot, as the sender needs it."""

    subscriber_id: int
    email: str
    name: str | None
    token: str
    language: str | None = None  # the reader's own; None: the newsletter's


class DeliveryState(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DEFERRED = "deferred"
    FAILED = "failed"


@dataclass(frozen=True)
class SendOutcome:
    """What the transport reported for one message."""

    state: DeliveryState  # SENT, DEFERRED or FAILED
    code: int
    reply: str
    relay: str | None = None  # which of [[smtp.relays]] answered (None: the one [smtp])


@dataclass(frozen=True)
class DeliveryCounts:
    issue: str
    total: int = 0
    queued: int = 0
    sending: int = 0
    sent: int = 0
    deferred: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, int | str]:
        return {
            "issue": self.issue,
            "total": self.total,
            "queued": self.queued,
            "sending": self.sending,
            "sent": self.sent,
            "deferred": self.deferred,
            "failed": self.failed,
        }


@dataclass(frozen=True)
class Window:
    """What the user asked for: --week, or --since/--until, or nothing (the config decides)."""

    week: str | None = None
    since: str | None = None
    until: str | None = None


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """'1 post', '3 posts', '0 posts': every count a person reads (`plural` when the noun
    does not just take an s)."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"
