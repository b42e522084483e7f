"""Deliver: plan a send, freeze the issue, snapshot the audience and hand it to the sender,
then report what the ledger holds."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ainews_newsletter import clock, language_tags, translations
from ainews_newsletter.config import Config
from ainews_newsletter.database import sqlite_path
from ainews_newsletter.delivery.claims import DeliverableCheck, RetryPolicy
from ainews_newsletter.delivery.clicklinks import ClickLinks, post_links
from ainews_newsletter.delivery.clicktokens import ClickTokens
from ainews_newsletter.delivery.ledger import IssueRecord, Ledger
from ainews_newsletter.delivery.presence import SenderPresence, sender_presence
from ainews_newsletter.delivery.send_context import Hooks, Progress, SendSettings
from ainews_newsletter.delivery.thread_sender import deliver
from ainews_newsletter.delivery.transports import (
    ConsoleTransport,
    FileTransport,
    MemoryTransport,
    SmtpTransport,
    Transport,
)
from ainews_newsletter.errors import AinewsError
from ainews_newsletter.models import (
    DeliveryCounts,
    PostRef,
    Recipient,
    RenderedIssue,
    SendOutcome,
    Window,
)
from ainews_newsletter.pipeline.editions import (
    Editions,
    audience_by_language,
    frozen_renderings,
    lint_editions,
    other_languages,
)
from ainews_newsletter.pipeline.feedback import refusal_recorder
from ainews_newsletter.pipeline.issue import (
    audience_list,
    carried_refs,
    compose_selection,
    find_issue_by_key,
    issue_for,
    lint,
    message_signer,
    open_ledger,
    open_subscribers,
    render_composed,
    resolve_period,
    sample_message,
    select_posts,
)
from ainews_newsletter.pipeline.relaying import (
    message_provider,
    relay_chain,
    relay_transports,
    send_pacing,
)
from ainews_newsletter.render.lint import Finding
from ainews_newsletter.subscribers.addresses import normalize
from ainews_newsletter.subscribers.queries import (
    deliverable_reader,
    deliverable_subscriber,
    still_listed,
)


def make_transport(config: Config) -> Transport:
    backend = config.delivery.backend
    if backend == "file":
        return FileTransport(config.resolve(config.delivery.out_dir))
    if backend == "console":
        return ConsoleTransport()
    if backend == "memory":
        return MemoryTransport()
    if config.smtp.relays:
        return relay_chain(config)
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
    # The issue in its readers' other languages, each rendered at most once (editions.py).
    editions: Editions = field(default_factory=lambda: Editions(translations.SOURCE))


def plan_send(config: Config, window: Window, force: bool = False,
              issue_key: str | None = None) -> SendPlan:
    """What a send would do. With `issue_key`, the frozen issue of that key (to resume it);
    else the issue of the window, frozen already or to be built now."""
    translations.check_catalogs(config.newsletter.language, config.locale_dir)
    if config.tracking.clicks:
        click_tokens(config)  # said before the confirmation question, not after it
    ledger = open_ledger(config)
    if issue_key is None and window == Window() and config.posts.window == "since-last-issue":
        # The next since-last-issue window starts where an unfinished issue ends: finish
        # that one first, or its queued readers would never get it.
        issue_key = unfinished_issue_key(config)
    if issue_key is not None:
        existing = find_issue_by_key(config, ledger, issue_key)
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
                        pending, existing, existing.rendered,
                        editions=Editions(existing.language))
    selection = select_posts(config, window)
    issue = compose_selection(config, selection, force)  # once: rendered here and per language
    rendered = render_composed(config, issue)
    audience = open_subscribers(config).count_recipients()
    return SendPlan(period_key, rendered.subject, rendered.post_count, audience, None,
                    rendered, carried_refs(selection),
                    Editions(config.newsletter.language, issue))


def readers_by_language(config: Config, plan: SendPlan) -> dict[str, int]:
    """How many readers get each language's rendering (see editions.audience_by_language)."""
    return audience_by_language(config, plan.existing)


def lint_send(config: Config, plan: SendPlan) -> list[Finding]:
    """The lint gate before a send: the issue's own rendering, then each further language
    its readers get (rendered here once, and kept for the send)."""
    return lint(config, plan.rendered) + lint_editions(
        config, plan.editions, plan.rendered.period, plan.existing)


def click_tokens(config: Config) -> ClickTokens:
    """The signer of click links; a ConfigError saying to set AINEWS_SECRET_KEY without it."""
    secret = config.secret_key.get_secret_value() if config.secret_key else ""
    return ClickTokens(secret)


def _click_links(config: Config, ledger: Ledger, issue: IssueRecord) -> ClickLinks | None:
    """The issue's click links when it was frozen with click counts on (the frozen issue
    decides, like its HTML: a resumed send rewrites the links the first part of it did)."""
    links = ledger.issue_links(issue.id)
    if not links:
        return None
    return ClickLinks(config.newsletter.base_url, click_tokens(config), tuple(links))


class PeriodTaken(AinewsError):
    """Another run froze this period's issue first; that run sends it."""


def freeze_issue(config: Config, plan: SendPlan, only_if_new: bool = False) -> IssueRecord:
    """The plan's issue, frozen in the ledger (once per list and period). With `only_if_new`
    raises PeriodTaken when another run froze the period between the plan and now."""
    if plan.existing is not None:
        return plan.existing
    ledger = open_ledger(config)
    links = (post_links(plan.rendered, config.newsletter.base_url)
             if config.tracking.clicks else [])
    created = ledger.try_create_issue(
        audience_list(config), plan.rendered, plan.carried, clock.now(), links,
        plan.editions.language,
        renderings=plan.editions.for_audience(config, plan.rendered.period))
    if created is not None:
        return created
    if only_if_new:
        raise PeriodTaken(f"another run froze the issue for {plan.period_key} first; "
                          "it sends it, so this run does nothing")
    existing = ledger.find_issue(audience_list(config), plan.period_key)
    assert existing is not None, "the period was frozen yet has no issue"
    return existing


def tags_deliveries(config: Config) -> bool:
    """Whether each delivery row gets a return tag: it names the message in a VERP return
    path ([bounces] address) and in a relay provider's metadata header ([smtp] provider, or
    a relay's)."""
    return config.bounces.address is not None or message_provider(config) is not None


def send_settings(config: Config, clicks: ClickLinks | None = None) -> SendSettings:
    """The sender's settings from the config (`clicks`: the issue's click links, if frozen
    with them)."""
    delivery = config.delivery
    rate_per_second, max_per_hour, error_threshold = send_pacing(config)
    return SendSettings(
        policy=RetryPolicy(delivery.max_attempts, delivery.retry_base_seconds,
                           delivery.retry_max_seconds,
                           timedelta(hours=delivery.give_up_after_hours)),
        batch_size=delivery.batch_size,
        rate_per_second=rate_per_second,
        max_per_hour=max_per_hour,
        claim_lease=claim_lease(config),
        signer=message_signer(config),
        error_threshold=error_threshold,
        error_window=delivery.error_window,
        verp=((config.bounces.address, config.bounces.delimiter)
              if config.bounces.address else None),
        clicks=clicks,
        provider=message_provider(config),
    )


# Readers copied into the ledger per transaction when a send starts: fewer, larger
# transactions cost less per reader (BENCHMARKS.md, "Sending"), and a batch is idempotent
# (a crash mid-snapshot redoes only what did not commit).
SNAPSHOT_BATCH = 2000


def execute_send(config: Config, plan: SendPlan, transport: Transport | None = None,
                 on_result: Progress | None = None,
                 should_stop: Callable[[], bool] | None = None,
                 only_if_new: bool = False) -> DeliveryCounts:
    """Freeze the issue (once per list and period), snapshot the audience (once), deliver
    every due row. Safe to run again: recipients already sent are never sent again."""
    if config.tracking.clicks:
        click_tokens(config)  # no secret: stop before the issue is frozen or anyone mailed
    ledger = open_ledger(config)
    store = open_subscribers(config)
    issue = freeze_issue(config, plan, only_if_new)
    # The renderings the issue was frozen with (by this run or an earlier one): a reader's
    # row names one of them, or none (the issue's own).
    renderings = frozen_renderings(config, issue)
    clicks = _click_links(config, ledger, issue)
    if issue.snapshot_at is None:
        tagged, identifier = tags_deliveries(config), config.newsletter.list_identifier
        if ledger.copies_audience:  # SQLite: the database copies the readers itself
            ledger.copy_audience(issue.id, store.audience, clock.now(), SNAPSHOT_BATCH,
                                 tagged=tagged, list_identifier=identifier,
                                 languages=frozenset(renderings), own_language=issue.language)
        else:
            ledger.snapshot(issue.id, store.iter_recipients(batch_size=SNAPSHOT_BATCH),
                            clock.now(), SNAPSHOT_BATCH, tagged=tagged,
                            list_identifier=identifier, still_listed=still_listed,
                            languages=frozenset(renderings), own_language=issue.language)
        issue = ledger.find_issue(issue.list_id, issue.rendered.period.key) or issue
    settings = send_settings(config, clicks)
    hooks = Hooks(deliverable=DeliverableCheck(deliverable_subscriber, deliverable_reader),
                  on_result=on_result, should_stop=should_stop,
                  on_refused=refusal_recorder(config, issue.id))

    def deliver_due() -> DeliveryCounts:
        if transport is not None:  # a caller-made transport: one connection
            return deliver(issue, ledger, lambda: transport, config.newsletter, settings,
                           hooks, editions=renderings)
        # Worker processes only for SMTP: the other backends are for looking at a send
        # here (a memory outbox in a child would be lost to this process).
        workers = config.smtp.worker_processes() if config.delivery.backend == "smtp" else 1
        connections = config.smtp.connections
        transports: Callable[[], Transport] = lambda: make_transport(config)  # noqa: E731
        if config.smtp.relays and config.delivery.backend == "smtp":
            transports, workers, connections = relay_transports(config, workers)
        return deliver(issue, ledger, transports, config.newsletter,
                       settings, hooks, connections=connections,
                       workers=workers, editions=renderings)

    def release_dead_claims() -> None:
        ledger.release_claims(clock.now())

    with sender_presence(sqlite_path(config.database_url)) as presence:
        presence.check_alone(release_dead_claims)  # alone: rows left `sending` are orphans
        counts = deliver_due()
        if counts.sending:
            counts = _wait_for_rows_in_flight(config, ledger, issue.id, presence,
                                              release_dead_claims, deliver_due,
                                              should_stop or (lambda: False))
        return counts


def _wait_for_rows_in_flight(config: Config, ledger: Ledger, issue_id: int,
                             presence: SenderPresence,
                             release_dead_claims: Callable[[], None],
                             deliver_due: Callable[[], DeliveryCounts],
                             should_stop: Callable[[], bool]) -> DeliveryCounts:
    """Rows still `sending` are another sender's messages in flight (several senders share
    the issue) or a dead sender's. Wait about one message's worth of time (twice the SMTP
    timeout) for the other to record them. If it has gone meanwhile (SQLite: this sender is
    alone; PostgreSQL: a lease ran out) finish them here instead of leaving them for a
    resume."""
    wait_seconds = 2 * config.smtp.timeout
    deadline = time.monotonic() + wait_seconds
    presence.step_aside()  # nothing in flight here: do not count as a live sender
    while not should_stop() and ledger.sending_count(issue_id):
        if presence.check_alone(release_dead_claims):  # SQLite: their sender is gone
            deliver_due()
            presence.step_aside()
            deadline = time.monotonic() + wait_seconds  # a sender that started meanwhile
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
    issue = find_issue_by_key(config, ledger, issue_key)
    if issue is None or not ledger.leases_claims:
        return None
    return ledger.claims_expire_at(issue.id, claim_lease(config))


def test_copy_rendering(config: Config, plan: SendPlan,
                        language: str | None) -> tuple[str, RenderedIssue]:
    """(language, rendering) of a test copy: the issue's own, or with `language` exactly
    what a reader of that language gets (language_tags.edition_for): a frozen issue's
    stored rendering, a new issue's made now from the composed issue, or the issue's own
    when it has none nearer (as for such a reader)."""
    own = plan.editions.language if plan.existing is None else plan.existing.language
    if language is None:
        return own, plan.rendered
    tag = translations.canonical(language)  # ConfigError: not a language
    if plan.existing is not None:
        stored = frozen_renderings(config, plan.existing)
        chosen = language_tags.edition_for(tag, own, stored)
        return (own, plan.rendered) if chosen is None else (chosen, stored[chosen])
    chosen = language_tags.edition_for(tag, own, other_languages(config, own))
    if chosen is None:
        return own, plan.rendered
    # Rendered for this copy only: the send freezes the languages its readers have.
    return chosen, plan.editions.render(config, chosen, plan.rendered.period)


def send_test(config: Config, rendered: RenderedIssue, address: str,
              language: str | None = None) -> SendOutcome:
    """One copy to `address` through the configured transport; the ledger is not touched.
    `language`: the rendering's (default: [newsletter] language)."""
    stored, _ = normalize(address, allow_test=config.subscribers.allow_test_domains)
    recipient = Recipient(subscriber_id=0, email=stored, name=None, token="test-copy",
                          language=language)
    transport = make_transport(config)
    try:
        return transport.send(config.newsletter.from_, stored,
                              sample_message(config, rendered, recipient, language))
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
    issue = find_issue_by_key(config, ledger, issue_key)
    if issue is None:
        raise AinewsError(f"no issue {issue_key!r} in the ledger")
    return ledger.requeue_failed(issue.id, clock.now())


def issue_languages(config: Config, issue_key: str) -> dict[str, int]:
    """How many of the issue's readers get each language (its delivery rows)."""
    ledger = open_ledger(config)
    return audience_by_language(config, issue_for(config, ledger, issue_key))


def delivery_status(config: Config, issue_key: str | None) -> DeliveryCounts:
    ledger = open_ledger(config)
    return ledger.counts(issue_for(config, ledger, issue_key).id)
