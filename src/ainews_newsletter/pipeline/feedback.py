"""The mail that comes back → events → subscriber states. The feedback room parses and
classifies; this module matches each report to the delivery it is about (ledger), stores the
event once (feedback events) and applies the one policy (subscribers), for bounce messages
and for refusals at RCPT time alike.

A report changes nobody unless it is tied to a message that really left: a VERP tag naming a
delivery, an unsubscribe token or Message-ID of ours in the returned copy, or, last, its
recipient having been sent an issue within [bounces] match_days. A report addressed to our
bounce mailbox with a tag that names no delivery is forged or stale and matches nothing; and
a message that left with a VERP return path is matched only through its tag or its token
(a genuine bounce comes to the tag), so naming a reader's address is not enough."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from ainews_newsletter import clock
from ainews_newsletter.config import Config
from ainews_newsletter.database import engine_for
from ainews_newsletter.delivery.claims import Delivery
from ainews_newsletter.delivery.lookup import DeliveryLookup, SentDelivery, tokens_in
from ainews_newsletter.errors import AinewsError, FeedbackError
from ainews_newsletter.feedback.classify import classify
from ainews_newsletter.feedback.dsn import status_in
from ainews_newsletter.feedback.events import EventLog, FeedbackEvent, event_key
from ainews_newsletter.feedback.findings import FailedRecipient, FeedbackKind, FeedbackReport
from ainews_newsletter.feedback.mailfile import MAX_BYTES, MailItem, Unreadable
from ainews_newsletter.feedback.parse import parse_message
from ainews_newsletter.feedback.verp import tag_in
from ainews_newsletter.models import SendOutcome, SubscriberStatus
from ainews_newsletter.pipeline.erasure import unnamer
from ainews_newsletter.pipeline.issue import issue_for, open_ledger, open_subscribers
from ainews_newsletter.subscribers.store import SubscriberStore

if TYPE_CHECKING:
    from ainews_newsletter.feedback.imap import ImapSettings

log = logging.getLogger("ainews.feedback")


@dataclass(frozen=True)
class Recorded:
    event: FeedbackEvent
    new: bool  # False: this message was ingested before and adds nothing


@dataclass
class IngestSummary:
    messages: int = 0
    new_events: int = 0
    repeated: int = 0  # events already stored by an earlier ingest
    unmatched: int = 0  # new events tied to no mail of ours: nobody changed
    kinds: Counter[str] = field(default_factory=Counter)  # new events by kind
    changed: Counter[str] = field(default_factory=Counter)  # bounced / complained
    problems: list[Unreadable] = field(default_factory=list)
    events: list[FeedbackEvent] = field(default_factory=list)

    def add(self, recorded: Recorded) -> None:
        if not recorded.new:
            self.repeated += 1
            return
        event = recorded.event
        self.new_events += 1
        self.kinds[event.kind.value] += 1
        self.unmatched += event.subscriber_id is None  # a welcome has no delivery row
        if event.effect in (SubscriberStatus.BOUNCED.value, SubscriberStatus.COMPLAINED.value,
                            SubscriberStatus.UNSUBSCRIBED.value):
            self.changed[event.effect] += 1
        self.events.append(event)


class FeedbackRecorder:
    """Records each returned report or refusal as feedback events matched to the delivery
    they are about, and applies the policy to the subscriber. Holds one ingest's open stores
    (engines are shared per URL, so this is cheap)."""

    def __init__(self, config: Config) -> None:
        engine = engine_for(config.database_url)
        self.config = config
        self.lookup = DeliveryLookup(engine, config.newsletter)
        self.log = EventLog(engine)
        self.store: SubscriberStore = open_subscribers(config)

    # -- matching -------------------------------------------------------------------------

    def _verp_tags(self, report: FeedbackReport) -> list[str]:
        bounces = self.config.bounces
        if bounces.address is None:
            return []
        found = (tag_in(address, bounces.address, bounces.delimiter)
                 for address in (*report.sent_to, *report.returned.return_paths))
        return [tag for tag in found if tag is not None]

    def _delivery_of_report(self, report: FeedbackReport) -> tuple[SentDelivery | None, str]:
        """The one delivery the whole report points at, and how it was found. ("unknown tag",
        None): addressed to our VERP mailbox with a tag that names nothing: trust nothing."""
        tags = self._verp_tags(report)
        for tag in tags:
            found = self.lookup.by_tag(tag)
            if found is not None:
                return found, "tag"
        if tags:
            return None, "unknown tag"
        for token in tokens_in(report.returned.unsubscribe_urls, self.config.newsletter):
            found = self.lookup.by_token(token, report.returned.message_ids)
            if found is not None:
                return found, "token"
        return None, ""

    def _match_recipient(self, report: FeedbackReport, recipient: FailedRecipient,
                         anchor: SentDelivery | None, how: str) -> tuple[SentDelivery | None, str]:
        if anchor is not None and (len(report.recipients) <= 1 or not recipient.email
                                   or recipient.email.lower() == anchor.email.lower()):
            return anchor, how  # VERP: a forwarded address still names our reader's row
        if how == "unknown tag" or not recipient.email:
            return None, how or "-"
        try:
            subscriber = self.store.get(recipient.email)  # compared normalised
        except AinewsError:  # not an address we could ever have mailed
            return None, "-"
        if subscriber is None:
            return None, "-"
        since = clock.now() - timedelta(days=self.config.bounces.match_days)
        found = self.lookup.to_subscriber(subscriber.id, subscriber.email_normalized,
                                          report.returned.message_ids, since)
        if found is None:
            return None, "-"
        if found.tagged and self.config.bounces.address is not None:
            return None, "no tag"  # it left with a VERP return path: a forgery, or misrouted
        by_id = self.lookup.message_id_of(found) in report.returned.message_ids
        return found, "message-id" if by_id else "recipient"

    # -- recording and the policy ---------------------------------------------------------

    def record_report(self, report: FeedbackReport) -> list[Recorded]:
        anchor, how = self._delivery_of_report(report)
        recipients = report.recipients or (FailedRecipient(email="", kind=report.kind),)
        identity = report.message_id or f"sha256:{report.digest}"
        recorded: list[Recorded] = []
        for index, recipient in enumerate(recipients):
            delivery, matched_by = self._match_recipient(report, recipient, anchor, how)
            kind = recipient.kind if report.recipients else report.kind
            event = FeedbackEvent(
                dedup_key=event_key(identity, str(index), recipient.email.lower()),
                received_at=clock.now(), kind=kind, email=recipient.email,
                status=recipient.status, action=recipient.action,
                diagnostic=recipient.diagnostic, feedback_type=report.feedback_type,
                source=report.source, matched_by=matched_by,
                delivery_id=delivery.id if delivery else None,
                issue_id=delivery.issue_id if delivery else None,
                subscriber_id=delivery.subscriber_id if delivery else None,
                sent_at=delivery.sent_at if delivery else None,
                effect="none" if delivery else "unmatched")
            recorded.append(self._store_and_apply(event))
        return recorded

    def record_refusal(self, delivery: Delivery, issue_id: int,
                       outcome: SendOutcome) -> Recorded:
        """A message refused for good while we sent it (5xx, or given up after deferrals):
        the same event and policy as a bounce that arrives later."""
        code = status_in(outcome.reply) or f"{str(outcome.code)[:1]}.0.0"
        event = FeedbackEvent(
            dedup_key=event_key("smtp", str(delivery.id)), received_at=clock.now(),
            kind=classify(code, f"{outcome.code} {outcome.reply}", "failed"),
            email=delivery.recipient.email, status=code, action="failed",
            diagnostic=f"{outcome.code} {outcome.reply}".strip(), feedback_type=None,
            source="smtp", matched_by="sent", delivery_id=delivery.id, issue_id=issue_id,
            subscriber_id=delivery.recipient.subscriber_id, sent_at=clock.now())
        return self._store_and_apply(event)

    def _store_and_apply(self, event: FeedbackEvent) -> Recorded:
        stored, new = self.log.record(event, unnamer(self.config))  # reader erased meanwhile?
        if new:
            stored = self.apply_policy_once(stored)
        # A repeat acts only if the first reading never got to (effect still "none": a
        # crash came between storing and acting). One that acted must not act again: the
        # reader may have come back since (`subscribers resubscribe`).
        return Recorded(stored, new)

    def apply_policy_once(self, event: FeedbackEvent) -> FeedbackEvent:
        effect = self._apply_policy(event)
        if effect is None or effect == event.effect or event.id is None:
            return event
        self.log.set_effect(event.id, effect)
        return replace(event, effect=effect)

    def finish_unapplied(self) -> int:
        """Apply the policy to stored events it never saw (see `_store_and_apply`). Returns
        how many."""
        pending = self.log.unapplied()
        for event in pending:
            self.apply_policy_once(event)
        return len(pending)

    def _apply_policy(self, event: FeedbackEvent) -> str | None:
        """What the event does to its subscriber: None when it is tied to nobody."""
        subscriber_id = event.subscriber_id
        if subscriber_id is None:
            return None
        bounces = self.config.bounces
        if event.kind is FeedbackKind.COMPLAINT:
            return self._mark_left(subscriber_id, SubscriberStatus.COMPLAINED, event.issue_id)
        if event.kind is FeedbackKind.UNSUBSCRIBE:  # the provider's own unsubscribe link
            changed = self.store.mark_unsubscribed(subscriber_id, event.provider or "provider",
                                                   event.issue_id)
            return SubscriberStatus.UNSUBSCRIBED.value if changed else "had left"
        if event.kind is FeedbackKind.HARD:
            limit, seen = self.config.hard_bounce_limit, self.log.failures(
                subscriber_id, FeedbackKind.HARD)
        elif event.kind is FeedbackKind.SOFT:
            since = clock.now() - timedelta(days=bounces.soft_window_days)
            limit, seen = bounces.soft_limit, self.log.failures(
                subscriber_id, FeedbackKind.SOFT, since)
        else:
            # auto-replies, delay warnings, "delivered" reports and providers' deliveries
            return "none"
        if seen >= limit:
            return self._mark_left(subscriber_id, SubscriberStatus.BOUNCED, event.issue_id)
        return f"counted {seen} of {limit}"

    def _mark_left(self, subscriber_id: int, status: SubscriberStatus,
               issue_id: int | None) -> str:
        if self.store.mark_left(subscriber_id, status, issue_id):
            return status.value
        return "had left"


def parse_items(items: Iterable[MailItem | Unreadable]) -> list[FeedbackReport | Unreadable]:
    """`bounces parse`: reports without side effects, problems in the same order."""
    parsed: list[FeedbackReport | Unreadable] = []
    for item in items:
        if isinstance(item, Unreadable):
            parsed.append(item)
            continue
        try:
            parsed.append(parse_message(item.raw, item.source))
        except FeedbackError as exc:
            parsed.append(Unreadable(item.source, str(exc)))
        except (ValueError, TypeError, LookupError, RecursionError, AttributeError) as exc:
            # A parser bug on one strange message must not block the mailbox behind it
            # (an IMAP folder is read oldest first): name it, move on, keep the message.
            # The caller reports it as one line (the CLI on stderr, the scheduler in its
            # log); the traceback is only for a debug log, never on a user's screen.
            log.debug("%s: the parser failed", item.source, exc_info=True)
            parsed.append(Unreadable(item.source, f"could not be parsed "
                                                  f"({exc.__class__.__name__}: {exc})"))
    return parsed


def ingest(config: Config, items: Iterable[MailItem | Unreadable],
           after_each: Callable[[MailItem | Unreadable, bool], None] | None = None
           ) -> IngestSummary:
    """Parse, match, store and apply the policy to each message. `after_each(item, ok)`
    runs once a message is safely stored (the IMAP reader moves it then)."""
    recorder = FeedbackRecorder(config)
    recorder.finish_unapplied()
    summary = IngestSummary()
    for item in items:
        summary.messages += 1
        report = parse_items([item])[0]
        if isinstance(report, Unreadable):
            summary.problems.append(report)
            if after_each is not None:
                after_each(item, False)
            continue
        for recorded in recorder.record_report(report):
            summary.add(recorded)
        if after_each is not None:
            after_each(item, True)
    return summary


def refusal_recorder(config: Config, issue_id: int) -> Callable[[Delivery, SendOutcome], None]:
    """The sender's hook for refusals during a send (delivery.send_context.Hooks.on_refused)."""
    recorder = FeedbackRecorder(config)
    recorder.finish_unapplied()

    def refused(delivery: Delivery, outcome: SendOutcome) -> None:
        try:
            recorder.record_refusal(delivery, issue_id, outcome)
        except (AinewsError, SQLAlchemyError):
            # The refusal is in the ledger already; losing its event must not stop the send.
            log.exception("could not record the refusal of %s", delivery.recipient.email)
    return refused


def feedback_events(config: Config, since: datetime | None = None) -> list[FeedbackEvent]:
    return list(EventLog(engine_for(config.database_url)).events(since=since))


def last_failure(config: Config, subscriber_id: int) -> FeedbackEvent | None:
    return EventLog(engine_for(config.database_url)).last_failure(subscriber_id)


def issue_feedback(config: Config, issue_key: str | None) -> dict[str, int]:
    """Readers of one issue (default: the latest) whose message bounced (hard or soft) or
    who complained, and the events of each kind: `ainews status`."""
    issue = issue_for(config, open_ledger(config), issue_key)
    log = EventLog(engine_for(config.database_url))
    counts = {kind.value: count for kind, count in log.subscribers_by_kind(issue.id).items()}
    return {"bounced": log.subscribers_with(issue.id, (FeedbackKind.HARD, FeedbackKind.SOFT)),
            "complained": counts.get(FeedbackKind.COMPLAINT.value, 0),
            **{kind.value: counts.get(kind.value, 0) for kind in FeedbackKind}}


@dataclass
class FetchSummary:
    ingest: IngestSummary
    moved: int
    mailbox: str  # "user@host:port/folder", for the log and the CLI


def imap_settings(config: Config) -> ImapSettings:
    """[bounces]' mailbox (also the retention's, which empties its processed folder);
    FeedbackError when it is not configured or its password is missing."""
    from ainews_newsletter.feedback.imap import ImapSettings

    bounces = config.bounces
    if not bounces.imap_configured:
        raise FeedbackError("bounces: set [bounces] imap_host and imap_user (and the password "
                            "in AINEWS_BOUNCES__PASSWORD) to fetch from a mailbox")
    if bounces.password is None:
        raise FeedbackError("bounces: the IMAP password is read from the environment only: "
                            "set AINEWS_BOUNCES__PASSWORD")
    assert bounces.imap_host is not None and bounces.imap_user is not None
    return ImapSettings(
        host=bounces.imap_host, port=bounces.imap_port_or_default, user=bounces.imap_user,
        password=bounces.password.get_secret_value(), folder=bounces.imap_folder,
        processed_folder=bounces.processed_folder, security=bounces.imap_security,
        ca_file=str(config.resolve(bounces.imap_ca_file)) if bounces.imap_ca_file else None,
        timeout=config.smtp.timeout)


def fetch(config: Config, limit: int = 500) -> FetchSummary:
    """Read the IMAP bounce mailbox: each message is parsed and stored, then moved to the
    processed folder (retention deletes it there later). A crash between the two leaves it in
    the folder, and the next fetch reads it again without counting it twice."""
    from ainews_newsletter.feedback.imap import ImapMailbox

    bounces = config.bounces
    settings = imap_settings(config)
    moved = 0
    uids: dict[str, str] = {}
    with ImapMailbox(settings) as mailbox:

        def items() -> Iterator[MailItem | Unreadable]:
            for mail in mailbox.messages(limit, MAX_BYTES):  # one message in memory at a time
                source = f"imap:{bounces.imap_folder}/{mail.uid}"
                uids[source] = mail.uid
                if mail.size:
                    yield Unreadable(source, f"larger than {MAX_BYTES // 2**20} MB: not read")
                else:
                    yield MailItem(source, mail.raw)

        def move(item: MailItem | Unreadable, ok: bool) -> None:
            nonlocal moved
            mailbox.mark_processed(uids[item.source])  # unreadable too: looked at, kept
            moved += 1

        summary = ingest(config, items(), after_each=move)
    where = f"{bounces.imap_user}@{bounces.imap_host}:{settings.port}/{bounces.imap_folder}"
    return FetchSummary(summary, moved, where)
