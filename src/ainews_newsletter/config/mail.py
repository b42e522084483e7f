"""[smtp], [delivery], [dkim] and [bounces]: how mail goes out and how what comes back is
read."""

from __future__ import annotations

import os
import re
from typing import Literal

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator

from ainews_newsletter.config.base import Section, check_address

# A VERP tag: 16 lower-case base32 characters (80 random bits), lower case because some
# mailbox hosts fold the local part.
VERP_TAG_LENGTH = 16
# SES configuration sets and Postmark message streams are named within this.
_STREAM_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class RelayKeys(Section):
    """The keys every relay has: [smtp] itself and each of [[smtp.relays]]."""

    host: str = Field(default="localhost", description="The relay's host name or address.")
    port: int = Field(default=25, ge=1, le=65535, description="The relay's port.")
    security: Literal["none", "starttls", "tls"] = Field(
        default="none",
        description='"none", "starttls" (usually port 587) or "tls" (implicit TLS, usually '
                    "port 465).")
    username: str | None = Field(default=None,
                                 description="Login name; the password comes from the "
                                             "environment.")
    rate_per_second: float = Field(default=0, ge=0,
                                   description="Messages per second across all connections; "
                                               "0 = as fast as the server accepts.")
    max_per_hour: int = Field(default=0, ge=0,
                              description="At most this many messages in any hour (a relay's "
                                          "hourly quota); 0 = none. Of several relays, one "
                                          "whose quota is used up passes to the next.")
    timeout: float = Field(default=30, gt=0,
                           description="Seconds to wait for the server before giving up on "
                                       "a connection.")
    allow_self_signed: bool = Field(
        default=False,
        description="Accept a self-signed certificate (a relay on this machine or network "
                    "only). Off: certificate and host name are verified.")
    ehlo_name: str | None = Field(default=None,
                                  description="Name sent in EHLO; default: this machine's.")
    provider: Literal["none", "ses", "sendgrid", "mailgun", "postmark", "postal"] = Field(
        default="none",
        description='The relay is this provider ("ses", "sendgrid", "mailgun", "postmark", '
                    '"postal"): each message carries the delivery\'s tag in the provider\'s '
                    "metadata header (left out of the DKIM signature), which its webhook events "
                    'bring back. "none": no such header. Of several relays, each its own.')
    provider_stream: str | None = Field(
        default=None,
        description="SES: the configuration set (X-SES-CONFIGURATION-SET) whose event "
                    "destination publishes to the SNS topic; Postmark: the message stream "
                    "(X-PM-Message-Stream). Unset: the provider's default.")

    @field_validator("provider_stream")
    @classmethod
    def _plain_stream_name(cls, value: str | None) -> str | None:
        # Written into a header as-is: a name SES and Postmark accept, nothing to encode.
        if value is not None and not _STREAM_NAME.fullmatch(value):
            raise ValueError(f"{value!r}: letters, digits, '-' and '_' only, at most 64")
        return value


class RelayConfig(RelayKeys):
    """One relay of several, tried in order; its password comes from the variable it names.

    The [smtp] connection keys, a name, and the environment variable its password is read
    from (a list in a file cannot name each relay's secret the AINEWS_ way)."""

    name: str | None = Field(default=None,
                             description='What the ledger, `ainews status` and `ainews doctor` '
                                         'call the relay; default "host:port".')
    host: str = Field(description="The relay's host name or address.")  # required here
    connections: int | None = Field(
        default=None, ge=1, le=32,
        description="At most this many of [smtp] connections use this relay at once (many "
                    "relays allow 1 to 5); the others go to the next relay, and a connection "
                    "no relay that is up has a place for ends, its messages sent by the rest. "
                    "With worker processes each holds its share. Unset: no cap of its own.")
    password_env: str | None = Field(
        default=None,
        description="The environment variable holding this relay's password (read at "
                    "start-up; named but unset: an error naming the relay and the variable).")

    # Read from the variable password_env names when the config is loaded (loading.py): kept
    # out of the fields so it is never in a dump, a repr or the generated reference.
    _password: str | None = PrivateAttr(default=None)

    @field_validator("password_env")
    @classmethod
    def _not_a_setting(cls, value: str | None) -> str | None:
        # Every AINEWS_ variable is read as a setting: AINEWS_SMTP__PASSWORD would quietly
        # be [smtp]'s password too, and any other such name an unknown key.
        if value is not None and value.upper().startswith("AINEWS_"):
            raise ValueError(f"password_env {value!r} must not start with AINEWS_ (those "
                             "are read as settings): name another variable, e.g. "
                             "BACKUP_RELAY_PASSWORD")
        return value

    @property
    def label(self) -> str:
        return self.name or f"{self.host}:{self.port}"

    def with_password(self, password: str | None) -> None:
        self._password = password

    def smtp_settings(self, base: SmtpConfig) -> SmtpConfig:
        """The relay as the one-relay settings SmtpTransport and the doctor take."""
        password = self._password
        return base.model_copy(update={
            **{key: getattr(self, key) for key in RelayKeys.model_fields},
            "password": SecretStr(password) if password is not None else None,
            "relays": []})


class SmtpConfig(RelayKeys):
    password: SecretStr | None = Field(default=None,
                                       description="The relay's password (secret).")
    connections: int = Field(
        default=1, ge=1, le=32,
        description="Parallel connections, each reused for many messages (RSET between "
                    "them); many small relays allow 1 to 5.")
    workers: int = Field(
        default=0, ge=0, le=32,
        description="Processes the connections are spread over (each builds and sends; the "
                    "sending process alone claims and records). 0 = one per connection, at "
                    "most one per CPU core; 1 = every connection a thread of one process.")
    relays: list[RelayConfig] = Field(
        default=[],
        description="Several relays in order ([[smtp.relays]], or AINEWS_SMTP__RELAYS as a "
                    "JSON list): each message goes through the first that answers; a relay "
                    "that stops answering (refused, TLS failure, 421, login refused, the "
                    "error threshold) passes its messages to the next. Empty: the one relay "
                    "of host, port, ... above.")
    failback_seconds: float = Field(
        default=300, gt=0,
        description="With relays: a relay found down is tried again after this long.")

    @field_validator("relays")
    @classmethod
    def _distinct_relay_names(cls, value: list[RelayConfig]) -> list[RelayConfig]:
        labels = [relay.label for relay in value]
        for label in labels:  # the ledger's relay column holds 255
            if len(label) > 255:
                raise ValueError(f"relay name {label[:40]!r}… is longer than 255 characters")
        twice = sorted({label for label in labels if labels.count(label) > 1})
        if twice:
            raise ValueError(f"two relays named {twice[0]!r}: give each a distinct name")
        return value

    def worker_processes(self) -> int:
        """How many processes the connections are spread over (see `workers`)."""
        if self.workers:
            return min(self.workers, self.connections)
        return min(self.connections, os.cpu_count() or 1)


class DeliveryConfig(Section):
    backend: Literal["smtp", "file", "console", "memory"] = Field(
        default="smtp",
        description='"smtp" sends; "file" writes one .eml per recipient into out_dir; '
                    '"console" prints them; "memory" keeps them in the process (tests).')
    out_dir: str = Field(default="outbox", description='The folder for backend = "file".')
    max_attempts: int = Field(default=10, ge=1,
                              description="A recipient whose server keeps answering 4xx is "
                                          "given up after this many attempts.")
    retry_base_seconds: int = Field(default=300, ge=1,
                                    description="First retry of a temporary failure after "
                                                "this long, doubling each time.")
    retry_max_seconds: int = Field(default=3600, ge=1,
                                   description="The longest wait between retries.")
    batch_size: int = Field(default=200, ge=1, le=10_000,
                            description="Recipients read from the ledger per query.")
    claim_timeout_seconds: int = Field(
        default=300, ge=1,
        description="PostgreSQL: a row a crashed sender left `sending` this long (by the "
                    "database's clock) is sent again by another sender (at least once). "
                    "SQLite: a send that finds no other sender alive resends them at once. "
                    "A welcome mail left `sending` this long is sent again, on both.")
    give_up_after_hours: float = Field(default=24, gt=0,
                                       description="A recipient still deferred this long "
                                                   "after the send started is failed.")
    bounce_limit: int | None = Field(
        default=None, ge=1,
        description="Older name of [bounces] hard_limit: still read, and used when [bounces] "
                    "sets no hard_limit.")
    error_threshold: float = Field(
        default=0.5, gt=0, le=1,
        description="Pause the send (rows stay queued) when this share of the last "
                    "error_window messages was refused: a server rejecting everything is "
                    "not helped by more tries.")
    error_window: int = Field(default=20, ge=1,
                              description="How many recent messages error_threshold looks at.")


class DkimConfig(Section):
    selector: str | None = Field(default=None,
                                 description="DKIM selector; the public key goes in DNS at "
                                             "<selector>._domainkey.<domain>.")
    domain: str | None = Field(default=None, description="The signing domain (d=).")
    private_key_path: str | None = Field(default=None,
                                         description="PEM private key (`ainews dkim keygen` "
                                                     "makes one). All three set: every message "
                                                     "is signed.")

    @model_validator(mode="after")
    def _all_or_none(self) -> DkimConfig:
        given = [self.selector, self.domain, self.private_key_path]
        if any(given) and not all(given):
            raise ValueError("set all of selector, domain and private_key_path, or none")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.selector and self.domain and self.private_key_path)


class BouncesConfig(Section):
    address: str | None = Field(
        default=None,
        description="The bounce mailbox. Set, each message's envelope sender becomes "
                    "<local><delimiter><tag>@<domain>, the tag naming its delivery (VERP); "
                    "unset, bounces go to [newsletter] from and are matched by the returned "
                    "message and recipient only.")
    delimiter: Literal["+", "-", "=", "_", "."] = Field(
        default="+", description="Between the mailbox's local part and the tag.")
    match_days: int = Field(default=14, ge=1, le=365,
                            description="A bounce naming only its recipient is matched to "
                                        "the newest issue sent to that address within this "
                                        "many days.")
    hard_limit: int = Field(default=1, ge=1,
                            description="Hard bounces (no such address) before a subscriber "
                                        "is marked bounced.")
    soft_limit: int = Field(default=3, ge=1,
                            description="Soft bounces on distinct issues within "
                                        "soft_window_days before a subscriber is marked "
                                        "bounced. A complaint stops mail at once.")
    soft_window_days: int = Field(default=30, ge=1, le=3650,
                                  description="The window soft_limit counts in.")
    imap_host: str | None = Field(default=None,
                                  description="An IMAP bounce mailbox read by `ainews bounces "
                                              "fetch` and the scheduler.")
    imap_port: int | None = Field(default=None, ge=1, le=65535,
                                  description="Default 993 (tls), 143 (starttls, none).")
    imap_user: str | None = Field(default=None, description="The IMAP login name.")
    imap_folder: str = Field(default="INBOX", description="The folder read.")
    processed_folder: str = Field(default="Processed",
                                  description="Processed messages are moved here and "
                                              "deleted after [privacy] "
                                              "keep_feedback_details_days (`ainews db "
                                              "prune`, the scheduler's daily round).")
    imap_security: Literal["tls", "starttls", "none"] = Field(
        default="tls",
        description='The certificate is always verified; "none" only to 127.0.0.1.')
    imap_ca_file: str | None = Field(default=None,
                                     description="A CA to trust beside the system's (a "
                                                 "private server).")
    password: SecretStr | None = Field(default=None, description="The IMAP password (secret).")
    fetch_minutes: int = Field(default=15, ge=1, le=1440,
                               description="How often the scheduler fetches the mailbox.")

    @field_validator("address")
    @classmethod
    def _valid_bounce_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        checked = check_address(value)
        local = checked.rsplit("@", 1)[0]
        if len(local) + 1 + VERP_TAG_LENGTH > 64:  # RFC 5321: a local part is <= 64 octets
            raise ValueError(f"{value!r}: the local part must leave room for the "
                             f"{VERP_TAG_LENGTH + 1}-character tag (at most "
                             f"{63 - VERP_TAG_LENGTH} characters)")
        return checked

    @property
    def imap_configured(self) -> bool:
        return bool(self.imap_host and self.imap_user)

    @property
    def imap_port_or_default(self) -> int:
        return self.imap_port or (993 if self.imap_security == "tls" else 143)
