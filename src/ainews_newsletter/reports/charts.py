"""SVG charts for the report page and /dashboard, drawn by pygal (made for SVG charts, pure
Python, well kept, and its output scales with the page). pygal always inlines a small
<script> for its tooltips: it is stripped, so the pages run no JavaScript and keep their
strict Content-Security-Policy. Each chart carries a title and a description for screen
readers (role="img", aria-labelledby)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pygal
from pygal.style import Style

from ainews_newsletter.reports.numbers import Clicks, GrowthWeek, IssueNumbers

_STYLE = Style(background="transparent", plot_background="transparent",
               foreground="#1f2937", foreground_strong="#111827", foreground_subtle="#6b7280",
               colors=("#2563eb", "#f59e0b", "#dc2626", "#16a34a", "#7c3aed"),
               font_family="system-ui, -apple-system, 'Segoe UI', sans-serif",
               title_font_size=18, label_font_size=12, legend_font_size=13,
               major_label_font_size=12, value_font_size=12)
_SCRIPT = re.compile(r"<script\b.*?</script>", re.DOTALL | re.IGNORECASE)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


def _options(title: str, **extra: Any) -> dict[str, Any]:
    return {"title": title, "style": _STYLE, "js": [], "disable_xml_declaration": True,
            "explicit_size": False, "width": 800, "height": 360, "legend_at_bottom": True,
            "print_values": False, "margin": 12, "truncate_label": 48, **extra}


def _accessible_svg(chart: Any, slug: str, description: str) -> str:
    """The chart's SVG without scripts or comments, labelled for assistive technology."""
    svg = _COMMENT.sub("", _SCRIPT.sub("", str(chart.render(is_unicode=True))))
    title_id, desc_id = f"{slug}-title", f"{slug}-desc"
    escaped = (description.replace("&", "&amp;").replace("<", "&lt;")
               .replace(">", "&gt;"))
    svg = re.sub(r"<svg\b", f'<svg role="img" aria-labelledby="{title_id} {desc_id}"', svg,
                 count=1)
    # A function, not a template: a URL with a backslash must stay text.
    svg = re.sub(r"(<svg\b[^>]*>)",
                 lambda found: f'{found.group(1)}<desc id="{desc_id}">{escaped}</desc>', svg,
                 count=1)
    return re.sub(r"<title>", f'<title id="{title_id}">', svg, count=1)


def growth_chart(weeks: Sequence[GrowthWeek]) -> str:
    span = f" ({weeks[0].week} to {weeks[-1].week})" if weeks else ""
    chart = pygal.Bar(**_options(f"List growth per week{span}"))
    chart.x_labels = [week.week.split("-")[-1] for week in weeks]  # "W47": fits 12 a row
    chart.add("joined", [week.counts.get("joined", 0) for week in weeks])
    chart.add("left", [week.counts.get("unsubscribed", 0) + week.counts.get("complained", 0)
                       for week in weeks])
    chart.add("bounced", [week.counts.get("bounced", 0) for week in weeks])
    described = "; ".join(f"{w.week}: {w.counts.get('joined', 0)} joined, {w.left} left, "
                          f"total {w.total}" for w in weeks) or "no weeks"
    return _accessible_svg(chart, "growth", f"Subscribers who joined, left and bounced each week. "
                                            f"{described}.")


def funnel_chart(numbers: IssueNumbers) -> str:
    # Bounces that came back after a server accepted the message (refusals while sending
    # are in `failed` already, and each refusal is one failed row at most).
    later = max(numbers.bounces_hard + numbers.bounces_soft - numbers.failed, 0)
    steps = [("audience", numbers.audience), ("accepted by servers", numbers.sent),
             ("not bounced", max(numbers.sent - later, 0))]
    if numbers.clicks is not None:
        steps.append(("clicked a link", numbers.clicks.unique))
    chart = pygal.HorizontalBar(**_options(f"Delivery of {numbers.issue}", show_legend=False))
    chart.x_labels = [name for name, _ in reversed(steps)]
    chart.add("readers", [count for _, count in reversed(steps)])
    return _accessible_svg(chart, "funnel", "How many readers each step reached: "
                           + ", ".join(f"{name} {count}" for name, count in steps) + ".")


def timeline_chart(timeline: Sequence[tuple[datetime, int]], timezone: Any) -> str:
    chart = pygal.Bar(**_options("Messages accepted per minute", show_legend=False,
                                 x_label_rotation=30, show_minor_x_labels=False))
    labels = [moment.astimezone(timezone).strftime("%d %b %H:%M") for moment, _ in timeline]
    chart.x_labels = labels
    chart.x_labels_major = labels[:: max(1, len(labels) // 8)]
    chart.add("messages", [count for _, count in timeline])
    total = sum(count for _, count in timeline)
    span = (f"from {labels[0]} to {labels[-1]}" if labels else "nothing sent yet")
    return _accessible_svg(chart, "timeline", f"{total} messages accepted {span}, per minute.")


def links_chart(clicks: Clicks, top: int = 10) -> str:
    links = list(clicks.links[:top])
    chart = pygal.HorizontalBar(**_options("Most-clicked links"))
    chart.x_labels = [link.url for link in reversed(links)]
    chart.add("clicks", [link.total for link in reversed(links)])
    chart.add("readers", [link.unique for link in reversed(links)])
    return _accessible_svg(chart, "links", "Clicks by people per link, most clicked first: "
                           + "; ".join(f"{link.url}: {link.total} clicks by {link.unique} readers"
                                       for link in links) + ".")
