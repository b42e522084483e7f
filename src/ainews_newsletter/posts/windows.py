"""Pure date-window logic: no I/O, no clock. Callers pass `now`.

Windows are half-open [start, end) and computed in the newsletter's timezone: with the
newsletter in Europe/Berlin, a post at 23:30 UTC on a Sunday is already Monday 00:30 in Berlin
and belongs to the next ISO week, while one at 22:30 UTC Sunday still belongs to this one."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ainews_newsletter.errors import SelectionError
from ainews_newsletter.models import Period

_WEEK = re.compile(r"^(\d{4})-?W(\d{1,2})$", re.IGNORECASE)


def week_period(year: int, week: int, tz: ZoneInfo) -> Period:
    try:
        monday = date.fromisocalendar(year, week, 1)
        start = datetime.combine(monday, time(0), tzinfo=tz)
        # Add days on the calendar, not 168 hours: a DST change in the week makes 167 or 169.
        end = datetime.combine(monday + timedelta(days=7), time(0), tzinfo=tz)
    except (ValueError, OverflowError):
        raise SelectionError(f"{year}-W{week:02d} is not an ISO week we can use") from None
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


def parse_moment(text: str, tz: ZoneInfo, flag: str) -> datetime:
    """'2026-11-16' → 00:00 that day in the newsletter tz; a time without offset is local too."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise SelectionError(f"{flag}: {text!r} is not a date; use the form 2026-11-16 "
                             "or 2026-11-16T08:00") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=tz)


def between(since: datetime, until: datetime, tz: ZoneInfo) -> Period:
    """The half-open window [since, until), keyed by its bounds."""
    if until <= since:
        raise SelectionError(f"--until ({until.isoformat()}) must be after --since "
                             f"({since.isoformat()})")
    try:
        start, end = since.astimezone(tz), until.astimezone(tz)
    except OverflowError:
        raise SelectionError("--since/--until: a date out of range") from None
    return Period(key=f"{_bound_key(start)}..{_bound_key(end)}", start=start, end=end)


def since_last_issue(last_end: datetime | None, now: datetime, tz: ZoneInfo) -> Period:
    """Everything after the end of the last sent issue; the first issue takes the last seven
    calendar days. Keyed by its start, so two runs at different moments of the same period
    find the same issue instead of making a second one."""
    local_now = now.astimezone(tz)
    if last_end is None:
        # Seven days back on the wall clock (a DST change makes it 167 or 169 hours).
        start = datetime.combine(local_now.date() - timedelta(days=7), local_now.time(),
                                 tzinfo=tz)
    else:
        start = last_end.astimezone(tz)
    return Period(key=f"since-{_bound_key(start)}", start=start, end=max(local_now, start))


def _bound_key(moment: datetime) -> str:
    if moment.time() == time(0):
        return f"{moment:%Y-%m-%d}"
    return f"{moment:%Y-%m-%dT%H:%M}"
