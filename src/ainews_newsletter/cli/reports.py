"""`ainews report`: what happened to an issue (delivery, bounces, complaints, unsubscribes,
clicks), how the list grows week by week, and the same as one HTML page with charts."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from ainews_newsletter.cli.common import AppState, console, json_option, pass_state, print_json
from ainews_newsletter.models import counted


@click.command()
@click.argument("issue", required=False, metavar="[ISSUE]")
@click.option("--growth", is_flag=True, help="The list's growth per week instead.")
@click.option("--weeks", type=click.IntRange(min=1, max=520), default=12, show_default=True,
              help="How many weeks --growth and --html cover (the current one last).")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write one self-contained page with charts (no scripts) to this file.")
@json_option
@pass_state
def report(state: AppState, issue: str | None, growth: bool, weeks: int,
           html_path: Path | None, as_json: bool) -> None:
    """How ISSUE went (default: the latest): readers, accepted, failed, bounces, complaints,
    unsubscribes, clicks (when [tracking] clicks is on), rates and warnings."""
    from ainews_newsletter.pipeline.reports import issue_numbers, list_growth, report_html
    from ainews_newsletter.reports.numbers import growth_json, issue_json, warnings

    config = state.config
    if html_path is not None:
        html_path.write_text(report_html(config, issue, weeks), encoding="utf-8")
        console.print(f"wrote {html_path} ({html_path.stat().st_size:,} bytes)")
        return
    if growth:
        found = list_growth(config, weeks)
        if as_json:
            print_json(growth_json(found))
            return
        table = Table(title=f"the list, last {counted(weeks, 'week')}")
        for column in ("week", "joined", "confirmed", "unsubscribed", "bounced",
                       "complained", "net", "total"):
            table.add_column(column, justify="left" if column == "week" else "right")
        for row in growth_json(found)["weeks"]:
            table.add_row(*(str(value) for value in row.values()))
        console.print(table)
        return
    numbers = issue_numbers(config, issue)
    if as_json:
        print_json(issue_json(numbers))
        return
    rates = numbers.rates
    lines = [
        f"{numbers.issue} “{numbers.subject}”",
        f"readers {numbers.audience}: accepted {numbers.sent}, failed {numbers.failed}, "
        f"deferred {numbers.deferred}" + (", still sending" if numbers.in_progress else ""),
        f"bounces: hard {numbers.bounces_hard}, soft {numbers.bounces_soft} "
        f"({rates['bounce']:.2%}); complaints {numbers.complaints} ({rates['complaint']:.2%}); "
        f"unsubscribes {numbers.unsubscribes} ({rates['unsubscribe']:.2%})",
    ]
    if numbers.reported_by:
        lines.append("reported by: " + "; ".join(
            f"{who} " + ", ".join(f"{kind} {count}" for kind, count in kinds)
            for who, kinds in numbers.reported_by)
            + (f" (delivery confirmed for {numbers.delivered})" if numbers.delivered else ""))
    if numbers.clicks is None:
        lines.append("clicks: not counted ([tracking] clicks is off)")
    else:
        lines.append(f"clicks: {numbers.clicks.total} by {counted(numbers.clicks.unique, 'reader')}"
                     f" ({numbers.clicks.scanner} by security scanners, not counted)")
        lines += [f"  {link.total:>6} {link.unique:>6}  {link.url}"
                  for link in numbers.clicks.links[:10]]
    if numbers.started and numbers.finished:
        lines.append(f"sent {numbers.started:%Y-%m-%d %H:%M} – {numbers.finished:%H:%M} UTC"
                     + (f", {numbers.per_second} a second" if numbers.per_second else ""))
    for line in lines:
        console.print(line)
    for warning in warnings(numbers):
        console.print(f"warning: {warning}", style="yellow")
