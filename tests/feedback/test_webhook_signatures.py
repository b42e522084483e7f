"""Each provider's signature check, with keys made here: SNS through a CA and certificate of
our own (both signature versions), SendGrid's ECDSA P-256, Mailgun's HMAC (also against the
16 signatures of the shared corpus, made with anymail's test key), Postal's RSA. A valid
signature passes; a tampered body, another key or a malformed input fails, and nothing
raises. The string SNS signs is written out here by hand, not taken from the code."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from ainews_newsletter.feedback.webhooks import mailgun, postal, sendgrid, ses
from tests.conftest import corpus

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def _certificate(key: Any, issuer_key: Any, name: str, issuer: str, ca: bool) -> bytes:
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(issuer_key, hashes.SHA256()))
    return certificate.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def sns_keys() -> dict[str, Any]:
    """A CA of our own and the SNS signing certificate it issued; another key and cert."""
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    return {
        "key": key,
        "ca": _certificate(ca_key, ca_key, "Test CA", "Test CA", ca=True),
        "cert": _certificate(key, ca_key, "sns.us-east-1.amazonaws.com", "Test CA", ca=False),
        "other_cert": _certificate(other, ca_key, "sns.us-east-1.amazonaws.com", "Test CA",
                                   ca=False),
        "ec_cert": _certificate(ec_key, ca_key, "ec", "Test CA", ca=False),
    }


NOTIFICATION = {
    "Type": "Notification", "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
    "TopicArn": "arn:aws:sns:us-east-1:123456789012:ses-events",
    "Subject": "Amazon SES Email Event Notification",
    "Message": json.dumps({"notificationType": "Bounce", "bounce": {
        "bounceType": "Permanent", "bounceSubType": "General",
        "bouncedRecipients": [{"emailAddress": "gone@readers.example", "status": "5.1.1"}]},
        "mail": {"messageId": "0100018-abc", "tags": {"ainews_tag": ["abcdefghijklmnop"]}}}),
    "Timestamp": "2026-03-01T10:00:00.000Z",
    "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
    "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&x=y",
}
CONFIRMATION = {
    "Type": "SubscriptionConfirmation", "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
    "Token": "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a",
    "TopicArn": "arn:aws:sns:us-east-1:123456789012:ses-events",
    "Message": "You have chosen to subscribe to the topic.\nTo confirm, visit the SubscribeURL.",
    "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&T=x",
    "Timestamp": "2026-03-01T10:00:00.000Z",
    "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
}


def _by_hand(message: dict[str, str]) -> bytes:
    """AWS's string to sign, spelled out per type."""
    if message["Type"] == "Notification":
        text = (f"Message\n{message['Message']}\nMessageId\n{message['MessageId']}\n"
                + (f"Subject\n{message['Subject']}\n" if "Subject" in message else "")
                + f"Timestamp\n{message['Timestamp']}\nTopicArn\n{message['TopicArn']}\n"
                f"Type\n{message['Type']}\n")
    else:
        text = (f"Message\n{message['Message']}\nMessageId\n{message['MessageId']}\n"
                f"SubscribeURL\n{message['SubscribeURL']}\nTimestamp\n{message['Timestamp']}\n"
                f"Token\n{message['Token']}\nTopicArn\n{message['TopicArn']}\n"
                f"Type\n{message['Type']}\n")
    return text.encode()


def _signed(message: dict[str, str], key: Any, version: str) -> bytes:
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = key.sign(_by_hand(message), padding.PKCS1v15(), algorithm)
    return json.dumps({**message, "SignatureVersion": version,
                       "Signature": base64.b64encode(signature).decode()}).encode()


def _envelope(body: bytes) -> ses.SnsEnvelope:
    envelope = ses.sns_envelope(body)
    assert envelope is not None
    return envelope


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize("message", [
    NOTIFICATION, {k: v for k, v in NOTIFICATION.items() if k != "Subject"}, CONFIRMATION,
    {**CONFIRMATION, "Type": "UnsubscribeConfirmation"}], ids=["notification",
                                                              "no-subject", "subscribe",
                                                              "unsubscribe"])
def test_sns_signatures_of_both_versions(sns_keys: dict[str, Any], version: str,
                                         message: dict[str, str]) -> None:
    body = _signed(message, sns_keys["key"], version)
    envelope = _envelope(body)
    assert ses.sns_string_to_sign(envelope) == _by_hand(message)
    assert ses.verify_sns_signature(envelope, sns_keys["cert"])
    assert not ses.verify_sns_signature(envelope, sns_keys["other_cert"])  # another key
    assert not ses.verify_sns_signature(envelope, sns_keys["ca"])  # the CA is not the signer
    tampered = json.loads(body)
    tampered["Message"] = message["Message"].replace("e", "E", 1)
    assert not ses.verify_sns_signature(_envelope(json.dumps(tampered).encode()),
                                        sns_keys["cert"])
    other_version = {**json.loads(body), "SignatureVersion": "2" if version == "1" else "1"}
    assert not ses.verify_sns_signature(_envelope(json.dumps(other_version).encode()),
                                        sns_keys["cert"])


def test_sns_signed_fields_only_count(sns_keys: dict[str, Any]) -> None:
    """UnsubscribeURL and SigningCertURL are not signed, the topic is: changing the topic
    fails, and the events come out of the verified Message."""
    body = json.loads(_signed(NOTIFICATION, sns_keys["key"], "2"))
    moved = {**body, "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?other"}
    assert ses.verify_sns_signature(_envelope(json.dumps(moved).encode()), sns_keys["cert"])
    topic = {**body, "TopicArn": "arn:aws:sns:us-east-1:999999999999:mine"}
    assert not ses.verify_sns_signature(_envelope(json.dumps(topic).encode()),
                                        sns_keys["cert"])
    envelope = _envelope(json.dumps(body).encode())
    [event] = ses.envelope_events(envelope)
    assert (event.recipient, event.kind.value, event.tag, event.event_id) == (
        "gone@readers.example", "hard", "abcdefghijklmnop",
        "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324:0")
    assert (envelope.topic_arn, envelope.signature_version) == (NOTIFICATION["TopicArn"], "2")


@pytest.mark.parametrize("change", [
    {"SignatureVersion": "3"}, {"SignatureVersion": ""}, {"SignatureVersion": 1},
    {"Signature": "not base64!"}, {"Signature": ""}, {"Signature": "QUJD"},
    {"Signature": "é"}, {"Message": "\ud800"}, {"Subject": None}])
def test_sns_malformed_signatures_are_false(sns_keys: dict[str, Any],
                                            change: dict[str, object]) -> None:
    body = {**json.loads(_signed(NOTIFICATION, sns_keys["key"], "1")), **change}
    envelope = _envelope(json.dumps(body).encode())
    assert ses.verify_sns_signature(envelope, sns_keys["cert"]) is False


@pytest.mark.parametrize("certificate", [b"", b"not a certificate",
                                         b"-----BEGIN CERTIFICATE-----\nAAAA\n"
                                         b"-----END CERTIFICATE-----\n"])
def test_sns_malformed_certificates_are_false(sns_keys: dict[str, Any],
                                              certificate: bytes) -> None:
    envelope = _envelope(_signed(NOTIFICATION, sns_keys["key"], "1"))
    assert ses.verify_sns_signature(envelope, certificate) is False
    assert ses.verify_sns_signature(envelope, sns_keys["ec_cert"]) is False
    assert ses.certificate_in_date(certificate, NOW) is False


def test_certificate_dates(sns_keys: dict[str, Any]) -> None:
    assert ses.certificate_in_date(sns_keys["cert"], NOW)
    assert not ses.certificate_in_date(sns_keys["cert"], NOW + timedelta(days=31))
    assert not ses.certificate_in_date(sns_keys["cert"], NOW - timedelta(days=2))


@pytest.mark.parametrize("url", [
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-12345abcde.pem",
    "https://sns.eu-central-1.amazonaws.com/SimpleNotificationService-b95095beb82e8f6a.pem",
    "https://sns.us-gov-west-1.amazonaws.com/SimpleNotificationService-x.pem",
    "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-x.pem",
    "https://sns.ap-southeast-2.amazonaws.com/a/b.pem"])
def test_certificate_urls_allowed(url: str) -> None:
    assert ses.valid_sns_url(url)
    assert ses.valid_subscribe_url(url)


@pytest.mark.parametrize("url", [
    "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
    "https://sns.us-east-1.amazonaws.com.evil.test/SimpleNotificationService-x.pem",
    "https://evil.test/sns.us-east-1.amazonaws.com/x.pem",
    "https://sns.us-east-1.amazonaws.com@evil.test/x.pem",
    "https://user@sns.us-east-1.amazonaws.com/x.pem",
    "https://sns.us-east-1.amazonaws.com:8443/x.pem",
    "https://sns.us-east-1.amazonaws.com:443/x.pem",
    "https://SNS.us-east-1.amazonaws.com/x.pem",
    "https://sns.amazonaws.com/x.pem", "https://sqs.us-east-1.amazonaws.com/x.pem",
    "https://sns.us-east-1.amazonaws.com/x.txt",
    "https://sns.us-east-1.amazonaws.com/x?.pem", "https://sns.us-east-1.amazonaws.com/x.pem?a",
    "https://sns.us-east-1.amazonaws.com/x.pem#f",
    "https://sns.us-east-1.amazonaws.com\\@evil.test/x.pem",
    "https://sns.us-east-1.amazonaws.com/x .pem", "https://sns.us-east-1.amazonaws.com\n/x.pem",
    "https://sns.us-east-1.amazonaws.com%2eevil.test/x.pem",
    "https://[::1]/x.pem", "https://[/x.pem", "", "sns.us-east-1.amazonaws.com/x.pem",
    "https://sns.us-east-1.amazonaws.com/" + "a" * 3000 + ".pem"])
def test_certificate_urls_refused(url: str) -> None:
    assert not ses.valid_sns_url(url)


def test_subscribe_urls() -> None:
    assert ses.valid_subscribe_url(CONFIRMATION["SubscribeURL"])
    assert ses.valid_subscribe_url(
        "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=...")
    assert not ses.valid_sns_url(CONFIRMATION["SubscribeURL"])  # not a certificate
    for url in ("https://evil.test/?Action=ConfirmSubscription",
                "http://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription",
                "https://sns.us-east-1.amazonaws.com.evil.test/?Action=ConfirmSubscription"):
        assert not ses.valid_subscribe_url(url)


@pytest.fixture(scope="module")
def sendgrid_keys() -> dict[str, Any]:
    key = ec.generate_private_key(ec.SECP256R1())

    def shown(private: Any) -> str:  # as SendGrid's settings page shows a public key
        return base64.b64encode(private.public_key().public_bytes(
            serialization.Encoding.DER,
            serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    return {"key": key, "public": shown(key),
            "pem": key.public_key().public_bytes(
                serialization.Encoding.PEM,
                serialization.PublicFormat.SubjectPublicKeyInfo).decode(),
            "other": shown(ec.generate_private_key(ec.SECP256R1())),
            "p384": shown(ec.generate_private_key(ec.SECP384R1())),
            "rsa": shown(rsa.generate_private_key(public_exponent=65537, key_size=2048))}


def test_sendgrid_signature(sendgrid_keys: dict[str, Any]) -> None:
    body = b'[{"email":"a@readers.example","event":"bounce","sg_event_id":"e1"}]\r\n'
    timestamp = "1767261600"
    signature = base64.b64encode(sendgrid_keys["key"].sign(
        timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()
    public = sendgrid_keys["public"]
    assert sendgrid.verify_signature(public, signature, timestamp, body)
    assert sendgrid.verify_signature(sendgrid_keys["pem"], signature, timestamp, body)
    assert not sendgrid.verify_signature(public, signature, timestamp, body.replace(b"a@", b"b@"))
    assert not sendgrid.verify_signature(public, signature, "1767261601", body)
    assert not sendgrid.verify_signature(public, signature, timestamp, body.rstrip())
    assert not sendgrid.verify_signature(sendgrid_keys["other"], signature, timestamp, body)
    for key in (sendgrid_keys["p384"], sendgrid_keys["rsa"], "", "AAAA", "é", "-----BEGIN x"):
        assert not sendgrid.verify_signature(key, signature, timestamp, body)
    for bad in ("", "AAAA", "not base64!", "é", signature[:-4]):
        assert not sendgrid.verify_signature(public, bad, timestamp, body)
    assert not sendgrid.verify_signature(public, signature, "\ud800", body)


MAILGUN_TEST_KEY = "TEST_WEBHOOK_SIGNING_KEY"  # anymail's, which signed the corpus's files


def test_mailgun_signatures_of_the_corpus() -> None:
    paths = sorted(corpus("webhooks", "mailgun").glob("*.json"))
    assert len(paths) == 10
    for path in paths:
        fields = mailgun.signature_fields(path.read_bytes())
        assert fields is not None, path.name
        timestamp, token, signature = fields
        assert mailgun.verify_signature(MAILGUN_TEST_KEY, timestamp, token, signature), path.name
        assert not mailgun.verify_signature("another key", timestamp, token, signature)
        assert not mailgun.verify_signature(MAILGUN_TEST_KEY, timestamp, token + "x", signature)
        assert not mailgun.verify_signature(MAILGUN_TEST_KEY, str(int(timestamp) + 1), token,
                                            signature)


def test_mailgun_legacy_signatures_are_not_read() -> None:
    """The legacy fields carry the same HMAC at top level; we read none of it (the body is
    refused), so no half-checked legacy body gets through."""
    for path in sorted(corpus("webhooks", "mailgun-legacy").glob("*.json")):
        assert mailgun.signature_fields(path.read_bytes()) is None


@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b"{}", b'{"signature": []}',
                                  b'{"signature": {"timestamp": "1", "token": "t"}}',
                                  b'{"signature": {"timestamp": null, "token": "t", '
                                  b'"signature": "s"}}'])
def test_mailgun_signature_fields_missing(body: bytes) -> None:
    assert mailgun.signature_fields(body) is None


def test_mailgun_malformed_inputs_are_false() -> None:
    import hashlib
    import hmac
    good = hmac.new(b"key", b"1700000000token", hashlib.sha256).hexdigest()
    assert mailgun.verify_signature("key", "1700000000", "token", good)
    assert mailgun.verify_signature("key", "1700000000", "token", good.upper())
    for args in (("", "1700000000", "token", good), ("key", "1700000000", "token", ""),
                 ("key", "1700000000", "token", "é" * 64),
                 ("key", "1700000000", "\ud800", good), ("\ud800", "1", "t", good),
                 ("key", "1700000000", "token", good[:-1])):
        assert mailgun.verify_signature(*args) is False


@pytest.fixture(scope="module")
def postal_keys() -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def der(private: Any) -> bytes:
        return bytes(private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
    return {"key": key,
            "shown": base64.b64encode(der(key)).decode(),  # as Postal's web UI shows it
            "pem": key.public_key().public_bytes(
                serialization.Encoding.PEM,
                serialization.PublicFormat.SubjectPublicKeyInfo).decode(),
            "other": base64.b64encode(der(rsa.generate_private_key(
                public_exponent=65537, key_size=2048))).decode(),
            "ec": base64.b64encode(der(ec.generate_private_key(ec.SECP256R1()))).decode()}


def test_postal_signature(postal_keys: dict[str, Any]) -> None:
    body = corpus("webhooks", "postal", "anymail-messagedeliveryfailed-1.json").read_bytes()
    signature = base64.b64encode(postal_keys["key"].sign(
        body, padding.PKCS1v15(), hashes.SHA1())).decode()
    for key in (postal_keys["shown"], postal_keys["pem"],
                "\n".join(postal_keys["shown"][i:i + 64]
                          for i in range(0, len(postal_keys["shown"]), 64))):
        assert postal.verify_signature(key, signature, body)
    assert not postal.verify_signature(postal_keys["shown"], signature, body + b" ")
    assert not postal.verify_signature(postal_keys["shown"], signature,
                                       body.replace(b"HardFail", b"SoftFail"))
    assert not postal.verify_signature(postal_keys["other"], signature, body)
    sha256 = base64.b64encode(postal_keys["key"].sign(
        body, padding.PKCS1v15(), hashes.SHA256())).decode()
    assert not postal.verify_signature(postal_keys["shown"], sha256, body)
    for key in (postal_keys["ec"], "", "AAAA", "é", "-----BEGIN PUBLIC KEY-----\nAA\n"):
        assert not postal.verify_signature(key, signature, body)
    for bad in ("", "AAAA", "not base64!", "é", signature[:-8]):
        assert not postal.verify_signature(postal_keys["shown"], bad, body)


@settings(max_examples=200, deadline=None)
@given(key=st.text(max_size=120), signature=st.text(max_size=120),
       stamp=st.text(max_size=20), token=st.text(max_size=40), body=st.binary(max_size=200))
def test_verifiers_never_raise(key: str, signature: str, stamp: str, token: str,
                               body: bytes) -> None:
    assert sendgrid.verify_signature(key, signature, stamp, body) in (True, False)
    assert postal.verify_signature(key, signature, body) in (True, False)
    assert mailgun.verify_signature(key, stamp, token, signature) in (True, False)
    assert ses.valid_sns_url(key) in (True, False)
    assert ses.valid_subscribe_url(signature) in (True, False)
    envelope = ses.SnsEnvelope(type="Notification", message_id=token, topic_arn=stamp,
                               message=key, signature_version="1", signature=signature,
                               signing_cert_url="", subscribe_url="", timestamp="",
                               raw={"Message": key, "Signature": signature})
    assert ses.verify_sns_signature(envelope, body) is False
