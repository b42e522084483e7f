"""Feed dates read strictly, never invented.

RFC 822/1123 (RSS `pubDate`) and RFC 3339/ISO 8601/W3C-DTF (Atom, `dc:date`) are parsed here,
strictly: a missing space after the comma is fine, but a missing month or day, an hour of
25, a day of 99, a year outside 1970-2100 or an offset beyond ±14 h is no date. Other forms
(asctime, Greek, Korean, Hungarian, Perforce) go to feedparser's looser parsers, each asked
only about its own shape, whose answer is taken only when it agrees with the raw string:
feedparser fills what it cannot read from today's clock ("2013-xx-27" became a day of the
current month), which would date a story by when the issue was built. Anything else is
None, never a traceback."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

MIN_YEAR, MAX_YEAR = 1970, 2100
MAX_OFFSET = timedelta(hours=14)

_MONTHS = {name: number for number, names in enumerate((
    ("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"),
    ("may",), ("jun", "june"), ("jul", "july"), ("aug", "august"),
    ("sep", "sept", "september"), ("oct", "october"), ("nov", "november"),
    ("dec", "december")), start=1) for name in names}
# RFC 822's zones, the US ones feeds use, and the few others seen in real feeds.
_ZONES = {"ut": 0, "utc": 0, "gmt": 0, "z": 0, "etc/gmt": 0, "etc/utc": 0,
          "est": -5, "edt": -4, "cst": -6, "cdt": -5, "mst": -7, "mdt": -6,
          "pst": -8, "pdt": -7, "at": -4, "et": -5, "ct": -6, "mt": -7, "pt": -8,
          "met": 1, "mest": 2, "cet": 1, "cest": 2, "bst": 1, "ist": 5.5, "jst": 9}

_RFC822 = re.compile(
    r"(?:[A-Za-z]{3,9}\s*,?\s*)?"                     # weekday, comma, space: all optional
    r"(?P<day>\d{1,2})\s+(?P<month>[A-Za-z]{3,9})\.?,?\s+(?P<year>\d{4}|\d{2})"
    r"(?:\s+(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2}))?)?"
    r"(?:\s*(?P<zone>[A-Za-z][A-Za-z/]*)?(?P<offset>[+-]\d{2}:?\d{2})?)?",
    re.ASCII)
_ISO = re.compile(
    r"(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:[T ](?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:[.,]\d+)?)?"
    r"\s*(?P<zone>Z|[+-]\d{2}:?\d{2})?)?)?)?",
    re.ASCII | re.IGNORECASE)


def _offset(text: str) -> timedelta | None:
    """"+0130", "-01:30", "Z" → an offset; None when malformed or beyond ±14 h."""
    if text.upper() == "Z":
        return timedelta(0)
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:])
    if minutes > 59:
        return None
    offset = sign * timedelta(hours=hours, minutes=minutes)
    return offset if abs(offset) <= MAX_OFFSET else None


def _utc_from_fields(year: int, month: int, day: int, hour: int, minute: int, second: int,
                     offset: timedelta) -> datetime | None:
    if not MIN_YEAR <= year <= MAX_YEAR:
        return None
    try:
        local = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:  # hour 25, day 99, 30 February
        return None
    return local - offset


def _from_rfc822(found: re.Match[str]) -> datetime | None:
    month = _MONTHS.get(found["month"].lower())
    if month is None:
        return None
    year = int(found["year"])
    if len(found["year"]) == 2:  # RFC 822's two-digit years: 50-99 → 19xx, else 20xx
        year += 1900 if year >= 50 else 2000
    offset = timedelta(0)
    if found["zone"] is not None:
        hours = _ZONES.get(found["zone"].lower())
        if hours is None:
            return None
        if found["offset"] is not None and hours != 0:
            return None  # "EST+0500": an offset may only follow GMT/UTC ("GMT-01:01")
        offset = timedelta(hours=hours)
    if found["offset"] is not None:
        extra = _offset(found["offset"])
        if extra is None:
            return None
        offset += extra
    if abs(offset) > MAX_OFFSET:
        return None
    return _utc_from_fields(year, month, int(found["day"]), int(found["hour"] or 0),
                            int(found["minute"] or 0), int(found["second"] or 0), offset)


def _from_iso(text: str) -> datetime | None:
    found = _ISO.fullmatch(text)
    # "2003" or "2003-12" has no day to place a story in a week: January 1 would be invented.
    if found is None or found["day"] is None:
        return None
    offset = timedelta(0)
    if found["zone"] is not None:
        parsed = _offset(found["zone"])
        if parsed is None:
            return None
        offset = parsed
    return _utc_from_fields(int(found["year"]), int(found["month"]), int(found["day"]),
                            int(found["hour"] or 0), int(found["minute"] or 0),
                            int(found["second"] or 0), offset)


_KNOWN_WORDS = {*_MONTHS, *_ZONES, "t", "z", "am", "pm", "mon", "tue", "wed", "thu", "fri",
                "sat", "sun", "monday", "tuesday", "wednesday", "thursday", "friday",
                "saturday", "sunday"}


def _agrees(raw: str, when: datetime) -> bool:
    """Whether a looser parser's reading can be seen in the raw string: its year written
    out, its day of the month (±1 for the zone) among the numbers, a month given as a
    number or a word, and no stray ASCII word (garbage the parser skipped). What a parser
    filled in from today's clock fails this."""
    numbers = {int(run) for run in re.findall(r"\d+", raw)}
    words = re.findall(r"[^\W\d_]+", raw)
    if any(word.isascii() and word.lower() not in _KNOWN_WORDS for word in words):
        return False
    near = [when + timedelta(days=shift) for shift in (-1, 0, 1)]
    has_month_word = any(len(word) >= 3 for word in words)
    return (when.year in numbers and bool({day.day for day in near} & numbers)
            and (bool({day.month for day in near} & numbers) or has_month_word))


# The shapes feedparser's looser parsers are asked about; anything else is no date (they
# reorder and drop tokens: "Jan 2004 12 Dec 05 1" read as 12 January).
_ASCTIME = re.compile(r"[A-Za-z]{3} [A-Za-z]{3} +\d{1,2} \d{1,2}:\d{2}:\d{2}"
                      r"(?: [+-]\d{4})? \d{4}")
_JAVASCRIPT = re.compile(r"[A-Za-z]{3} [A-Za-z]{3} \d{1,2} \d{4} \d{1,2}:\d{2}:\d{2}"
                         r"(?: [+-]\d{4})?(?: \([^)]*\))?")
_PERFORCE = re.compile(r"[A-Za-z]{3}, \d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} [A-Za-z]{2,5}")


def _parse_looser_forms(text: str) -> datetime | None:
    """feedparser's parsers for the other forms real feeds use, each asked only about its own
    shape and taken only when its reading agrees with the raw string: asctime, JavaScript's
    Date, Perforce, and (for text with non-ASCII letters) Hungarian, Greek and Korean."""
    from feedparser.datetimes import asctime, greek, hungarian, korean, perforce, rfc822

    parsers: list[Any] = []
    if _ASCTIME.fullmatch(text):
        parsers.append(asctime._parse_date_asctime)
    elif _JAVASCRIPT.fullmatch(text):
        parsers.append(rfc822._parse_date_rfc822)
    elif _PERFORCE.fullmatch(text):
        parsers.append(perforce._parse_date_perforce)
    elif not text.isascii():
        parsers += [hungarian._parse_date_hungarian, greek._parse_date_greek,
                    korean._parse_date_nate, korean._parse_date_onblog]
    for parser in parsers:
        try:
            parsed = parser(text)
            if parsed is None:
                continue
            year, month, day, hour, minute, second = parsed[:6]
            when = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
        except (ValueError, OverflowError, TypeError, IndexError, KeyError):
            continue
        if MIN_YEAR <= when.year <= MAX_YEAR and _agrees(text, when):
            return when
    return None


# Google once wrote months with three digits ("2003-012-31"): the only laxness allowed in
# the ISO form.
_GOOGLE_MONTH = re.compile(r"^(\d{4})-0(\d{2})-")


def parse_feed_date(raw: str) -> datetime | None:
    """A feed's date string as aware UTC, or None when it cannot be read for sure."""
    text = raw.strip()
    if not text:
        return None
    # A string of RFC 822's or ISO's shape is theirs to judge: when the strict reading
    # refuses it (hour 25, offset +1500), no looser reading may make something up.
    rfc822 = _RFC822.fullmatch(text)
    if rfc822 is not None:
        return _from_rfc822(rfc822)
    if text.isascii() and re.match(r"\d{4}(?:-\d|$)", text):
        return _from_iso(_GOOGLE_MONTH.sub(r"\1-\2-", text))
    return _parse_looser_forms(text)
