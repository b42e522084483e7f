"""Words and dates of an issue in its language (issue 30): the period ("November 16 – 22,
2026" in English, "16.–22. November 2026" in German), a post's day, and the subject's
wording, through Babel's CLDR data and the `mail` gettext catalogs (translations.py).
English is CLDR's `en` (US order) like any other language; "en-GB" gives "16 – 22 November
2026"."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from pathlib import Path

from ainews_newsletter import translations
from ainews_newsletter.models import Period

# CLDR keeps interval patterns for abbreviated months (yMMMd) in every language, but for
# full month names in few: the abbreviated pattern with the month written out is the same
# layout with the name in full.
_ABBREVIATED_MONTH = re.compile(r"(?<![ML])([ML])\1\1(?![ML])")


def _full_months(pattern: str) -> str:
    return _ABBREVIATED_MONTH.sub(lambda found: found.group(1) * 4, pattern)


def date_interval(first: date, last: date, language: str = translations.SOURCE) -> str:
    """`first` to `last` (both included) with the month in full, as the language writes an
    interval: "November 16 – 22, 2026" (en), "16.–22. November 2026" (de)."""
    from babel.dates import format_date

    locale = translations.babel_locale(language)
    if first == last:
        return format_date(first, _full_months(locale.datetime_skeletons["yMMMd"].pattern),
                           locale=locale)
    formats = locale.interval_formats
    patterns = formats.get("yMMMMd") or formats.get("yMMMd")
    greatest = ("y" if first.year != last.year else "M" if first.month != last.month
                else "d")
    if not patterns or greatest not in patterns:
        return f"{date_interval(first, first, language)} – {date_interval(last, last, language)}"
    start, end = patterns[greatest]
    return (format_date(first, _full_months(start), locale=locale)
            + format_date(last, _full_months(end), locale=locale))


def period_label(period: Period, language: str = translations.SOURCE) -> str:
    """The issue's days in its language (the window is half-open: the last day is
    end - 1 day)."""
    return date_interval(period.start.date(), (period.end - timedelta(days=1)).date(),
                         language)


def post_day(moment: datetime, language: str = translations.SOURCE) -> str:
    """A post's day, short, with the weekday: "Mon, Nov 16" (en), "Mo., 16. Nov." (de)."""
    from babel.dates import format_skeleton

    return format_skeleton("MMMEd", moment, locale=translations.babel_locale(language))


def subject_line(title: str, others: int, newsletter_name: str,
                 language: str = translations.SOURCE, locale_dir: Path | None = None) -> str:
    """"Lead headline (+N more) | Newsletter": the plural through gettext's ngettext."""
    catalog = translations.translations(language, "mail", locale_dir)
    if not others:
        return catalog.gettext("%(title)s | %(newsletter)s") % {
            "title": title, "newsletter": newsletter_name}
    return catalog.ngettext("%(title)s (+%(count)d more) | %(newsletter)s",
                            "%(title)s (+%(count)d more) | %(newsletter)s", others) % {
        "title": title, "count": others, "newsletter": newsletter_name}
