"""Compose an Issue and render it once into HTML and plain text."""

from __future__ import annotations

import html
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from markupsafe import Markup

from ainews_newsletter import translations
from ainews_newsletter.config import NewsletterConfig
from ainews_newsletter.errors import RenderError
from ainews_newsletter.models import Issue, Period, Post, RenderedIssue
from ainews_newsletter.render.environment import (
    make_environment,
    render_template,
    text_from_html,
)
from ainews_newsletter.render.localized import period_label, post_day, subject_line
from ainews_newsletter.render.mjml import inline_css, mjml_to_html
from ainews_newsletter.render.plain import (
    MAX_DEPTH,
    flattened,
    html_to_text,
    text_escape,
    text_of_mail,
)
from ainews_newsletter.render.text import tidy

HTML_TEMPLATE = "digest.mjml.j2"
TEXT_TEMPLATE = "digest.txt.j2"
PREHEADER_CHARS = 140


def compose_issue(period: Period, posts: list[Post], newsletter_name: str,
                  more: list[Post] | None = None, group_by_category: bool = False,
                  language: str = translations.SOURCE,
                  locale_dir: Path | None = None) -> Issue:
    """The issue's posts, subject (in `language`) and preheader, frozen."""
    if not posts:
        raise RenderError(f"no posts in {period.key}: nothing to put in an issue")
    lead = posts[0]
    others = len(posts) + len(more or ()) - 1
    subject = subject_line(lead.title, others, newsletter_name, language, locale_dir)
    preheader = lead.summary if len(lead.summary) <= PREHEADER_CHARS else (
        lead.summary[: PREHEADER_CHARS - 1].rsplit(" ", 1)[0] + "…")
    return Issue(period=period, posts=tuple(posts), subject=subject, preheader=preheader,
                 newsletter_name=newsletter_name, more=tuple(more or ()),
                 group_by_category=group_by_category)


def sections(issue: Issue, others_heading: str = "More news"
             ) -> list[tuple[str | None, list[Post]]]:
    """The posts as (heading, posts). Ungrouped: one section without a heading. By category:
    a section per category, ordered by its newest post; posts without one come last under
    `others_heading` ("More news" in the issue's language). Within a section, newest
    first."""
    if not issue.group_by_category:
        return [(None, list(issue.posts))]
    groups: dict[str, list[Post]] = {}
    for post in issue.posts:  # already newest first, so the first post of a group is newest
        groups.setdefault(post.category or "", []).append(post)
    named: list[tuple[str | None, list[Post]]] = [
        (heading, group) for heading, group in groups.items() if heading]
    unnamed = groups.get("")
    return named + ([(others_heading, unnamed)] if unnamed else [])


@dataclass(frozen=True)
class RenderOptions:
    number: int = 1  # the issue's number, shown in the masthead
    utm: Mapping[str, str] = field(default_factory=dict)  # added to post links if set
    language: str | None = None  # None: [newsletter] language
    locale_dir: Path | None = None  # the operator's own catalogs (Config.locale_dir)


def with_utm(url: str, utm: Mapping[str, str]) -> str:
    """`url` with utm_* parameters set (replacing any the post already had)."""
    if not utm:
        return url
    parts = urlsplit(url)
    query = [(key, value) for key, value in parse_qsl(parts.query, keep_blank_values=True)
             if key not in utm]
    return urlunsplit(parts._replace(query=urlencode([*query, *utm.items()])))


def archive_url(base_url: str, period: Period) -> str:
    """Where the web archive (`ainews serve`) shows the issue: the "View in browser" link."""
    return f"{base_url}/issues/{quote(period.key)}"


def post_content(post: Post, text_part: str) -> str:
    """What the digest shows of `post`, as sanitized HTML: its summary (as HTML, cut at a
    block boundary) or, with text_part = "full", its whole body."""
    if text_part == "full" and post.body_html.strip():
        return flattened(post.body_html, MAX_DEPTH)
    return flattened(post.summary_html, MAX_DEPTH) or text_escape(post.summary)


# In sanitized HTML (nh3's output) an attribute value is double-quoted, its "&" escaped.
_HREF = re.compile(r'<a\b[^<>]*?\shref="([^"]*)"')


def html_links(sanitized: str) -> list[str]:
    """The http(s) and mailto links of sanitized HTML, in order: what the text part must
    carry, read from the HTML (not from html2text's output, which would hide a link it
    dropped from the lint gate's `text-links` check)."""
    links = (html.unescape(match.group(1)).strip() for match in _HREF.finditer(sanitized))
    return [link for link in links if link.lower().startswith(("http://", "https://",
                                                               "mailto:"))]


def _post_context(post: Post, period: Period, utm: Mapping[str, str],
                  language: str, text_part: str, with_text: bool = True) -> dict[str, Any]:
    local: datetime = post.published.astimezone(period.start.tzinfo)
    content = post_content(post, text_part)
    url = with_utm(post.url, utm)
    return {
        # Sanitized by the posts' reader (nh3): markup the templates may show as it is.
        "content_html": Markup(content),
        # Unused (and not made) when the text part is made from the rendered HTML.
        "content_text": html_to_text(content).with_references() if with_text else "",
        "links": [url, *dict.fromkeys(html_links(content))],
        "title": post.title,
        "url": url,
        "category": post.category,
        "image": post.image,
        "image_alt": post.image_alt,
        "summary": post.summary,
        "author": post.author,
        "reading_minutes": post.reading_minutes,
        "date_label": post_day(local, language),
    }


def render_issue(issue: Issue, newsletter: NewsletterConfig, templates_dir: Path,
                 options: RenderOptions | None = None,
                 timings: dict[str, float] | None = None) -> RenderedIssue:
    """Render both parts once. The unsubscribe URL is a random placeholder that
    `RenderedIssue.personalize` replaces per recipient, so N recipients cost one render.
    `timings`, if given, receives the seconds spent in each stage."""
    placeholder = f"https://unsubscribe.invalid/{secrets.token_hex(12)}"
    clock_start = time.perf_counter()
    stages = timings if timings is not None else {}

    def lap(stage: str) -> None:
        nonlocal clock_start
        now = time.perf_counter()
        stages[stage] = now - clock_start
        clock_start = now

    options = options or RenderOptions()
    language = options.language or newsletter.language
    environment = make_environment(templates_dir, language, options.locale_dir)
    derived = text_from_html(environment, HTML_TEMPLATE, TEXT_TEMPLATE)
    context = issue_context(issue, newsletter, options, placeholder, with_text=not derived)
    mjml_source = render_template(environment, HTML_TEMPLATE, context)
    lap("template")
    compiled = mjml_to_html(mjml_source)
    lap("mjml")
    html = inline_css(compiled)
    lap("inline")
    if derived:
        # Their own HTML without a text part of their own: the text is that HTML's, so the
        # two parts never drift apart.
        text = text_of_mail(html)
    else:
        text = tidy(render_template(environment, TEXT_TEMPLATE, context))
    lap("text")
    if placeholder not in html or placeholder not in text:
        raise RenderError("the templates must contain the unsubscribe link "
                          "({{ unsubscribe_url }}) in both the HTML and the text part")
    return RenderedIssue(period=issue.period, subject=context["issue"]["subject"],
                         preheader=issue.preheader,
                         html=html, text=text, unsubscribe_placeholder=placeholder,
                         post_count=len(issue.posts),
                         post_links=tuple(dict.fromkeys(
                             link for post in context["posts"] for link in post["links"])))


def issue_context(issue: Issue, newsletter: NewsletterConfig, options: RenderOptions,
                  unsubscribe_placeholder: str, with_text: bool = True) -> dict[str, Any]:
    """What the templates see (documented at the top of digest.mjml.j2); without
    `with_text`, the posts' `content_text` is left empty (the text part is made from the
    rendered HTML)."""
    utm = options.utm
    language = options.language or newsletter.language
    catalog = translations.translations(language, "mail", options.locale_dir)
    # Each post's context (html2text included) made once, for `posts` and `sections`.
    made: dict[int, dict[str, Any]] = {}

    def post_context(post: Post) -> dict[str, Any]:
        if id(post) not in made:
            made[id(post)] = _post_context(post, issue.period, utm, language,
                                           newsletter.text_part, with_text)
        return made[id(post)]

    return {
        "newsletter": {
            "name": newsletter.name,
            "base_url": newsletter.base_url,
            "postal_address": newsletter.postal_address,
        },
        "issue": {
            "key": issue.period.key,
            "number": options.number,
            # In this rendering's language (issue.subject is in the newsletter's): the
            # HTML title and the Subject header say the same.
            "subject": subject_line(issue.posts[0].title,
                                    len(issue.posts) + len(issue.more) - 1,
                                    issue.newsletter_name, language, options.locale_dir),
            "preheader": issue.preheader,
            "date_label": period_label(issue.period, language),
            "archive_url": archive_url(newsletter.base_url, issue.period),
        },
        "posts": [post_context(post) for post in issue.posts],
        "sections": [{"heading": heading, "posts": [post_context(post) for post in group]}
                     for heading, group in sections(issue, catalog.gettext("More news"))],
        "more": [{"title": post.title, "url": with_utm(post.url, utm)} for post in issue.more],
        "unsubscribe_url": unsubscribe_placeholder,
    }
