"""Typed configuration, loaded once (see loading.py for the precedence and the rules).

The package, by job:
  locate.py      where the config file is and what a storage URL names, without pydantic
  base.py        what every section model shares
  newsletter.py, content.py, mail.py, site.py   the section models, one field per key, each
                 with the description the documentation's reference is generated from
  root.py        Config: all sections and the secret key
  environment.py the AINEWS_ variables as nested values for the models
  loading.py     load_config: file, environment, errors that name the key
  reference.py   the configuration reference (docs) and its checks (tests)

`from ainews_newsletter.config import Config, load_config` works as before. The names are
resolved on first use (PEP 562), so importing `config.locate` costs no pydantic.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ainews_newsletter.config.base import Section, is_test_domain
    from ainews_newsletter.config.content import (
        FeedSource,
        LintConfig,
        MarkdownSource,
        PostsConfig,
        PostSource,
        RenderConfig,
    )
    from ainews_newsletter.config.loading import load_config
    from ainews_newsletter.config.mail import (
        VERP_TAG_LENGTH,
        BouncesConfig,
        DeliveryConfig,
        DkimConfig,
        SmtpConfig,
    )
    from ainews_newsletter.config.newsletter import (
        SAMPLE_BASE_URL,
        SAMPLE_POSTAL_ADDRESSES,
        NewsletterConfig,
    )
    from ainews_newsletter.config.privacy import PrivacyConfig
    from ainews_newsletter.config.root import SECRET_KEYS, Config
    from ainews_newsletter.config.site import (
        DoctorConfig,
        ScheduleConfig,
        StorageConfig,
        SubscribersConfig,
        TrackingConfig,
        WebConfig,
    )
    from ainews_newsletter.config.webhooks import WebhooksConfig

_HOME = {
    "Section": "base", "is_test_domain": "base",
    "FeedSource": "content", "LintConfig": "content", "MarkdownSource": "content",
    "PostsConfig": "content", "PostSource": "content", "RenderConfig": "content",
    "load_config": "loading",
    "VERP_TAG_LENGTH": "mail", "BouncesConfig": "mail", "DeliveryConfig": "mail",
    "DkimConfig": "mail", "SmtpConfig": "mail",
    "SAMPLE_BASE_URL": "newsletter", "SAMPLE_POSTAL_ADDRESSES": "newsletter",
    "NewsletterConfig": "newsletter", "PrivacyConfig": "privacy",
    "SECRET_KEYS": "root", "Config": "root",
    "DoctorConfig": "site", "ScheduleConfig": "site", "StorageConfig": "site",
    "SubscribersConfig": "site", "TrackingConfig": "site", "WebConfig": "site",
    "WebhooksConfig": "webhooks",
}

__all__ = [
    "SAMPLE_BASE_URL",
    "SAMPLE_POSTAL_ADDRESSES",
    "SECRET_KEYS",
    "VERP_TAG_LENGTH",
    "BouncesConfig",
    "Config",
    "DeliveryConfig",
    "DkimConfig",
    "DoctorConfig",
    "FeedSource",
    "LintConfig",
    "MarkdownSource",
    "NewsletterConfig",
    "PostSource",
    "PostsConfig",
    "PrivacyConfig",
    "RenderConfig",
    "ScheduleConfig",
    "Section",
    "SmtpConfig",
    "StorageConfig",
    "SubscribersConfig",
    "TrackingConfig",
    "WebConfig",
    "WebhooksConfig",
    "is_test_domain",
    "load_config",
]


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # once found, an ordinary attribute
    return value
