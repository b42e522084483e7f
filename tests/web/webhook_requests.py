"""What each mail provider would post about one delivery, signed with keys the tests make.

The bodies follow the providers' documented shapes (the same fields as the real payloads in
../shared/corpora/webhooks); the signatures are made here from the providers' documentation,
independently of the product's verifiers: SNS's string to sign is built field by field,
SendGrid's ECDSA over timestamp + body, Mailgun's HMAC over timestamp + token, Postal's RSA
over the body, Postmark's basic auth."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-events"
CERT_NAME = "SimpleNotificationService-0000000000000000000000000000test.pem"
CERT_URL = f"https://sns.eu-west-1.amazonaws.com/{CERT_NAME}"
MAILGUN_KEY = "key-" + "4" * 28
POSTMARK_USER, POSTMARK_PASSWORD = "ainews", "postmark-password-for-tests"
PROVIDERS = ("ses", "sendgrid", "mailgun", "postmark", "postal")

# What each relay answers after DATA, as the provider's does (the id is what its events
# carry later). Mailgun and Postal report our own Message-ID instead.
RELAY_REPLIES = {
    "ses": "250 Ok {id}",
    "sendgrid": "250 Ok: queued as {id}",
    "mailgun": "250 Great success",
    "postmark": "250 Ok: queued as {id}",
    "postal": "250 OK",
}


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class Keys:
    """One set of provider keys per test run (RSA key generation is the slow part)."""
    sns_ca: rsa.RSAPrivateKey = field(default_factory=_rsa)
    sns_leaf: rsa.RSAPrivateKey = field(default_factory=_rsa)
    sendgrid: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    postal: rsa.RSAPrivateKey = field(default_factory=_rsa)

    def sns_certificate(self) -> bytes:
        """A certificate for the leaf key, issued by our own CA (as Amazon's is by its)."""
        now = dt.datetime.now(dt.UTC)
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Root CA")])
        leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                  "sns.eu-west-1.amazonaws.com")])
        cert = (x509.CertificateBuilder().subject_name(leaf_name).issuer_name(ca_name)
                .public_key(self.sns_leaf.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(now + dt.timedelta(days=30))
                .sign(self.sns_ca, hashes.SHA256()))
        return cert.public_bytes(serialization.Encoding.PEM)

    def pin_sns_certificate(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CERT_NAME).write_bytes(self.sns_certificate())

    def sendgrid_public(self) -> str:
        return base64.b64encode(self.sendgrid.public_key().public_bytes(
            serialization.Encoding.DER,
            serialization.PublicFormat.SubjectPublicKeyInfo)).decode()

    def postal_public(self) -> str:
        return base64.b64encode(self.postal.public_key().public_bytes(
            serialization.Encoding.DER,
            serialization.PublicFormat.SubjectPublicKeyInfo)).decode()


@dataclass
class Sent:
    """One delivery as the ledger has it."""
    email: str
    tag: str
    provider_id: str
    message_id: str  # with <>


@dataclass
class Request:
    body: bytes
    headers: dict[str, str]


def sns_string_to_sign(message: dict[str, str]) -> bytes:
    """AWS's canonical form: "Name\\nvalue\\n" for these keys, in this order, if present."""
    if message["Type"] == "Notification":
        names = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
    else:
        names = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn",
                 "Type")
    return "".join(f"{name}\n{message[name]}\n" for name in names if name in message).encode()


def sign_sns(keys: Keys, message: dict[str, str], version: str = "1") -> bytes:
    message = {**message, "SignatureVersion": version, "SigningCertURL": CERT_URL}
    digest = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = keys.sns_leaf.sign(sns_string_to_sign(message), padding.PKCS1v15(), digest)
    message["Signature"] = base64.b64encode(signature).decode()
    return json.dumps(message).encode()


def sns_envelope(inner: dict[str, Any], message_id: str | None = None) -> dict[str, str]:
    return {"Type": "Notification", "MessageId": message_id or secrets.token_hex(16),
            "TopicArn": TOPIC, "Message": json.dumps(inner),
            "Timestamp": "2026-11-23T09:00:00.000Z"}


def event_body(provider: str, sent: Sent, kind: str, event_id: str | None = None) -> bytes:
    """A body reporting `kind` (hard, complaint, delivered, unsubscribe) for `sent`, carrying
    every identifier the provider really carries."""
    event_id = event_id or secrets.token_hex(8)
    if provider == "ses":
        inner: dict[str, Any] = {"mail": {"messageId": sent.provider_id,
                                          "destination": [sent.email],
                                          "tags": {"ainews_tag": [sent.tag]} if sent.tag else {},
                                          "timestamp": "2026-11-23T08:59:00.000Z"}}
        if kind == "hard":
            inner.update(eventType="Bounce", bounce={
                "bounceType": "Permanent", "bounceSubType": "General",
                "bouncedRecipients": [{"emailAddress": sent.email, "status": "5.1.1",
                                       "action": "failed",
                                       "diagnosticCode": "smtp; 550 5.1.1 user unknown"}]})
        elif kind == "complaint":
            inner.update(eventType="Complaint", complaint={
                "complainedRecipients": [{"emailAddress": sent.email}],
                "complaintFeedbackType": "abuse"})
        else:
            inner.update(eventType="Delivery", delivery={"recipients": [sent.email]})
        return json.dumps(sns_envelope(inner, event_id)).encode()
    if provider == "sendgrid":
        event = {"email": sent.email, "timestamp": 1795000000, "sg_event_id": event_id,
                 "sg_message_id": f"{sent.provider_id}.filterdrecv-5645d9c87f-abc-1-0",
                 "smtp-id": sent.message_id, "ainews_tag": sent.tag}
        event.update({"hard": {"event": "bounce", "type": "bounce", "status": "5.1.1",
                               "reason": "550 5.1.1 user unknown"},
                      "complaint": {"event": "spamreport"},
                      "delivered": {"event": "delivered", "response": "250 OK"},
                      "unsubscribe": {"event": "unsubscribe"}}[kind])
        return json.dumps([event]).encode()
    if provider == "mailgun":
        data: dict[str, Any] = {
            "id": event_id, "timestamp": 1795000000.1, "recipient": sent.email,
            "user-variables": {"ainews_tag": sent.tag},
            "message": {"headers": {"message-id": sent.message_id.strip("<>"),
                                    "to": sent.email}}}
        data.update({"hard": {"event": "failed", "severity": "permanent", "reason": "bounce",
                              "delivery-status": {"code": 550,
                                                  "message": "5.1.1 no such user"}},
                     "complaint": {"event": "complained"},
                     "delivered": {"event": "delivered"},
                     "unsubscribe": {"event": "unsubscribed"}}[kind])
        return json.dumps({"event-data": data}).encode()  # the signature is added by sign()
    if provider == "postmark":
        common = {"MessageID": sent.provider_id, "Email": sent.email, "Recipient": sent.email,
                  "Metadata": {"ainews_tag": sent.tag}, "ID": int(event_id[:8], 16)}
        record = {"hard": {"RecordType": "Bounce", "Type": "HardBounce", "TypeCode": 1,
                           "Details": "smtp;550 5.1.1 no such user",
                           "BouncedAt": "2026-11-23T09:00:00Z"},
                  "complaint": {"RecordType": "SpamComplaint", "Type": "SpamComplaint",
                                "TypeCode": 512, "BouncedAt": "2026-11-23T09:00:00Z"},
                  "delivered": {"RecordType": "Delivery", "DeliveredAt": "2026-11-23T09:00:00Z"},
                  "unsubscribe": {"RecordType": "SubscriptionChange", "SuppressSending": True,
                                  "SuppressionReason": "ManualSuppression",
                                  "ChangedAt": "2026-11-23T09:00:00Z"}}[kind]
        return json.dumps({**common, **record}).encode()
    assert provider == "postal"
    message = {"id": 1571, "token": "MzWWQPubXXWz", "direction": "outgoing",
               "message_id": sent.message_id.strip("<>"), "to": sent.email,
               "from": "digest@news.example.org", "subject": "Test Digest",
               "timestamp": 1795000000.0, "tag": sent.tag}
    event, status = {"hard": ("MessageDeliveryFailed", "HardFail"),
                     "delivered": ("MessageSent", "Sent")}[kind]
    return json.dumps({"event": event, "timestamp": 1795000000.5, "uuid": event_id,
                       "payload": {"message": message, "status": status,
                                   "details": "550 5.1.1 no such user", "output": "",
                                   "timestamp": 1795000000.6}}).encode()


def sign(provider: str, keys: Keys, body: bytes, now: float, *,
         sns_version: str = "1", mailgun_token: str | None = None) -> Request:
    """The request the provider would send for `body`, signed (or authenticated) for real."""
    if provider == "ses":
        return Request(sign_sns(keys, json.loads(body), sns_version),
                       {"x-amz-sns-message-type": "Notification"})
    if provider == "sendgrid":
        timestamp = str(int(now))
        signature = keys.sendgrid.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return Request(body, {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp})
    if provider == "mailgun":
        timestamp, token = str(int(now)), mailgun_token or secrets.token_hex(25)
        signature = hmac.new(MAILGUN_KEY.encode(), (timestamp + token).encode(),
                             hashlib.sha256).hexdigest()
        data = json.loads(body)
        data["signature"] = {"timestamp": timestamp, "token": token, "signature": signature}
        return Request(json.dumps(data).encode(), {})
    if provider == "postmark":
        credentials = base64.b64encode(f"{POSTMARK_USER}:{POSTMARK_PASSWORD}".encode())
        return Request(body, {"Authorization": f"Basic {credentials.decode()}"})
    signature = keys.postal.sign(body, padding.PKCS1v15(), hashes.SHA1())
    return Request(body, {"X-Postal-Signature": base64.b64encode(signature).decode()})


def webhook_settings(provider: str, keys: Keys, pinned: Path) -> tuple[str, dict[str, str]]:
    """The [webhooks] lines and the environment that turn `provider` on."""
    if provider == "ses":
        keys.pin_sns_certificate(pinned)
        return (f'ses_topics = ["{TOPIC}"]\nsns_certificates = "{pinned}"\n', {})
    if provider == "sendgrid":
        return f'sendgrid_public_key = "{keys.sendgrid_public()}"\n', {}
    if provider == "mailgun":
        return "", {"AINEWS_WEBHOOKS__MAILGUN_SIGNING_KEY": MAILGUN_KEY}
    if provider == "postmark":
        return (f'postmark_username = "{POSTMARK_USER}"\n',
                {"AINEWS_WEBHOOKS__POSTMARK_PASSWORD": POSTMARK_PASSWORD})
    return f'postal_public_key = "{keys.postal_public()}"\n', {}
