"""What a claim works on and gives back: the row to send (`Delivery`), what became of a
claim (`Claim`, `Claimed`), and the check that a reader may still get the issue
(`DeliverableCheck`), which the subscribers room provides and the pipeline plugs in. The
claims themselves: claims.py."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import ColumnElement

from ainews_newsletter.delivery.row_updates import LockedReader
from ainews_newsletter.models import Recipient


@dataclass(frozen=True)
class Delivery:
    id: int
    recipient: Recipient
    attempts: int
    return_tag: str | None = None  # VERP tag of its return path (None: rows before 0004)


@dataclass(frozen=True)
class DeliverableCheck:
    """Whether a subscriber may still be sent to, asked inside the claim's own transaction.
    The subscribers room provides both forms; the pipeline plugs them in."""

    # SQLite: a condition on the subscriber id column, joined into the claim's UPDATE, so
    # the check costs no extra statement and runs under the claim's write lock.
    clause: Callable[[ColumnElement[int]], ColumnElement[bool]]
    # PostgreSQL: a read of the subscriber that locks the row FOR SHARE until the claim
    # commits, so an unsubscribe lands either before the check or after the claim; folded
    # into the claim's statement (row_updates.claim_lowest_admitted).
    locked_reader: LockedReader


class Claim(enum.Enum):
    CLAIMED = "claimed"  # `sending`, committed: send it
    TAKEN = "taken"  # not due any more: another sender has it, or it was recorded
    LEFT = "left"  # the subscriber left before the claim: recorded failed, never sent


@dataclass(frozen=True)
class Claimed:
    """A row `claim_next` took: to send, or (`left`) already recorded as not sent."""

    delivery: Delivery
    left: bool
