"""RSS 2.0 and Atom feeds from local fixture files and from a real HTTP server on loopback."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ainews_newsletter.errors import PostError
from ainews_newsletter.posts.feeds import fetch, parse_feed
from ainews_newsletter.posts.text import PostDefaults

FEEDS = Path(__file__).resolve().parents[1] / "fixtures" / "feeds"
DEFAULTS = PostDefaults(base_url="https://news.example.org", tz=ZoneInfo("Europe/Berlin"),
                        summary_chars=300)


def _parse(name: str) -> tuple[list, list]:  # type: ignore[type-arg]
    return parse_feed((FEEDS / name).read_bytes(), name, DEFAULTS)


def test_rss_items_become_posts() -> None:
    read = _parse("ai-wire.rss")
    posts, problems = read.posts, read.problems
    assert problems == [] and read.unplaced == []
    gpu = posts[0]
    assert gpu.title == "GPU Spot Prices Fall for a Third Week"
    assert gpu.published == datetime(2026, 11, 17, 9, 0, tzinfo=UTC)
    assert gpu.guid == "wire-001"
    assert gpu.url == "https://wire.example.com/stories/gpu-prices"
    assert gpu.category == "Hardware"
    assert gpu.source == "ai-wire.rss"
    # HTML sanitized, then flattened into the lead; template syntax stays text.
    assert gpu.summary.startswith("Rental prices for data-centre GPUs slipped again, the third")
    assert "{{ 7*7 }}" in gpu.summary
    assert "<" not in gpu.summary and "alert" not in gpu.summary
    assert "<script" not in gpu.body_html and "<b>the third weekly fall</b>" in gpu.body_html
    no_guid = posts[1]
    assert no_guid.guid is None and no_guid.url.startswith("HTTPS://News.Example.org")


def test_atom_dates_ids_and_html_titles() -> None:
    read = _parse("lab-notes.atom")
    posts, problems = read.posts, read.problems
    assert problems == [] and read.unplaced == []
    by_title = {post.title: post for post in posts}
    syndicated = by_title["Open Model Tops Leaderboard (Lab Notes)"]
    assert syndicated.published == datetime(2026, 11, 19, 11, 0, tzinfo=UTC)  # from <updated>
    robots = by_title["Robots Learn to Fold Laundry & Towels"]  # HTML title flattened
    assert robots.published == datetime(2026, 11, 21, 15, 0, tzinfo=UTC)  # published wins
    assert robots.guid == "tag:labnotes.example.org,2026:entry-7"
    assert robots.author == "Lab Notes Staff" and robots.category == "Research"
    assert robots.summary == "A household robot learned to fold towels from forty demonstrations."
    assert "More detail follows." in robots.body_html  # the body is the full content


@pytest.mark.parametrize(("name", "message"), [
    ("broken.rss", "broken.rss: not a valid RSS or Atom feed (XML error"),
    ("not-a-feed.xml", "not-a-feed.xml: not an RSS or Atom feed"),
])
def test_documents_that_are_not_feeds(name: str, message: str) -> None:
    read = _parse(name)
    assert read.posts == [] and len(read.problems) == 1
    assert str(read.problems[0]).startswith(f"feed {message}")


def test_an_item_without_a_date_is_left_out_with_its_reason_not_silently() -> None:
    read = _parse("undated.rss")
    assert [post.title for post in read.posts] == ["Has a date"]
    assert read.problems == []  # the rest of the feed (and the issue) goes on
    assert [f"{item.describe()}: {item.reason}" for item in read.unplaced] == [
        "feed undated.rss: item 2 (undated-b): it has no date (published or updated)"]


@pytest.mark.parametrize(("item", "message"), [
    ("<item><link>https://x.example/a</link><pubDate>Wed, 18 Nov 2026 08:00:00 GMT</pubDate>"
     "</item>", "neither a title nor any text"),
    ("<item><title>T</title><guid isPermaLink='false'>g</guid>"
     "<pubDate>Wed, 18 Nov 2026 08:00:00 GMT</pubDate></item>", "it has no link"),
    ("<item><title>T</title><link>javascript:alert(1)</link>"
     "<pubDate>Wed, 18 Nov 2026 08:00:00 GMT</pubDate></item>", "not an absolute http(s) URL"),
    ("<item><title>T</title><link>https://x.example/a</link>"
     "<pubDate>2013-xx-27</pubDate></item>", "its date '2013-xx-27' cannot be read"),
])
def test_unusable_items_are_left_out_saying_why(item: str, message: str) -> None:
    document = f"<rss version='2.0'><channel><title>c</title>{item}</channel></rss>".encode()
    read = parse_feed(document, "inline.rss", DEFAULTS)
    assert read.posts == [] and read.problems == [] and len(read.unplaced) == 1
    described = f"{read.unplaced[0].describe()}: {read.unplaced[0].reason}"
    assert described.startswith("feed inline.rss: item 1") and message in described


# -- over HTTP -----------------------------------------------------------------------------

def test_fetch_over_http(feed_server: str) -> None:
    read = parse_feed(fetch(f"{feed_server}/ai-wire.rss", 5), "wire", DEFAULTS)
    assert read.problems == [] and read.unplaced == [] and len(read.posts) == 4


def test_fetch_404_names_the_feed(feed_server: str) -> None:
    with pytest.raises(PostError, match=rf"feed {feed_server}/gone.rss: the server answered 404"):
        fetch(f"{feed_server}/gone.rss", 5)


def test_fetch_timeout_names_the_feed_and_the_setting(feed_server: str) -> None:
    with pytest.raises(PostError, match=r"slow\.rss: no answer within 0\.3s .*feed_timeout"):
        fetch(f"{feed_server}/slow.rss", 0.3)


def test_fetch_refused_names_the_feed(unused_port: int) -> None:
    with pytest.raises(PostError,
                       match=rf"feed http://127.0.0.1:{unused_port}/x.rss: cannot be reached"):
        fetch(f"http://127.0.0.1:{unused_port}/x.rss", 2)


def test_the_sanitizer_never_sees_more_than_max_html_tags(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """nh3 is quadratic in the elements a fragment leaves open (100,000 unclosed <div>: 22
    s): every call is given at most MAX_HTML_TAGS start tags, so a feed's cost is linear in
    its size (issue 27; the figures are in BENCHMARKS.md)."""
    import re

    import nh3

    from ainews_newsletter.posts import text

    seen: list[int] = []
    clean = nh3.clean

    def counting(fragment: str, **options: object) -> str:
        seen.append(len(re.findall(r"<[A-Za-z]", fragment)))
        return clean(fragment, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(text.nh3, "clean", counting)
    items = "".join(
        f"<item><title type='html'>{title}</title><link>https://x.example/{n}</link>"
        f"<pubDate>Wed, 18 Nov 2026 08:00:00 GMT</pubDate>"
        f"<description><![CDATA[{body}]]></description></item>"
        for n, (title, body) in enumerate([("T", "<div>" * 100_000),
                                           ("T", "<b title=x><p>" * 3_000),
                                           ("T", "<p>fine</p>" * 10)]))
    read = parse_feed(f"<rss version='2.0'><channel><title>t</title>{items}</channel></rss>"
                      .encode(), "hostile.rss", DEFAULTS)
    assert [post.url for post in read.posts] == ["https://x.example/2"]
    assert [item.reason for item in read.unplaced] == [
        "its HTML has 100,000 tags, more than the 50,000 a post may have",
        "its HTML nests 3,000 elements deep (or leaves them unclosed), more than the 2,000 a "
        "post may have"]
    assert seen and max(seen) <= text.MAX_OPEN_ELEMENTS


def test_long_well_formed_html_still_reaches_the_sanitizer() -> None:
    """What the caps are not about: a long article or link roundup whose elements close
    (520 list items, 2,600 tags) is sanitized as before; only depth is bounded."""
    from ainews_newsletter.posts import text

    roundup = "<ul>" + "<li><a href='https://x.example/a'>t</a> <em>by</em> " \
        "<strong>n</strong></li>" * 520 + "</ul>"
    assert text.sanitize_html(roundup).count("<li>") == 520
    assert text.sanitize_html("<p>x" * 5_000).count("<p>") == 5_000  # closed by the next
    with pytest.raises(text.TooMuchHtml, match="nests 2,001 elements deep"):
        text.sanitize_html("<div>" * 1_000 + "<blockquote>" * 1_001)


def test_relative_links_in_an_items_html_resolve_like_a_feed_reader_would() -> None:
    """feedparser's own resolver is off (its passes are slow on deep markup): the item's
    HTML resolves relative links and images against its xml:base, itself resolved against
    the feed's link; with neither, against the channel's link; a javascript: link is
    dropped, and so is one a javascript: base would make."""
    atom = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://lab.example.org/blog/">
<title>Lab</title><id>tag:lab</id><updated>2026-11-18T08:00:00Z</updated>
<link rel="self" href="https://lab.example.org/feed.atom"/>
<entry xml:base="2026/11/"><title>A</title><id>tag:lab,1</id>
<link href="https://lab.example.org/a"/><updated>2026-11-18T08:00:00Z</updated>
<content type="html">&lt;p&gt;&lt;a href="notes.html"&gt;notes&lt;/a&gt;
 &lt;img src="/img/chart.png" alt="Chart"&gt; &lt;a href="javascript:alert(1)"&gt;x&lt;/a&gt;
 &lt;a href="#top"&gt;up&lt;/a&gt;
 &lt;a href="mailto:lab@example.org"&gt;mail&lt;/a&gt;&lt;/p&gt;</content></entry>
<entry xml:base="javascript:alert(2)//"><title>B</title><id>tag:lab,2</id>
<link href="https://lab.example.org/b"/><updated>2026-11-18T08:00:00Z</updated>
<content type="html">&lt;a href="x"&gt;x&lt;/a&gt;</content></entry>
</feed>"""
    read = parse_feed(atom, "lab.atom", DEFAULTS)
    assert read.problems == [] and read.unplaced == []
    first, second = read.posts
    assert 'href="https://lab.example.org/blog/2026/11/notes.html"' in first.body_html
    assert 'src="https://lab.example.org/img/chart.png"' in first.body_html
    assert 'href="https://lab.example.org/blog/2026/11/#top"' in first.body_html
    assert 'href="mailto:lab@example.org"' in first.body_html
    assert "javascript" not in first.body_html and ">x</a>" in first.body_html
    assert "javascript" not in second.body_html

    rss = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>W</title>'
           b"<link>https://wire.example.com/news/</link><item><title>T</title>"
           b"<link>https://wire.example.com/news/t</link>"
           b"<pubDate>Wed, 18 Nov 2026 08:00:00 GMT</pubDate><description>"
           b'&lt;img src="pics/a.png" alt="A"&gt; &lt;a href="../about"&gt;about&lt;/a&gt;'
           b"</description></item></channel></rss>")
    (post,) = parse_feed(rss, "wire.rss", DEFAULTS).posts
    assert 'src="https://wire.example.com/news/pics/a.png"' in post.body_html
    assert 'href="https://wire.example.com/about"' in post.body_html


def _channel(items: str, declaration: str = '<?xml version="1.0" encoding="utf-8"?>') -> str:
    return (f'{declaration}<rss version="2.0"><channel><title>W</title>'
            "<link>https://wire.example.com/</link><item><title>T</title>"
            "<link>https://wire.example.com/t</link>"
            f"<pubDate>Wed, 18 Nov 2026 08:00:00 GMT</pubDate>{items}</item></channel></rss>")


MANY = "<a/>" * 60_000  # over MAX_FEED_ELEMENTS


@pytest.mark.parametrize("data", [
    pytest.param(_channel(f"<description>{MANY}</description>").encode(), id="plain"),
    pytest.param(_channel(f"<description><!--<![CDATA[-->{MANY}<!--]]>--></description>"
                          ).encode(), id="cdata-markers-in-comments"),
    pytest.param(_channel(f"<description><!--<![CDATA[-->{MANY}</description>").encode(),
                 id="cdata-never-closed"),
    pytest.param(_channel(f'<y a="<![CDATA[">{MANY}</y>').encode(), id="cdata-in-an-attribute"),
    pytest.param(_channel(f"<?pi <![CDATA[ ?>{MANY}").encode(), id="cdata-in-a-pi"),
    pytest.param(_channel(f"<description>{MANY}</description>",
                          '<?xml version="1.0" encoding="cp037"?>').encode("cp037"),
                 id="ebcdic"),
    pytest.param(_channel(f"<description>{MANY}</description>",
                          '<?xml version="1.0" encoding="utf-16"?>').encode("utf-16"),
                 id="utf-16"),
])
def test_a_feed_of_more_elements_than_a_feed_has_is_refused_whatever_hides_them(
        data: bytes) -> None:
    """Review of the first count (a count of "<" bytes outside CDATA markers): markers in a
    comment, an attribute or a processing instruction, a section never closed, or an
    encoding where "<" is another byte hid 60,000 elements from it, and feedparser then
    spent seconds on them. expat counts what feedparser will read."""
    read = parse_feed(data, "many.rss", DEFAULTS)
    assert [str(problem) for problem in read.problems] == [
        "feed many.rss: more than 50,000 XML elements, more than a feed may have"]
    assert read.posts == []


def test_a_utf16_feed_of_text_whose_bytes_look_like_tags_is_read() -> None:
    """In UTF-16 a Cyrillic "м" (U+043C) holds the byte of "<": 60,000 of them are text."""
    data = _channel(f"<description>{'мир ' * 60_000}</description>",
                    '<?xml version="1.0" encoding="utf-16"?>').encode("utf-16")
    assert data.count(b"<") > 60_000
    read = parse_feed(data, "ru.rss", DEFAULTS)
    assert read.problems == [] and read.unplaced == []
    assert read.posts[0].summary.startswith("мир мир")
