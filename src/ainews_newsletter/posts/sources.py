"""Read every configured source (Markdown folders and feeds), in the order the config lists
them: that order decides which copy of a duplicated story is kept."""

from __future__ import annotations

from dataclasses import dataclass, field

from ainews_newsletter.config import Config, FeedSource, MarkdownSource
from ainews_newsletter.errors import PostError
from ainews_newsletter.models import Post, Unplaced
from ainews_newsletter.posts import feeds
from ainews_newsletter.posts.markdown import read_markdown_folder
from ainews_newsletter.posts.text import PostDefaults


@dataclass
class SourcesRead:
    """What reading every configured source gave (as FeedRead is for one feed)."""

    posts: list[Post] = field(default_factory=list)  # in source order
    problems: list[PostError] = field(default_factory=list)
    sources: list[tuple[str, int]] = field(default_factory=list)  # (source, posts read)
    unplaced: list[Unplaced] = field(default_factory=list)  # feed items left out, and why


def defaults_from(config: Config) -> PostDefaults:
    return PostDefaults(base_url=config.newsletter.base_url, tz=config.newsletter.tz,
                        summary_chars=config.posts.summary_chars)


def _read_source(config: Config, source: MarkdownSource | FeedSource,
                 defaults: PostDefaults) -> feeds.FeedRead:
    if isinstance(source, MarkdownSource):
        # Your own posts keep the strict rule: a bad post is a problem that stops the build.
        posts, problems = read_markdown_folder(config.resolve(source.path), defaults)
        return feeds.FeedRead(posts, problems)
    try:
        if source.url is not None:
            return feeds.parse_feed(feeds.fetch(source.url, config.posts.feed_timeout),
                                    source.url, defaults)
        path = config.resolve(source.path or "")
        return feeds.parse_feed(feeds.read_file(path), str(path), defaults)
    except PostError as problem:
        return feeds.FeedRead(problems=[problem])


def read_sources(config: Config) -> SourcesRead:
    """Every post of every source, every problem found and every feed item left out (for
    `ainews posts check`)."""
    loaded = SourcesRead()
    defaults = defaults_from(config)
    for source in config.posts.sources:
        read = _read_source(config, source, defaults)
        loaded.posts.extend(read.posts)
        loaded.problems.extend(read.problems)
        loaded.unplaced.extend(read.unplaced)
        loaded.sources.append((source.describe(), len(read.posts)))
    return loaded


def load_sources(config: Config) -> SourcesRead:
    """Every source read, or PostError for the first problem: an issue is never built from
    a partial set of posts. Feed items that cannot be placed are not problems: they are
    left out, with their reason, and the issue goes on."""
    loaded = read_sources(config)
    if loaded.problems:
        first, more = loaded.problems[0], len(loaded.problems) - 1
        if more:
            raise PostError(f"{first} (and {more} more; `ainews posts check` lists them all)")
        raise first
    return loaded


def load_posts(config: Config) -> list[Post]:
    return load_sources(config).posts
