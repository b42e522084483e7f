"""Typed configuration, loaded once.

Precedence, highest first: CLI flags (passed as `overrides`) > environment (`AINEWS_` prefix,
`__` for nesting, e.g. `AINEWS_SMTP__PORT=2526`) > the TOML file > defaults. Unknown keys and
bad values raise ConfigError naming the key. Secrets (SMTP password, web secret key) are read
from the environment only, so a config file can be committed without leaking them.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)
from pydantic_settings.sources.utils import parse_env_vars

from ainews_newsletter import resources
from ainews_newsletter.configfile import (
    CONFIG_ENV_VAR,
    DEFAULT_STORAGE_URL,
    ENV_PREFIX,
    absolute_storage_url,
    config_path_from,
)
from ainews_newsletter.errors import ConfigError

_LIST_ID = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,198}[A-Za-z0-9])?")
# Keys that must never be read from a file: they would end up committed next to the config.
SECRET_KEYS = {("secret_key",), ("smtp", "password"), ("bounces", "password")}


class _Section(BaseModel):
    # defer_build: a section's validator is built as part of Config's when the config is
    # loaded, not once more on its own at import (about 10 % of this module's import time).
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True,
                              defer_build=True)


def _check_address(value: str) -> str:
    """Syntax only; a .test address passes here and is refused by Config unless
    [subscribers] allow_test_domains (the section is not visible from here)."""
    from email_validator import EmailNotValidError, validate_email  # ~40 ms: only when used

    try:
        valid = validate_email(value, check_deliverability=False, allow_smtputf8=False,
                               test_environment=True)
    except EmailNotValidError as exc:
        raise ValueError(f"{value!r} is not a valid email address: {exc}") from None
    return valid.ascii_email or valid.normalized


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


class NewsletterConfig(_Section):
    name: str = "AI News Weekly"
    from_: str = Field(default="digest@ainews.example", alias="from")
    reply_to: str | None = None
    base_url: str = SAMPLE_BASE_URL
    postal_address: str = SAMPLE_POSTAL_ADDRESSES[0]
    timezone: str = "UTC"
    list_id: str | None = None  # default: "<slug of name>.<host of base_url>"
    unsubscribe_email: str | None = None  # mailto target; default: reply_to, else from

    @field_validator("from_", "reply_to", "unsubscribe_email")
    @classmethod
    def _valid_address(cls, value: str | None) -> str | None:
        return None if value is None else _check_address(value)

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


class MarkdownSource(_Section):
    """A folder of *.md files with YAML front matter."""

    type: Literal["markdown"] = "markdown"
    path: str = "posts"

    def describe(self) -> str:
        return self.path


class FeedSource(_Section):
    """An RSS 2.0 or Atom feed: `url` (http/https) or `path` (a local file), not both."""

    type: Literal["feed"]
    url: str | None = None
    path: str | None = None

    @model_validator(mode="after")
    def _one_location(self) -> FeedSource:
        if (self.url is None) == (self.path is None):
            raise ValueError("a feed source needs exactly one of 'url' or 'path'")
        if self.url is not None and urlsplit(self.url).scheme not in ("http", "https"):
            raise ValueError(f"feed url {self.url!r} must be http(s); use 'path' for a file")
        return self

    def describe(self) -> str:
        return self.url or self.path or "?"


PostSource = Annotated[MarkdownSource | FeedSource, Field(discriminator="type")]


class PostsConfig(_Section):
    sources: list[PostSource] = Field(default_factory=lambda: list[PostSource]([MarkdownSource()]))
    # "week": one ISO week (default: the last complete one); "since-last-issue": everything
    # after the end of the last issue sent (the first issue: the last seven days).
    window: Literal["week", "since-last-issue"] = "week"
    group_by: Literal["none", "category"] = "none"
    min_posts: int = Field(default=1, ge=0)
    max_posts: int = Field(default=20, ge=1)
    summary_chars: int = Field(default=300, ge=40)
    feed_timeout: float = Field(default=10, gt=0, le=300)  # seconds, per feed URL


class RenderConfig(_Section):
    # UTM parameters for post links, e.g. "weekly-{issue}" (the issue key replaces {issue}).
    # Unset: links go out exactly as the posts have them.
    utm_campaign: str | None = None
    utm_source: str = "newsletter"
    utm_medium: str = "email"

    def utm_for(self, issue_key: str) -> dict[str, str]:
        if not self.utm_campaign:
            return {}
        return {"utm_source": self.utm_source, "utm_medium": self.utm_medium,
                "utm_campaign": self.utm_campaign.replace("{issue}", issue_key)}


class LintConfig(_Section):
    # Score the sample message with SpamAssassin (`spamassassin -L -t`) when it is installed.
    spamassassin: bool = True


class DkimConfig(_Section):
    # Sign every message when all three are set; the public key goes in DNS at
    # <selector>._domainkey.<domain>.
    selector: str | None = None
    domain: str | None = None
    private_key_path: str | None = None

    @model_validator(mode="after")
    def _all_or_none(self) -> DkimConfig:
        given = [self.selector, self.domain, self.private_key_path]
        if any(given) and not all(given):
            raise ValueError("set all of selector, domain and private_key_path, or none")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.selector and self.domain and self.private_key_path)


class SubscribersConfig(_Section):
    # The list `ainews send` sends to and that `subscribers add/import` use without --list.
    default_list: str = Field(default="newsletter", min_length=1, max_length=100)
    # Accept addresses under .test (RFC 2606/6761's name for testing), in [newsletter] from
    # too: for staging against a local mail server. Never for a real list.
    allow_test_domains: bool = False


class StorageConfig(_Section):
    url: str = DEFAULT_STORAGE_URL


class SmtpConfig(_Section):
    host: str = "localhost"
    port: int = Field(default=25, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = "none"
    username: str | None = None
    password: SecretStr | None = None  # environment only: AINEWS_SMTP__PASSWORD
    # Parallel connections, each reused for many messages (RSET between them).
    connections: int = Field(default=1, ge=1, le=32)
    # Processes the connections are spread over (each builds and sends; this process alone
    # claims and records). 0 = one per connection, at most one per CPU core. 1 = every
    # connection a thread of this process: one interpreter lock, so little faster than one.
    workers: int = Field(default=0, ge=0, le=32)
    rate_per_second: float = Field(default=0, ge=0)  # 0 = unlimited, shared by connections
    max_per_hour: int = Field(default=0, ge=0)  # a relay's hourly quota; 0 = none
    timeout: float = Field(default=30, gt=0)
    # Accept a self-signed certificate (a relay on this machine or network only). Off: the
    # certificate and host name are verified, as for any server on the internet.
    allow_self_signed: bool = False
    ehlo_name: str | None = None

    def worker_processes(self) -> int:
        """How many processes the connections are spread over (see `workers`)."""
        if self.workers:
            return min(self.workers, self.connections)
        return min(self.connections, os.cpu_count() or 1)


class DeliveryConfig(_Section):
    backend: Literal["smtp", "file", "console", "memory"] = "smtp"
    out_dir: str = "outbox"  # for backend = "file"
    max_attempts: int = Field(default=10, ge=1)
    retry_base_seconds: int = Field(default=300, ge=1)
    retry_max_seconds: int = Field(default=3600, ge=1)
    batch_size: int = Field(default=200, ge=1, le=10_000)
    # PostgreSQL: a row left `sending` this long (by the database's clock) by a sender that
    # died is sent again (at-least-once). SQLite: a send that finds no other sender alive
    # resends them at once, whatever the clocks say.
    claim_timeout_seconds: int = Field(default=300, ge=1)
    # A recipient still deferred this long after the send started is given up (failed).
    give_up_after_hours: float = Field(default=24, gt=0)
    # Before [bounces] hard_limit: still read from existing configs, and used as hard_limit
    # when [bounces] does not set one.
    bounce_limit: int | None = Field(default=None, ge=1)
    # Pause the send (rows stay queued) when this share of the last error_window messages
    # was refused: a server rejecting everything is not helped by 100,000 more tries.
    error_threshold: float = Field(default=0.5, gt=0, le=1)
    error_window: int = Field(default=20, ge=1)


# A VERP tag: 16 lower-case base32 characters (80 random bits), lower case because some
# mailbox hosts fold the local part.
VERP_TAG_LENGTH = 16


class BouncesConfig(_Section):
    # The bounce mailbox. Set, each message's envelope sender (Return-Path) becomes
    # "<local><delimiter><tag>@<domain>", the tag naming its delivery; unset, bounces go to
    # [newsletter] from and are matched by the returned message and recipient only.
    address: str | None = None
    delimiter: Literal["+", "-", "=", "_", "."] = "+"
    # A bounce naming only a recipient is matched to the newest issue sent to that address
    # within this many days.
    match_days: int = Field(default=14, ge=1, le=365)
    # The policy, for bounce messages and refusals at RCPT time alike: hard bounces
    # (the address does not exist) before a subscriber is marked bounced; soft bounces on
    # distinct issues within soft_window_days before the same; a complaint stops mail at once.
    hard_limit: int = Field(default=1, ge=1)
    soft_limit: int = Field(default=3, ge=1)
    soft_window_days: int = Field(default=30, ge=1, le=3650)
    # `ainews bounces fetch` and the scheduler read this IMAP mailbox; processed messages are
    # moved to processed_folder, never deleted. Password: AINEWS_BOUNCES__PASSWORD only.
    imap_host: str | None = None
    imap_port: int | None = Field(default=None, ge=1, le=65535)  # default 993, 143 starttls
    imap_user: str | None = None
    imap_folder: str = "INBOX"
    processed_folder: str = "Processed"
    imap_security: Literal["tls", "starttls", "none"] = "tls"
    imap_ca_file: str | None = None  # a CA to trust beside the system's (a private server)
    password: SecretStr | None = None
    fetch_minutes: int = Field(default=15, ge=1, le=1440)  # how often the scheduler fetches

    @field_validator("address")
    @classmethod
    def _valid_bounce_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        checked = _check_address(value)
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


class DoctorConfig(_Section):
    # `ainews doctor` asks these DNS servers ("host:port" or "host"; port 53) and no others;
    # empty: the system's resolvers. Tests point it at a server on 127.0.0.1.
    nameservers: list[str] = Field(default_factory=list)
    timeout: float = Field(default=5, gt=0, le=60)  # seconds per DNS query


class ScheduleConfig(_Section):
    # Standard 5-field cron (minute hour day-of-month month day-of-week) in [newsletter]
    # timezone; day-of-week 0 or 7 is Sunday, as in crontab(5).
    cron: str = "0 8 * * MON"
    # "auto": build, lint and send. "draft": build and freeze the issue, mail a test copy to
    # `notify`, and wait for `ainews send --issue KEY`.
    mode: Literal["auto", "draft"] = "auto"
    notify: list[str] = Field(default_factory=list)
    # A run missed while the machine was off still happens, once, if the scheduler is back
    # within this many hours; later than that it is skipped (and logged).
    misfire_grace_hours: float = Field(default=6, gt=0)

    @field_validator("notify")
    @classmethod
    def _valid_notify(cls, value: list[str]) -> list[str]:
        return [_check_address(address) for address in value]


class WebConfig(_Section):
    # `ainews serve`: 127.0.0.1 unless a reverse proxy on this machine cannot reach it.
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    # The subscribe page's pitch, under its heading (plain text: it is escaped).
    tagline: str = "One email a week with the AI news that mattered."
    # Proxies whose X-Forwarded-For is believed (comma-separated, "*" for any): the sign-up
    # throttle must see the reader's address, not the proxy's.
    forwarded_allow_ips: str = "127.0.0.1"
    confirm_link_hours: float = Field(default=48, gt=0)  # a confirmation link expires then
    # Sign-ups per client address per hour, and confirmation mails per address per day:
    # enough for people, too few for someone signing up strangers (subscription bombing).
    signups_per_ip_per_hour: int = Field(default=10, ge=1)
    confirmations_per_address_per_day: int = Field(default=3, ge=1)
    # Request bodies larger than this are refused (413) while they are read: the forms are
    # a few hundred bytes, and a 1 MB field must not be read whole before it is refused.
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    # A connection whose request (headers and body) is not all in within this many seconds
    # of its opening or of the previous response is closed: slow clients cannot pile up.
    request_timeout_seconds: float = Field(default=10, gt=0, le=300)
    # An idle keep-alive connection is closed after this many seconds.
    keep_alive_seconds: float = Field(default=5, gt=0, le=300)


class TrackingConfig(_Section):
    # Click counts, opt-in: each post link of a sent copy goes through base_url/c/<token>
    # (signed with AINEWS_SECRET_KEY), which records the click and redirects. Off, the mail
    # carries the posts' own links and nothing is counted. There is no open pixel at all.
    clicks: bool = False


# The parsed TOML file for the load in progress; a context variable because pydantic-settings
# builds its sources in a classmethod that cannot take arguments.
_file_values: ContextVar[dict[str, Any]] = ContextVar("_file_values")


# The environment for the load in progress: `load_config(environ=...)` must be what is read,
# not os.environ (tests pass {} to be independent of the shell they run in).
_environment: ContextVar[Mapping[str, str]] = ContextVar("_environment")


class _EnvValues(EnvSettingsSource):
    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(_environment.get(os.environ), self.case_sensitive,
                              self.env_ignore_empty, self.env_parse_none_str)


class _TomlValues(PydanticBaseSettingsSource):
    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return _file_values.get({}).get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_file_values.get({}))


class Config(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        populate_by_name=True,
    )

    newsletter: NewsletterConfig = Field(default_factory=NewsletterConfig)
    posts: PostsConfig = Field(default_factory=PostsConfig)
    render: RenderConfig = Field(default_factory=RenderConfig)
    lint: LintConfig = Field(default_factory=LintConfig)
    dkim: DkimConfig = Field(default_factory=DkimConfig)
    subscribers: SubscribersConfig = Field(default_factory=SubscribersConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    smtp: SmtpConfig = Field(default_factory=SmtpConfig)
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    web: WebConfig = Field(default_factory=WebConfig)
    bounces: BouncesConfig = Field(default_factory=BouncesConfig)
    doctor: DoctorConfig = Field(default_factory=DoctorConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    secret_key: SecretStr | None = None  # environment only: AINEWS_SECRET_KEY

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _source: Path | None = PrivateAttr(default=None)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, _EnvValues(settings_cls), _TomlValues(settings_cls))

    @property
    def base_dir(self) -> Path:
        """The folder relative paths are resolved against: the config file's folder."""
        return self._base_dir

    @property
    def source(self) -> Path | None:
        return self._source

    def resolve(self, path: str | Path) -> Path:
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else self._base_dir / candidate

    @property
    def hard_bounce_limit(self) -> int:
        """[bounces] hard_limit, or the older [delivery] bounce_limit when only that is set."""
        if "hard_limit" in self.bounces.model_fields_set or self.delivery.bounce_limit is None:
            return self.bounces.hard_limit
        return self.delivery.bounce_limit

    @property
    def database_url(self) -> str:
        """The storage URL with a relative SQLite path made absolute against base_dir."""
        return absolute_storage_url(self.storage.url, self._base_dir)

    @property
    def templates_dir(self) -> Path:
        """`templates/` beside the config file when it exists, else the shipped copy."""
        local = self._base_dir / "templates"
        return local if local.is_dir() else resources.shipped("templates")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    for key in SECRET_KEYS:
        node: Any = data
        for part in key:
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            dotted = ".".join(key)
            env = ENV_PREFIX + "__".join(part.upper() for part in key)
            raise ConfigError(f"{path}: {dotted}: secrets are read from the environment only; "
                              f"remove it from the file and set {env}")
    return data


def _where(loc: tuple[str | int, ...], path: Path | None, environ: Mapping[str, str]) -> str:
    env_name = ENV_PREFIX + "__".join(str(part).upper() for part in loc)
    if any(name.upper() == env_name for name in environ):
        return f"environment {env_name}"
    return str(path) if path is not None else "command line"


def _dotted(loc: tuple[str | int, ...]) -> str:
    """('posts', 'sources', 0, 'feed', 'url') → 'posts.sources[0].url' (the union tag that
    pydantic adds after a list index is noise to a user)."""
    text = ""
    previous: str | int | None = None
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif isinstance(previous, int) and part in ("markdown", "feed"):
            pass
        else:
            text += f".{part}" if text else part
        previous = part
    return text


def _describe(exc: PydanticValidationError, path: Path | None, environ: Mapping[str, str]) -> str:
    problems = []
    for error in exc.errors():
        loc = tuple(part for part in error["loc"] if not isinstance(part, int)) or ("config",)
        dotted = _dotted(tuple(error["loc"]))
        where = _where(loc, path, environ)
        if error["type"] == "extra_forbidden":
            problems.append(f"{where}: unknown key {dotted!r}")
        else:
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{where}: {dotted}: {message} (got {error.get('input')!r})")
    return "; ".join(problems)


def _refuse_unknown_environment(environ: Mapping[str, str]) -> None:
    """pydantic-settings ignores AINEWS_ variables whose section it does not know, so a typo
    like AINEWS_SMPT__PORT would silently do nothing; refuse it like an unknown file key."""
    for name in environ:
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper == CONFIG_ENV_VAR:
            continue
        section = upper[len(ENV_PREFIX):].split("__", 1)[0].lower()
        if section not in Config.model_fields:
            raise ConfigError(f"environment {name}: unknown key {section!r} (known: "
                              f"{', '.join(sorted(Config.model_fields))})")


def load_config(
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Load the configuration; raise ConfigError with the offending key on any problem."""
    environ = os.environ if environ is None else environ
    _refuse_unknown_environment(environ)
    config_path = config_path_from(path, environ)
    file_values = _read_toml(config_path) if config_path is not None else {}
    environment_token = _environment.set(environ)
    with _file_values_set(file_values), _reset_after(_environment, environment_token):
        try:
            config = Config(**dict(overrides or {}))
        except PydanticValidationError as exc:
            raise ConfigError(_describe(exc, config_path, environ)) from None
        except SettingsError as exc:  # a section set from the environment that is not JSON
            raise ConfigError(f"environment: {exc}; set single keys instead, e.g. "
                              "AINEWS_SMTP__PORT=2526") from None
    _refuse_test_addresses(config, config_path, environ)
    if config_path is not None:
        config._base_dir = config_path.resolve().parent
        config._source = config_path.resolve()
    return config


def is_test_domain(domain: str) -> bool:
    """Under `.test`, the name RFC 2606/6761 reserve for testing: staging only."""
    domain = domain.lower().rstrip(".")
    return domain == "test" or domain.endswith(".test")


def _refuse_test_addresses(config: Config, path: Path | None,
                           environ: Mapping[str, str]) -> None:
    """Our own addresses under .test only for staging ([subscribers] allow_test_domains):
    mail from a .test sender cannot be answered, bounced or trusted anywhere real."""
    if config.subscribers.allow_test_domains:
        return
    ours: list[tuple[tuple[str, str], str | None]] = [
        (("newsletter", "from"), config.newsletter.from_),
        (("newsletter", "reply_to"), config.newsletter.reply_to),
        (("newsletter", "unsubscribe_email"), config.newsletter.unsubscribe_email),
        (("bounces", "address"), config.bounces.address),
        *((("schedule", "notify"), address) for address in config.schedule.notify)]
    for loc, address in ours:
        if address and is_test_domain(address.rpartition("@")[2]):
            raise ConfigError(f"{_where(loc, path, environ)}: {'.'.join(loc)}: {address!r} is "
                              "under .test, a name reserved for testing; set [subscribers] "
                              "allow_test_domains = true to use it for staging")


@contextmanager
def _reset_after(variable: ContextVar[Any], token: Token[Any]) -> Iterator[None]:
    try:
        yield
    finally:
        variable.reset(token)


@contextmanager
def _file_values_set(values: dict[str, Any]) -> Iterator[None]:
    token = _file_values.set(values)
    try:
        yield
    finally:
        _file_values.reset(token)
