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


class ScheduleConfig(Section):
    cron: str = Field(default="0 8 * * MON",
                      description="When `ainews schedule run` sends: standard 5-field cron in "
                                  "[newsletter] timezone; day-of-week 0 or 7 is Sunday.")
    mode: Literal["auto", "draft"] = Field(
        default="auto",
        description='"auto": build, lint and send. "draft": build and freeze the issue, mail '
                    "a test copy to notify, and wait for `ainews send --issue KEY`.")
    notify: list[str] = Field(default_factory=list,
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


class TrackingConfig(Section):
    clicks: bool = Field(
        default=False,
        description="Opt-in click counts: each post link of a sent copy goes through "
                    "base_url/c/<token> (signed with the secret key), which records the click "
                    "and redirects. Off, the mail carries the posts' own links. There is no "
                    "open pixel at all.")


class DoctorConfig(Section):
    nameservers: list[str] = Field(
        default_factory=list,
        description='DNS servers `ainews doctor` asks ("host:port" or "host"; port 53) and '
                    "no others; empty: the system's resolvers.")
    timeout: float = Field(default=5, gt=0, le=60, description="Seconds per DNS query.")
