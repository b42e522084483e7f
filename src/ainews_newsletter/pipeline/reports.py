"""Reports: the numbers of one issue and of the list, gathered from the rooms that count them
(ledger, feedback events, subscriber history, clicks) and handed to reports/ for words,
JSON and pictures."""

from __future__ import annotations

from datetime import datetime, timedelta

from ainews_newsletter import clock
from ainews_newsletter.config import Config
from ainews_newsletter.database import engine_for
from ainews_newsletter.delivery.clickstats import click_counts
from ainews_newsletter.delivery.send_stats import LedgerReports, Recipient
from ainews_newsletter.feedback.events import EventLog
from ainews_newsletter.feedback.findings import FeedbackKind
from ainews_newsletter.models import DeliveryState, SubscriberStatus
from ainews_newsletter.pipeline.issue import issue_for, open_ledger, open_subscribers
from ainews_newsletter.reports.numbers import Clicks, GrowthWeek, IssueNumbers, LinkClicks, growth
from ainews_newsletter.reports.page import report_page
from ainews_newsletter.subscribers.history import SubscriberHistory


def issue_numbers(config: Config, issue_key: str | None) -> IssueNumbers:
    """One issue (default: the latest) from every room that counts something about it."""
    ledger = open_ledger(config)
    issue = issue_for(config, ledger, issue_key)
    engine = engine_for(config.database_url)
    counts = ledger.counts(issue.id)
    log = EventLog(engine)
    feedback = log.subscribers_by_kind(issue.id)
    # A reader with a soft and then a hard bounce is one bounced reader, counted as hard.
    bounced = log.subscribers_with(issue.id, (FeedbackKind.HARD, FeedbackKind.SOFT))
    hard = feedback.get(FeedbackKind.HARD, 0)
    per_minute, _, finished = LedgerReports(engine).timeline(issue.id)
    tracked = click_counts(engine, issue.id)
    clicks = None if tracked is None else Clicks(
        tracked.total, tracked.unique,
        tuple(LinkClicks(link.url, link.total, link.unique) for link in tracked.links),
        tracked.scanner)
    return IssueNumbers(
        issue=counts.issue, subject=issue.rendered.subject, audience=counts.total,
        sent=counts.sent, failed=counts.failed, deferred=counts.deferred,
        queued=counts.queued, sending=counts.sending,
        bounces_hard=hard, bounces_soft=bounced - hard,
        complaints=feedback.get(FeedbackKind.COMPLAINT, 0),
        unsubscribes=SubscriberHistory(engine).unsubscribes_for_issue(issue.id),
        clicks=clicks, started=issue.snapshot_at, finished=finished,
        timeline=tuple(per_minute), delivered=feedback.get(FeedbackKind.DELIVERED, 0),
        reported_by=tuple((who, tuple(sorted(kinds.items())))
                          for who, kinds in sorted(log.by_provider(issue.id).items())))


def list_growth(config: Config, weeks: int) -> list[GrowthWeek]:
    """The last `weeks` ISO weeks in the newsletter's timezone, the current one last: one
    range count per kind and week on the history's (kind, at) index."""
    tz = config.newsletter.tz
    today = clock.now().astimezone(tz).date()
    monday = today - timedelta(days=today.weekday())
    history = SubscriberHistory(engine_for(config.database_url))
    found = []
    for back in range(weeks - 1, -1, -1):
        start = monday - timedelta(weeks=back)
        # Local midnights: a week with a DST change is 167 or 169 hours, as people count.
        begins = datetime.combine(start, datetime.min.time(), tzinfo=tz)
        ends = datetime.combine(start + timedelta(weeks=1), datetime.min.time(), tzinfo=tz)
        found.append((start.strftime("%G-W%V"), start, history.counts_between(begins, ends)))
    store = open_subscribers(config)
    on_list = store.count(SubscriberStatus.ACTIVE) + store.count(SubscriberStatus.PENDING)
    return growth(found, on_list)


def latest_numbers(config: Config) -> IssueNumbers | None:
    """The latest issue's numbers, or None before the first send (the dashboard)."""
    if open_ledger(config).latest_issue() is None:
        return None
    return issue_numbers(config, None)


def report_html(config: Config, issue_key: str | None, weeks: int,
                refresh: int | None = None) -> str:
    numbers = (issue_numbers(config, issue_key) if issue_key is not None
               else latest_numbers(config))
    return report_page(config.newsletter.name, numbers, list_growth(config, weeks),
                       config.newsletter.tz, clock.now(), refresh)


def recipients_in(config: Config, issue_key: str | None, state: DeliveryState,
                  limit: int) -> tuple[str, list[tuple[Recipient, str | None]]]:
    """`status --state`: who is in `state`, with the last reply and the bounce kind where
    one came back. Returns (issue key, rows)."""
    ledger = open_ledger(config)
    issue = issue_for(config, ledger, issue_key)
    engine = engine_for(config.database_url)
    rows = LedgerReports(engine).recipients_in(issue.id, state, limit)
    kinds = EventLog(engine).kinds_for_deliveries([row.delivery_id for row in rows])
    return issue.rendered.period.key, [(row, kinds.get(row.delivery_id)) for row in rows]


def relay_counts(config: Config, issue_key: str) -> dict[str, dict[str, int]]:
    """Per relay of [[smtp.relays]], the issue's rows by the state it left them in."""
    ledger = open_ledger(config)
    issue = issue_for(config, ledger, issue_key)
    return LedgerReports(engine_for(config.database_url)).relay_counts(issue.id)
