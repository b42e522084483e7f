"""Loading post files: the sample posts are valid; every bad post names its file and field."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ainews_newsletter.errors import PostError
from ainews_newsletter.models import Post
from ainews_newsletter.posts.markdown import load_post, read_markdown_folder
from ainews_newsletter.posts.text import PostDefaults, cut_at_word
from tests.conftest import post_text, write_post

REPO = Path(__file__).resolve().parents[2]
BERLIN = ZoneInfo("Europe/Berlin")
DEFAULTS = PostDefaults(base_url="https://news.example.org", tz=BERLIN, summary_chars=300)


def load_markdown_folder(folder: Path, defaults: PostDefaults) -> list[Post]:
    posts, problems = read_markdown_folder(folder, defaults)
    if problems:
        raise problems[0]
    return posts


def test_sample_posts_are_complete_and_span_three_weeks() -> None:
    posts = load_markdown_folder(REPO / "posts", DEFAULTS)
    assert len(posts) >= 12
    weeks = {post.published.astimezone(BERLIN).isocalendar()[:2] for post in posts}
    assert len(weeks) >= 3
    for post in posts:
        assert post.title and post.category and post.summary, post.source
        assert post.image and post.image_alt, post.source
        text = Path(post.source).read_text(encoding="utf-8")
        assert text.count("\n## ") >= 3 and "## Conclusion" in text, post.source


def test_fields_and_defaults(tmp_path: Path) -> None:
    path = write_post(tmp_path, "2026-11-18-a-slug.md",
                      post_text("A Headline", "2026-11-18T09:30:00Z", tags="[cloud, policy]"))
    post = load_post(path, DEFAULTS)
    assert post.published == datetime(2026, 11, 18, 9, 30, tzinfo=UTC)
    assert post.slug == "a-slug"
    assert post.url == "https://news.example.org/posts/a-slug"
    assert post.summary.startswith("The lead paragraph of A Headline")
    assert post.tags == ("cloud", "policy")
    assert post.reading_minutes == 1


def test_bare_date_is_midnight_in_the_newsletter_timezone(tmp_path: Path) -> None:
    path = write_post(tmp_path, "p.md", post_text("Bare", "2026-11-18"))
    assert load_post(path, DEFAULTS).published == datetime(2026, 11, 17, 23, 0, tzinfo=UTC)


def test_naive_time_is_read_in_the_newsletter_timezone(tmp_path: Path) -> None:
    path = write_post(tmp_path, "p.md", post_text("Naive", "2026-07-01T12:00:00"))
    assert load_post(path, DEFAULTS).published == datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "message"), [
    ("---\ndate: 2026-11-18\n---\nbody\n", "field 'title' is required"),
    ("---\ntitle: T\n---\nbody\n", "field 'date' is required"),
    ("---\ntitle: T\ndate: next tuesday\n---\nbody\n", "field 'date': cannot parse"),
    ("---\ntitle: T\ndate: 2026-11-18\nimage: https://x.example/a.jpg\n---\nb\n",
     "field 'image_alt' is required"),
    ("---\ntitle: [unclosed\ndate: 2026-11-18\n---\nbody\n", "broken YAML front matter"),
    ("no front matter at all\n", "missing front matter"),
])
def test_bad_posts_name_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = write_post(tmp_path, "bad.md", text)
    with pytest.raises(PostError) as caught:
        load_post(path, DEFAULTS)
    assert str(path) in str(caught.value)
    assert message in str(caught.value)


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    path = write_post(tmp_path, "bad.md", "---\ntitle: ok\ndate: 2026-11-18\ntags: [a, b\n---\n")
    with pytest.raises(PostError, match=r"bad\.md: line \d+: broken YAML"):
        load_post(path, DEFAULTS)


def test_every_bad_post_of_a_folder_is_reported(tmp_path: Path) -> None:
    write_post(tmp_path, "good.md", post_text("Good", "2026-11-18"))
    write_post(tmp_path, "bad1.md", "---\ntitle: no date\n---\n")
    write_post(tmp_path, "bad2.md", "---\ndate: 2026-11-18\n---\n")
    posts, problems = read_markdown_folder(tmp_path, DEFAULTS)
    assert [post.title for post in posts] == ["Good"]
    assert [str(problem).split(": ", 1)[0] for problem in problems] == [
        str(tmp_path / "bad1.md"), str(tmp_path / "bad2.md")]


def test_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PostError, match="posts folder not found"):
        load_markdown_folder(tmp_path / "nope", DEFAULTS)


def test_html_in_the_body_is_sanitized(tmp_path: Path) -> None:
    body = ('Lead with <b>bold</b>.\n\n<script>alert(1)</script>\n\n'
            '<img src="x.png" onerror="alert(2)">\n\n[click](javascript:alert(3)) and '
            '<a href="javascript:alert(4)">raw</a>\n')
    post = load_post(write_post(tmp_path, "p.md", post_text("T", "2026-11-18", body=body)),
                     DEFAULTS)
    assert "<b>bold</b>" in post.body_html
    for dangerous in ("<script", "onerror", 'href="javascript:'):
        assert dangerous not in post.body_html
    assert post.summary == "Lead with bold."


@pytest.mark.parametrize(("text", "limit", "expected"), [
    ("short", 10, "short"),
    ("one two three four", 12, "one two…"),
    ("unbreakablewordhere", 8, "unbreak…"),
])
def test_cut_at_word(text: str, limit: int, expected: str) -> None:
    assert cut_at_word(text, limit) == expected
    assert len(cut_at_word(text, limit)) <= limit


@pytest.mark.parametrize("date", ["2026-13-45", "2026-02-30", "2026-11-18T09:30:00+25:00",
                                  "0001-01-01T00:30:00+05:00"])
def test_impossible_dates_name_the_file(tmp_path: Path, date: str) -> None:
    path = write_post(tmp_path, "odd.md", f"---\ntitle: T\ndate: {date}\n---\nbody\n")
    with pytest.raises(PostError) as caught:
        load_post(path, DEFAULTS)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(("field", "value"), [
    ("url", "javascript:alert(1)"), ("url", "/relative/path"), ("image", "file:///etc/passwd"),
    ("image", "data:image/png;base64,AAAA"),
])
def test_links_must_be_http(tmp_path: Path, field: str, value: str) -> None:
    text = f"---\ntitle: T\ndate: 2026-11-18\n{field}: {value!r}\nimage_alt: a\n---\nbody\n"
    path = write_post(tmp_path, "link.md", text)
    with pytest.raises(PostError, match=rf"field '{field}': .* not an absolute http\(s\) URL"):
        load_post(path, DEFAULTS)


def test_byte_order_mark_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "bom.md"
    path.write_bytes(b"\xef\xbb\xbf" + post_text("With BOM", "2026-11-18").encode())
    assert load_post(path, DEFAULTS).title == "With BOM"


def test_yaml_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    """A 455-byte "billion laughs" in `tags` grew past 2 GB; the alias is refused where the
    YAML is composed, so the whole load stays within a few MB (issue 27)."""
    import tracemalloc

    laughs = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + "".join(
        f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]\n"
        for previous, name in zip("abcdefgh", "bcdefghi", strict=True))
    path = write_post(tmp_path, "bomb.md", f"---\n{laughs}title: T\ndate: 2026-11-18\n"
                                           "tags: *i\n---\nbody\n")
    tracemalloc.start()
    try:
        with pytest.raises(PostError, match="YAML aliases"):
            load_post(path, DEFAULTS)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5 * 2**20


def test_plain_anchors_and_ordinary_numbers_still_load(tmp_path: Path) -> None:
    path = write_post(tmp_path, "ok.md", "---\ntitle: &t 2026\ndate: 2026-11-18\n"
                                         "tags: [0x1F, 7]\n---\nbody\n")
    post = load_post(path, DEFAULTS)
    assert post.title == "2026" and post.tags == ("31", "7")


def test_a_date_among_the_tags_or_as_the_title_is_its_text(tmp_path: Path) -> None:
    """YAML reads an unquoted 2026-01-05 as a date; in tags or a title it is that text."""
    path = write_post(tmp_path, "ok.md", "---\ntitle: 2026-01-05\ndate: 2026-11-18\n"
                                         "tags: [review, 2026-01-05, 2026-01-05 10:30:00]\n"
                                         "---\nbody\n")
    post = load_post(path, DEFAULTS)
    assert post.title == "2026-01-05"
    assert post.tags == ("review", "2026-01-05", "2026-01-05T10:30:00")


def test_the_summary_is_kept_as_html_cut_at_a_block_boundary(tmp_path: Path) -> None:
    """Without `summary:`, the first paragraph keeps its links and emphasis (the digest's
    lead: HTML in the HTML part, html2text in the text part); the plain lead stays plain."""
    body = ("A lead with [a link](https://papers.example/1) and *emphasis*.\n\n"
            "## Section\n\nMore text.\n")
    path = write_post(tmp_path, "p.md", post_text("Linked Lead", "2026-11-18", body=body))
    post = load_post(path, DEFAULTS)
    assert post.summary_html == ('<p>A lead with <a href="https://papers.example/1" '
                                 'rel="noopener noreferrer">a link</a> and <em>emphasis</em>.'
                                 "</p>")
    assert post.summary == "A lead with a link and emphasis."
    given = write_post(tmp_path, "q.md", post_text("Given", "2026-11-18",
                                                   summary="'Fish & <chips>'"))
    assert load_post(given, DEFAULTS).summary_html == "<p>Fish &amp; &lt;chips&gt;</p>"


def test_cut_html_keeps_whole_blocks_or_cuts_the_first_inside() -> None:
    from ainews_newsletter.posts.text import cut_html

    blocks = "<p>" + "a " * 30 + "</p><ul><li>" + "b " * 30 + "</li></ul><p>c</p>"
    assert cut_html(blocks, 300) == blocks
    assert cut_html(blocks, 118) == "<p>" + "a " * 30 + "</p><ul><li>" + "b " * 30 + \
        "</li></ul>"
    assert cut_html(blocks, 70) == "<p>" + "a " * 30 + "</p>"
    long_first = "<p>Some <strong>" + "word " * 40 + "</strong> end</p><p>next</p>"
    cut = cut_html(long_first, 50)
    assert cut.startswith("<p>Some <strong>word word") and cut.endswith("…</strong></p>")
    assert len(cut) < 80 and "next" not in cut


def test_cutting_a_first_block_of_code_keeps_its_lines_and_indent() -> None:
    from ainews_newsletter.posts.text import cut_html

    code = ("<pre><code>def f(x):\n    return x + 1\n\ndef g(y):\n"
            "    return y * 2 and more and more</code></pre><p>after</p>")
    cut = cut_html(code, 40)
    assert cut.startswith("<pre><code>def f(x):\n    return x + 1\n\ndef g(y):")
    assert cut.endswith("…</code></pre>") and "after" not in cut
