"""[subscribers], [storage], [schedule], [web], [tracking] and [doctor]: the list, where it
is kept, when the issue goes, the public pages, and the checks."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from ainews_newsletter.config.base import Section, check_address
from ainews_newsletter.config.locate import DEFAULT_STORAGE_URL


class SubscribersConfig(Section):
    default_list: str = Field(default="newsletter", min_length=1, max_length=100,
                              description="The list `ainews send` sends to and that "
                                          "`subscribers add/import` use without --list.")
    allow_test_domains: bool = Field(
        default=False,
        description="Accept addresses under .test (the name reserved for testing), in "
                    "[newsletter] from too: for staging against a local mail server, never "
                    "for a real list.")
    double_opt_in: bool = Field(
        default=True,
        description="true: a sign-up on the subscribe page of `ainews serve` waits (pending) "
                    "until the confirmation link mailed to the address is followed. false "
                    "(single opt-in): a sign-up on that page is active at once, without a "
                    "confirmation mail; never for a post from another site, nor for an "
                    "address that left, bounced, complained or is suppressed (those still "
                    "confirm). Imports are not affected: they take the status of the file or "
                    "--status.")
    confirm_on_click: bool = Field(
        default=False,
        description="true: opening the confirmation link confirms at once, without the "
                    "page's button (fewer sign-ups stall), except for what looks like a mail "
                    "security scanner (a HEAD request, a known scanner's user agent, a fetch "
                    "in the first 10 seconds after the mail left), which still gets the "
                    "button: a scanner that presses nothing cannot subscribe anyone.")
    unconfirmed_days: int = Field(
        default=30, ge=1, le=3650,
        description="Pending sign-ups (never confirmed) are removed this many days after "
                    "their last sign-up, by the scheduler (daily) and by `ainews subscribers "
                    "prune --unconfirmed`.")
    welcome: bool = Field(
        default=False,
        description="Mail each reader a welcome (templates/welcome.mjml.j2, welcome.txt.j2 "
                    "and welcome_subject.txt.j2) once they confirm on the web, once per "
                    "reader ever. Imports welcome only with `subscribers import --welcome`. "
                    "`ainews init` turns it on.")
    welcome_with_latest_issue: bool = Field(
        default=False,
        description="The welcome also names the latest sent issue (its subject and lead) "
                    "with a link to it in the web archive.")


class StorageConfig(Section):
    url: str = Field(
        default=DEFAULT_STORAGE_URL,
        description="SQLAlchemy URL: SQLite (a relative path is relative to the config "
                    'file\'s folder) or "postgresql+psycopg://user@host/ainews" for large '
                    "lists. The schema is created and migrated on first use.")
    reconnect_seconds: float = Field(
        default=120, gt=0, le=86400,
        description="PostgreSQL restarted or failing over during a send: the send waits "
                    "and reconnects (0.5 s, doubling, at most 10 s between tries) for up to "
                    "this many seconds, then stops with exit 1; `ainews send --resume` "
                    "continues it.")


class ScheduleConfig(Section):
    cron: str = Field(default="0 8 * * MON",
                      description="When `ainews schedule run` sends: standard 5-field cron in "
                                  "[newsletter] timezone; day-of-week 0 or 7 is Sunday.")
    mode: Literal["auto", "draft"] = Field(
        default="auto",
        description='"auto": build, lint and send. "draft": build and freeze the issue, mail '
                    "a test copy to notify, and wait for `ainews send --issue KEY`.")
    notify: list[str] = Field(default=[],
                              description="Addresses that get the draft's test copy.")
    misfire_grace_hours: float = Field(
        default=6, gt=0,
        description="A run missed while the machine was off still happens, once, if the "
                    "scheduler is back within this many hours; later it is skipped (and "
                    "logged).")

    @field_validator("notify")
    @classmethod
    def _valid_notify(cls, value: list[str]) -> list[str]:
        return [check_address(address) for address in value]


class WebConfig(Section):
    host: str = Field(default="127.0.0.1",
                      description="Where `ainews serve` listens: keep 127.0.0.1 behind a "
                                  "reverse proxy that terminates TLS.")
    port: int = Field(default=8080, ge=1, le=65535, description="Its port.")
    tagline: str = Field(default="One email a week with the AI news that mattered.",
                         description="The subscribe page's pitch under its heading (plain "
                                     "text: it is escaped).")
    forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        description='Proxies whose X-Forwarded-For is believed (comma-separated, "*" for '
                    "any): the sign-up throttle must see the reader's address, not the "
                    "proxy's.")
    confirm_link_hours: float = Field(default=48, gt=0,
                                      description="A confirmation link expires after this "
                                                  "many hours.")
    signups_per_ip_per_hour: int = Field(
        default=10, ge=1,
        description="Sign-ups per client address per hour: enough for people, too few for "
                    "someone signing up strangers.")
    confirmations_per_address_per_day: int = Field(
        default=3, ge=1, description="Confirmation mails per address per day.")
    max_body_bytes: int = Field(
        default=64 * 1024, ge=1024, le=16 * 1024 * 1024,
        description="Request bodies larger than this are refused (413) while being read.")
    request_timeout_seconds: float = Field(
        default=10, gt=0, le=300,
        description="A connection whose request (headers and body) is not all in within "
                    "this many seconds is closed (slow clients cannot pile up).")
    keep_alive_seconds: float = Field(default=5, gt=0, le=300,
                                      description="An idle keep-alive connection is closed "
                                                  "after this many seconds.")
    allowed_origins: list[str] = Field(
        default=[],
        description='Other sites whose pages may post sign-ups to /subscribe (the form '
                    "`ainews web snippet` prints) and frame /embed: origins such as "
                    '"https://blog.example" (scheme://host[:port], no path). A post from any '
                    "other site is refused (403). Empty: only our own pages.")
    after_subscribe_url: str | None = Field(
        default=None,
        description="Where a reader lands (303) after signing up through a plain form on one "
                    "of allowed_origins' sites; unset: our own thank-you page.")
    min_form_seconds: float = Field(
        default=2, ge=0, le=3600,
        description="A form of ours (the subscribe page, /embed) sent sooner than this after "
                    "it was served is taken for a bot's: the reader's usual answer, nothing "
                    "stored or mailed. So is one older than a day.")
    proof_of_work: bool = Field(
        default=False,
        description="Our forms carry a signed puzzle that a small script in the page solves "
                    "(SHA-256, a fraction of a second) before posting; a sign-up without a "
                    "solution is dropped quietly. Needs JavaScript in the reader's browser "
                    "and turns away the static form of `ainews web snippet` (use --iframe).")

    @field_validator("allowed_origins")
    @classmethod
    def _valid_origins(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(check_origin(origin) for origin in value))

    @field_validator("after_subscribe_url")
    @classmethod
    def _valid_after_subscribe_url(cls, value: str | None) -> str | None:
        from urllib.parse import urlsplit

        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{value!r} is not an http(s) URL")
        return value


def check_origin(value: str) -> str:
    """`scheme://host[:port]` as browsers send it in Origin: lower case, no default port, no
    path (a trailing slash is forgiven). Anything else cannot match a browser's Origin and
    would silently refuse every post, so it is an error here."""
    from urllib.parse import urlsplit

    wrong = ValueError(f"{value!r} is not an origin: write scheme://host[:port] with no path, "
                       'e.g. "https://blog.example"')
    text = value.strip()
    try:
        parts = urlsplit(text[:-1] if text.endswith("/") else text)
        port = parts.port  # a port that is no number, or over 65535: ValueError
    except ValueError:
        raise wrong from None
    host = (parts.hostname or "").lower()
    if (parts.scheme not in ("http", "https") or not host or parts.path or parts.query
            or parts.fragment or "@" in parts.netloc):
        raise wrong
    scheme = parts.scheme
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal keeps its brackets
    default = {"http": 80, "https": 443}[scheme]
    return f"{scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


class TrackingConfig(Section):
    clicks: bool = Field(
        default=False,
        description="Opt-in click counts: each post link of a sent copy goes through "
                    "base_url/c/<token> (signed with the secret key), which records the click "
                    "and redirects. Off, the mail carries the posts' own links. There is no "
                    "open pixel at all.")


class DoctorConfig(Section):
    nameservers: list[str] = Field(
        default=[],
        description='DNS servers `ainews doctor` asks ("host:port" or "host"; port 53) and '
                    "no others; empty: the system's resolvers.")
    timeout: float = Field(default=5, gt=0, le=60, description="Seconds per DNS query.")
