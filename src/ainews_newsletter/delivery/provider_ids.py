"""The relay's own id for a message, read from its reply to the message (the 250 after
DATA). Providers report webhook events by that id: SES answers "250 Ok <id>" and reports
`mail.messageId`; SendGrid answers "250 Ok: queued as <id>" and its `sg_message_id`
begins with it; Postfix and most relays say "queued as <id>", Exim "id=<id>". Stored per
delivery whether or not [smtp] provider is set: it costs one short column, and a provider
set later still finds the messages sent before."""

from __future__ import annotations

import re

MAX_LENGTH = 255  # deliveries.provider_message_id

# What may stand before the words: the reply code ("250 ", "250-") and an enhanced status
# code ("2.0.0 "), both optional (smtplib hands over the text without the code).
_PREFIX = r"^(?:\d{3}[ -])?(?:\d\.\d{1,3}\.\d{1,3}\s+)?"
_ID = r"<?([A-Za-z0-9][A-Za-z0-9._@+=/-]*?)>?"
_QUEUED_AS = re.compile(rf"\bqueued as\s+{_ID}(?:\s|[;,)]|$)", re.IGNORECASE)
_ID_EQUALS = re.compile(rf"\bid=\s*{_ID}(?:\s|[;,)]|$)", re.IGNORECASE)
# "Ok <id>" and nothing more (SES): an id has a digit, so "Ok thanks" is no id.
_OK_ID = re.compile(rf"{_PREFIX}ok\s+{_ID}\s*$", re.IGNORECASE)


def provider_message_id(reply: str) -> str:
    """The message id in a relay's acceptance reply; "" when it names none. Looks at each
    line of a multi-line reply, the last first (the final line carries the verdict)."""
    for line in reversed(reply.splitlines()):
        line = line.strip()
        for pattern in (_QUEUED_AS, _ID_EQUALS, _OK_ID):
            found = pattern.search(line)
            if found is not None:
                value = found.group(1)
                if pattern is not _OK_ID or any(ch.isdigit() for ch in value):
                    return value[:MAX_LENGTH]
    return ""
