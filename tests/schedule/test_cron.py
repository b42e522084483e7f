"""`[schedule] cron` means what crontab(5) means, in the newsletter's timezone, across DST."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from ainews_newsletter.errors import ConfigError
from ainews_newsletter.schedule.cron import build_trigger, cron_weekdays, next_fire_times

# Run again under libfaketime at awkward dates by scripts/test-clocks.
pytestmark = pytest.mark.clock

BERLIN = ZoneInfo("Europe/Berlin")


def _fires(expression: str, after: datetime, count: int) -> list[datetime]:
    return next_fire_times(build_trigger(expression, BERLIN), after, count)


def test_monday_0800_stays_0800_local_across_the_spring_change() -> None:
    fires = _fires("0 8 * * MON", datetime(2026, 3, 20, tzinfo=UTC), 3)
    assert [f.astimezone(BERLIN).strftime("%a %H:%M") for f in fires] == ["Mon 08:00"] * 3
    # CET (UTC+1) before 29 March, CEST (UTC+2) after: the UTC instant moves by an hour.
    assert [f.astimezone(UTC) for f in fires] == [
        datetime(2026, 3, 23, 7, 0, tzinfo=UTC), datetime(2026, 3, 30, 6, 0, tzinfo=UTC),
        datetime(2026, 4, 6, 6, 0, tzinfo=UTC)]


def test_a_time_repeated_when_clocks_go_back_fires_once() -> None:
    """02:30 happens twice on 25 October 2026 in Berlin; the digest must not go twice."""
    fires = _fires("30 2 * * *", datetime(2026, 10, 23, 12, tzinfo=UTC), 4)
    days = [f.astimezone(BERLIN).date().isoformat() for f in fires]
    assert days == ["2026-10-24", "2026-10-25", "2026-10-26", "2026-10-27"]
    assert fires[1].astimezone(UTC) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


def test_a_time_skipped_when_clocks_go_forward_fires_once_that_day() -> None:
    fires = _fires("30 2 * * *", datetime(2026, 3, 28, 12, tzinfo=UTC), 3)
    days = [f.astimezone(BERLIN).date().isoformat() for f in fires]
    assert days == ["2026-03-29", "2026-03-30", "2026-03-31"]
    assert fires[0].astimezone(UTC) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 03:30 CEST


@pytest.mark.parametrize(("field", "days"), [
    ("1", "mon"), ("0", "sun"), ("7", "sun"), ("1-5", "mon,tue,wed,thu,fri"),
    ("0,6", "sun,sat"), ("SAT,sun", "sun,sat"), ("*/2", "sun,tue,thu,sat"),
    ("5-7", "sun,fri,sat"), ("*", "*")])
def test_weekdays_are_numbered_as_in_crontab(field: str, days: str) -> None:
    """APScheduler counts 0 as Monday; crontab counts 0 (and 7) as Sunday."""
    assert cron_weekdays(field) == days


def test_numeric_monday_fires_on_mondays() -> None:
    fires = _fires("0 8 * * 1", datetime(2026, 11, 25, tzinfo=UTC), 2)
    assert [f.strftime("%a") for f in fires] == ["Mon", "Mon"]


def test_day_of_month_and_weekday_mean_either_as_in_cron() -> None:
    fires = _fires("0 8 1 * MON", datetime(2026, 11, 25, tzinfo=UTC), 3)
    assert [f.date().isoformat() for f in fires] == ["2026-11-30", "2026-12-01", "2026-12-07"]


def test_a_day_field_starting_with_a_star_leaves_the_days_to_the_other() -> None:
    """vixie cron: "*/2" in day-of-month with a weekday means Mondays (AND), not either."""
    fires = _fires("0 8 */2 * 1", datetime(2026, 11, 25, tzinfo=UTC), 3)
    assert [f.date().isoformat() for f in fires] == ["2026-12-07", "2026-12-21", "2027-01-11"]


@pytest.mark.parametrize(("expression", "named"), [
    ("0 25 * * MON", "hour field '25'"),
    ("61 8 * * MON", "minute field '61'"),
    ("0 8 32 * *", "day-of-month field '32'"),
    ("0 8 * 13 *", "month field '13'"),
    ("0 8 * * FUNDAY", "day-of-week field 'FUNDAY'"),
    ("0 8 * *", "expected 5 fields"),
    ("@weekly", "expected 5 fields")])
def test_a_bad_cron_names_the_field(expression: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        build_trigger(expression, BERLIN)
