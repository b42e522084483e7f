"""The report's arithmetic and words: rates of what was sent, the warnings at the thresholds
mailbox providers use, weekly totals walked back from today's, and charts with no script."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ainews_newsletter.reports import charts
from ainews_newsletter.reports.numbers import (
    Clicks,
    IssueNumbers,
    LinkClicks,
    growth,
    growth_json,
    issue_json,
    warnings,
)


def _numbers(sent: int = 1000, hard: int = 0, soft: int = 0, complaints: int = 0,
             unsubscribes: int = 0, clicks: Clicks | None = None) -> IssueNumbers:
    start = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    return IssueNumbers(issue="2026-W47", subject="The week", audience=sent + 10, sent=sent,
                        failed=10, deferred=0, queued=0, sending=0, bounces_hard=hard,
                        bounces_soft=soft, complaints=complaints, unsubscribes=unsubscribes,
                        clicks=clicks, started=start, finished=start + timedelta(seconds=50),
                        timeline=((start, 600), (start + timedelta(minutes=1), 400)))


def test_rates_are_fractions_of_what_was_tried_and_sent() -> None:
    numbers = _numbers(sent=1990, hard=10, soft=6, complaints=1, unsubscribes=8)
    # bounces over tried (1990 accepted + 10 refused); the others over accepted
    assert numbers.rates == {"bounce": 0.008, "complaint": 1 / 1990, "unsubscribe": 8 / 1990}
    assert numbers.per_second == 39.8
    record = issue_json(numbers)
    assert record["bounces"] == {"hard": 10, "soft": 6} and record["clicks"] is None
    assert set(record) >= {"issue", "audience", "sent", "failed", "deferred", "bounces",
                           "complaints", "unsubscribes", "clicks", "rates", "started",
                           "finished", "per_second"}


@pytest.mark.parametrize(("complaints", "expected"), [(0, None), (1, "over 0.1 %"),
                                                       (3, "at or over 0.3 %")])
def test_complaint_warnings_follow_the_providers_thresholds(complaints: int,
                                                            expected: str | None) -> None:
    found = warnings(_numbers(sent=1000, complaints=complaints))
    if expected is None:
        assert found == []
    else:
        assert len(found) == 1 and expected in found[0]


def test_a_bounce_rate_over_two_percent_warns() -> None:
    assert warnings(_numbers(sent=990, hard=15, soft=5)) == []  # 20 of 1000 tried: 2 %
    [found] = warnings(_numbers(sent=990, hard=15, soft=6))
    assert "bounce rate 2.10%" in found and "re-confirm" in found


def test_everything_refused_is_all_bounced_not_zero() -> None:
    numbers = _numbers(sent=0, hard=10)  # 10 refused while sending, none accepted
    assert numbers.rates["bounce"] == 1.0
    assert any("bounce rate 100.00%" in w for w in warnings(numbers))


def test_a_url_with_a_backslash_is_just_text_in_a_chart() -> None:
    clicks = Clicks(total=1, unique=1, links=(LinkClicks(r"https://ex.example/a\d\1", 1, 1),))
    svg = charts.links_chart(clicks)
    assert svg.count("<svg") == 1 and r"a\d\1" in svg


def test_removals_from_the_list_count_as_leaving() -> None:
    weeks = growth([("2026-W47", date(2026, 11, 16), {"joined": 3, "removed": 1,
                                                      "erased": 1})], total_now=2)
    assert (weeks[0].net, weeks[0].total) == (2, 2)


def test_weekly_totals_walk_back_from_today() -> None:
    weeks = growth([("2026-W46", date(2026, 11, 9), {"joined": 10, "unsubscribed": 2}),
                    ("2026-W47", date(2026, 11, 16), {"joined": 5, "bounced": 1,
                                                      "complained": 1}),
                    ("2026-W48", date(2026, 11, 23), {"joined": 1, "resubscribed": 1})],
                   total_now=100)
    rows = growth_json(weeks)["weeks"]
    assert [(row["week"], row["net"], row["total"]) for row in rows] == [
        ("2026-W46", 8, 95), ("2026-W47", 3, 98), ("2026-W48", 2, 100)]


def test_charts_have_no_script_and_speak_to_screen_readers() -> None:
    clicks = Clicks(total=7, unique=4, links=(
        LinkClicks("https://news.example.org/posts/a?x=1&y=<2>", 5, 3),
        LinkClicks("https://news.example.org/posts/b", 2, 1)))
    numbers = _numbers(clicks=clicks)
    weeks = growth([("2026-W47", date(2026, 11, 16), {"joined": 3})], 3)
    drawn = [charts.growth_chart(weeks), charts.funnel_chart(numbers),
             charts.timeline_chart(numbers.timeline, ZoneInfo("Europe/Berlin")),
             charts.links_chart(clicks)]
    for svg in drawn:
        assert svg.startswith("<svg") and "<script" not in svg.lower()
        assert re.search(r'<svg[^>]*role="img"[^>]*aria-labelledby="(\S+)-title \1-desc"', svg)
        assert "<desc id=" in svg and "<title id=" in svg
    assert "&lt;2&gt;" in drawn[3] and "<2>" not in drawn[3]  # a URL cannot inject markup
    assert "09:00" in drawn[2]  # the timeline speaks the newsletter's time, not UTC
