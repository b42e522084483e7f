"""Clicks: where a click link leads, recording a click (people apart from link scanners), and
the counts a report shows.

Mail security scanners (Microsoft Defender Safe Links, Mimecast, Proofpoint, corporate
gateways) fetch every link of a message, often with HEAD, within seconds of its arrival.
Counting those as readers would make every issue look clicked. A click is a scanner's when
it is a HEAD request, or when it is part of a burst: three or more distinct links of one
delivery clicked within 10 s of that delivery's first click, or within its first 60 s after
it was sent. A burst is recognised at its third link, so the clicks before it in the same
burst are marked then too. People rarely open three links of one issue within seconds; when
they do, they are counted apart as well (the price of not inflating every issue)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, case, exists, func, select, update

from ainews_newsletter.database import UTCDateTime
from ainews_newsletter.delivery.tables import clicks, deliveries, issue_links
from ainews_newsletter.models import DeliveryState

BURST_LINKS = 3  # distinct links of one delivery...
BURST_AFTER_FIRST = timedelta(seconds=10)  # ...within this of its first click
BURST_AFTER_SENT = timedelta(seconds=60)  # ...or within this of its sending


@dataclass(frozen=True)
class ClickTarget:
    """A valid token's link: the URL to send the reader to, and what to record."""

    issue_id: int
    delivery_id: int
    position: int
    url: str
    sent_at: datetime | None


def click_target(engine: Engine, delivery_id: int, position: int) -> ClickTarget | None:
    """The link `position` of the issue `delivery_id` received; None when there is no such
    delivery or that issue has no such link."""
    query = (select(deliveries.c.issue_id, deliveries.c.sent_at, issue_links.c.url)
             .join(issue_links, issue_links.c.issue_id == deliveries.c.issue_id)
             .where(deliveries.c.id == delivery_id, issue_links.c.position == position))
    with engine.connect() as connection:
        row = connection.execute(query).first()
    if row is None:
        return None
    return ClickTarget(row.issue_id, delivery_id, position, row.url, row.sent_at)


def _scanner_burst(rows: Sequence[Any], sent_at: datetime | None) -> list[int] | None:
    """The ids of the delivery's clicks that form a scanner's burst, or None."""
    first = rows[0].at
    windows = [(first, first + BURST_AFTER_FIRST)]
    if sent_at is not None:
        windows.append((sent_at, sent_at + BURST_AFTER_SENT))
    for start, end in windows:
        inside = [row for row in rows if start <= row.at <= end]
        if len({row.position for row in inside}) >= BURST_LINKS:
            return [row.id for row in inside]
    return None



EARLIEST_CLICKS = 50  # more than any burst the rule looks for
def record_click(engine: Engine, target: ClickTarget, at: datetime, head: bool) -> bool:
    """Record one click at `at` (a HEAD request: `head`); True when it counts as a link
    scanner's rather than a person's."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # One delivery's clicks are judged one at a time: a scanner's parallel fetches
            # would otherwise each see only their own row and pass as a person's.
            connection.execute(select(deliveries.c.id)
                               .where(deliveries.c.id == target.delivery_id).with_for_update())
        inserted = connection.execute(clicks.insert().values(
            issue_id=target.issue_id, delivery_id=target.delivery_id,
            position=target.position, at=at, scanner=head))
        assert inserted.inserted_primary_key is not None
        own_id = inserted.inserted_primary_key[0]
        # Bursts are made of a delivery's earliest clicks: read those only, so replaying a
        # token a thousand times costs each request the same.
        rows = connection.execute(
            select(clicks.c.id, clicks.c.position, clicks.c.at)
            .where(clicks.c.delivery_id == target.delivery_id)
            .order_by(clicks.c.at, clicks.c.id).limit(EARLIEST_CLICKS)).all()
        burst = _scanner_burst(rows, target.sent_at)
        if burst is None or own_id not in burst:
            return head
        connection.execute(update(clicks).where(clicks.c.id.in_(burst)).values(scanner=True))
        return True


@dataclass(frozen=True)
class LinkClicks:
    url: str
    total: int  # people's clicks on it
    unique: int  # distinct deliveries (readers) that clicked it


@dataclass(frozen=True)
class ClickCounts:
    """People's clicks on one issue; link scanners' clicks only as `scanner`."""

    total: int
    unique: int  # distinct deliveries with at least one click
    links: tuple[LinkClicks, ...]  # every counted link, most clicked first
    scanner: int  # clicks recognised as link scanners', not in the numbers above

    def as_json(self) -> dict[str, Any]:
        """The `clicks` value of `ainews report --json`."""
        return {"total": self.total, "unique": self.unique,
                "links": [{"url": link.url, "total": link.total, "unique": link.unique}
                          for link in self.links]}


def click_counts(engine: Engine, issue_id: int) -> ClickCounts | None:
    """The issue's click counts; None when its clicks were not counted (it was frozen with
    [tracking] clicks off, so it has no counted links)."""
    people = (clicks.c.issue_id == issue_id, clicks.c.scanner.is_(False))
    with engine.connect() as connection:
        links = connection.execute(
            select(issue_links.c.position, issue_links.c.url)
            .where(issue_links.c.issue_id == issue_id)).all()
        if not links:
            return None
        total, unique = connection.execute(
            select(func.count(), func.count(func.distinct(clicks.c.delivery_id)))
            .where(*people)).one()
        per_link = {row.position: (int(row.total), int(row.unique)) for row in connection.execute(
            select(clicks.c.position, func.count().label("total"),
                   func.count(func.distinct(clicks.c.delivery_id)).label("unique"))
            .where(*people).group_by(clicks.c.position))}
        scanner = connection.execute(
            select(func.count()).select_from(clicks).where(clicks.c.issue_id == issue_id,
                                       clicks.c.scanner.is_(True))).scalar_one()
    ranked = sorted(links, key=lambda row: (-per_link.get(row.position, (0, 0))[0],
                                            row.position))
    return ClickCounts(int(total), int(unique), tuple(
        LinkClicks(row.url, *per_link.get(row.position, (0, 0))) for row in ranked),
        int(scanner))


def readers_without_clicks(engine: Engine, issues: int) -> dict[int, datetime]:
    """The readers (subscriber ids) whose last `issues` issues had no click of theirs, each
    with the time the oldest of those issues was sent to them. Only issues whose clicks
    were counted (frozen with [tracking] clicks on: they have counted links) and messages
    that went out (state sent) count; a link scanner's click is no reader's. Someone sent
    fewer such issues is not named: there is too little to tell."""
    counted = select(issue_links.c.issue_id).distinct()
    ranked = (select(deliveries.c.id, deliveries.c.subscriber_id, deliveries.c.sent_at,
                     func.row_number().over(partition_by=deliveries.c.subscriber_id,
                                            order_by=(deliveries.c.sent_at.desc(),
                                                      deliveries.c.id.desc())).label("recency"))
              .where(deliveries.c.state == DeliveryState.SENT.value,
                     deliveries.c.issue_id.in_(counted))
              .subquery())
    clicked = exists().where(clicks.c.delivery_id == ranked.c.id, clicks.c.scanner.is_(False))
    query = (select(ranked.c.subscriber_id,
                    func.min(ranked.c.sent_at, type_=UTCDateTime()).label("since"))
             .where(ranked.c.recency <= issues)
             .group_by(ranked.c.subscriber_id)
             .having(func.count() == issues,
                     func.sum(case((clicked, 1), else_=0)) == 0))
    with engine.connect() as connection:
        return {int(row.subscriber_id): row.since for row in connection.execute(query)}
