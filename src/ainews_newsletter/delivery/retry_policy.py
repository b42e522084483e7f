"""The retry policy that turns a server's answer for a delivery row into its next state,
and the statement that records that answer (claims.py runs it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Update

from ainews_newsletter.delivery.provider_ids import provider_message_id
from ainews_newsletter.delivery.redaction import scrubbed
from ainews_newsletter.delivery.row_updates import (
    RECORD,
    RECORD_RELAY,
    RECORD_RELAY_SENT_WITH_ID,
    RECORD_SENT_WITH_ID,
)
from ainews_newsletter.models import DeliveryState, SendOutcome


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    base_seconds: int
    max_seconds: int
    give_up_after: timedelta = timedelta(hours=24)  # counted from the audience snapshot

    def delay(self, attempts: int) -> timedelta:
        """Exponential backoff: base, 2 * base, 4 * base … capped at max."""
        return timedelta(seconds=min(self.max_seconds, self.base_seconds * 2 ** (attempts - 1)))




def next_state(attempts_before: int, outcome: SendOutcome, now: datetime, policy: RetryPolicy,
               started: datetime | None) -> tuple[DeliveryState, datetime | None]:
    """The state a server's answer leads to: a 4xx becomes deferred with backoff, or failed
    once max_attempts is used up or the next try would fall after give_up_after (counted
    from `started`); and when the next try is due."""
    attempts = attempts_before + 1
    if outcome.state is not DeliveryState.DEFERRED:
        return outcome.state, None
    next_attempt = now + policy.delay(attempts)
    too_late = started is not None and next_attempt > started + policy.give_up_after
    if attempts >= policy.max_attempts or too_late:
        return DeliveryState.FAILED, None
    return DeliveryState.DEFERRED, next_attempt


def answer_statement(row_id: int, attempts_before: int, outcome: SendOutcome, now: datetime,
                     policy: RetryPolicy, started: datetime | None,
                     ) -> tuple[DeliveryState, Update, dict[str, Any]]:
    """The state a server's answer for a row leads to (`next_state`), and the statement and
    values that record it: the reply, and when sent, the relay's id for the message if the
    reply names one (provider_ids.py)."""
    state, next_attempt = next_state(attempts_before, outcome, now, policy, started)
    sent = state is DeliveryState.SENT
    provider_id = provider_message_id(outcome.reply) if sent else ""
    values = {"row_id": row_id, "claimed_attempts": attempts_before + 1,
              "new_state": state.value, "code": outcome.code,
              "reply": outcome.reply[:1000], "erased_reply": scrubbed(outcome.reply),
              "next_at": next_attempt, "now": now,
              "sent": now if sent else None}
    statement = RECORD_SENT_WITH_ID if provider_id else RECORD
    if outcome.relay is not None:
        statement = RECORD_RELAY_SENT_WITH_ID if provider_id else RECORD_RELAY
        values["relay_name"] = outcome.relay
    if provider_id:
        values["provider_id"] = provider_id
    return state, statement, values
