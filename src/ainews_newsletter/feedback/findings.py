"""What a returned message says, as plain data: the contract between the parser (which only
reads mail) and the pipeline (which matches reports to deliveries and applies the policy)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class FeedbackKind(enum.StrEnum):
    HARD = "hard"  # the address does not exist: user unknown, host unknown, has moved (5.1.x)
    SOFT = "soft"  # failed for another reason: mailbox full, blocked, spam-filtered, expired…
    COMPLAINT = "complaint"  # the reader marked our mail as spam (ARF, JMRP) or opted out
    AUTOREPLY = "autoreply"  # out-of-office and other automatic answers: not a failure
    OTHER = "other"  # a delay warning, a "delivered" DSN, ordinary mail: nothing to do
    # From providers' webhooks only: a delivery the provider confirms (reports count it,
    # nothing changes), and a click on the provider's own unsubscribe link.
    DELIVERED = "delivered"
    UNSUBSCRIBE = "unsubscribe"

    @property
    def is_failure(self) -> bool:
        return self in (FeedbackKind.HARD, FeedbackKind.SOFT)


@dataclass(frozen=True)
class FailedRecipient:
    """One recipient a report is about. For complaints `email` may be empty (redacted)."""
    email: str  # lower-cased domain, as found; "" when the report does not reveal it
    kind: FeedbackKind  # this recipient's fate (a DSN may mix hard, soft and delayed)
    status: str = ""  # RFC 3463 enhanced status, e.g. "5.1.1"; "" when none was given
    action: str = ""  # RFC 3464 Action: failed, delayed, delivered, relayed, expanded
    diagnostic: str = ""  # the server's words (Diagnostic-Code or the prose), one line


@dataclass(frozen=True)
class Returned:
    """Identifiers found in the copy of our message the report carries (whole message, or
    only its headers), used to find the delivery even when the recipient is redacted."""
    message_ids: tuple[str, ...] = ()  # Message-ID values, with angle brackets
    return_paths: tuple[str, ...] = ()  # Return-Path / envelope-from addresses, bare
    unsubscribe_urls: tuple[str, ...] = ()  # every URL or mailto in List-Unsubscribe


@dataclass(frozen=True)
class FeedbackReport:
    """One returned message, parsed. `kind` is the message's verdict: a DSN naming several
    recipients with different fates takes the worst (hard > soft > other); each recipient
    keeps its own kind and status."""
    source: str  # where it came from: a path, "path:3" for the third message of an mbox, "-"
    kind: FeedbackKind
    recipients: tuple[FailedRecipient, ...] = ()
    feedback_type: str | None = None  # ARF Feedback-Type (abuse, opt-out, …) for complaints
    message_id: str | None = None  # the report's own Message-ID (dedup key), with <>
    digest: str = ""  # sha256 hex of the raw bytes (dedup key when there is no Message-ID)
    # Addresses the report was delivered to (To, Delivered-To, X-Original-To, Envelope-To,
    # X-Failed-Recipients excluded): where a VERP tag is found.
    sent_to: tuple[str, ...] = ()
    returned: Returned = field(default_factory=Returned)
    subject: str = ""
    date: str = ""  # the report's Date: header as written ("" when absent)
