"""List hygiene, for `ainews subscribers prune` and the scheduler: sign-ups never confirmed
expire, and readers who stopped clicking are found and, when the operator says so, taken off
the list. Crosses two rooms: the subscribers (who is pending or active) and the ledger (which
issues each reader was sent, and their clicks)."""

from __future__ import annotations

from ainews_newsletter import clock
from ainews_newsletter.config import Config
from ainews_newsletter.database import engine_for, ensure_schema
from ainews_newsletter.delivery.clickstats import readers_without_clicks
from ainews_newsletter.errors import ConfigError
from ainews_newsletter.models import SubscriberStatus
from ainews_newsletter.pipeline.issue import open_subscribers
from ainews_newsletter.subscribers.hygiene import Reader, active_readers, expire_pending

# The event source of what these commands change: why it happened, not who typed it.
EXPIRY_SOURCE = "unconfirmed"
INACTIVE_SOURCE = "inactive"


def expire_unconfirmed(config: Config) -> list[Reader]:
    """Remove the pending sign-ups older than [subscribers] unconfirmed_days (counted from
    each one's last sign-up); returns them."""
    engine = engine_for(config.database_url)
    return expire_pending(engine, config.subscribers.unconfirmed_days, EXPIRY_SOURCE,
                          clock.now())


def inactive_readers(config: Config, issues: int) -> list[Reader]:
    """The active readers with no click in the last `issues` issues sent to them; a
    ConfigError when clicks are not counted (then nobody could be told from an inactive
    reader)."""
    if not config.tracking.clicks:
        raise ConfigError("clicks are not counted ([tracking] clicks is off), so there is no "
                          "way to tell who stopped reading: --inactive-issues needs "
                          "[tracking] clicks = true and issues sent since")
    engine = engine_for(config.database_url)
    ensure_schema(engine)
    quiet = readers_without_clicks(engine, issues)
    # SQLite hands a deleted row's id to the next new row: issues sent before a reader's row
    # was made went to somebody else.
    return [reader for reader in active_readers(engine, quiet)
            if quiet[reader.id] >= reader.created_at]


def unsubscribe_inactive(config: Config, readers: list[Reader]) -> int:
    """Unsubscribe these readers (event source "inactive"); returns how many changed.
    Unsubscribed rather than removed: the row keeps an import from quietly adding them back,
    and they can still come back themselves through the sign-up form (double opt-in), which
    a suppression entry would refuse them."""
    store = open_subscribers(config)
    changed = 0
    for reader in readers:
        found = store.get(reader.email)
        if found is not None and found.status is SubscriberStatus.ACTIVE:
            changed += store.set_status(found, SubscriberStatus.UNSUBSCRIBED,
                                        source=INACTIVE_SOURCE)
    return changed
