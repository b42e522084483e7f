"""Pure date-window logic: no I/O, no clock. Callers pass `now` and the posts.

Windows are half-open [start, end) and computed in the newsletter's timezone: with the
newsletter in Europe/Berlin, a post at 23:30 UTC on a Sunday is already Monday 00:30 in Berlin
and belongs to the next ISO week, while one at 22:30 UTC Sunday still belongs to this one."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ainews_newsletter.errors import SelectionError
from ainews_newsletter.models import Period, Post

_WEEK = re.compile(r"^(\d{4})-?W(\d{1,2})$", re.IGNORECASE)


def week_period(year: int, week: int, tz: ZoneInfo) -> Period:
    try:
        monday = date.fromisocalendar(year, week, 1)
    except ValueError:
        raise SelectionError(f"{year}-W{week:02d} is not an ISO week of {year}") from None
    start = datetime.combine(monday, time(0), tzinfo=tz)
    # Add days on the calendar, not 168 hours: a DST change inside the week makes it 167 or 169.
    end = datetime.combine(monday + timedelta(days=7), time(0), tzinfo=tz)
    return Period(key=f"{year}-W{week:02d}", start=start, end=end)


def parse_week(text: str, tz: ZoneInfo) -> Period:
    """'2026-W47' (or '2026W47') → that ISO week in the newsletter timezone."""
    match = _WEEK.match(text.strip())
    if match is None:
        raise SelectionError(f"{text!r} is not an ISO week; use the form 2026-W47")
    return week_period(int(match.group(1)), int(match.group(2)), tz)


def week_containing(moment: datetime, tz: ZoneInfo) -> Period:
    year, week, _ = moment.astimezone(tz).isocalendar()
    return week_period(year, week, tz)


def last_complete_week(now: datetime, tz: ZoneInfo) -> Period:
    """The ISO week before the one `now` falls in (in the newsletter timezone)."""
    current = week_containing(now, tz)
    return week_containing(current.start - timedelta(days=1), tz)


def latest_week_with_posts(posts: Iterable[Post], tz: ZoneInfo) -> Period | None:
    newest = max((post.published for post in posts), default=None)
    return None if newest is None else week_containing(newest, tz)


def in_period(posts: Iterable[Post], period: Period) -> list[Post]:
    """The posts published inside the period, newest first (ties by title for stability)."""
    chosen = [post for post in posts if period.contains(post.published)]
    chosen.sort(key=lambda post: post.title)
    chosen.sort(key=lambda post: post.published, reverse=True)
    return chosen
