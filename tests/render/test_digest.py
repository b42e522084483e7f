"""Rendering the sample week: every post shows up whole in both parts, post text stays data,
and the text part is clean prose."""

from __future__ import annotations

import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from ainews_newsletter.config import load_config
from ainews_newsletter.errors import RenderError
from ainews_newsletter.models import RenderedIssue, Window
from ainews_newsletter.pipeline.issue import (
    audience_list,
    build,
    open_ledger,
    render_selection,
    select_posts,
)
from ainews_newsletter.posts.select import Selection
from ainews_newsletter.posts.windows import parse_week
from ainews_newsletter.render.digest import compose_issue, render_issue
from ainews_newsletter.render.localized import period_label
from tests.conftest import Project, post_text, write_post

REPO = Path(__file__).resolve().parents[2]
W47 = Window(week="2026-W47")


@pytest.fixture(scope="module")
def sample() -> tuple[Selection, RenderedIssue]:
    config = load_config(REPO / "config.toml", environ={},
                         overrides={"storage": {"url": "sqlite:///:memory:"}})
    selection = select_posts(config, W47)
    return selection, render_selection(config, selection)


def test_every_post_is_in_the_html(sample: tuple[Selection, RenderedIssue]) -> None:
    selection, rendered = sample
    assert len(selection.posts) == 5 == rendered.post_count
    html = rendered.html
    for post in selection.posts:
        assert f'href="{post.url}"' in html
        assert f'alt="{post.image_alt}"' in html
        assert f'src="{post.image}"' in html
        assert post.category is not None and post.category in html
    assert html.count("Read more") == 5
    assert rendered.preheader[:40] in html
    assert "42 Sample Lane" in html  # postal address in the footer
    assert rendered.unsubscribe_placeholder in html


def test_html_is_inlined_and_responsive(sample: tuple[Selection, RenderedIssue]) -> None:
    html = sample[1].html
    assert "<mj-" not in html  # MJML was compiled
    assert "@media" in html  # the phone layout survives in a <style> block
    assert re.search(r'<div[^>]+style="[^"]*max-width:600px', html)  # the CSS inlined


def test_posts_are_newest_first(sample: tuple[Selection, RenderedIssue]) -> None:
    selection, rendered = sample
    positions = [rendered.html.index(post.url) for post in selection.posts]
    assert positions == sorted(positions)
    dates = [post.published for post in selection.posts]
    assert dates == sorted(dates, reverse=True)


def test_text_part_is_clean_prose(sample: tuple[Selection, RenderedIssue]) -> None:
    selection, rendered = sample
    text = rendered.text
    for post in selection.posts:
        assert f"Read more: {post.url}" in text
        assert " ".join(post.title.split()[:3]) in text
    for artifact in ("|", "---", "![", "](", "<", "&amp;", "&nbsp;"):
        assert artifact not in text, artifact
    for line in text.splitlines():
        assert len(line) <= 72 or line.split()[-1].startswith(("http", "https")), line


def test_personalize_fills_the_link_everywhere(
        sample: tuple[Selection, RenderedIssue]) -> None:
    rendered = sample[1]
    html, text = rendered.personalize("https://news.example.org/unsubscribe/a&b")
    assert rendered.unsubscribe_placeholder not in html + text
    assert 'href="https://news.example.org/unsubscribe/a&amp;b"' in html
    assert "Unsubscribe: https://news.example.org/unsubscribe/a&b" in text


def test_post_text_is_data_never_template_or_markup(project: Project) -> None:
    write_post(project.posts, "2026-11-19-evil.md", post_text(
        "Math {{ 7*7 }} and <script>alert(1)</script>", "2026-11-19T10:00:00Z",
        summary="'Lead {% if true %}x{% endif %} & <b>more</b>'"))
    config = load_config(project.config_path, environ={})
    rendered = build(config, W47)
    assert "{{ 7*7 }}" in rendered.text and "Math 49" not in rendered.text
    assert "{% if true %}x{% endif %}" in rendered.text
    # Read as a mail client reads it: the title and summary are text (and the title an
    # image's alt text), never a <script> or <b> element.
    parsed = _Elements()
    parsed.feed(rendered.html)
    assert "script" not in parsed.tags and "b" not in parsed.tags
    title = "Math {{ 7*7 }} and <script>alert(1)</script>"
    assert any(title in text for text in parsed.text)
    assert any(title in alt for alt in parsed.alts)
    assert any("Lead {% if true %}x{% endif %} & <b>more</b>" in text for text in parsed.text)
    # Raw "<" only inside a quoted attribute (HTML5 writes it as it is there)
    assert "<script>" not in re.sub(r'"[^"]*"', '""', rendered.html)


class _Elements(HTMLParser):
    """The element names, text and alt attributes of an HTML document."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.text: list[str] = []
        self.alts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.alts.extend(value or "" for name, value in attrs if name == "alt")

    def handle_data(self, data: str) -> None:
        self.text.append(data.strip())


def test_missing_template_variable_fails_the_build(project: Project) -> None:
    templates = project.root / "templates"
    shutil.copytree(REPO / "templates", templates)
    source = (templates / "digest.txt.j2").read_text()
    (templates / "digest.txt.j2").write_text(source + "{{ issue.no_such_thing }}\n")
    config = load_config(project.config_path, environ={})
    with pytest.raises(RenderError, match="no_such_thing"):
        build(config, W47)


def test_templates_without_unsubscribe_link_are_refused(project: Project) -> None:
    templates = project.root / "templates"
    shutil.copytree(REPO / "templates", templates)
    text = (templates / "digest.txt.j2").read_text().replace("{{ unsubscribe_url }}", "")
    (templates / "digest.txt.j2").write_text(text)
    config = load_config(project.config_path, environ={})
    with pytest.raises(RenderError, match="unsubscribe"):
        build(config, W47)


def test_empty_week_cannot_be_composed() -> None:
    from zoneinfo import ZoneInfo

    with pytest.raises(RenderError, match="no posts"):
        compose_issue(parse_week("2026-W10", ZoneInfo("UTC")), [], "X")


T = "\u2009–\u2009"  # CLDR's interval dash between thin spaces


@pytest.mark.parametrize(("week", "language", "label"), [
    ("2026-W47", "en", f"November 16{T}22, 2026"),
    ("2026-W44", "en", f"October 26{T}November 1, 2026"),
    ("2026-W53", "en", f"December 28, 2026{T}January 3, 2027"),
    ("2026-W47", "en-GB", f"16{T}22 November 2026"),
    ("2026-W47", "de", "16.–22. November 2026"),
    ("2026-W44", "de", f"26. Oktober{T}1. November 2026"),
    ("2026-W47", "fr", "16–22 novembre 2026"),
    ("2026-W47", "ja", "2026年11月16日～22日"),
    ("2026-W53", "pt-BR", f"28 de dezembro de 2026{T}3 de janeiro de 2027"),
])
def test_period_label(week: str, language: str, label: str) -> None:
    """CLDR's interval layout per language, with the month in full."""
    from zoneinfo import ZoneInfo

    assert period_label(parse_week(week, ZoneInfo("Europe/Berlin")), language) == label


def test_render_issue_uses_templates_beside_the_config(project: Project) -> None:
    templates = project.root / "templates"
    shutil.copytree(REPO / "templates", templates)
    footer = templates / "partials" / "footer.mjml.j2"
    footer.write_text(footer.read_text().replace("Unsubscribe", "Leave this list"))
    config = load_config(project.config_path, environ={})
    issue = compose_issue(parse_week("2026-W47", config.newsletter.tz),
                          select_posts(config, W47).posts, "N")
    assert "Leave this list" in render_issue(issue, config.newsletter, config.templates_dir).html


def test_utm_parameters_on_post_links_only(project: Project) -> None:
    project.write_config('[render]\nutm_campaign = "weekly-{issue}"\n')
    write_post(project.posts, "2026-11-19-tracked.md", post_text(
        "Tracked", "2026-11-19T10:00:00Z", url="https://x.example/a?utm_source=old&id=7"))
    config = load_config(project.config_path, environ={})
    html, text = build(config, W47).personalize("https://news.example.org/u/t")
    assert ('href="https://news.example.org/posts/monday?utm_source=newsletter&amp;'
            'utm_medium=email&amp;utm_campaign=weekly-2026-W47"') in html
    assert ("https://x.example/a?id=7&utm_source=newsletter&utm_medium=email&"
            "utm_campaign=weekly-2026-W47") in text  # the post's own utm_source replaced
    assert 'href="https://news.example.org/u/t"' in html  # unsubscribe link untouched
    assert 'href="https://news.example.org/issues/2026-W47"' in html  # so is the archive


def test_masthead_numbers_issues_and_links_the_archive(project: Project) -> None:
    config = load_config(project.config_path, environ={})
    rendered = build(config, W47)
    assert "Issue #1 · November 16\u2009–\u200922, 2026" in rendered.text
    assert "View in your browser: https://news.example.org/issues/2026-W47" in rendered.text
    ledger = open_ledger(config)
    ledger.create_issue(audience_list(config), build(
        config, Window(week="2026-W46")), (), rendered.period.start)
    assert "Issue #2 ·" in build(config, W47).text  # after one earlier issue


def test_grouped_issue_headings_in_the_issues_language(project: Project) -> None:
    """"More news" (posts without a category, built in Python) and "More this week" come
    out in the newsletter's language, in both parts."""
    project.write_config('[posts]\ngroup_by = "category"\nmax_posts = 2\n')
    write_post(project.posts, "2026-11-21-sat.md",
               post_text("Saturday Without Category", "2026-11-21T09:00:00Z", ""))
    config = load_config(project.config_path, environ={},
                         overrides={"newsletter": {"language": "de"}})
    html, text = build(config, W47).personalize("https://news.example.org/u/t")
    assert "== WEITERE MELDUNGEN ==" in text and ">WEITERE MELDUNGEN<" in html
    assert "MEHR AUS DIESER WOCHE" in text and ">Mehr aus dieser Woche<" in html
    assert "More news" not in html + text and "MORE THIS WEEK" not in text
