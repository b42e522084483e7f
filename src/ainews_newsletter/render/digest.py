"""Compose an Issue and render it once into HTML and plain text."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ainews_newsletter.config import NewsletterConfig
from ainews_newsletter.errors import RenderError
from ainews_newsletter.models import Issue, Period, Post, RenderedIssue
from ainews_newsletter.render.environment import make_environment, render_template
from ainews_newsletter.render.mjml import inline_css, mjml_to_html
from ainews_newsletter.render.text import tidy

HTML_TEMPLATE = "digest.mjml.j2"
TEXT_TEMPLATE = "digest.txt.j2"
PREHEADER_CHARS = 140


def period_label(period: Period) -> str:
    """'16–22 November 2026' (the last day is end - 1 day, the window being half-open)."""
    first = period.start
    last = period.end - timedelta(days=1)
    if (first.year, first.month) == (last.year, last.month):
        return f"{first.day}–{last.day} {last:%B %Y}"
    if first.year == last.year:
        return f"{first.day} {first:%B} – {last.day} {last:%B %Y}"
    return f"{first.day} {first:%B %Y} – {last.day} {last:%B %Y}"


def compose_issue(period: Period, posts: list[Post], newsletter_name: str,
                  more: list[Post] | None = None, group_by_category: bool = False) -> Issue:
    if not posts:
        raise RenderError(f"no posts in {period.key}: nothing to put in an issue")
    lead = posts[0]
    others = len(posts) + len(more or ()) - 1
    subject = f"{lead.title}" + (f" (+{others} more)" if others else "") + f" | {newsletter_name}"
    preheader = lead.summary if len(lead.summary) <= PREHEADER_CHARS else (
        lead.summary[: PREHEADER_CHARS - 1].rsplit(" ", 1)[0] + "…")
    return Issue(period=period, posts=tuple(posts), subject=subject, preheader=preheader,
                 newsletter_name=newsletter_name, more=tuple(more or ()),
                 group_by_category=group_by_category)


def sections(issue: Issue) -> list[tuple[str | None, list[Post]]]:
    """The posts as (heading, posts). Ungrouped: one section without a heading. By category:
    a section per category, ordered by its newest post; posts without one come last under
    "More news". Within a section, newest first."""
    if not issue.group_by_category:
        return [(None, list(issue.posts))]
    groups: dict[str, list[Post]] = {}
    for post in issue.posts:  # already newest first, so the first post of a group is newest
        groups.setdefault(post.category or "", []).append(post)
    named: list[tuple[str | None, list[Post]]] = [
        (heading, group) for heading, group in groups.items() if heading]
    unnamed = groups.get("")
    return named + ([("More news", unnamed)] if unnamed else [])


def _post_context(post: Post, period: Period) -> dict[str, Any]:
    local: datetime = post.published.astimezone(period.start.tzinfo)
    return {
        "title": post.title,
        "url": post.url,
        "category": post.category,
        "image": post.image,
        "image_alt": post.image_alt,
        "summary": post.summary,
        "author": post.author,
        "reading_minutes": post.reading_minutes,
        "date_label": f"{local:%a} {local.day} {local:%b}",
    }


def render_issue(issue: Issue, newsletter: NewsletterConfig, templates_dir: Path) -> RenderedIssue:
    """Render both parts once. The unsubscribe URL is a random placeholder that
    `RenderedIssue.personalize` replaces per recipient, so N recipients cost one render."""
    placeholder = f"https://unsubscribe.invalid/{secrets.token_hex(12)}"
    context: dict[str, Any] = {
        "newsletter": {
            "name": newsletter.name,
            "base_url": newsletter.base_url,
            "postal_address": newsletter.postal_address,
        },
        "issue": {
            "key": issue.period.key,
            "subject": issue.subject,
            "preheader": issue.preheader,
            "date_label": period_label(issue.period),
        },
        "posts": [_post_context(post, issue.period) for post in issue.posts],
        "sections": [{"heading": heading,
                      "posts": [_post_context(post, issue.period) for post in group]}
                     for heading, group in sections(issue)],
        "more": [{"title": post.title, "url": post.url} for post in issue.more],
        "unsubscribe_url": placeholder,
    }
    environment = make_environment(templates_dir)
    mjml_source = render_template(environment, HTML_TEMPLATE, context)
    html = inline_css(mjml_to_html(mjml_source))
    text = tidy(render_template(environment, TEXT_TEMPLATE, context))
    if placeholder not in html or placeholder not in text:
        raise RenderError("the templates must contain the unsubscribe link "
                          "({{ unsubscribe_url }}) in both the HTML and the text part")
    return RenderedIssue(period=issue.period, subject=issue.subject, preheader=issue.preheader,
                         html=html, text=text, unsubscribe_placeholder=placeholder,
                         post_count=len(issue.posts))
