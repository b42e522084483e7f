"""[webhooks]: the mail providers' event webhooks `ainews serve` answers. Each route is off
(404) until its provider's settings are here; the shared secrets come from the environment
only, like every secret."""

from __future__ import annotations

import re

from pydantic import Field, SecretStr, field_validator, model_validator

from ainews_newsletter.config.base import Section

_TOPIC_ARN = re.compile(r"arn:aws(?:-[a-z]+)*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]{1,256}")


class WebhooksConfig(Section):
    ses_topics: list[str] = Field(
        default=[],
        description="Amazon SES through SNS: the topic ARNs whose notifications are "
                    "believed (arn:aws:sns:<region>:<account>:<name>). Empty: "
                    "/webhooks/ses is off.")
    sns_certificates: str | None = Field(
        default=None,
        description="A folder of SNS signing certificates, by the file name of their "
                    "SigningCertURL (e.g. SimpleNotificationService-….pem): used instead of "
                    "fetching (pinning, offline use). A certificate there is the operator's "
                    "choice: its dates are not checked.")
    ses_confirm_subscriptions: bool = Field(
        default=True,
        description="Confirm an SNS subscription to an allowed topic by fetching its "
                    "SubscribeURL; false: only log the URL to open by hand.")
    sendgrid_public_key: str | None = Field(
        default=None,
        description="SendGrid's Signed Event Webhook verification key, as SendGrid shows it "
                    "(base64). Unset: /webhooks/sendgrid is off.")
    sendgrid_username: str | None = Field(
        default=None,
        description="Optional basic auth on /webhooks/sendgrid, beside the signature (the "
                    "password comes from the environment).")
    sendgrid_password: SecretStr | None = Field(
        default=None, description="The password of sendgrid_username (secret).")
    mailgun_signing_key: SecretStr | None = Field(
        default=None,
        description="Mailgun's HTTP webhook signing key (secret). Unset: /webhooks/mailgun "
                    "is off.")
    mailgun_max_age_seconds: int = Field(
        default=900, ge=30, le=86_400,
        description="A Mailgun event whose signed timestamp is further than this from now "
                    "is refused (a replayed request).")
    postmark_username: str | None = Field(
        default=None,
        description="Postmark signs nothing: the basic auth user name set in the webhook's "
                    "URL. With the password, /webhooks/postmark is on.")
    postmark_password: SecretStr | None = Field(
        default=None, description="The basic auth password for Postmark (secret).")
    postal_public_key: str | None = Field(
        default=None,
        description="The Postal server's webhook public key (base64 DER or PEM), which "
                    "verifies X-Postal-Signature. Unset: /webhooks/postal is off.")
    max_body_bytes: int = Field(
        default=5_000_000, ge=1024, le=100_000_000,
        description="Webhook bodies larger than this are refused (413) while they are read "
                    "(SendGrid batches thousands of events in one body).")

    @field_validator("ses_topics")
    @classmethod
    def _topic_arns(cls, value: list[str]) -> list[str]:
        for arn in value:
            if not _TOPIC_ARN.fullmatch(arn):
                raise ValueError(f"{arn!r} is not an SNS topic ARN "
                                 "(arn:aws:sns:<region>:<account id>:<topic name>)")
        return value

    @model_validator(mode="after")
    def _passwords_for_usernames(self) -> WebhooksConfig:
        # A user name without its password would leave the route open (SendGrid) or quietly
        # off (Postmark): say so at start-up instead.
        for user, password, name in (
                (self.sendgrid_username, self.sendgrid_password, "SENDGRID_PASSWORD"),
                (self.postmark_username, self.postmark_password, "POSTMARK_PASSWORD")):
            if user and password is None:
                raise ValueError(f"a user name is set but its password is not: set "
                                 f"AINEWS_WEBHOOKS__{name} in the environment")
        return self

    @property
    def enabled(self) -> dict[str, bool]:
        """Which provider routes are on."""
        return {
            "ses": bool(self.ses_topics),
            "sendgrid": bool(self.sendgrid_public_key),
            "mailgun": self.mailgun_signing_key is not None,
            "postmark": bool(self.postmark_username and self.postmark_password),
            "postal": bool(self.postal_public_key),
        }
