"""A mail provider's webhook request → checked as the provider documents it → its events
recorded (event_matching.py). What each provider signs, and with what, is in the feedback
room (feedback/webhooks/); this module holds what needs the config, the network or the
database: the allowed SNS topics, the SNS certificate (a pinned folder, else fetched once
from sns.<region>.amazonaws.com and cached), the subscription confirmation, the Mailgun
tokens already seen, and basic auth.

A request that fails a check raises WebhookRefused (401 for basic auth, 403 for anything
signed) and nothing is stored; a body that is not what the provider sends raises
WebhookBodyError (400)."""

from __future__ import annotations

import base64
import binascii
import hmac
import http.client
import logging
import math
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from ainews_newsletter import clock
from ainews_newsletter.config import Config
from ainews_newsletter.database import engine_for
from ainews_newsletter.errors import AinewsError
from ainews_newsletter.feedback.replay_guard import remember_token, token_seen
from ainews_newsletter.feedback.webhooks import (
    PROVIDERS,
    WebhookBodyError,
    mailgun,
    parse_body,
    postal,
    sendgrid,
    ses,
)
from ainews_newsletter.pipeline.event_matching import record_provider_events
from ainews_newsletter.pipeline.feedback import IngestSummary

log = logging.getLogger("ainews.webhooks")

CERTIFICATE_LIMIT = 64 * 1024  # an SNS signing certificate is about 2 KB


class WebhookRefused(AinewsError):
    """The request is not the provider's: 401 (basic auth) or 403 (a signature, topic,
    certificate URL, age or reused token). `reason` goes into one log line."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class WebhookRequest:
    provider: str
    body: bytes
    headers: Mapping[str, str]  # names in lower case
    remote: str  # the client's address, for the log


def fetch_https(url: str, timeout: float) -> bytes:
    """GET one https URL that the caller checked is SNS's own (a certificate or a
    subscription confirmation). Tests replace this function: no test leaves 127.0.0.1."""
    request = urllib.request.Request(url, headers={"User-Agent": "ainews-newsletter"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data: bytes = response.read(CERTIFICATE_LIMIT + 1)
    except (http.client.HTTPException, ValueError) as exc:  # a broken answer, not OSError
        raise OSError(f"{exc.__class__.__name__}: {exc}") from None
    if len(data) > CERTIFICATE_LIMIT:
        raise OSError(f"{url}: more than {CERTIFICATE_LIMIT} bytes")
    return data


# What fetches SNS's URLs; a module attribute so that tests (and nothing else) swap it.
fetch: Callable[[str, float], bytes] = fetch_https
_certificates: dict[str, bytes] = {}  # by URL: fetched once per process


def provider_enabled(config: Config, provider: str) -> bool:
    return provider in PROVIDERS and config.webhooks.enabled.get(provider, False)


def handle_webhook(config: Config, request: WebhookRequest) -> IngestSummary:
    """Check, parse and record one request. WebhookRefused or WebhookBodyError on a bad one
    (nothing stored); a database error passes through (the route answers 503)."""
    provider = request.provider
    if provider == "ses":
        return _handle_sns(config, request)
    _check_authentic(config, request)
    events = parse_body(provider, request.body)
    summary = record_provider_events(config, provider, events, f"webhook:{provider}")
    if provider == "mailgun":  # only now: a request that failed before this may come again
        fields = mailgun.signature_fields(request.body)
        assert fields is not None  # checked by _check_authentic
        remember_token(engine_for(config.database_url), "mailgun", fields[1], clock.now())
    return summary


def _check_authentic(config: Config, request: WebhookRequest) -> None:
    settings = config.webhooks
    headers, body = request.headers, request.body
    if request.provider == "postmark":
        assert settings.postmark_username and settings.postmark_password
        _check_basic_auth(headers, settings.postmark_username,
                          settings.postmark_password.get_secret_value())
    elif request.provider == "sendgrid":
        assert settings.sendgrid_public_key
        if settings.sendgrid_username and settings.sendgrid_password:
            _check_basic_auth(headers, settings.sendgrid_username,
                              settings.sendgrid_password.get_secret_value())
        signature = headers.get("x-twilio-email-event-webhook-signature", "")
        timestamp = headers.get("x-twilio-email-event-webhook-timestamp", "")
        if not signature or not timestamp:
            raise WebhookRefused(403, "no X-Twilio-Email-Event-Webhook-Signature/-Timestamp")
        if not sendgrid.verify_signature(settings.sendgrid_public_key, signature, timestamp,
                                         body):
            raise WebhookRefused(403, "bad signature")
    elif request.provider == "mailgun":
        assert settings.mailgun_signing_key is not None
        fields = mailgun.signature_fields(body)
        if fields is None:
            parse_body("mailgun", body)  # a body that is not Mailgun's JSON: 400, not 403
            raise WebhookRefused(403, "no signature in the body")
        timestamp, token, signature = fields
        if not mailgun.verify_signature(settings.mailgun_signing_key.get_secret_value(),
                                        timestamp, token, signature):
            raise WebhookRefused(403, "bad signature")
        try:
            age = abs(clock.now().timestamp() - float(timestamp))
        except ValueError:
            raise WebhookRefused(403, "timestamp is not a number") from None
        if not math.isfinite(age) or age > settings.mailgun_max_age_seconds:
            raise WebhookRefused(403, f"timestamp {timestamp[:20]!r} is not within "
                                      f"{settings.mailgun_max_age_seconds} s of now")
        if token_seen(engine_for(config.database_url), "mailgun", token):
            raise WebhookRefused(403, "token seen before (a replayed request)")
    elif request.provider == "postal":
        assert settings.postal_public_key
        # Newer Postal sends X-Postal-Signature-256 beside the SHA-1 one it keeps for
        # backwards compatibility: the stronger one decides when it is there.
        strong = headers.get("x-postal-signature-256", "")
        signature = strong or headers.get("x-postal-signature", "")
        if not signature:
            raise WebhookRefused(403, "no X-Postal-Signature")
        if not postal.verify_signature(settings.postal_public_key, signature, body,
                                       sha256=bool(strong)):
            raise WebhookRefused(403, "bad signature")


def _check_basic_auth(headers: Mapping[str, str], username: str, password: str) -> None:
    scheme, _, encoded = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise WebhookRefused(401, "no basic auth")
    try:
        given_user, _, given_password = base64.b64decode(
            encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise WebhookRefused(401, "malformed basic auth") from None
    # Both compared in full whatever the first gave: the time says nothing of either.
    user_ok = hmac.compare_digest(given_user.encode(), username.encode())
    password_ok = hmac.compare_digest(given_password.encode(), password.encode())
    if not (user_ok and password_ok):
        raise WebhookRefused(401, "wrong basic auth")


# -- Amazon SES through SNS ------------------------------------------------------------------


def _handle_sns(config: Config, request: WebhookRequest) -> IngestSummary:
    envelope = ses.sns_envelope(request.body)
    if envelope is None:
        raise WebhookBodyError("not an SNS message (a bare SES notification is only read by "
                               "`ainews bounces ingest --provider ses`)")
    if envelope.topic_arn not in config.webhooks.ses_topics:
        raise WebhookRefused(403, f"topic {envelope.topic_arn!r} is not in [webhooks] "
                                  "ses_topics")
    if not ses.valid_sns_url(envelope.signing_cert_url):
        raise WebhookRefused(403, f"certificate URL {envelope.signing_cert_url!r} is not "
                                  "SNS's own")
    certificate = _sns_certificate(config, envelope.signing_cert_url)
    if not ses.verify_sns_signature(envelope, certificate):
        raise WebhookRefused(403, "bad signature")
    if envelope.type == "SubscriptionConfirmation":
        _confirm_subscription(config, envelope.topic_arn, envelope.subscribe_url)
        return IngestSummary(messages=1)
    if envelope.type != "Notification":  # UnsubscribeConfirmation: nothing to do
        log.info("ses: %s for %s", envelope.type, envelope.topic_arn)
        return IngestSummary(messages=1)
    return record_provider_events(config, "ses", ses.envelope_events(envelope), "webhook:ses")


def _sns_certificate(config: Config, url: str) -> bytes:
    """From the pinned folder by the URL's file name, else fetched once and cached."""
    name = PurePosixPath(urlsplit(url).path).name
    if config.webhooks.sns_certificates:
        pinned = config.resolve(config.webhooks.sns_certificates) / name
        if pinned.is_file():
            return pinned.read_bytes()
    if url not in _certificates:
        try:
            fetched = fetch(url, config.smtp.timeout)
        except OSError as exc:
            # Not the sender's fault: a 403 would make SNS give up; an error lets it retry.
            raise AinewsError(f"ses: could not fetch the SNS certificate {url}: {exc}") from None
        # Kept only if it is a certificate valid now: a broken download is tried again with
        # the next message instead of refusing every message that names this URL.
        if not ses.certificate_in_date(fetched, clock.now()):
            raise AinewsError(f"ses: {url} is not a certificate valid now")
        _certificates[url] = fetched
    return _certificates[url]


def _confirm_subscription(config: Config, topic: str, url: str) -> None:
    if not ses.valid_subscribe_url(url):
        raise WebhookRefused(403, f"SubscribeURL {url!r} is not SNS's own")
    if not config.webhooks.ses_confirm_subscriptions:
        log.warning("ses: confirm the subscription to %s by opening %s", topic, url)
        return
    try:
        fetch(url, config.smtp.timeout)
    except OSError as exc:
        log.warning("ses: could not confirm the subscription to %s (%s): open %s", topic,
                    exc, url)
        return
    log.info("ses: confirmed the subscription to %s", topic)
