"""The digest's plain-text part as readers get it: the sample week with whole posts compared
with a reviewed file (refresh with --update-snapshots, then review `git diff`), a summary's
links as references under its post, [newsletter] text_part, an operator's HTML-only template
folder (the text then comes from the HTML), and the lint gate's warning when the text part
drops a link the posts carry. The week is always named (2026-W47): no test depends on
today's date."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ainews_newsletter.config import load_config
from ainews_newsletter.models import RenderedIssue, Window
from ainews_newsletter.pipeline.issue import build
from ainews_newsletter.render.environment import make_environment
from ainews_newsletter.render.lint import lint_issue
from ainews_newsletter.render.text import display_width
from ainews_newsletter.render.welcome import render_welcome
from ainews_newsletter.resources import shipped
from tests.conftest import Project, post_text, write_post

REPO = Path(__file__).resolve().parents[2]
SNAPSHOT = REPO / "tests" / "snapshots" / "sample-week.full.txt"
W47 = Window(week="2026-W47")
UNSUBSCRIBE = "https://ainews.example/unsubscribe/SNAPSHOT-TOKEN"
PAPER = "https://papers.example.org/selective-cache-folding"


def _sample(text_part: str) -> tuple[str, str]:
    config = load_config(REPO / "config.toml", environ={},
                         overrides={"storage": {"url": "sqlite:///:memory:"},
                                    "newsletter": {"text_part": text_part}})
    return build(config, W47).personalize(UNSUBSCRIBE)


def _fits(text: str) -> list[str]:
    """Lines past 72 columns that do not end in a URL (the only ones allowed)."""
    return [line for line in text.splitlines()
            if display_width(line) > 72 and "://" not in line.split()[-1]]


def test_the_sample_week_in_full_matches_the_reviewed_text(update_snapshots: bool) -> None:
    _, text = _sample("full")
    if update_snapshots or not SNAPSHOT.exists():
        SNAPSHOT.write_text(text, encoding="utf-8")
        if not update_snapshots:
            pytest.fail(f"{SNAPSHOT} did not exist; written now, review it and commit it")
    assert text == SNAPSHOT.read_text(encoding="utf-8")
    assert _fits(text) == []


def test_full_carries_whole_posts_in_both_parts_and_summary_does_not() -> None:
    html, text = _sample("full")
    summary_html, summary_text = _sample("summary")
    for heading in ("How Selective Cache Folding Works", "Built for Follow-Up"):
        assert re.search(f"<h2[^>]*>{heading}</h2>", html) and heading not in summary_html
        assert f"\n{heading}\n{'-' * len(heading)}\n" in text
        assert heading not in summary_text
    # The sample's one inline link, numbered in the line and listed under its post.
    docs = "https://example.org/fernhill/gauge/docs"
    assert f'href="{docs}"' in html
    assert "project documentation [1]" in " ".join(text.split())
    post_end = text.index("Read more: https://ainews.example/posts/fernhill")
    assert text.rindex(f"[1] {docs}", 0, post_end) > text.index("project documentation")
    assert len(text) > 3 * len(summary_text)


def test_a_summarys_links_are_references_under_its_post(project: Project) -> None:
    body = (f"Our lead cites [the paper]({PAPER}) and **bold** claims:\n\n"
            "## Later\n\nNot in the summary.\n")
    write_post(project.posts, "2026-11-19-linked.md",
               post_text("Linked Lead Story", "2026-11-19T09:00:00Z", body=body))
    html, text = build(load_config(project.config_path, environ={}), W47).personalize(
        UNSUBSCRIBE)
    assert f'<a href="{PAPER}"' in html and "<strong>bold</strong>" in html
    block = text[text.index("Linked Lead Story"):text.index("Read more: https://news."
                                                            "example.org/posts/linked")]
    assert "Our lead cites the paper [1] and bold claims:" in block
    assert block.rstrip().endswith(f"[1] {PAPER}")
    assert "Not in the summary" not in text and "**" not in text


def _override(project: Project, *names: str) -> Path:
    """The operator's templates folder with only `names` (copied from the shipped ones)."""
    templates = project.root / "templates"
    templates.mkdir(exist_ok=True)
    for name in names:
        source = shipped("templates") / name
        (templates / name).write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    return templates


def test_an_html_only_override_gets_its_text_from_its_html(project: Project) -> None:
    templates = _override(project, "digest.mjml.j2")
    mjml = templates / "digest.mjml.j2"
    mjml.write_text(mjml.read_text().replace(
        '{% include "partials/footer.mjml.j2" %}',
        '<mj-section><mj-column><mj-text>Sponsored by the Example Foundation'
        '</mj-text></mj-column></mj-section>{% include "partials/footer.mjml.j2" %}'))
    config = load_config(project.config_path, environ={})
    rendered = build(config, W47)
    html, text = rendered.personalize(UNSUBSCRIBE)
    assert "Sponsored by the Example Foundation" in html
    assert "Sponsored by the Example Foundation" in text  # the text follows their HTML
    assert "Read more:" not in text  # not the shipped digest.txt.j2
    assert "1 Test Road, Testville" in text
    links = {link.replace("&amp;", "&") for link in re.findall(r'href="([^"]+)"', html)}
    references = set(re.findall(r"^\[\d+\] (\S+)$", text, flags=re.MULTILINE))
    # Numbered, or shown as they are (the site's address is its own link text).
    assert references | {"https://news.example.org"} == links
    assert UNSUBSCRIBE in references and "https://news.example.org." in text
    assert "display:none" not in text and rendered.preheader not in text.split("\n")[0]
    assert _fits(text) == []
    findings = lint_issue(rendered, config.newsletter.postal_address, b"", False)
    assert [f.code for f in findings] == []


def test_a_folder_with_its_own_text_template_keeps_it(project: Project) -> None:
    _override(project, "digest.mjml.j2", "digest.txt.j2")
    _, text = build(load_config(project.config_path, environ={}), W47).personalize(
        UNSUBSCRIBE)
    assert "Read more: https://news.example.org/posts/" in text


def test_a_welcome_without_its_text_template_is_made_from_its_html(project: Project) -> None:
    config = load_config(project.config_path, environ={})
    shipped_welcome = render_welcome(make_environment(shipped("templates")),
                                     config.newsletter, "AI news, weekly", named=True)
    assert "Hello " in shipped_welcome.text
    _override(project, "welcome.mjml.j2")
    welcome = render_welcome(make_environment(project.root / "templates"),
                             config.newsletter, "AI news, weekly", named=True)
    assert welcome.text != shipped_welcome.text
    assert welcome.name_placeholder in welcome.text and "AI news, weekly" in welcome.text
    assert welcome.unsubscribe_placeholder in welcome.text


def test_lint_warns_when_the_text_part_drops_a_posts_link(project: Project) -> None:
    write_post(project.posts, "2026-11-19-linked.md",
               post_text("Linked Lead Story", "2026-11-19T09:00:00Z",
                         body=f"See [the paper]({PAPER}).\n"))
    config = load_config(project.config_path, environ={})

    def text_link_findings(rendered: RenderedIssue) -> list[str]:
        return [finding.message for finding in lint_issue(
            rendered, config.newsletter.postal_address, b"", False)
            if finding.code == "text-links"]

    assert text_link_findings(build(config, W47)) == []
    templates = _override(project, "digest.txt.j2")
    own = templates / "digest.txt.j2"
    own.write_text(own.read_text().replace("{{ post.content_text }}", "{{ post.summary }}"))
    rendered = build(config, W47)
    assert PAPER in rendered.html and PAPER not in rendered.text
    [message] = text_link_findings(rendered)
    assert PAPER in message and "post.content_text" in message


def test_a_post_nested_deeper_than_the_inliner_reads_keeps_the_footer(
        project: Project) -> None:
    """The CSS inliner's parser (lxml) stops reading past 256 levels: a post whose body nests
    1,999 deep (what the sanitizer's guard lets through) lost the rest of the mail, the
    unsubscribe link with it. A post's elements are kept to MAX_DEPTH levels instead."""
    from ainews_newsletter.render.plain import MAX_DEPTH

    deep = "<b>" * 1_999 + "deep words" + "</b>" * 1_999 + "\n\n" + \
        "<ol><li>x" * 1_999 + "</li></ol>" * 1_999 + "\n"
    write_post(project.posts, "2026-11-19-deep.md",
               post_text("Deeply Nested Story", "2026-11-19T09:00:00Z", body=deep))
    project.write_config('text_part = "full"\n')
    rendered = build(load_config(project.config_path, environ={}), W47)
    html, text = rendered.personalize(UNSUBSCRIBE)
    assert "deep words" in html and "deep words" in text
    assert UNSUBSCRIBE in html and UNSUBSCRIBE in text and "1 Test Road" in html
    assert html.count("<b>") <= MAX_DEPTH


def test_a_folder_without_its_own_html_keeps_the_shipped_text_part(project: Project) -> None:
    """Only web/subscribe.html in the folder: the mails' HTML is the shipped one, so is the
    text part (made from digest.txt.j2, not from the HTML); a partial of the digest
    overridden makes the text come from the HTML."""
    templates = project.root / "templates"
    (templates / "web").mkdir(parents=True)
    (templates / "web" / "subscribe.html").write_text("<p>Subscribe</p>", encoding="utf-8")
    config = load_config(project.config_path, environ={})
    _, text = build(config, W47).personalize(UNSUBSCRIBE)
    assert "Read more: https://news.example.org/posts/" in text
    welcome = render_welcome(make_environment(templates), config.newsletter,
                             "AI news, weekly", named=True)
    assert "Hello " in welcome.text
    (templates / "partials").mkdir()
    _override(project, "partials/post.mjml.j2")
    _, derived = build(config, W47).personalize(UNSUBSCRIBE)
    assert "Read more:" not in derived


def test_each_posts_text_is_made_once_and_not_at_all_when_the_html_makes_it(
        project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    from ainews_newsletter.render import digest, plain

    made: list[str] = []
    real = plain.html_to_text

    def counted(fragment: str, layout: bool = False, width: int = 72) -> object:
        made.append("mail" if layout else "post")
        return real(fragment, layout, width)

    # posts through digest's name, the whole mail through plain.text_of_mail
    monkeypatch.setattr(digest, "html_to_text", counted)
    monkeypatch.setattr(plain, "html_to_text", counted)
    config = load_config(project.config_path, environ={})
    rendered = build(config, W47)
    assert made.count("post") == rendered.post_count and "mail" not in made
    made.clear()
    _override(project, "digest.mjml.j2")
    build(config, W47)
    assert made == ["mail"]


def test_a_linked_image_without_alt_is_a_post_link_the_text_carries(project: Project) -> None:
    """The posts' links are read from their HTML, so a link html2text dropped would show
    in the lint gate; an image without alt in a link keeps its reference."""
    write_post(project.posts, "2026-11-19-image.md",
               post_text("Image Lead Story", "2026-11-19T09:00:00Z",
                         body=f'<a href="{PAPER}"><img src="https://img.example.org/c.png">'
                              "</a> A chart.\n"))
    project.write_config('text_part = "full"\n')
    config = load_config(project.config_path, environ={})
    rendered = build(config, W47)
    assert PAPER in rendered.post_links and PAPER in rendered.text
    assert [finding.code for finding in lint_issue(
        rendered, config.newsletter.postal_address, b"", False)
        if finding.code == "text-links"] == []
