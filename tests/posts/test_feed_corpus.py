"""Feeds and dates as other people's software writes them: every feed and date string of
../shared/corpora/feeds (feedparser's, feed-rs's and miniflux's test material, and real
feeds recorded over HTTP; see its SOURCE.md)."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ainews_newsletter.posts.dates import parse_feed_date
from ainews_newsletter.posts.feeds import DERIVED_TITLE_CHARS, FeedRead, parse_feed
from ainews_newsletter.posts.text import PostDefaults
from tests.conftest import CORPORA, Project, corpus

DEFAULTS = PostDefaults(base_url="https://news.example.org", tz=ZoneInfo("UTC"),
                        summary_chars=300)

# Where feedparser's own tests expect a date and ours says "no date", by our rule: two-digit
# and truncated ISO years whose century is guessed, a year outside 1970-2100, and a year or
# year-month without a day (January 1 would be invented).
OUR_RULE_WINS = {"-0312", "031231", "03-12-31", "-03-12", "03335",
                 "Thu, 01 Jan 0100 00:00:01 +0100", "2003", "2003-12"}


def _dates() -> list[tuple[str, str]]:
    with corpus("feeds", "feedparser", "dates.tsv").open(encoding="utf-8") as handle:
        return [(json.loads(row["input_json"]), row["expected_utc"])
                for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)]


def test_every_date_string_as_expected_and_none_invented() -> None:
    cases = _dates()
    assert len(cases) == 73
    for raw, expected in cases:
        got = parse_feed_date(raw)  # never raises
        if raw in OUR_RULE_WINS:
            assert got is None, raw
            continue
        if expected == "None":
            assert got is None, raw
        else:
            assert got == datetime.fromisoformat(expected.replace("Z", "+00:00")), raw
            assert got.tzinfo is UTC


@pytest.mark.parametrize(("raw", "utc"), [
    ("Fri,24 Nov 2023 18:28:36 -0000", "2023-11-24T18:28:36"),  # no space after the comma
    ("2003-012-31T10:14:55+00:00", "2003-12-31T10:14:55"),  # Google's three-digit month
    ("Thu Aug 30 2012 17:26:16 +0200", "2012-08-30T15:26:16"),  # JavaScript's Date
])
def test_real_world_quirks_are_read(raw: str, utc: str) -> None:
    assert parse_feed_date(raw) == datetime.fromisoformat(utc).replace(tzinfo=UTC)


@pytest.mark.parametrize("raw", [
    "2013-xx-27",  # feedparser filled the month from today's clock
    "2003-12-31T25:14:55Z",  # feedparser rolled over to the next day
    "9999-12-31T23:59:59-99:99", "Fri, 31 Dec 9999 23:59:59 GMT",  # once a traceback
    "Wed, 18 Nov 2026 08:00:00 +1500",  # an offset beyond ±14 h
    "Wed, 18 Nov 2026 08:00:00 EST+0500",  # a zone and an offset that cancel out
    "Jan 2004 12 Dec 05 1", "04 Jan 2004 1 2 3",  # feedparser reorders and drops tokens
    "2024", "2024-05",  # no day
])
def test_dates_that_cannot_be_read_for_sure_are_none(raw: str) -> None:
    assert parse_feed_date(raw) is None


def _read(*parts: str) -> FeedRead:
    path = corpus("feeds", *parts)
    return parse_feed(path.read_bytes(), path.name, DEFAULTS)


def test_whitespace_before_the_xml_declaration_is_fine() -> None:
    assert corpus("feeds", "feed-rs", "atom", "atom_scattered.xml").read_bytes()[:1] == b"\n"
    read = _read("feed-rs", "atom", "atom_scattered.xml")
    assert read.problems == [] and len(read.posts) == 1


def test_broken_links_leave_the_item_out_never_a_traceback() -> None:
    document = (b"<rss version='2.0'><channel><title>c</title><link>http://[bad/</link>"
                b"<item><title>A</title><link>//[oops/x</link>"
                b"<pubDate>Wed, 18 Nov 2026 08:00:00 GMT</pubDate></item>"
                b"<item><title>B</title><guid>http://[x</guid>"
                b"<pubDate>Wed, 18 Nov 2026 08:00:00 GMT</pubDate></item>"
                b"<item><title>C</title><link>relative/c</link>"
                b"<pubDate>Wed, 18 Nov 2026 08:00:00 GMT</pubDate></item>"
                b"</channel></rss>")
    read = parse_feed(document, "https://site.example/feed.xml", DEFAULTS)
    assert read.problems == []
    assert [post.url for post in read.posts] == ["https://site.example/relative/c"]
    assert [item.item for item in read.unplaced] == [1, 2]


def test_rss_relative_links_resolve_against_the_channel_link_not_the_feed_url() -> None:
    document = (b"<rss version='2.0' xmlns:atom='http://www.w3.org/2005/Atom'><channel>"
                b"<title>c</title><link>https://site.example/blog/</link>"
                b"<atom:link rel='self' href='https://site.example/blog/feed/'/>"
                b"<item><title>A</title><link>2024/post</link>"
                b"<pubDate>Wed, 18 Nov 2026 08:00:00 GMT</pubDate></item>"
                b"<item><title>B</title><link>/x</link><pubDate>Thu, 19 Nov 2026 08:00:00 GMT"
                b"</pubDate><updated>Wed, 18 Nov 2026</updated></item>"
                b"</channel></rss>")
    read = parse_feed(document, "feed.xml", DEFAULTS)
    assert [post.url for post in read.posts] == ["https://site.example/blog/2024/post",
                                                 "https://site.example/x"]


def test_an_unreadable_published_date_falls_back_to_updated() -> None:
    document = (b"<feed xmlns='http://www.w3.org/2005/Atom'><title>t</title>"
                b"<entry><title>A</title><link href='https://a.example/1'/><id>1</id>"
                b"<published>2013-xx-27</published><updated>2013-01-27T10:00:00Z</updated>"
                b"</entry></feed>")
    [post] = parse_feed(document, "a.atom", DEFAULTS).posts
    assert post.published == datetime(2013, 1, 27, 10, tzinfo=UTC)


def test_relative_links_resolve_against_the_feeds_own_link() -> None:
    read = _read("feed-rs", "atom", "atom_relative.xml")
    assert [post.url for post in read.posts] == ["https://example.com/blog/2003/12/13/atom03"]


def test_xml_base_resolves_links() -> None:
    read = _read("feed-rs", "rss2", "rss_2.0_relurl_1.xml")
    assert [post.url for post in read.posts] == [
        "https://insanity.industries/post/pareto-optimal-compression/",
        "https://insanity.industries/post/pacman-tracking-leftover-packages/"]


def test_untitled_items_get_their_first_words_marked_as_derived() -> None:
    read = _read("xklb-vcr", "mjdescy-feed-2023-07-11.xml")
    assert read.problems == [] and read.unplaced == [] and len(read.posts) == 25
    derived = [post for post in read.posts if post.title_derived]
    assert len(derived) == 23
    for post in derived:
        assert 0 < len(post.title) <= DERIVED_TITLE_CHARS + 1  # + the ellipsis
        assert post.title.rstrip("…").split()[0] in post.summary


def test_items_without_dates_are_left_out_and_the_feed_goes_on() -> None:
    read = _read("miniflux", "rdf_UTF8.xml")  # heise's RDF: items carry no dates
    assert read.problems == [] and read.posts == [] and len(read.unplaced) == 60
    assert {item.reason for item in read.unplaced} == {"it has no date (published or updated)"}


def test_the_same_posts_from_a_blogs_atom_and_rss() -> None:
    atom, rss = _read("miniflux", "large_atom.xml"), _read("miniflux", "large_rss.xml")
    assert len(atom.posts) == len(rss.posts) == 25
    assert ({(post.title, post.url) for post in atom.posts}
            == {(post.title, post.url) for post in rss.posts})


def _feed_files() -> list[Path]:
    root = CORPORA / "feeds"
    return sorted(path for path in root.rglob("*") if path.suffix in (".xml", ".rss"))


@pytest.mark.skipif(not (CORPORA / "feeds").exists(),
                    reason="../shared/corpora/feeds is not here (the workplace's shared corpora)")
def test_every_feed_through_posts_check_and_posts_list(project: Project) -> None:
    """Zero tracebacks; a feed that fails whole is one line naming it; an item left out is
    one line naming the feed and the item."""
    files = _feed_files()
    assert len(files) > 100
    for path in files:
        project.write_config(f'[posts]\nsources = [{{ type = "feed", path = "{path}" }}]\n')
        check = project.run("posts", "check")
        listing = project.run("posts", "list", "--week", "2026-W47", "--json")
        for result in (check, listing):
            assert result.exception is None or isinstance(result.exception, SystemExit), path
            assert "Traceback" not in result.output, path
        for line in check.stderr.splitlines():
            assert line.startswith(f"error: feed {path}"), (path, line)
        for line in check.stdout.splitlines():
            if line.startswith("left out: "):
                assert line.startswith(f"left out: feed {path}: item "), (path, line)
        if check.exit_code == 0:
            assert listing.exit_code == 0, (path, listing.output)
            data = json.loads(listing.stdout)
            unusable = [item for item in data["excluded"] if item["reason"] == "unusable"]
            assert len(unusable) == check.stdout.count("left out: "), path
        else:
            assert listing.exit_code == 1 and listing.stderr.count("\n") == 1, path


def test_derived_titles_and_unusable_items_in_posts_list_and_the_preview(
        project: Project) -> None:
    from starlette.testclient import TestClient

    from ainews_newsletter.config import load_config
    from ainews_newsletter.models import Window
    from ainews_newsletter.web.preview import create_preview_app

    micro = corpus("feeds", "xklb-vcr", "mjdescy-feed-2023-07-11.xml")
    heise = corpus("feeds", "miniflux", "rdf_UTF8.xml")
    project.write_config(f'[posts]\nsources = [{{ type = "feed", path = "{micro}" }}, '
                         f'{{ type = "feed", path = "{heise}" }}]\n')
    listing = project.run("posts", "list", "--since", "2023-01-01", "--until", "2024-01-01",
                          "--json")
    assert listing.exit_code == 0, listing.output
    data = json.loads(listing.stdout)
    carried = data["posts"] + data["more"]
    assert sum(post["title_derived"] for post in carried) == 23
    unusable = [item for item in data["excluded"] if item["reason"] == "unusable"]
    assert len(unusable) == 60 and all(item["source"] == str(heise) for item in unusable)
    config = load_config(project.config_path, environ={})
    app = create_preview_app(config, Window(since="2023-01-01", until="2024-01-01"),
                             watch=False)
    with TestClient(app, base_url="http://127.0.0.1:8025") as client:
        page = client.get("/").text
    assert page.count('<li class="post unplaced">') == 60
    assert "it has no date (published or updated)" in page
