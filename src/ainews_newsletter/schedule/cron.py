"""`[schedule] cron` as an APScheduler trigger, meaning what crontab(5) means.

APScheduler's own crontab parser differs from cron in ways that would surprise an operator:
it numbers weekdays from Monday (cron: 0 and 7 are Sunday, so "1" is Monday), it ANDs a
day-of-month with a day-of-week where cron ORs them, and a time inside the hour repeated
when clocks go back fires twice. All three are handled here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

from ainews_newsletter.errors import ConfigError

FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
_TRIGGER_ARGUMENT = {"minute": "minute", "hour": "hour", "day-of-month": "day",
                     "month": "month", "day-of-week": "day_of_week"}
_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # cron's 0..6 (7 = sun)


def _weekday(token: str) -> int:
    """A cron weekday, 0-7 or a three-letter name, as 0 (Sunday) to 7 (Sunday again)."""
    lowered = token.strip().lower()
    if lowered in _CRON_DAYS:
        return _CRON_DAYS.index(lowered)
    if lowered.isdigit() and 0 <= int(lowered) <= 7:
        return int(lowered)
    raise ValueError(f"{token!r} is not a weekday (0-7, 0 and 7 are Sunday, or SUN-SAT)")


def cron_weekdays(field: str) -> str:
    """A cron day-of-week field ("1-5", "0,6", "MON", "*/2") as APScheduler weekday names."""
    if field == "*":
        return "*"
    days: set[int] = set()
    for part in field.split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise ValueError(f"step {step_text!r} in {part!r} is not a positive number")
        if span == "*":
            first, last = 0, 6
        elif "-" in span:
            start, end = span.split("-", 1)
            first, last = _weekday(start), _weekday(end)
            if last < first:
                raise ValueError(f"range {span!r} runs backwards")
        else:
            first = _weekday(span)
            last = 6 if step else first
        days.update(day % 7 for day in range(first, last + 1, step or 1))
    return ",".join(_CRON_DAYS[day] for day in sorted(days))


class OncePerWallClockTime(BaseTrigger):  # type: ignore[misc]  # untyped base
    """Wraps a trigger so that a local time fires once even when the clocks go back and it
    happens twice (02:30 on the last Sunday of October in Europe), and reports each fire
    time with the UTC offset actually in force."""

    def __init__(self, inner: BaseTrigger, timezone: ZoneInfo) -> None:
        self.inner, self.timezone = inner, timezone

    def get_next_fire_time(self, previous_fire_time: datetime | None,
                           now: datetime) -> datetime | None:
        fire = self.inner.get_next_fire_time(previous_fire_time, now)
        while (fire is not None and previous_fire_time is not None
               and _wall_clock(fire, self.timezone)
               == _wall_clock(previous_fire_time, self.timezone)):
            fire = self.inner.get_next_fire_time(fire, _just_after(fire))
        return None if fire is None else fire.astimezone(UTC).astimezone(self.timezone)

    def __str__(self) -> str:
        return str(self.inner)


def _just_after(moment: datetime) -> datetime:
    # In UTC: adding to an aware local time is wall-clock arithmetic, which loses the fold
    # and lands back in the first 02:30 of a night when clocks go back.
    return moment.astimezone(UTC) + timedelta(microseconds=1)


def _wall_clock(moment: datetime, timezone: ZoneInfo) -> datetime:
    return moment.astimezone(timezone).replace(tzinfo=None)


def build_trigger(expression: str, timezone: ZoneInfo) -> BaseTrigger:
    """The trigger for a 5-field cron string; ConfigError names the field that is wrong."""
    fields = expression.split()
    where = f"[schedule] cron {expression!r}"
    if len(fields) != len(FIELDS):
        raise ConfigError(f"{where}: expected 5 fields ({' '.join(FIELDS)}), got "
                          f"{len(fields)}")
    values = dict(zip(FIELDS, fields, strict=True))
    try:
        values["day-of-week"] = cron_weekdays(values["day-of-week"])
    except ValueError as exc:
        raise ConfigError(f"{where}: day-of-week field {fields[4]!r}: {exc}") from None
    for name, value in values.items():  # each field alone, so the error can name it
        try:
            CronTrigger(timezone=timezone, **{_TRIGGER_ARGUMENT[name]: value})
        except ValueError as exc:
            raise ConfigError(f"{where}: {name} field {value!r}: {exc}") from None
    common = {"minute": values["minute"], "hour": values["hour"], "month": values["month"],
              "timezone": timezone}
    # As in vixie cron and cronie: a day field starting with "*" ("*/2") leaves the days
    # to the other field (AND); only two restricted fields mean either (OR).
    by_date = not fields[2].startswith("*")
    by_weekday = not fields[4].startswith("*")
    inner: BaseTrigger
    if by_date and by_weekday:  # cron: either day matches
        inner = OrTrigger([CronTrigger(day=values["day-of-month"], **common),
                           CronTrigger(day_of_week=values["day-of-week"], **common)])
    else:
        inner = CronTrigger(day=values["day-of-month"], day_of_week=values["day-of-week"],
                            **common)
    return OncePerWallClockTime(inner, timezone)


def next_fire_times(trigger: BaseTrigger, after: datetime, count: int) -> list[datetime]:
    """The next `count` instants the trigger fires, strictly after `after`."""
    times: list[datetime] = []
    previous: datetime | None = None
    now = _just_after(after)
    while len(times) < count:
        fire = trigger.get_next_fire_time(previous, now)
        if fire is None:
            break
        times.append(fire)
        previous, now = fire, _just_after(fire)
    return times
