"""[posts], [render] and [lint]: where the posts come from, how links are dressed, what
the lint gate checks."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from ainews_newsletter.config.base import Section


class MarkdownSource(Section):
    """A folder of *.md files with YAML front matter."""

    type: Literal["markdown"] = Field(default="markdown", description='"markdown".')
    path: str = Field(default="posts",
                      description="The folder, relative to the config file's folder.")

    def describe(self) -> str:
        return self.path


class FeedSource(Section):
    """An RSS or Atom feed: `url` (http/https) or `path` (a local file), not both."""

    type: Literal["feed"] = Field(description='"feed".')
    url: str | None = Field(default=None, description="The feed's http(s) URL.")
    path: str | None = Field(default=None,
                             description="A local feed file instead of a URL.")

    @model_validator(mode="after")
    def _one_location(self) -> FeedSource:
        if (self.url is None) == (self.path is None):
            raise ValueError("a feed source needs exactly one of 'url' or 'path'")
        if self.url is not None and urlsplit(self.url).scheme not in ("http", "https"):
            raise ValueError(f"feed url {self.url!r} must be http(s); use 'path' for a file")
        return self

    def describe(self) -> str:
        return self.url or self.path or "?"


PostSource = Annotated[MarkdownSource | FeedSource, Field(discriminator="type")]
POST_SOURCE_MODELS: tuple[type[Section], ...] = (MarkdownSource, FeedSource)


class PostsConfig(Section):
    sources: list[PostSource] = Field(
        default_factory=lambda: list[PostSource]([MarkdownSource()]),
        description="Where posts come from, merged in this order (when two sources carry the "
                    "same story, the first listed wins): markdown folders and feeds, see "
                    "the source keys below.")
    window: Literal["week", "since-last-issue"] = Field(
        default="week",
        description='Which posts an issue carries without --week/--since: "week" (the last '
                    'complete ISO week) or "since-last-issue" (everything after the end of '
                    "the last issue sent; the first issue takes the last seven days).")
    group_by: Literal["none", "category"] = Field(
        default="none",
        description='"none": newest first; "category": under category headings.')
    min_posts: int = Field(default=1, ge=0,
                           description="Fewer posts than this in the window: build and send "
                                       "refuse (exit 1; --force overrides).")
    max_posts: int = Field(default=20, ge=1,
                           description="At most this many posts in full, newest first; the "
                                       'rest are listed as "More this week" links.')
    summary_chars: int = Field(default=300, ge=40,
                               description="A post without `summary:` gets its first "
                                           "paragraph, cut at a word near this length.")
    feed_timeout: float = Field(default=10, gt=0, le=300,
                                description="Seconds to wait for a feed URL before the build "
                                            "fails naming that feed.")


class RenderConfig(Section):
    utm_campaign: str | None = Field(
        default=None,
        description='UTM campaign for post links, e.g. "weekly-{issue}" ({issue} becomes the '
                    "issue key). Unset: links go out exactly as the posts have them.")
    utm_source: str = Field(default="newsletter",
                            description="utm_source, when utm_campaign is set.")
    utm_medium: str = Field(default="email",
                            description="utm_medium, when utm_campaign is set.")

    def utm_for(self, issue_key: str) -> dict[str, str]:
        if not self.utm_campaign:
            return {}
        return {"utm_source": self.utm_source, "utm_medium": self.utm_medium,
                "utm_campaign": self.utm_campaign.replace("{issue}", issue_key)}


class LintConfig(Section):
    spamassassin: bool = Field(
        default=True,
        description="Score the sample message with SpamAssassin (`spamassassin -L -t`, "
                    "offline) when it is installed; a score of 3 or more is a lint error.")
