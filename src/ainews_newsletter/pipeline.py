"""The one orchestrator: select → render → deliver. Entry points (cli, demo, later the
scheduler and web) call these functions; the rooms never call each other."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from ainews_newsletter import clock
from ainews_newsletter.config import Config
from ainews_newsletter.database import engine_for, sqlite_path
from ainews_newsletter.delivery.claims import Admits, RetryPolicy
from ainews_newsletter.delivery.dkim import Signer, make_signer
from ainews_newsletter.delivery.ledger import IssueRecord, Ledger
from ainews_newsletter.delivery.message import IssueMessages, unsubscribe_url
from ainews_newsletter.delivery.presence import SenderPresence, sender_presence
from ainews_newsletter.delivery.sender import Hooks, Progress, SendSettings, deliver
from ainews_newsletter.delivery.transports import (
    ConsoleTransport,
    FileTransport,
    MemoryTransport,
    SmtpTransport,
    Transport,
)
from ainews_newsletter.errors import AinewsError, SelectionError
from ainews_newsletter.models import (
    DeliveryCounts,
    Period,
    PostRef,
    Recipient,
    RenderedIssue,
    SendOutcome,
    Window,
)
from ainews_newsletter.posts.loader import load_sources
from ainews_newsletter.posts.select import Carried, Selection, post_ref, select
from ainews_newsletter.posts.windows import (
    between,
    last_complete_week,
    parse_moment,
    parse_week,
    since_last_issue,
)
from ainews_newsletter.render.digest import RenderOptions, compose_issue, render_issue
from ainews_newsletter.render.lint import Finding, lint_issue
from ainews_newsletter.subscribers.addresses import normalize
from ainews_newsletter.subscribers.store import (
    SubscriberStore,
    deliverable_now,
    deliverable_subscriber,
)

# Who issue.eml is addressed to when the list is still empty.
SAMPLE_RECIPIENT = Recipient(subscriber_id=0, email="reader@example.com", name="Sample Reader",
                             token="sample-token")


def audience_list(config: Config) -> str:
    """The subscriber list issues go to ([subscribers] default_list). It keys the issue in
    the ledger and is deliberately not the List-Id header, which follows the newsletter's
    name: a renamed newsletter must not send an already-sent week again."""
    return config.subscribers.default_list


def resolve_period(config: Config, window: Window) -> Period:
    tz = config.newsletter.tz
    if window.week and (window.since or window.until):
        raise SelectionError("use either --week or --since/--until, not both")
    if window.week:
        return parse_week(window.week, tz)
    if window.since or window.until:
        if not (window.since and window.until):
            raise SelectionError("--since and --until go together: the window is "
                                 "[since, until)")
        return between(parse_moment(window.since, tz, "--since"),
                       parse_moment(window.until, tz, "--until"), tz)
    if config.posts.window == "since-last-issue":
        last_end = open_ledger(config).last_sent_period_end(audience_list(config))
        return since_last_issue(last_end, clock.now(), tz)
    return last_complete_week(clock.now(), tz)


def select_posts(config: Config, window: Window) -> Selection:
    """The posts the issue would carry, and every other post with the reason it is left out.
    Posts carried by an earlier sent issue (of another period) are never carried again."""
    period = resolve_period(config, window)
    refs = open_ledger(config).carried_posts(audience_list(config), except_period=period.key)
    loaded = load_sources(config)
    return select(loaded.posts, period, config.posts.max_posts, Carried.from_refs(refs),
                  loaded.unplaced)


def render_selection(config: Config, selection: Selection, force: bool = False,
                     timings: dict[str, float] | None = None) -> RenderedIssue:
    count, minimum = selection.in_window, config.posts.min_posts
    if count < max(minimum, 1) and not (force and count):
        raise SelectionError(f"only {count} posts in window, min_posts is {minimum} "
                             f"({selection.period.key}"
                             + ("; --force builds anyway)" if count else ")"))
    issue = compose_issue(selection.period, selection.posts, config.newsletter.name,
                          more=selection.more,
                          group_by_category=config.posts.group_by == "category")
    key = selection.period.key
    options = RenderOptions(number=open_ledger(config).issue_number(audience_list(config), key),
                            utm=config.render.utm_for(key))
    return render_issue(issue, config.newsletter, config.templates_dir, options, timings)


def carried_refs(selection: Selection) -> tuple[PostRef, ...]:
    """Every post the issue shows, in full or as a "More this week" link."""
    return tuple(post_ref(post) for post in [*selection.posts, *selection.more])


def build(config: Config, window: Window, force: bool = False) -> RenderedIssue:
    return render_selection(config, select_posts(config, window), force)


def open_subscribers(config: Config) -> SubscriberStore:
    return SubscriberStore.open(config)


def open_ledger(config: Config) -> Ledger:
    return Ledger(engine_for(config.database_url))


def message_signer(config: Config) -> Signer | None:
    dkim = config.dkim
    if not (dkim.selector and dkim.domain and dkim.private_key_path):
        return None
    return make_signer(dkim.selector, dkim.domain, config.resolve(dkim.private_key_path))


def sample_recipient(config: Config) -> Recipient:
    """The first active subscriber, or a stand-in when the list is empty."""
    return next(open_subscribers(config).iter_recipients(batch_size=1), SAMPLE_RECIPIENT)


def sample_message(config: Config, rendered: RenderedIssue, recipient: Recipient) -> bytes:
    """The exact bytes `recipient` would receive (signed when DKIM is configured)."""
    raw = IssueMessages(rendered, config.newsletter, clock.now()).bytes_for(recipient)
    signer = message_signer(config)
    return signer(raw) if signer else raw


def lint(config: Config, rendered: RenderedIssue) -> list[Finding]:
    message = sample_message(config, rendered, sample_recipient(config))
    return lint_issue(rendered, config.newsletter.postal_address, message,
                      spamassassin=config.lint.spamassassin)


def write_build(config: Config, rendered: RenderedIssue, out_dir: Path) -> dict[str, Path]:
    """issue.html and issue.txt (as rendered, placeholder filled for a sample reader) and
    issue.eml, the full message the first active subscriber would receive."""
    recipient = sample_recipient(config)
    html_part, text_part = rendered.personalize(
        unsubscribe_url(config.newsletter, recipient.token))
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"html": out_dir / "issue.html", "text": out_dir / "issue.txt",
             "eml": out_dir / "issue.eml"}
    files["html"].write_text(html_part, encoding="utf-8")
    files["text"].write_text(text_part, encoding="utf-8")
    files["eml"].write_bytes(sample_message(config, rendered, recipient))
    return files


def make_transport(config: Config) -> Transport:
    backend = config.delivery.backend
    if backend == "file":
        return FileTransport(config.resolve(config.delivery.out_dir))
    if backend == "console":
        return ConsoleTransport()
    if backend == "memory":
        return MemoryTransport()
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
    carried: tuple[PostRef, ...] = ()  # the posts a new issue carries, remembered on freeze


def _find_issue(config: Config, ledger: Ledger, key: str) -> IssueRecord | None:
    found = ledger.find_issue(audience_list(config), key)
    if found is None:  # "2026w47" for "2026-W47"
        with suppress(SelectionError):
            found = ledger.find_issue(audience_list(config),
                                      parse_week(key, config.newsletter.tz).key)
    return found


def plan_send(config: Config, window: Window, force: bool = False,
              issue_key: str | None = None) -> SendPlan:
    """What a send would do. With `issue_key`, the frozen issue of that key (to resume it);
    else the issue of the window, frozen already or to be built now."""
    ledger = open_ledger(config)
    if issue_key is None and window == Window() and config.posts.window == "since-last-issue":
        # The next since-last-issue window starts where an unfinished issue ends: finish
        # that one first, or its queued readers would never get it.
        issue_key = unfinished_issue_key(config)
    if issue_key is not None:
        existing = _find_issue(config, ledger, issue_key)
        if existing is None:
            raise AinewsError(f"no issue {issue_key!r} in the ledger")
        period_key = existing.rendered.period.key
    else:
        period_key = resolve_period(config, window).key
        existing = ledger.find_issue(audience_list(config), period_key)
    if existing is not None:
        counts = ledger.counts(existing.id)
        pending = (counts.queued + counts.deferred + counts.sending
                   if existing.snapshot_at is not None
                   else open_subscribers(config).count_recipients())
        return SendPlan(period_key, existing.rendered.subject, existing.rendered.post_count,
                        pending, existing, existing.rendered)
    selection = select_posts(config, window)
    rendered = render_selection(config, selection, force)
    audience = open_subscribers(config).count_recipients()
    return SendPlan(period_key, rendered.subject, rendered.post_count, audience, None,
                    rendered, carried_refs(selection))


class PeriodTaken(AinewsError):
    """Another run froze this period's issue first; that run sends it."""


def freeze_issue(config: Config, plan: SendPlan, only_if_new: bool = False) -> IssueRecord:
    """The plan's issue, frozen in the ledger (once per list and period). With `only_if_new`
    raises PeriodTaken when another run froze the period between the plan and now."""
    if plan.existing is not None:
        return plan.existing
    ledger = open_ledger(config)
    created = ledger.try_create_issue(audience_list(config), plan.rendered, plan.carried,
                                      clock.now())
    if created is not None:
        return created
    if only_if_new:
        raise PeriodTaken(f"another run froze the issue for {plan.period_key} first; "
                          "it sends it, so this run does nothing")
    existing = ledger.find_issue(audience_list(config), plan.period_key)
    assert existing is not None, "the period was frozen yet has no issue"
    return existing


def execute_send(config: Config, plan: SendPlan, transport: Transport | None = None,
                 on_result: Progress | None = None,
                 should_stop: Callable[[], bool] | None = None,
                 only_if_new: bool = False) -> DeliveryCounts:
    """Freeze the issue (once per list and period), snapshot the audience (once), deliver
    every due row. Safe to run again: recipients already sent are never sent again."""
    ledger = open_ledger(config)
    store = open_subscribers(config)
    issue = freeze_issue(config, plan, only_if_new)
    if issue.snapshot_at is None:
        recipients = store.iter_recipients(batch_size=config.delivery.batch_size)
        ledger.snapshot(issue.id, recipients, clock.now(), config.delivery.batch_size)
        issue = ledger.find_issue(issue.list_id, issue.rendered.period.key) or issue
    delivery = config.delivery
    settings = SendSettings(
        policy=RetryPolicy(delivery.max_attempts, delivery.retry_base_seconds,
                           delivery.retry_max_seconds,
                           timedelta(hours=delivery.give_up_after_hours)),
        batch_size=delivery.batch_size,
        rate_per_second=config.smtp.rate_per_second,
        max_per_hour=config.smtp.max_per_hour,
        claim_lease=claim_lease(config),
        signer=message_signer(config),
        error_threshold=delivery.error_threshold,
        error_window=delivery.error_window,
    )

    def hard_bounce(subscriber_id: int) -> None:
        store.record_hard_bounce(subscriber_id, delivery.bounce_limit)

    hooks = Hooks(admits=Admits(deliverable_subscriber, deliverable_now), on_result=on_result,
                  should_stop=should_stop, on_hard_bounce=hard_bounce)

    def deliver_due() -> DeliveryCounts:
        if transport is not None:  # a caller-made transport: one connection
            return deliver(issue, ledger, lambda: transport, config.newsletter, settings,
                           hooks)
        return deliver(issue, ledger, lambda: make_transport(config), config.newsletter,
                       settings, hooks, connections=config.smtp.connections)

    def release_dead_claims() -> None:
        ledger.release_claims(clock.now())

    with sender_presence(sqlite_path(config.database_url)) as presence:
        presence.check_alone(release_dead_claims)  # alone: rows left `sending` are orphans
        counts = deliver_due()
        if counts.sending:
            counts = _settle(config, ledger, issue.id, presence, release_dead_claims,
                             deliver_due, should_stop or (lambda: False))
        return counts


def _settle(config: Config, ledger: Ledger, issue_id: int, presence: SenderPresence,
            release_dead_claims: Callable[[], None], deliver_due: Callable[[], DeliveryCounts],
            should_stop: Callable[[], bool]) -> DeliveryCounts:
    """Rows still `sending` are another sender's messages in flight (several senders share
    the issue) or a dead sender's. Wait about one message's worth of time (twice the SMTP
    timeout) for the other to record them. If it has gone meanwhile (SQLite: this sender is
    alone; PostgreSQL: a lease ran out) finish them here instead of leaving them for a
    resume."""
    patience = 2 * config.smtp.timeout
    deadline = time.monotonic() + patience
    presence.step_aside()  # nothing in flight here: do not count as a live sender
    while not should_stop() and ledger.sending_count(issue_id):
        if presence.check_alone(release_dead_claims):  # SQLite: their sender is gone
            deliver_due()
            presence.step_aside()
            deadline = time.monotonic() + patience  # a sender that started meanwhile
            continue
        if ledger.leases_claims:  # rows whose lease ran out, or a stopping sender put back
            deliver_due()
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    return ledger.counts(issue_id)


def claim_lease(config: Config) -> timedelta:
    return timedelta(seconds=config.delivery.claim_timeout_seconds)


def claims_by_lease(config: Config) -> bool:
    """See `Ledger.leases_claims`."""
    return open_ledger(config).leases_claims


def claims_retry_at(config: Config, issue_key: str) -> datetime | None:
    """PostgreSQL: when the issue's rows another sender holds (`sending`) may be taken over
    by `send --resume`, by the database's clock; None when none are held (or on SQLite)."""
    ledger = open_ledger(config)
    issue = _find_issue(config, ledger, issue_key)
    if issue is None or not ledger.leases_claims:
        return None
    return ledger.claims_expire_at(issue.id, claim_lease(config))


def send_test(config: Config, rendered: RenderedIssue, address: str) -> SendOutcome:
    """One copy to `address` through the configured transport; the ledger is not touched."""
    stored, _ = normalize(address)
    recipient = Recipient(subscriber_id=0, email=stored, name=None, token="test-copy")
    transport = make_transport(config)
    try:
        return transport.send(config.newsletter.from_, stored,
                              sample_message(config, rendered, recipient))
    finally:
        transport.close()


def unfinished_issue_keys(config: Config) -> list[str]:
    """Every issue whose send started and has rows left, oldest first."""
    return [issue.rendered.period.key
            for issue in open_ledger(config).unfinished_issues(audience_list(config))]


def unfinished_issue_key(config: Config) -> str | None:
    """The oldest issue whose send started and has rows left (what `send --resume` takes)."""
    keys = unfinished_issue_keys(config)
    return keys[0] if keys else None


def retry_failed(config: Config, issue_key: str) -> int:
    """Put the failed rows of an issue back in the queue; returns how many."""
    ledger = open_ledger(config)
    issue = _find_issue(config, ledger, issue_key)
    if issue is None:
        raise AinewsError(f"no issue {issue_key!r} in the ledger")
    return ledger.requeue_failed(issue.id, clock.now())


def delivery_status(config: Config, issue_key: str | None) -> DeliveryCounts:
    ledger = open_ledger(config)
    if issue_key is None:
        issue = ledger.latest_issue()
        if issue is None:
            raise AinewsError("no issue has been sent yet (run `ainews send`)")
    else:
        issue = _find_issue(config, ledger, issue_key)
        if issue is None:
            raise AinewsError(f"no issue {issue_key!r} in the ledger (`ainews status` shows "
                              "the latest)")
    return ledger.counts(issue.id)
