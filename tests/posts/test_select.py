"""Week windows in the newsletter timezone: edges, DST, defaults, ordering."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ainews_newsletter.errors import SelectionError
from ainews_newsletter.models import Post, PostRef
from ainews_newsletter.posts.select import (
    Carried,
    Reason,
    canonical_url,
    latest_week_with_posts,
    select,
)
from ainews_newsletter.posts.windows import (
    between,
    last_complete_week,
    parse_week,
    since_last_issue,
    week_containing,
)

# Run again under libfaketime at awkward dates by scripts/test-clocks.
pytestmark = pytest.mark.clock

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def _post(title: str, published: datetime) -> Post:
    return Post(title=title, published=published, url=f"https://x.example/{title}",
                slug=title, summary="s", body_html="<p>s</p>")


def test_parse_week_bounds_in_the_newsletter_timezone() -> None:
    period = parse_week("2026-W47", BERLIN)
    assert period.key == "2026-W47"
    assert period.start == datetime(2026, 11, 16, tzinfo=BERLIN)
    assert period.end == datetime(2026, 11, 23, tzinfo=BERLIN)
    assert period.start.astimezone(UTC) == datetime(2026, 11, 15, 23, 0, tzinfo=UTC)


@pytest.mark.parametrize("text", ["2026-47", "W47", "2026-W54", "2026-W00", "last week"])
def test_bad_weeks_are_refused(text: str) -> None:
    with pytest.raises(SelectionError, match="ISO week"):
        parse_week(text, BERLIN)


def test_week_53_exists_only_in_long_years() -> None:
    assert parse_week("2026-W53", BERLIN).key == "2026-W53"
    with pytest.raises(SelectionError):
        parse_week("2025-W53", BERLIN)


def test_sunday_2330_local_is_still_that_week_though_utc_says_otherwise() -> None:
    """New York is behind UTC: Sunday 23:30 there is already Monday 04:30 UTC."""
    sunday_late = datetime(2026, 11, 22, 23, 30, tzinfo=NEW_YORK)
    assert sunday_late.astimezone(UTC).weekday() == 0  # Monday in UTC
    w47 = parse_week("2026-W47", NEW_YORK)
    assert w47.contains(sunday_late.astimezone(UTC))
    assert not parse_week("2026-W48", NEW_YORK).contains(sunday_late.astimezone(UTC))


def test_sunday_2330_utc_is_next_week_in_berlin() -> None:
    """Berlin is ahead of UTC: Sunday 23:30 UTC is Monday 00:30 in Berlin."""
    moment = datetime(2026, 11, 22, 23, 30, tzinfo=UTC)
    assert not parse_week("2026-W47", BERLIN).contains(moment)
    assert parse_week("2026-W48", BERLIN).contains(moment)
    assert parse_week("2026-W47", ZoneInfo("UTC")).contains(moment)


def test_week_with_dst_change_is_169_hours_and_still_seven_days() -> None:
    period = parse_week("2026-W43", BERLIN)  # clocks go back on Sunday 25 October 2026
    assert period.end - period.start == timedelta(days=7)  # wall-clock arithmetic
    assert period.end.astimezone(UTC) - period.start.astimezone(UTC) == timedelta(hours=169)
    last_minute = datetime(2026, 10, 25, 23, 59, tzinfo=BERLIN).astimezone(UTC)
    assert period.contains(last_minute)


def test_last_complete_week() -> None:
    wednesday = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    assert last_complete_week(wednesday, BERLIN).key == "2026-W47"
    # Monday 00:30 in Berlin is Sunday 23:30 UTC: the week that just ended is W47.
    assert last_complete_week(datetime(2026, 11, 22, 23, 30, tzinfo=UTC), BERLIN).key == "2026-W47"
    assert last_complete_week(datetime(2026, 11, 22, 22, 30, tzinfo=UTC), BERLIN).key == "2026-W46"
    assert last_complete_week(datetime(2027, 1, 6, tzinfo=UTC), BERLIN).key == "2026-W53"


def test_select_is_newest_first_and_half_open() -> None:
    period = parse_week("2026-W47", BERLIN)
    posts = [
        _post("start", period.start.astimezone(UTC)),
        _post("end", period.end.astimezone(UTC)),  # belongs to the next week
        _post("mid", datetime(2026, 11, 19, 12, tzinfo=UTC)),
        _post("late", datetime(2026, 11, 22, 22, 59, tzinfo=UTC)),
    ]
    assert [post.title for post in select(posts, period, 10).posts] == ["late", "mid", "start"]


def test_latest_week_with_posts() -> None:
    posts = [_post("a", datetime(2026, 11, 3, tzinfo=UTC)),
             _post("b", datetime(2026, 11, 22, 23, 30, tzinfo=UTC))]
    latest = latest_week_with_posts(posts, BERLIN)
    assert latest is not None and latest.key == "2026-W48"
    assert latest_week_with_posts([], BERLIN) is None


zones = st.sampled_from([BERLIN, NEW_YORK, ZoneInfo("Asia/Kolkata"), ZoneInfo("UTC"),
                         ZoneInfo("Australia/Lord_Howe")])
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                       timezones=st.just(UTC))


@given(moment=moments, tz=zones)
def test_every_moment_falls_in_exactly_one_week(moment: datetime, tz: ZoneInfo) -> None:
    week = week_containing(moment, tz)
    assert week.contains(moment)
    before = week_containing(week.start - timedelta(seconds=1), tz)
    after = week_containing(week.end, tz)
    assert before.end == week.start and after.start == week.end
    assert not before.contains(moment) and not after.contains(moment)


# -- selection: windows, duplicates, already sent ---------------------------------------------



@pytest.mark.parametrize(("url", "canonical"), [
    ("HTTPS://News.Example.org/posts/a/", "https://news.example.org/posts/a"),
    ("https://news.example.org/posts/a?utm_source=x&utm_medium=rss&id=3",
     "https://news.example.org/posts/a?id=3"),
    ("https://news.example.org:443/posts/a#comments", "https://news.example.org/posts/a"),
    ("http://news.example.org:8080/a", "http://news.example.org:8080/a"),
    ("https://news.example.org/", "https://news.example.org"),
])
def test_canonical_url(url: str, canonical: str) -> None:
    assert canonical_url(url) == canonical


def _in(post: Post, source: str, guid: str | None = None, url: str | None = None) -> Post:
    from dataclasses import replace

    return replace(post, source=source, guid=guid, url=url or post.url)


def test_duplicates_by_guid_or_url_keep_the_first_source() -> None:
    period = parse_week("2026-W47", BERLIN)
    when = datetime(2026, 11, 18, 12, tzinfo=UTC)
    own = _in(_post("Own", when), "posts/own.md", url="https://n.example.org/posts/own")
    by_url = _in(_post("Via wire", when), "wire.rss",
                 url="HTTPS://N.example.org/posts/own/?utm_campaign=z")
    first = _in(_post("Guid first", when), "wire.rss", guid="g-1",
                url="https://wire.example/a")
    by_guid = _in(_post("Guid again", when), "lab.atom", guid="g-1",
                  url="https://lab.example/other")
    chosen = select([own, by_url, first, by_guid], period, 10)
    assert [post.title for post in chosen.posts] == ["Guid first", "Own"]
    assert [(e.post.title, e.reason) for e in chosen.excluded] == [
        ("Via wire", Reason.DUPLICATE), ("Guid again", Reason.DUPLICATE)]
    assert chosen.excluded[0].detail == "same story as posts/own.md: Own"


def test_posts_an_earlier_issue_carried_are_excluded() -> None:
    period = parse_week("2026-W47", BERLIN)
    when = datetime(2026, 11, 18, 12, tzinfo=UTC)
    old = _in(_post("Old", when), "a", url="https://n.example.org/old")
    old_guid = _in(_post("Old guid", when), "b", guid="g-7", url="https://n.example.org/new-url")
    fresh = _in(_post("Fresh", when), "c", url="https://n.example.org/fresh")
    carried = Carried.from_refs([
        ("2026-W46", PostRef(guid=None, url="https://n.example.org/old", title="Old")),
        ("2026-W45", PostRef(guid="g-7", url="https://elsewhere.example", title="x")),
    ])
    chosen = select([old, old_guid, fresh], period, 10, carried)
    assert [post.title for post in chosen.posts] == ["Fresh"]
    assert [(e.post.title, e.detail) for e in chosen.excluded] == [
        ("Old", "carried by issue 2026-W46"), ("Old guid", "carried by issue 2026-W45")]


def test_max_posts_keeps_the_rest_as_more() -> None:
    period = parse_week("2026-W47", BERLIN)
    posts = [_post(f"p{day}", datetime(2026, 11, day, 12, tzinfo=UTC)) for day in range(16, 23)]
    chosen = select(posts, period, 3)
    assert [post.title for post in chosen.posts] == ["p22", "p21", "p20"]
    assert [post.title for post in chosen.more] == ["p19", "p18", "p17", "p16"]
    assert chosen.in_window == 7


def test_between_is_half_open_and_checked() -> None:
    since = datetime(2026, 11, 18, tzinfo=BERLIN)
    window = between(since, datetime(2026, 11, 20, tzinfo=BERLIN), BERLIN)
    assert window.key == "2026-11-18..2026-11-20"
    assert window.contains(since.astimezone(UTC))
    assert not window.contains(datetime(2026, 11, 20, tzinfo=BERLIN).astimezone(UTC))
    with pytest.raises(SelectionError, match="must be after --since"):
        between(since, since, BERLIN)


def test_since_last_issue_first_issue_takes_seven_calendar_days_across_dst() -> None:
    now = datetime(2026, 10, 26, 8, 0, tzinfo=BERLIN)  # Monday after clocks went back
    period = since_last_issue(None, now.astimezone(UTC), BERLIN)
    assert period.start == datetime(2026, 10, 19, 8, 0, tzinfo=BERLIN)
    assert period.end.astimezone(UTC) - period.start.astimezone(UTC) == timedelta(hours=169)
    assert period.key == "since-2026-10-19T08:00"


def test_since_last_issue_starts_where_the_last_one_ended() -> None:
    last_end = datetime(2026, 11, 23, 8, 0, tzinfo=BERLIN).astimezone(UTC)
    now = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
    period = since_last_issue(last_end, now, NEW_YORK)
    assert period.start == last_end and period.end == now
    assert period.key == "since-2026-11-23T02:00"  # keyed in the newsletter timezone


posts_strategy = st.lists(
    st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31),
                 timezones=st.just(UTC)),
    max_size=40)


# Weeks with a DST change: US spring (W10), EU spring (W13), EU autumn (W43), US autumn (W44).
dst_weeks = st.sampled_from(["2026-W10", "2026-W13", "2026-W43", "2026-W44", "2026-W47"])


@given(moments=posts_strategy, tz=zones, week=dst_weeks)
def test_every_post_in_the_window_is_selected_once_and_none_outside(
        moments: list[datetime], tz: ZoneInfo, week: str) -> None:
    posts = [_in(_post(f"p{i}", moment), "s", url=f"https://x.example/{i}")
             for i, moment in enumerate(moments)]
    period = parse_week(week, tz)
    chosen = select(posts, period, max_posts=1000)
    inside = [post for post in posts if period.start <= post.published < period.end]
    assert sorted(p.title for p in chosen.posts) == sorted(p.title for p in inside)
    assert len(chosen.posts) + len(chosen.excluded) == len(posts)
    assert all(e.reason is Reason.OUT_OF_WINDOW for e in chosen.excluded)


@given(moments=posts_strategy, tz=zones)
def test_consecutive_weeks_carry_every_post_exactly_once(
        moments: list[datetime], tz: ZoneInfo) -> None:
    posts = [_in(_post(f"p{i}", moment), "s", url=f"https://x.example/{i}")
             for i, moment in enumerate(moments)]
    seen: list[str] = []
    week = week_containing(datetime(2026, 1, 1, tzinfo=UTC), tz)
    while week.start.astimezone(UTC) < datetime(2028, 1, 2, tzinfo=UTC):
        seen += [post.title for post in select(posts, week, max_posts=1000).posts]
        week = week_containing(week.end, tz)
    assert sorted(seen) == sorted(post.title for post in posts)
