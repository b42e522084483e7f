"""[newsletter]: who sends, from where, for whom, in which timezone."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from ainews_newsletter.config.base import Section, check_address
from ainews_newsletter.errors import ConfigError

_LIST_ID = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,198}[A-Za-z0-9])?")

# The sample's site and postal address (the defaults and the shipped config.toml): fine for
# the demo, never for a real send, where every unsubscribe link would point at them. The
# lint gate refuses them (render/lint.py); tests check the shipped config uses these.
SAMPLE_BASE_URL = "https://ainews.example"
SAMPLE_POSTAL_ADDRESSES = ("AI News Weekly, 1 Example Street, 00000 Example City",
                           "AI News Weekly, 42 Sample Lane, Springfield 00000, Exampleland")


def _names_a_domain(host: str) -> bool:
    """Whether a List-Id can be built on it (RFC 2919 wants a domain we control): not an IP
    address, not localhost."""
    import ipaddress

    try:
        ipaddress.ip_address(host)
        return False
    except ValueError:
        return bool(host) and host != "localhost" and not host.endswith(".localhost")


class NewsletterConfig(Section):
    name: str = Field(default="AI News Weekly",
                      description="Shown in the email header, the subject and the footer.")
    from_: str = Field(default="digest@ainews.example", alias="from",
                       description="The From: address readers see, and the envelope sender "
                                   "unless [bounces] address is set.")
    reply_to: str | None = Field(default=None, description="Where replies go; default: from.")
    base_url: str = Field(
        default=SAMPLE_BASE_URL,
        description="The public site (absolute http(s) URL, at most 300 characters): default "
                    "post URLs are base_url/posts/<slug>, unsubscribe links point at "
                    "base_url/unsubscribe/<token>. The sample's value is refused for a real "
                    "send.")
    postal_address: str = Field(
        default=SAMPLE_POSTAL_ADDRESSES[0],
        description="Printed in every footer; commercial email needs a real one in many "
                    "countries (CAN-SPAM). The sample's value is refused for a real send.")
    timezone: str = Field(default="UTC",
                          description="IANA timezone (e.g. Europe/Berlin) weeks, dates and "
                                      "the schedule are computed in.")
    list_id: str | None = Field(
        default=None,
        description='The List-Id header; default "<slug of name>.<host of base_url>" (the '
                    "from domain when base_url is an IP address or localhost).")
    language: str = Field(
        default="en",
        description="The newsletter's language, a BCP 47 tag (de, fr, pt-BR, ar…): the "
                    "email's fixed words, its dates and numbers, the public pages and the "
                    "confirmation and welcome mails. Readers with a language of their own "
                    "get theirs. The command line stays English.")
    text_part: Literal["summary", "full"] = Field(
        default="summary",
        description='What the digest carries of each post, in its HTML and its plain-text '
                    'part alike: "summary" (the post\'s `summary:`, else its first '
                    'paragraph, with its links and emphasis, and a "Read more" link) or '
                    '"full" (the whole post). The text part is the HTML through html2text: '
                    "paragraphs, lists, links as numbered references under the post.")
    unsubscribe_email: str | None = Field(
        default=None,
        description="Mailbox for the mailto: part of List-Unsubscribe; default: reply_to, "
                    "else from.")

    @field_validator("from_", "reply_to", "unsubscribe_email")
    @classmethod
    def _valid_address(cls, value: str | None) -> str | None:
        return None if value is None else check_address(value)

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str) -> str:
        from ainews_newsletter.translations import canonical

        try:
            return canonical(value)
        except ConfigError as error:
            raise ValueError(str(error)) from None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r} (use an IANA name such as "
                             "'Europe/Berlin' or 'UTC')") from None
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{value!r} must be an absolute http(s) URL")
        # It goes into List-Unsubscribe and every link: no spaces or controls, and short
        # enough that a header line stays far below SMTP's 998-octet limit.
        if len(value) > 300 or any(ch.isspace() or not ch.isprintable() for ch in value):
            raise ValueError("must be a URL of at most 300 characters without spaces")
        return value.rstrip("/")

    @field_validator("list_id")
    @classmethod
    def _list_id_syntax(cls, value: str | None) -> str | None:
        if value is not None and not _LIST_ID.fullmatch(value):
            raise ValueError(f"{value!r} must look like 'weekly.news.example.org' "
                             "(letters, digits, '.', '-', '_'; at most 200 characters)")
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def list_identifier(self) -> str:
        if self.list_id:
            return self.list_id
        slug = re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-") or "newsletter"
        host = urlsplit(self.base_url).hostname or ""
        if not _names_a_domain(host):  # a staging site on 127.0.0.1 or localhost
            host = self.from_.rpartition("@")[2].lower()
        return f"{slug}.{host}"

    @property
    def unsubscribe_mailbox(self) -> str:
        return self.unsubscribe_email or self.reply_to or self.from_
