"""A mail provider's events (parsed from its webhook body by feedback/webhooks/) → stored
feedback events → the one policy, like the bounces that come back by mail.

Each event is matched to the delivery it is about, strongest first: our tag in the
provider's metadata (added when [smtp] provider names the relay), the provider's message id
from the relay's acceptance reply (stored per delivery), our Message-ID where the event
carries the message's headers, and last its recipient having been sent an issue within
[bounces] match_days. An event that matches no delivery of ours is stored as unmatched and
changes nobody. Every event of one body is stored in one transaction, each once (the
provider's event id is the key): a retry or a replay of the same body never acts twice."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from ainews_newsletter import clock
from ainews_newsletter.config import Config
from ainews_newsletter.delivery.lookup import SentDelivery
from ainews_newsletter.errors import AinewsError
from ainews_newsletter.feedback.events import FeedbackEvent, event_key
from ainews_newsletter.feedback.webhooks.provider_event import ProviderEvent
from ainews_newsletter.pipeline.erasure import unnamer
from ainews_newsletter.pipeline.feedback import FeedbackRecorder, IngestSummary, Recorded


class _Matcher:
    """The four ways to a delivery, each looked up once for the whole body."""

    def __init__(self, recorder: FeedbackRecorder, events: Sequence[ProviderEvent]) -> None:
        self.recorder = recorder
        lookup = recorder.lookup
        self.by_tag = lookup.by_tags({event.tag for event in events if event.tag})
        self.by_provider_id = lookup.by_provider_message_ids(
            {event.provider_message_id for event in events if event.provider_message_id})
        self.by_message_id = lookup.by_message_ids(
            {event.message_id for event in events if event.message_id})
        self.since = clock.now() - timedelta(days=recorder.config.bounces.match_days)

    def match(self, event: ProviderEvent) -> tuple[SentDelivery | None, str]:
        if event.tag:
            found = self.by_tag.get(event.tag)
            # A tag that names no delivery of ours: another sender on the same provider
            # account (or a forgery) — never fall back to the recipient's address.
            return (found, "tag") if found is not None else (None, "unknown tag")
        if event.provider_message_id and (
                found := self.by_provider_id.get(event.provider_message_id)) is not None:
            return found, "provider-id"
        if event.message_id and (found := self.by_message_id.get(event.message_id)) is not None:
            return found, "message-id"
        return self._by_recipient(event.recipient)

    def _by_recipient(self, address: str) -> tuple[SentDelivery | None, str]:
        if not address:
            return None, "-"
        try:
            subscriber = self.recorder.store.get(address)  # compared normalised
        except AinewsError:  # not an address we could ever have mailed
            return None, "-"
        if subscriber is None:
            return None, "-"
        found = self.recorder.lookup.to_subscriber(subscriber.id, subscriber.email_normalized,
                                                   (), self.since)
        return (found, "recipient") if found is not None else (None, "-")


def record_provider_events(config: Config, provider: str, events: Sequence[ProviderEvent],
                           source: str, into: IngestSummary | None = None) -> IngestSummary:
    """Match, store (one transaction) and apply the policy to one body's events. `source`
    says where they came from: "webhook:sendgrid", or "manual:<file>" for a replay. The
    events are counted into `into` when given (a replay of several files), else into a
    summary of their own."""
    recorder = FeedbackRecorder(config)
    recorder.finish_unapplied()
    matcher = _Matcher(recorder, events)
    now = clock.now()
    rows: list[FeedbackEvent] = []
    for event in events:
        delivery, matched_by = matcher.match(event)
        rows.append(FeedbackEvent(
            dedup_key=event_key("webhook", provider, event.event_id),
            received_at=now, kind=event.kind, email=event.recipient[:320],
            status=event.status[:32], action=event.event_type[:32],
            diagnostic=event.diagnostic, feedback_type=event.feedback_type,
            source=source, matched_by=matched_by,
            delivery_id=delivery.id if delivery else None,
            issue_id=delivery.issue_id if delivery else None,
            subscriber_id=delivery.subscriber_id if delivery else None,
            sent_at=delivery.sent_at if delivery else None,
            effect="none" if delivery else "unmatched", provider=provider,
            reported_at=event.occurred_at or None))
    summary = into if into is not None else IngestSummary(messages=1)
    # unnamer: a reader erased since the message went is not named (checked as it is stored)
    for stored, new in recorder.log.record_many(rows, unnamer(config)):
        if new:
            stored = recorder.apply_policy_once(stored)
        summary.add(Recorded(stored, new))
    return summary


def ingest_provider_files(config: Config, provider: str, paths: Sequence[str],
                          ) -> IngestSummary:
    """`ainews bounces ingest --provider NAME FILE…`: saved webhook bodies replayed through
    the same parser and matching, without a signature check (the operator vouches for the
    files), each event marked as a manual import. An event already stored (the webhook
    delivered it, or the file was read before) counts once."""
    from pathlib import Path

    from ainews_newsletter.feedback.mailfile import Unreadable
    from ainews_newsletter.feedback.webhooks import check_provider, parse_body

    check_provider(provider)  # an unknown provider: one clear error before any file is read
    limit = config.webhooks.max_body_bytes
    total = IngestSummary()
    for name in paths:
        total.messages += 1
        try:
            with Path(name).open("rb") as handle:
                body = handle.read(limit + 1)
        except OSError as exc:
            total.problems.append(Unreadable(name, f"cannot read: {exc.strerror}"))
            continue
        if len(body) > limit:
            total.problems.append(Unreadable(name, f"larger than [webhooks] max_body_bytes "
                                                   f"({limit} bytes)"))
            continue
        try:
            events = parse_body(provider, body)
        except AinewsError as exc:
            total.problems.append(Unreadable(name, str(exc)))
            continue
        record_provider_events(config, provider, events, f"manual:{name}"[:500], into=total)
    return total
