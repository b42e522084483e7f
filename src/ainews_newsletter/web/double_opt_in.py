"""The sign-up policy of `ainews serve` (double opt-in, or single opt-in on our own page when
[subscribers] double_opt_in is false): how many sign-ups a network and a mailbox may make, who
is sent a confirmation mail and what it says, and who may confirm.

The mail's words are templates the operator may override like the others:
templates/confirmation.txt.j2 (its text) and templates/confirmation_subject.txt.j2."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import jinja2
from sqlalchemy.exc import OperationalError

from ainews_newsletter import clock
from ainews_newsletter.config import Config
from ainews_newsletter.database import engine_for
from ainews_newsletter.delivery.message import notice_message
from ainews_newsletter.delivery.transports import TransportUnavailable
from ainews_newsletter.errors import AinewsError
from ainews_newsletter.models import DeliveryState, SendOutcome, SubscriberStatus
from ainews_newsletter.pipeline.issue import message_signer, open_subscribers
from ainews_newsletter.pipeline.send import make_transport
from ainews_newsletter.pipeline.welcome import Welcomes
from ainews_newsletter.render.environment import (
    compile_template,
    make_environment,
    render_template,
)
from ainews_newsletter.storage_faults import database_away, disk_full
from ainews_newsletter.subscribers.addresses import normalize
from ainews_newsletter.subscribers.confirmation_quota import ConfirmationQuota
from ainews_newsletter.subscribers.consent_records import Agreement
from ainews_newsletter.subscribers.signups import SignUps
from ainews_newsletter.web.page_language import N_, _
from ainews_newsletter.web.security import (
    Confirmation,
    ConfirmationTokens,
    Throttle,
    mailbox_key,
    mask_address,
)

log = logging.getLogger("ainews.web")
HOUR, DAY = 3600.0, 86400.0
# After a sign-up found the database unusable (a full disk, PostgreSQL away), the form
# answers 503 this long instead of "check your inbox": the sign-up runs after the answer,
# so the first one cannot know, but the next ones are not told a lie.
STORAGE_PAUSE_SECONDS = 30.0
CONFIRMATION_TEXT = "confirmation.txt.j2"
CONFIRMATION_SUBJECT = "confirmation_subject.txt.j2"


class DoubleOptIn:
    """One per app: the confirmation links' key, the throttles (per network in memory, per
    process; per mailbox in the database), the mail templates and the DKIM signer."""

    def __init__(self, config: Config, secret: str) -> None:
        self.config = config
        self.tokens = ConfirmationTokens(secret, config.web.confirm_link_hours * HOUR)
        self.per_ip = Throttle(config.web.signups_per_ip_per_hour, HOUR)
        self.per_mailbox = ConfirmationQuota(engine_for(config.database_url),
                                             config.web.confirmations_per_address_per_day)
        self._mails: dict[str, jinja2.Environment] = {}
        self._mails_lock = threading.Lock()
        for name in (CONFIRMATION_TEXT, CONFIRMATION_SUBJECT):  # a broken override stops here
            compile_template(self.mails(config.newsletter.language), name)
        # The issues' DKIM signer: the confirmation is a reader's first mail from us, and
        # unsigned it fails DMARC wherever SPF does not align. Made here, so a bad key stops
        # `serve` at start instead of failing each sign-up quietly in the log.
        self.sign = message_signer(config)
        self._storage_failed_at: float | None = None  # see STORAGE_PAUSE_SECONDS
        self.welcomes = Welcomes(config)  # the welcome's templates are checked here too

    def mails(self, language: str) -> jinja2.Environment:
        """The mails' environment in `language` (the `mail` catalogs), made once each."""
        with self._mails_lock:
            found = self._mails.get(language)
            if found is None:
                found = self._mails[language] = make_environment(
                    self.config.templates_dir, language, self.config.locale_dir)
            return found

    def may_sign_up_from(self, client: str) -> bool:
        """Counts a sign-up from `client` (a network, see security.client_key)."""
        return self.per_ip.allow(client)

    def count_confirmation_mail(self, address: str) -> bool:
        """Counts a confirmation mail to this address's mailbox (plus-tags and all, one
        mailbox) in the database, so the daily limit holds across restarts and processes.
        Called by `sign_up_and_mail` right before a mail would go, in the background: the
        request never waits for it, and an address that is sent nothing counts nothing."""
        _address, normalized = normalize(address, allow_test=True)
        return self.per_mailbox.take(mailbox_key(normalized))

    def single_opt_in(self, cross_origin: bool) -> bool:
        """Whether a sign-up may make an address active at once: only with [subscribers]
        double_opt_in off and only from our own page (a post from another site is someone
        else's form: its owner confirms, whatever the setting)."""
        return not self.config.subscribers.double_opt_in and not cross_origin

    def thanks(self, address: str, cross_origin: bool = False) -> tuple[str, str]:
        """The title and text of the page after a sign-up: the same for every address (with
        single opt-in too: an address that left still confirms)."""
        if not self.single_opt_in(cross_origin):
            return (_("Check your inbox"), _(
                "If %(email)s can receive mail, a message with a confirmation link is on its "
                "way. The subscription starts when you follow it.", email=address))
        return (_("Thank you"), _(
            "%(email)s is signed up for %(newsletter)s: the next issue will be in its inbox. "
            "(An address that left the list before is sent a message with a confirmation "
            "link instead, and comes back when it is followed.)", email=address,
            newsletter=self.config.newsletter.name))

    def storage_failing(self) -> bool:
        """Whether a sign-up found the database unusable less than STORAGE_PAUSE_SECONDS
        ago (the form then answers 503)."""
        failed_at = self._storage_failed_at
        return failed_at is not None and time.monotonic() - failed_at < STORAGE_PAUSE_SECONDS

    def sign_up_and_mail(self, address: str, name: str | None, cross_origin: bool = False,
                         agreement: Agreement | None = None, language: str | None = None
                         ) -> None:
        """After the response, so only the log can tell why a sign-up stays pending: one
        line per confirmation mail not sent, the address masked (a log is no mailing list).
        A refusal or a server that is down is expected: no traceback; a bug keeps its own.
        With single opt-in (`single_opt_in`) a new or pending address is active at once and
        welcomed (`after_joined`); one that left or is suppressed is mailed a confirmation
        where double opt-in would mail one. `agreement` becomes the consent record;
        `language` is the one the sign-up's page was shown in (None: the newsletter's), the
        confirmation mail's."""
        masked = mask_address(address)
        try:
            if self.single_opt_in(cross_origin):
                joined = SignUps(open_subscribers(self.config)).join_at_once(
                    address, name, agreement=agreement)
                if joined == "joined":
                    self.after_joined(address)
                if joined != "confirm":
                    return
            outcome = self._sign_up_and_mail_now(address, name, agreement, language)
        except TransportUnavailable as exc:
            log.warning("confirmation mail to %s not sent: %s", masked, exc)
        except OperationalError as exc:  # a full disk, a database away, a lock held long
            unusable = disk_full(exc, self.config.database_url) or database_away(exc)
            if unusable:
                self._storage_failed_at = time.monotonic()
            log.warning("sign-up of %s not stored: the database is %s (%s)%s", masked,
                        "unusable" if unusable else "busy", str(exc).splitlines()[0],
                        f"; the form answers 503 for {STORAGE_PAUSE_SECONDS:.0f} s"
                        if unusable else "")
        except Exception:  # the reader can simply sign up again
            log.exception("sign-up of %s failed", masked)
        else:
            if outcome is not None and outcome.state is not DeliveryState.SENT:
                log.warning("confirmation mail to %s not sent: %s %s", masked, outcome.code,
                            outcome.reply)

    def _sign_up_and_mail_now(self, address: str, name: str | None,
                              agreement: Agreement | None = None,
                              language: str | None = None) -> SendOutcome | None:
        signups = SignUps(open_subscribers(self.config))
        if not signups.may_be_sent_a_confirmation(address):
            return None  # receiving it already, or complained, bounced, suppressed: no mail
        if not self.count_confirmation_mail(address):
            log.info("confirmation mail to %s not sent: [web] confirmations_per_address_per_day"
                     " reached", mask_address(address))
            return None  # nothing stored either: the limit stops a sign-up bomb as a whole
        signups.sign_up(address, name, None, agreement)  # a sign-up racing this one joins its row
        message = self.confirmation_mail(address, name, self.tokens.make(address, None, name),
                                         language)
        transport = make_transport(self.config)
        try:
            return transport.send(self.config.newsletter.from_, address,
                                  self.sign(message) if self.sign else message)
        finally:
            transport.close()

    def confirmation_mail(self, address: str, name: str | None, token: str,
                          language: str | None = None) -> bytes:
        """The mail carrying the confirmation link, from the confirmation templates, in
        `language` (None: the newsletter's)."""
        mails = self.mails(language or self.config.newsletter.language)
        newsletter = self.config.newsletter
        context = {
            "newsletter": {"name": newsletter.name, "base_url": newsletter.base_url,
                           "postal_address": newsletter.postal_address},
            "confirm_url": f"{newsletter.base_url}/confirm/{token}",
            "link_hours": int(self.config.web.confirm_link_hours),
            "reader": {"email": address, "name": name or ""},
        }
        text = render_template(mails, CONFIRMATION_TEXT, context)
        # notice_message makes the subject one line (a template's line breaks become spaces).
        subject = render_template(mails, CONFIRMATION_SUBJECT, context)
        return notice_message(newsletter, address, subject, text, clock.now())

    def after_joined(self, email: str) -> None:
        """The reader at `email` has just become active (confirmed, or joined without a
        confirmation): with [subscribers] welcome on, queue their welcome and send it now.
        Called after the change committed, as the response's background task, so only the
        log tells of a failure; the row stays queued for `serve`'s loop or the scheduler,
        and the catch-up queues it if this process dies first (pipeline/welcome.py)."""
        if not self.config.subscribers.welcome:
            return
        masked = mask_address(email)
        try:
            reader = self.welcomes.queue_address(email)
            if reader is not None:
                self.welcomes.send_due(subscriber_id=reader.subscriber_id)
        except AinewsError as exc:  # the server is down, a template is broken: it waits
            log.warning("welcome to %s not sent yet: %s", masked, exc)
        except Exception:  # a bug keeps its traceback; the loop tries again
            log.exception("welcome to %s failed", masked)

    def read(self, token: str) -> Confirmation:
        """The sign-up a confirmation link carries; BadToken if forged, altered or expired."""
        return self.tokens.read(token)

    def confirm(self, confirmation: Confirmation) -> tuple[str, dict[str, Any]] | None:
        """Confirm, or say why not: a message (marked for the `web` catalogs, translated
        where it is shown) and its placeholders' values. A link older than the reader's
        unsubscribe must not bring them back (it stays valid for two days), and a spam
        complaint or a bounce is not undone from the web."""
        store = open_subscribers(self.config)
        found = store.get(confirmation.email)
        if found is None:
            return N_("This sign-up no longer exists; sign up again."), {}
        if found.status is SubscriberStatus.COMPLAINED:
            return N_("%(email)s cannot be subscribed from here: a message to it was "
                      "reported as spam. Please write to us."), {"email": found.email}
        if found.status is SubscriberStatus.BOUNCED:
            return N_("%(email)s cannot be subscribed from here: mail to it bounced. "
                      "Please write to us."), {"email": found.email}
        if (found.status is SubscriberStatus.UNSUBSCRIBED and found.unsubscribed_at
                and found.unsubscribed_at >= confirmation.issued_at):
            return N_("This link is older than your unsubscribe; sign up again for a new "
                      "one."), {}
        SignUps(store).confirm(confirmation.email, confirmation.list_name, confirmation.name)
        return None
