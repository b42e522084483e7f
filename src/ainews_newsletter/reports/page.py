"""One self-contained HTML page (inline SVG and CSS, no scripts): `ainews report --html`
writes it, `ainews preview` serves it at /dashboard."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from ainews_newsletter.reports import charts
from ainews_newsletter.reports.numbers import GrowthWeek, IssueNumbers, warnings

_TEMPLATES = Path(__file__).resolve().parent / "templates"


def _environment() -> Environment:
    return Environment(loader=FileSystemLoader(_TEMPLATES), undefined=StrictUndefined,
                       autoescape=select_autoescape(["html"]))


def report_page(newsletter: str, numbers: IssueNumbers | None, weeks: list[GrowthWeek],
                timezone: ZoneInfo, generated: datetime, refresh: int | None = None) -> str:
    """The page; `refresh` (seconds) only while the issue's send is still running."""
    def local(moment: datetime | None) -> str | None:
        return None if moment is None else f"{moment.astimezone(timezone):%Y-%m-%d %H:%M %Z}"

    drawn = {"growth": charts.growth_chart(weeks)}
    if numbers is not None:
        drawn["funnel"] = charts.funnel_chart(numbers)
        drawn["timeline"] = charts.timeline_chart(numbers.timeline, timezone)
        if numbers.clicks is not None and numbers.clicks.links:
            drawn["links"] = charts.links_chart(numbers.clicks)
    title = f"{newsletter}: report" + (f" for {numbers.issue}" if numbers else "")
    return _environment().get_template("report.html").render(
        title=title, newsletter=newsletter, numbers=numbers, charts=drawn,
        warnings=warnings(numbers) if numbers else [],
        rates=numbers.rates if numbers else {}, per_second=numbers.per_second if numbers
        else None, started=local(numbers.started if numbers else None),
        finished=local(numbers.finished if numbers else None),
        generated=local(generated),
        refresh=refresh if numbers is not None and numbers.in_progress else None)
