"""One reader's welcome mail: the welcome rendered once, personalised (their name, address
and own unsubscribe link), with the list's headers (List-Id, List-Unsubscribe with https and
mailto, List-Unsubscribe-Post for one click) and a Message-ID stable per reader, so the
rare duplicate after a crash is recognisable as one."""

from __future__ import annotations

from datetime import datetime

from ainews_newsletter.config import NewsletterConfig
from ainews_newsletter.delivery.message import list_message, message_id, unsubscribe_url
from ainews_newsletter.models import Recipient, RenderedWelcome

# In place of an issue's key in the Message-ID (<welcome.<digest>@domain>): issue keys are
# weeks and dates, never this word.
MESSAGE_KEY = "welcome"


def welcome_bytes(rendered: RenderedWelcome, newsletter: NewsletterConfig,
                  recipient: Recipient, date: datetime) -> bytes:
    """The message `recipient` receives (before DKIM signing)."""
    subject, html, text = rendered.personalize(unsubscribe_url(newsletter, recipient.token),
                                               recipient.name or "", recipient.email)
    return list_message(newsletter, recipient, subject, html, text, date,
                        message_id(newsletter, MESSAGE_KEY, recipient.subscriber_id),
                        utf8_headers=True).as_bytes()
