"""The one orchestrator: select → render → deliver. Entry points (cli, demo, later the
scheduler and web) call these functions; the rooms never call each other."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from ainews_newsletter import clock
from ainews_newsletter.config import Config
from ainews_newsletter.database import engine_for
from ainews_newsletter.delivery.ledger import IssueRecord, Ledger, RetryPolicy
from ainews_newsletter.delivery.message import build_message, unsubscribe_url
from ainews_newsletter.delivery.sender import Progress, SendSettings, deliver
from ainews_newsletter.delivery.transports import (
    ConsoleTransport,
    FileTransport,
    SmtpTransport,
    Transport,
)
from ainews_newsletter.errors import AinewsError, SelectionError
from ainews_newsletter.models import (
    DeliveryCounts,
    Period,
    Post,
    Recipient,
    RenderedIssue,
    SubscriberStatus,
)
from ainews_newsletter.posts.loader import load_posts
from ainews_newsletter.posts.select import in_period, last_complete_week, parse_week
from ainews_newsletter.render.digest import compose_issue, render_issue
from ainews_newsletter.subscribers.store import SubscriberStore

# The subscriber list an issue goes to: one list until lists arrive. It keys the issue in the
# ledger and is deliberately not the List-Id header, which follows the newsletter's name: a
# renamed newsletter must not send an already-sent week again.
DEFAULT_LIST = "default"
# Who issue.eml is addressed to when the list is still empty.
SAMPLE_RECIPIENT = Recipient(subscriber_id=0, email="reader@example.com", name="Sample Reader",
                             token="sample-token")


@dataclass(frozen=True)
class Selection:
    period: Period
    posts: list[Post]  # what the issue carries, newest first
    in_window: int  # how many posts the window held before max_posts


def resolve_period(config: Config, week: str | None) -> Period:
    tz = config.newsletter.tz
    return parse_week(week, tz) if week else last_complete_week(clock.now(), tz)


def select_posts(config: Config, week: str | None) -> Selection:
    period = resolve_period(config, week)
    chosen = in_period(load_posts(config), period)
    return Selection(period=period, posts=chosen[: config.posts.max_posts],
                     in_window=len(chosen))


def render_selection(config: Config, selection: Selection, force: bool = False) -> RenderedIssue:
    count, minimum = len(selection.posts), config.posts.min_posts
    if count < max(minimum, 1) and not (force and count):
        raise SelectionError(f"only {count} posts in {selection.period.key}, min_posts is "
                             f"{minimum}" + ("" if count == 0 else " (--force builds anyway)"))
    issue = compose_issue(selection.period, selection.posts, config.newsletter.name)
    return render_issue(issue, config.newsletter, config.templates_dir)


def build(config: Config, week: str | None, force: bool = False) -> RenderedIssue:
    return render_selection(config, select_posts(config, week), force)


def open_subscribers(config: Config) -> SubscriberStore:
    return SubscriberStore(engine_for(config.database_url))


def open_ledger(config: Config) -> Ledger:
    return Ledger(engine_for(config.database_url))


def write_build(config: Config, rendered: RenderedIssue, out_dir: Path) -> dict[str, Path]:
    """issue.html and issue.txt (as rendered, placeholder filled for a sample reader) and
    issue.eml, the full message the first active subscriber would receive."""
    recipient = next(open_subscribers(config).iter_recipients(batch_size=1), SAMPLE_RECIPIENT)
    message = build_message(rendered, recipient, config.newsletter, clock.now())
    html_part, text_part = rendered.personalize(
        unsubscribe_url(config.newsletter, recipient.token))
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"html": out_dir / "issue.html", "text": out_dir / "issue.txt",
             "eml": out_dir / "issue.eml"}
    files["html"].write_text(html_part, encoding="utf-8")
    files["text"].write_text(text_part, encoding="utf-8")
    files["eml"].write_bytes(message.as_bytes())
    return files


def make_transport(config: Config) -> Transport:
    backend = config.delivery.backend
    if backend == "file":
        return FileTransport(config.resolve(config.delivery.out_dir))
    if backend == "console":
        return ConsoleTransport()
    return SmtpTransport(config.smtp)


@dataclass(frozen=True)
class SendPlan:
    """What `send` is about to do, for the confirmation prompt."""

    period_key: str
    subject: str
    post_count: int
    pending: int  # recipients still to receive it
    existing: IssueRecord | None  # the frozen issue when this period was started before
    rendered: RenderedIssue


def plan_send(config: Config, week: str | None, force: bool = False) -> SendPlan:
    period = resolve_period(config, week)
    ledger = open_ledger(config)
    existing = ledger.find_issue(DEFAULT_LIST, period.key)
    if existing is not None and existing.snapshot_at is not None:
        counts = ledger.counts(existing.id)
        return SendPlan(period.key, existing.rendered.subject, existing.rendered.post_count,
                        counts.queued + counts.deferred + counts.sending, existing,
                        existing.rendered)
    rendered = existing.rendered if existing else build(config, week, force)
    audience = open_subscribers(config).count(SubscriberStatus.ACTIVE)
    return SendPlan(period.key, rendered.subject, rendered.post_count, audience, existing,
                    rendered)


def execute_send(config: Config, plan: SendPlan, transport: Transport | None = None,
                 on_result: Progress | None = None) -> DeliveryCounts:
    """Freeze the issue (once per list and period), snapshot the audience (once), deliver
    every due row. Safe to run again: recipients already sent are never sent again."""
    ledger = open_ledger(config)
    issue = plan.existing or ledger.create_issue(DEFAULT_LIST, plan.rendered, clock.now())
    if issue.snapshot_at is None:
        recipients = open_subscribers(config).iter_recipients(config.delivery.batch_size)
        ledger.snapshot(issue.id, recipients, clock.now(), config.delivery.batch_size)
    settings = SendSettings(
        policy=RetryPolicy(config.delivery.max_attempts, config.delivery.retry_base_seconds,
                           config.delivery.retry_max_seconds),
        batch_size=config.delivery.batch_size,
        rate_per_second=config.smtp.rate_per_second,
        claim_timeout=timedelta(seconds=config.delivery.claim_timeout_seconds),
    )
    return deliver(issue, ledger, transport or make_transport(config), config.newsletter,
                   settings, open_subscribers(config).active_among, on_result)


def delivery_status(config: Config, issue_key: str | None) -> DeliveryCounts:
    ledger = open_ledger(config)
    if issue_key is None:
        issue = ledger.latest_issue()
        if issue is None:
            raise AinewsError("no issue has been sent yet (run `ainews send`)")
    else:
        key = parse_week(issue_key, config.newsletter.tz).key
        issue = ledger.find_issue(DEFAULT_LIST, key)
        if issue is None:
            raise AinewsError(f"no issue {key} in the ledger")
    return ledger.counts(issue.id)
