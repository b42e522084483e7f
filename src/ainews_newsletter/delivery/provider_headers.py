"""A relay provider's metadata headers (SES, SendGrid, Mailgun, Postmark, Postal): each
message carries its delivery's tag in the header the provider's webhook events bring back,
and, through several relays of different providers, a placeholder line the chosen relay's
own headers replace (relay_chain.py)."""

from __future__ import annotations

import dataclasses
import re

# Providers whose metadata header can carry our delivery tag, and the key it goes under
# (their webhook events bring it back: see docs and feedback/webhooks/).
PROVIDERS = ("ses", "sendgrid", "mailgun", "postmark", "postal")
TAG_KEY = "ainews_tag"
# Per provider: the header line around the tag (before, after).
_TAG_HEADERS = {
    "ses": (f"X-SES-MESSAGE-TAGS: {TAG_KEY}=", ""),
    "sendgrid": (f'X-SMTPAPI: {{"unique_args": {{"{TAG_KEY}": "', '"}}'),
    "mailgun": (f'X-Mailgun-Variables: {{"{TAG_KEY}": "', '"}'),
    "postmark": (f"X-PM-Metadata-{TAG_KEY}: ", ""),
    "postal": ("X-Postal-Tag: ", ""),
}
# The provider's configuration set or message stream, for providers that have one.
_STREAM_HEADERS = {"ses": "X-SES-CONFIGURATION-SET", "postmark": "X-PM-Message-Stream"}
_TAG = re.compile(r"[a-z2-7]{1,32}")  # a return tag (returnpath.py): nothing to encode
RELAY_TAG_HEADER = b"X-Ainews-Relay-Tag"  # see ProviderHeaders.relay_placeholder
# The placeholder line: first in the message (the welcome's, unsigned) or after a line;
# "-" stands for a row without a tag (its relay's stream line still goes in).
_RELAY_TAG_LINE = re.compile(rb"(?:^|(?<=\r\n))" + RELAY_TAG_HEADER
                             + rb": ([a-z2-7]{1,32}|-)\r\n")


def for_relay(message: bytes, headers: ProviderHeaders | None) -> bytes:
    """`message` as the relay of provider `headers` takes it: the placeholder line (in the
    header block) replaced by that provider's lines for the same tag, or dropped for a
    relay without one. A message without the line is returned as it is."""
    end = message.find(b"\r\n\r\n")
    found = _RELAY_TAG_LINE.search(message, 0, end + 2 if end >= 0 else len(message))
    if found is None:
        return message
    tag = found.group(1).decode("ascii")
    lines = b"" if headers is None else headers.lines(None if tag == "-" else tag)
    return b"".join((message[:found.start()], lines, message[found.end():]))


@dataclasses.dataclass(frozen=True)
class ProviderHeaders:
    """The relay provider's metadata header lines of one send: the same for every reader
    but the delivery's tag, which goes between `before` and `after`. Not signed by DKIM
    (dkim.py's list leaves them out): providers remove or rewrite them on the way."""

    before: bytes
    after: bytes
    constant: bytes  # the configuration-set or message-stream line, if any
    # The lines for a row without a tag (None: `constant`): the placeholder's own.
    untagged: bytes | None = None

    @classmethod
    def of(cls, provider: str, stream: str | None = None) -> ProviderHeaders | None:
        """None for "none" (no provider: no headers)."""
        if provider == "none":
            return None
        if provider not in _TAG_HEADERS:
            raise ValueError(f"unknown provider {provider!r}")
        before, after = _TAG_HEADERS[provider]
        name = _STREAM_HEADERS.get(provider)
        constant = f"{name}: {stream}\r\n" if stream and name else ""
        return cls(before.encode("ascii"), f"{after}\r\n".encode("ascii"),
                   constant.encode("ascii"))

    @classmethod
    def relay_placeholder(cls) -> ProviderHeaders:
        """The tag in a line of our own, for a send through relays of different providers:
        the relay chain turns it into the chosen relay's lines (`for_relay`), or drops it."""
        return cls(RELAY_TAG_HEADER + b": ", b"\r\n", b"", RELAY_TAG_HEADER + b": -\r\n")

    def lines(self, tag: str | None) -> bytes:
        """The header lines for a message whose delivery has `tag` (None: a row from before
        tags, which gets only the constant line)."""
        if tag is None:
            return self.constant if self.untagged is None else self.untagged
        if not _TAG.fullmatch(tag):
            raise ValueError(f"not a delivery tag: {tag!r}")
        return b"".join((self.constant, self.before, tag.encode("ascii"), self.after))
