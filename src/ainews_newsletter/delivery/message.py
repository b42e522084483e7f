"""One subscriber's email, built with the stdlib `email` package (policy SMTP: CRLF, encoded
words for non-ASCII headers, no line over 998 octets thanks to quoted-printable bodies)."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from urllib.parse import quote

from ainews_newsletter.config import NewsletterConfig
from ainews_newsletter.models import Recipient, RenderedIssue

# CR, LF, NUL and the Unicode line/paragraph separators could end a header early in some
# parser; none belongs in a name or a subject, so they become spaces.
# CRLF line ends, headers folded at 78 columns; values set with `set_raw` (already folded
# by us) are kept as given.
MESSAGE_POLICY = SMTP.clone(refold_source="none")
_HEADER_BREAKERS = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")


# Long enough for any real name or subject, short enough that even one unbroken word keeps
# its header line far below SMTP's 998-octet limit (the folder cannot break inside a word).
MAX_HEADER_TEXT = 200


def _one_line(text: str) -> str:
    return _HEADER_BREAKERS.sub(" ", text).strip()


def header_safe(text: str) -> str:
    """One line of at most MAX_HEADER_TEXT characters, with nothing that could end a header.

    "=?" is broken up too: the stdlib decodes RFC 2047 encoded words in a value it is given,
    so a title like "=?utf-8?b?SGkNCkJjYzog...?=" would otherwise turn into a raw CR LF and a
    new header on the way out."""
    flat = _one_line(text).replace("=?", "= ?")
    return flat if len(flat) <= MAX_HEADER_TEXT else flat[: MAX_HEADER_TEXT - 1] + "…"


def eml_filename(sequence: int, recipient: str) -> str:
    """A file name for a saved message: ordered, readable, and safe on every filesystem."""
    safe = "".join(ch if ch.isalnum() or ch in "@.-_" else "_" for ch in recipient)
    return f"{sequence:04d}-{safe}.eml"


def unsubscribe_url(newsletter: NewsletterConfig, token: str) -> str:
    return f"{newsletter.base_url}/unsubscribe/{quote(token)}"


def message_id(newsletter: NewsletterConfig, issue_key: str, subscriber_id: int) -> str:
    """Stable per (list, issue, subscriber): a resent message carries the same Message-ID,
    so receiving servers and clients can recognise the duplicate."""
    digest = hashlib.sha256(
        f"{newsletter.list_identifier}|{issue_key}|{subscriber_id}".encode()).hexdigest()[:24]
    domain = newsletter.from_.rsplit("@", 1)[1]
    # Keys like "since-2026-11-18T10:33" or "2026-11-16..2026-11-23" hold characters a
    # msg-id may not (":" ends it, ".." is invalid): keep letters, digits and single dashes.
    readable = re.sub(r"[^a-z0-9]+", "-", issue_key.lower()).strip("-") or "issue"
    return f"<{readable}.{digest}@{domain}>"


def _address(name: str | None, addr_spec: str) -> Address:
    return Address(display_name=header_safe(name or ""), addr_spec=addr_spec)


def build_message(rendered: RenderedIssue, recipient: Recipient, newsletter: NewsletterConfig,
                  date: datetime) -> EmailMessage:
    """multipart/alternative: text first, then HTML (clients show the last part they can)."""
    link = unsubscribe_url(newsletter, recipient.token)
    html, text = rendered.personalize(link)
    message = EmailMessage(policy=MESSAGE_POLICY)
    message["From"] = _address(newsletter.name, newsletter.from_)
    message["To"] = _address(recipient.name, recipient.email)
    if newsletter.reply_to:
        message["Reply-To"] = _address(None, newsletter.reply_to)
    message["Subject"] = header_safe(rendered.subject)
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id(newsletter, rendered.period.key, recipient.subscriber_id)
    message["List-Id"] = f"{header_safe(newsletter.name)} <{newsletter.list_identifier}>"
    token = quote(recipient.token)
    mailto = f"mailto:{newsletter.unsubscribe_mailbox}?subject=unsubscribe%20{token}"
    # Set raw and pre-folded between the two URIs: the default folder would turn a URI
    # longer than 78 columns into an RFC 2047 encoded word, which no client can use.
    message.set_raw("List-Unsubscribe", f"<{_one_line(link)}>,\r\n <{_one_line(mailto)}>")
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    return message
