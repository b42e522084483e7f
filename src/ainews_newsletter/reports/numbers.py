"""What happened to one issue and to the list, as plain data with the rates and warnings a
sender needs: Gmail and Yahoo want complaints under 0.1 % (never 0.3 %), and a bounce rate
over 2 % says the list has gone stale."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

COMPLAINT_WARN = 0.001  # Google's bulk-sender guidance: stay under 0.1 %…
COMPLAINT_LIMIT = 0.003  # …and never reach 0.3 %, or mail goes to spam
BOUNCE_WARN = 0.02


@dataclass(frozen=True)
class LinkClicks:
    url: str
    total: int
    unique: int


@dataclass(frozen=True)
class Clicks:
    total: int
    unique: int
    links: tuple[LinkClicks, ...] = ()
    scanner: int = 0  # fetches by security scanners, not counted above


@dataclass(frozen=True)
class IssueNumbers:
    issue: str
    subject: str
    audience: int
    sent: int
    failed: int
    deferred: int
    queued: int
    sending: int
    bounces_hard: int
    bounces_soft: int
    complaints: int
    unsubscribes: int
    clicks: Clicks | None  # None: click tracking was off for this issue
    started: datetime | None  # the audience snapshot: the send began
    finished: datetime | None  # the last message accepted
    timeline: tuple[tuple[datetime, int], ...] = ()  # accepted per minute
    # Readers whose delivery a relay provider confirmed by webhook (0 without a provider).
    delivered: int = 0
    # Events per reporter ("mail", or the provider's name) and kind.
    reported_by: tuple[tuple[str, tuple[tuple[str, int], ...]], ...] = ()

    def _share(self, count: int) -> float:
        return count / self.sent if self.sent else 0.0

    @property
    def rates(self) -> dict[str, float]:
        """Bounces as a share of the messages tried (a refusal while sending is a bounce that
        never reached `sent`); complaints and unsubscribes as a share of those delivered."""
        tried = self.sent + self.failed
        bounced = self.bounces_hard + self.bounces_soft
        return {"bounce": bounced / tried if tried else 0.0,
                "complaint": self._share(self.complaints),
                "unsubscribe": self._share(self.unsubscribes)}

    @property
    def per_second(self) -> float | None:
        if self.started is None or self.finished is None or not self.sent:
            return None
        seconds = (self.finished - self.started).total_seconds()
        return round(self.sent / seconds, 1) if seconds > 0 else None

    @property
    def in_progress(self) -> bool:
        """Messages still going out now (deferred ones wait minutes to days for a retry)."""
        return bool(self.queued or self.sending)


def warnings(numbers: IssueNumbers) -> list[str]:
    """Where a rate passes what providers tolerate, with what to do about it."""
    rates, found = numbers.rates, []
    if rates["complaint"] >= COMPLAINT_LIMIT:
        found.append(f"complaint rate {rates['complaint']:.2%} is at or over 0.3 %: Gmail and "
                     "Yahoo send such mail to spam. Send only to people who asked, make the "
                     "unsubscribe link easy to find, and pause until the rate falls")
    elif rates["complaint"] >= COMPLAINT_WARN:
        found.append(f"complaint rate {rates['complaint']:.2%} is over 0.1 %: keep it under; "
                     "check that every address asked for the newsletter (double opt-in) "
                     "and that the sender name is one readers recognise")
    if rates["bounce"] > BOUNCE_WARN:
        found.append(f"bounce rate {rates['bounce']:.2%} is over 2 %: the list holds dead "
                     "addresses. Bounced ones are suppressed already; if you imported old "
                     "addresses, re-confirm them before the next issue")
    return found


def issue_json(numbers: IssueNumbers) -> dict[str, Any]:
    clicks = None if numbers.clicks is None else {
        "total": numbers.clicks.total, "unique": numbers.clicks.unique,
        "links": [{"url": link.url, "total": link.total, "unique": link.unique}
                  for link in numbers.clicks.links],
        "scanner": numbers.clicks.scanner}
    return {
        "issue": numbers.issue, "subject": numbers.subject, "audience": numbers.audience,
        "sent": numbers.sent, "failed": numbers.failed, "deferred": numbers.deferred,
        "bounces": {"hard": numbers.bounces_hard, "soft": numbers.bounces_soft},
        "complaints": numbers.complaints, "unsubscribes": numbers.unsubscribes,
        "clicks": clicks, "rates": {name: round(rate, 6) for name, rate in numbers.rates.items()},
        "started": numbers.started.isoformat() if numbers.started else None,
        "finished": numbers.finished.isoformat() if numbers.finished else None,
        "per_second": numbers.per_second, "warnings": warnings(numbers),
        "delivered": numbers.delivered,
        "reported_by": {who: dict(kinds) for who, kinds in numbers.reported_by},
    }




@dataclass(frozen=True)
class GrowthWeek:
    week: str  # ISO week in the newsletter timezone, e.g. 2026-W47
    start: date
    counts: dict[str, int] = field(default_factory=dict)
    total: int = 0  # on the list (active or awaiting confirmation) at the week's end

    @property
    def left(self) -> int:
        return sum(self.counts.get(kind, 0) for kind in ("unsubscribed", "bounced",
                                                           "complained", "removed"))

    @property
    def net(self) -> int:
        """Joined and came back, minus left: the change in `total` over the week."""
        return self.counts.get("joined", 0) + self.counts.get("resubscribed", 0) - self.left


def growth(weeks: list[tuple[str, date, dict[str, int]]], total_now: int) -> list[GrowthWeek]:
    """Oldest first; each week's total walks back from today's by the later weeks' net."""
    built = [GrowthWeek(week, start, counts) for week, start, counts in weeks]
    total, result = total_now, []
    for week in reversed(built):
        result.append(GrowthWeek(week.week, week.start, week.counts, total))
        total -= week.net
    return list(reversed(result))


def growth_json(weeks: list[GrowthWeek]) -> dict[str, Any]:
    return {"weeks": [{"week": w.week, "joined": w.counts.get("joined", 0),
                       "confirmed": w.counts.get("confirmed", 0),
                       "unsubscribed": w.counts.get("unsubscribed", 0),
                       "bounced": w.counts.get("bounced", 0),
                       "complained": w.counts.get("complained", 0),
                       "net": w.net, "total": w.total} for w in weeks]}
