"""Week windows in the newsletter timezone: edges, DST, defaults, ordering."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ainews_newsletter.errors import SelectionError
from ainews_newsletter.models import Post
from ainews_newsletter.posts.select import (
    in_period,
    last_complete_week,
    latest_week_with_posts,
    parse_week,
    week_containing,
)

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


def test_in_period_is_newest_first_and_half_open() -> None:
    period = parse_week("2026-W47", BERLIN)
    posts = [
        _post("start", period.start.astimezone(UTC)),
        _post("end", period.end.astimezone(UTC)),  # belongs to the next week
        _post("mid", datetime(2026, 11, 19, 12, tzinfo=UTC)),
        _post("late", datetime(2026, 11, 22, 22, 59, tzinfo=UTC)),
    ]
    assert [post.title for post in in_period(posts, period)] == ["late", "mid", "start"]


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
