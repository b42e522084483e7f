"""The whole configuration: one field per section, and the secret key. Where the values come
from (flags, the environment, the file) is loading.py's business."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr

from ainews_newsletter import resources
from ainews_newsletter.config.content import LintConfig, PostsConfig, RenderConfig
from ainews_newsletter.config.locate import absolute_storage_url
from ainews_newsletter.config.mail import BouncesConfig, DeliveryConfig, DkimConfig, SmtpConfig
from ainews_newsletter.config.newsletter import NewsletterConfig
from ainews_newsletter.config.privacy import PrivacyConfig
from ainews_newsletter.config.site import (
    DoctorConfig,
    ScheduleConfig,
    StorageConfig,
    SubscribersConfig,
    TrackingConfig,
    WebConfig,
)
from ainews_newsletter.config.webhooks import WebhooksConfig

# Keys that must never be read from a file: they would end up committed next to the config.
SECRET_KEYS = {("secret_key",), ("smtp", "password"), ("bounces", "password"),
               ("webhooks", "sendgrid_password"), ("webhooks", "mailgun_signing_key"),
               ("webhooks", "postmark_password")}


class Config(BaseModel):
    # validate_default: as pydantic-settings' BaseSettings had it. defer_build: the
    # validator is built by the first load (loading.py), not by the import.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True,
                              validate_default=True, defer_build=True)

    newsletter: NewsletterConfig = Field(
        default_factory=NewsletterConfig,
        description="Who sends, from where, for whom, in which timezone.")
    posts: PostsConfig = Field(
        default_factory=PostsConfig,
        description="Where posts come from and which of them an issue carries.")
    render: RenderConfig = Field(
        default_factory=RenderConfig,
        description="How links in the email are dressed.")
    lint: LintConfig = Field(
        default_factory=LintConfig,
        description="What the lint gate checks before a send (oversized HTML, missing alt "
                    "text or unsubscribe link, long lines, spam score).")
    dkim: DkimConfig = Field(
        default_factory=DkimConfig,
        description="DKIM signing of every message (Gmail and Yahoo want it for bulk mail).")
    subscribers: SubscribersConfig = Field(
        default_factory=SubscribersConfig,
        description="The subscriber list.")
    storage: StorageConfig = Field(
        default_factory=StorageConfig,
        description="Where subscribers, issues and the delivery ledger are kept.")
    smtp: SmtpConfig = Field(
        default_factory=SmtpConfig,
        description="The relay mail goes out through.")
    delivery: DeliveryConfig = Field(
        default_factory=DeliveryConfig,
        description="How a send runs: backend, retries, giving up, pausing on errors.")
    schedule: ScheduleConfig = Field(
        default_factory=ScheduleConfig,
        description="When `ainews schedule run` builds and sends the issue.")
    web: WebConfig = Field(
        default_factory=WebConfig,
        description="`ainews serve`: the public subscribe, confirm, unsubscribe and archive pages.")
    bounces: BouncesConfig = Field(
        default_factory=BouncesConfig,
        description="The mail that comes back: bounces, complaints and auto-replies, and "
                    "the policy acting on them.")
    doctor: DoctorConfig = Field(
        default_factory=DoctorConfig,
        description="`ainews doctor`'s DNS lookups.")
    tracking: TrackingConfig = Field(
        default_factory=TrackingConfig,
        description="Opt-in click counts.")
    webhooks: WebhooksConfig = Field(
        default_factory=WebhooksConfig,
        description="The mail providers' event webhooks (bounces, complaints, deliveries, "
                    "unsubscribes) that `ainews serve` answers at /webhooks/<provider>.")
    privacy: PrivacyConfig = Field(
        default_factory=PrivacyConfig,
        description="What is kept about readers and for how long: consent records, the "
                    "ledger's addresses, bounce details.")
    secret_key: SecretStr | None = Field(
        default=None,
        description="Encrypts the confirmation links of `ainews serve`, signs the click "
                    "links of [tracking] and keys the hash an erased address leaves "
                    "(`subscribers erase`: keep it the same); at least 16 characters, random "
                    "(secret).")

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _source: Path | None = PrivateAttr(default=None)

    def located_at(self, config_path: Path) -> None:
        """Remember the file this config came from: relative paths resolve against its
        folder."""
        self._base_dir = config_path.resolve().parent
        self._source = config_path.resolve()

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
    def locale_dir(self) -> Path | None:
        """The operator's own catalogs (`locale/` beside the config file), if there."""
        local = self._base_dir / "locale"
        return local if local.is_dir() else None

    @property
    def templates_dir(self) -> Path:
        """`templates/` beside the config file when it exists, else the shipped copy."""
        local = self._base_dir / "templates"
        return local if local.is_dir() else resources.shipped("templates")
