"""The subscriber store (SQLAlchemy Core): the list's writes, on top of its reads
(queries.py). Every write is one transaction: a failure leaves the list as it was, and
every change writes its event (history.py) in that transaction. An unsubscribe is never
undone by an import, and an address on the suppression list is never made active again
except by `resubscribe`."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update

from ainews_newsletter import clock
from ainews_newsletter.database import insert_ignoring_conflicts
from ainews_newsletter.errors import SubscriberError
from ainews_newsletter.models import Subscriber, SubscriberStatus
from ainews_newsletter.subscribers import consent_records, history
from ainews_newsletter.subscribers.addresses import normalize
from ainews_newsletter.subscribers.consent_records import Agreement
from ainews_newsletter.subscribers.erased import REFUSED, check_erase_key, erased_among, lift_erased
from ainews_newsletter.subscribers.history import Attribution, change_kind, record
from ainews_newsletter.subscribers.names import clean_name
from ainews_newsletter.subscribers.queries import SubscriberQueries
from ainews_newsletter.subscribers.schema import lists, memberships, subscribers, suppressions
from ainews_newsletter.subscribers.tokens import new_token


class SubscriberStore(SubscriberQueries):
    """The subscriber list: its reads (SubscriberQueries) and its writes."""

    def __init__(self, engine: Engine, default_list: str = "newsletter",
                 allow_test: bool = False) -> None:
        super().__init__(engine, default_list, allow_test)
        # Who `unsubscribe_token` says asked, and the issue: the web sets it per request
        # (it knows which button was pressed and asks the ledger for the issue).
        self.attribution = Attribution("one-click")

    # -- lists ----------------------------------------------------------------------------

    def add_list(self, name: str, description: str | None = None) -> None:
        name = name.strip()
        if not name or len(name) > 100 or ";" in name:
            raise SubscriberError("a list name needs 1 to 100 characters and no ';'")
        with self.engine.begin() as connection:
            if connection.execute(select(lists.c.id).where(lists.c.name == name)).first():
                raise SubscriberError(f"list {name!r} exists already")
            connection.execute(insert(lists).values(name=name, description=description,
                                                    created_at=clock.now()))

    def remove_list(self, name: str) -> int:
        """Delete a list and its memberships (not the subscribers). Returns members it had."""
        with self.engine.begin() as connection:
            list_id = self.list_id(connection, name)
            members = connection.execute(select(func.count()).select_from(memberships)
                                         .where(memberships.c.list_id == list_id)).scalar_one()
            connection.execute(delete(memberships).where(memberships.c.list_id == list_id))
            connection.execute(delete(lists).where(lists.c.id == list_id))
        return int(members)

    # -- one subscriber -------------------------------------------------------------------

    def add(self, address: str, name: str | None = None, list_name: str | None = None,
            status: SubscriberStatus = SubscriberStatus.ACTIVE, source: str = "cli",
            allow_suppressed: bool = False, force_erased: bool = False,
            agreement: Agreement | None = None, language: str | None = None,
            set_language: bool = False) -> Subscriber:
        """Add a subscriber to a list (the default list when None). A known address is added
        to the list; being on it already is an error, and so is a suppressed address, and an
        erased one unless `force_erased` (which lifts its mark).

        In the same transaction, so a crash leaves all or nothing: a new row's consent
        record (`agreement`: given now, confirmed now if it arrives active; a known address
        keeps its own) and, with `set_language`, the reader's `language` (a canonical tag
        the caller checked; None clears it)."""
        given, normalized = normalize(address, allow_test=self.allow_test)
        now = clock.now()
        with self.engine.begin() as connection:
            list_id = self.list_id(connection, list_name)
            reason = connection.execute(select(suppressions.c.reason).where(
                suppressions.c.email_normalized == normalized)).scalar()
            if reason is not None and not allow_suppressed:
                raise SubscriberError(f"{given!r} is on the suppression list ({reason}); if "
                                      "they asked to come back: `ainews subscribers "
                                      f"resubscribe {given}`")
            if not allow_suppressed and not force_erased:
                check_erase_key(connection, self.erase_key)
            if reason is None and self.erase_key is not None and not allow_suppressed:
                if force_erased:
                    lift_erased(connection, self.erase_key, [normalized])
                elif erased_among(connection, self.erase_key, [normalized]):
                    raise SubscriberError(f"{given!r} was {REFUSED}; to add it anyway: "
                                          "--force-erased")
            row = connection.execute(select(subscribers.c.id, subscribers.c.status).where(
                subscribers.c.email_normalized == normalized)).first()
            if row is None:
                subscriber_id = connection.execute(insert(subscribers).values(
                    email=given, email_normalized=normalized, name=clean_name(name),
                    status=status.value, token=new_token(), source=source[:64],
                    created_at=now, updated_at=now,
                    confirmed_at=now if status is SubscriberStatus.ACTIVE else None,
                )).inserted_primary_key[0]  # type: ignore[index]
                history.arrived(connection, subscriber_id, status, source, now)
                if agreement is not None:
                    consent_records.record(
                        connection, subscriber_id, agreement, now,
                        now if status is SubscriberStatus.ACTIVE else None)
            else:
                subscriber_id = row.id
                member = connection.execute(select(memberships.c.list_id).where(
                    memberships.c.list_id == list_id,
                    memberships.c.subscriber_id == subscriber_id)).first()
                if member is not None:
                    raise SubscriberError(f"{given!r} is already on list "
                                          f"{list_name or self.default_list!r} "
                                          f"(status {row.status})")
            insert_ignoring_conflicts(connection, memberships, [{
                "list_id": list_id, "subscriber_id": subscriber_id, "created_at": now}])
            if set_language:
                connection.execute(update(subscribers).where(subscribers.c.id == subscriber_id)
                                   .values(language=language, updated_at=now))
        return self.require(given)

    def remove(self, address: str, source: str = "cli") -> Subscriber:
        """Delete the row and its memberships. If the person had left (unsubscribed, bounced,
        complained), their address stays on the suppression list: a delete must never turn
        into a way back onto the list. Their events stay, ending in "removed" (they were on
        the list) or "erased" (they had left: the list's size does not change)."""
        found = self.require(address)
        with self.engine.begin() as connection:
            record(connection, found.id, "erased" if found.status.has_left else "removed",
                   source)
            if found.status.has_left:
                insert_ignoring_conflicts(connection, suppressions, [{
                    "email_normalized": found.email_normalized, "reason": found.status.value,
                    "created_at": clock.now()}])
            connection.execute(delete(memberships)
                               .where(memberships.c.subscriber_id == found.id))
            connection.execute(delete(subscribers).where(subscribers.c.id == found.id))
        return found

    def set_status(self, subscriber: Subscriber, status: SubscriberStatus, source: str = "cli",
                   issue_id: int | None = None) -> bool:
        """Active lifts the suppression (only for someone who asked to come back). A row with
        `status` already is left alone: no event, so a repeated unsubscribe counts once."""
        now = clock.now()
        values: dict[str, Any] = {"status": status.value, "updated_at": now}
        if status is SubscriberStatus.UNSUBSCRIBED:
            values["unsubscribed_at"] = now
        if status is SubscriberStatus.ACTIVE:
            values["unsubscribed_at"] = None
            values["confirmed_at"] = subscriber.confirmed_at or now
        with self.engine.begin() as connection:
            changed = connection.execute(
                update(subscribers).where(subscribers.c.id == subscriber.id,
                                          subscribers.c.status != status.value)
                .values(**values)).rowcount > 0
            kind = change_kind(subscriber.status, status)
            if changed and kind is not None:
                record(connection, subscriber.id, kind, source, issue_id, now)
            if status is SubscriberStatus.ACTIVE:
                connection.execute(delete(suppressions).where(
                    suppressions.c.email_normalized == subscriber.email_normalized))
        return changed

    def unsubscribe(self, address: str, source: str = "cli",
                    issue_id: int | None = None) -> Subscriber:
        """Keep the row, mark it unsubscribed: later imports cannot bring it back."""
        found = self.require(address)
        if found.status is not SubscriberStatus.UNSUBSCRIBED:
            self.set_status(found, SubscriberStatus.UNSUBSCRIBED, source, issue_id)
        return self.require(address)

    def resubscribe(self, address: str) -> Subscriber:
        """Make the subscriber active again and lift any suppression: only for someone who
        asked to come back. An address whose row was removed (only its suppression is left)
        comes back as a new active subscriber of the default list."""
        found = self.get(address)
        if found is None:
            _, normalized = normalize(address, allow_test=True)  # finding a row: any stored address
            with self.engine.begin() as connection:
                lifted = connection.execute(delete(suppressions).where(
                    suppressions.c.email_normalized == normalized)).rowcount
            if not lifted:
                raise SubscriberError(f"no subscriber with address {address.strip()!r}")
            return self.add(address)
        self.set_status(found, SubscriberStatus.ACTIVE)  # "resubscribed" (or "confirmed")
        return self.require(address)

    def set_language(self, subscriber_id: int, language: str | None) -> bool:
        """The reader's own language (a canonical BCP 47 tag the caller checked), or None
        for the newsletter's. Whether the row was there."""
        with self.engine.begin() as connection:
            return bool(connection.execute(update(subscribers).where(
                subscribers.c.id == subscriber_id).values(
                    language=language, updated_at=clock.now())).rowcount)

    def mark_left(self, subscriber_id: int, status: SubscriberStatus,
                  issue_id: int | None = None) -> bool:
        """The feedback policy's verdict: the subscriber becomes `bounced` or `complained`
        and the address is suppressed (an import never brings it back). Nothing changes
        for someone who has left already. True if this call changed them."""
        assert status.has_left and status is not SubscriberStatus.UNSUBSCRIBED
        now = clock.now()
        with self.engine.begin() as connection:
            row = connection.execute(select(subscribers.c.status, subscribers.c.email_normalized)
                                     .where(subscribers.c.id == subscriber_id)).first()
            if row is None or SubscriberStatus(row.status).has_left:
                return False
            # Guarded: a refusal hook and an ingest acting at once change (and record) once.
            left = [s.value for s in SubscriberStatus if s.has_left]
            changed = connection.execute(
                update(subscribers).where(subscribers.c.id == subscriber_id,
                                          subscribers.c.status.not_in(left))
                .values(status=status.value, updated_at=now)).rowcount
            if not changed:
                return False
            insert_ignoring_conflicts(connection, suppressions, [{
                "email_normalized": row.email_normalized, "reason": status.value,
                "created_at": now}])
            record(connection, subscriber_id, status.value,
                   "bounce" if status is SubscriberStatus.BOUNCED else "complaint", issue_id, now)
        return True

    def mark_unsubscribed(self, subscriber_id: int, source: str,
                          issue_id: int | None = None) -> bool:
        """An unsubscribe heard from elsewhere (a click on a mail provider's own unsubscribe
        link, reported by its webhook), put down to `source` and the issue. Nothing changes
        for someone who has left already. True if this call changed them."""
        now = clock.now()
        left = [s.value for s in SubscriberStatus if s.has_left]
        with self.engine.begin() as connection:
            row = connection.execute(select(subscribers.c.status)
                                     .where(subscribers.c.id == subscriber_id)).first()
            if row is None or SubscriberStatus(row.status).has_left:
                return False
            changed = connection.execute(
                update(subscribers).where(subscribers.c.id == subscriber_id,
                                          subscribers.c.status.not_in(left))
                .values(status=SubscriberStatus.UNSUBSCRIBED.value, unsubscribed_at=now,
                        updated_at=now)).rowcount
            kind = change_kind(SubscriberStatus(row.status), SubscriberStatus.UNSUBSCRIBED)
            if changed and kind is not None:
                record(connection, subscriber_id, kind, source, issue_id, now)
        return bool(changed)

    def set_name(self, subscriber_id: int, name: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(update(subscribers).where(subscribers.c.id == subscriber_id)
                               .values(name=name, updated_at=clock.now()))

    def set_lists(self, address: str, names: Collection[str]) -> Subscriber:
        """Exactly these lists (unknown names are an error); the preferences page."""
        found = self.require(address)
        now = clock.now()
        with self.engine.begin() as connection:
            ids = [self.list_id(connection, name) for name in names]
            connection.execute(delete(memberships).where(
                memberships.c.subscriber_id == found.id))
            insert_ignoring_conflicts(connection, memberships, [
                {"list_id": list_id, "subscriber_id": found.id, "created_at": now}
                for list_id in ids])
        return self.require(address)

    def unsubscribe_token(self, token: str) -> Subscriber | None:
        """The one-click path: unsubscribe whoever holds `token`; idempotent. Its event:
        `self.attribution`."""
        with self.engine.connect() as connection:
            row = connection.execute(select(subscribers.c.email)
                                     .where(subscribers.c.token == token)).first()
        return None if row is None else self.unsubscribe(
            row.email, self.attribution.source, self.attribution.issue_id)
