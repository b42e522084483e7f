"""Web sign-ups, on top of the store: with double opt-in a new address waits as pending until
its confirmation link is followed; with single opt-in (our own page only) it is active at
once unless it had left. A stranger must not be able to make us mail someone who bounced,
complained or was suppressed by hand."""

from __future__ import annotations

from typing import Literal

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from ainews_newsletter import clock
from ainews_newsletter.errors import SubscriberError
from ainews_newsletter.models import Subscriber, SubscriberStatus
from ainews_newsletter.subscribers import consent_records
from ainews_newsletter.subscribers.consent_records import Agreement
from ainews_newsletter.subscribers.erased import lift_erased
from ainews_newsletter.subscribers.names import clean_name
from ainews_newsletter.subscribers.schema import subscribers
from ainews_newsletter.subscribers.store import SubscriberStore

# What a single opt-in did: "joined" (active now), "active" (was already: nothing to
# welcome), "confirm" (must confirm first: the double opt-in path).
JoinOutcome = Literal["joined", "active", "confirm"]


class SignUps:
    def __init__(self, store: SubscriberStore) -> None:
        self.store = store

    def sign_up(self, address: str, name: str | None, list_name: str | None,
                agreement: Agreement | None = None) -> Subscriber:
        """A web sign-up before confirmation: a new address is added as pending; a known one
        joins the list without changing status (the confirmation link decides). Suppressed
        addresses are not refused here: confirming proves they asked to come back. The
        `agreement` becomes the consent record (unconfirmed) of a new or not yet active
        address; an active reader's stays as it was."""
        store = self.store
        found = store.get(address)
        if found is None:
            try:
                # Pending (receives nothing) until confirmed; a suppressed address stays
                # suppressed until the confirmation (see `confirm`).
                return store.add(address, name=name, list_name=list_name,
                                 status=SubscriberStatus.PENDING, source="web",
                                 allow_suppressed=True, agreement=agreement)
            except (IntegrityError, SubscriberError):
                found = store.get(address)  # a sign-up of the same address just beat us
                if found is None:
                    raise
        if found.status is SubscriberStatus.PENDING:
            self._signed_up_again(found.id)
        if found.status is not SubscriberStatus.ACTIVE:
            self._record(found.id, agreement, confirmed=False)
        wanted = list_name or store.default_list
        if wanted not in found.lists:
            store.set_lists(found.email, (*found.lists, wanted))
        return store.require(found.email)

    def _signed_up_again(self, subscriber_id: int) -> None:
        """A pending row's updated_at is its last sign-up: unconfirmed sign-ups expire
        counted from there ([subscribers] unconfirmed_days), so someone who asks again gets
        the whole time again for the new link."""
        with self.store.engine.begin() as connection:
            connection.execute(update(subscribers).where(
                subscribers.c.id == subscriber_id,
                subscribers.c.status == SubscriberStatus.PENDING.value)
                .values(updated_at=clock.now()))

    def _record(self, subscriber_id: int, agreement: Agreement | None,
                confirmed: bool) -> None:
        """The sign-up's consent record; with single opt-in it is confirmed as given."""
        if agreement is not None:
            now = clock.now()
            consent_records.record(self.store.engine, subscriber_id, agreement, now,
                                   now if confirmed else None)

    def join_at_once(self, address: str, name: str | None,
                     list_name: str | None = None,
                     agreement: Agreement | None = None) -> JoinOutcome:
        """Single opt-in ([subscribers] double_opt_in = false, our own page only): a new or
        pending address is active at once. Not an address on the suppression list, nor one
        that left (unsubscribed, bounced, complained): a stranger must not be able to bring
        those back without their owner's click, so they take the double opt-in path."""
        store = self.store
        if store.suppression(address) is not None:
            return "confirm"
        found = store.get(address)
        if found is None:
            try:
                # Refuses a suppressed address in its own transaction (one added just now).
                store.add(address, name=name, list_name=list_name,
                          status=SubscriberStatus.ACTIVE, source="web", agreement=agreement)
                return "joined"
            except (IntegrityError, SubscriberError):
                found = store.get(address)  # a sign-up of the same address just beat us
                if found is None:
                    return "confirm"  # suppressed meanwhile
        if found.status is SubscriberStatus.ACTIVE:
            wanted = list_name or store.default_list
            if wanted not in found.lists:
                store.set_lists(found.email, (*found.lists, wanted))
            return "active"
        if found.status is SubscriberStatus.PENDING:
            self._record(found.id, agreement, confirmed=True)
            self.confirm(found.email, list_name, name)
            return "joined"
        return "confirm"

    def may_be_sent_a_confirmation(self, address: str) -> bool:
        """Whether a web sign-up may mail this address a confirmation link: not when it
        receives the newsletter already, nor when it complained, bounced or was suppressed
        by hand (a stranger must not make us mail those). Someone who unsubscribed may come
        back."""
        found = self.store.get(address)
        if found is not None and found.status in (SubscriberStatus.ACTIVE,
                                                  SubscriberStatus.COMPLAINED,
                                                  SubscriberStatus.BOUNCED):
            return False
        # "erased": its owner may come back through double opt-in (issue 29); not an erased
        # complainer, bouncer or manual suppression ("erased:complained" etc.).
        return self.store.suppression(address) in (None, "unsubscribed", "erased")

    def confirm(self, address: str, list_name: str | None = None,
                name: str | None = None) -> Subscriber:
        """The confirmation link was followed: active (and off the suppression list, since
        they asked), on `list_name`, with the name given with the sign-up being confirmed
        (not whatever an earlier, unconfirmed sign-up of the address typed). Idempotent."""
        store = self.store
        found = store.require(address)
        name = clean_name(name)
        if name and name != found.name:
            store.set_name(found.id, name)
        if found.status is not SubscriberStatus.ACTIVE:
            # "confirmed" from pending, "resubscribed" for someone who had unsubscribed
            store.set_status(found, SubscriberStatus.ACTIVE, source="web")
            consent_records.confirmed(store.engine, found.id, clock.now())
        if store.erase_key is not None:
            # Its owner asked to come back after an erase: the mark goes.
            with store.engine.begin() as connection:
                lift_erased(connection, store.erase_key, [found.email_normalized])
        wanted = list_name or store.default_list
        if wanted not in found.lists:
            store.set_lists(found.email, (*found.lists, wanted))
        return store.require(address)
