"""The providers' webhooks end to end: a real `ainews send` through an aiosmtpd relay that
answers like each provider, then the provider's signed request to `ainews serve`'s app (and
once to a real `ainews serve` process), on SQLite and PostgreSQL. For each provider: accepted
and acted on once, tampered or wrongly signed refused with nothing stored, an event for no
delivery of ours stored without effect, bodies that are not events 400, too large 413."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from ainews_newsletter import clock
from ainews_newsletter.config import Config, load_config
from ainews_newsletter.database import dispose_all
from ainews_newsletter.pipeline import webhooks as webhook_pipeline
from ainews_newsletter.web.public import create_public_app
from tests.conftest import EphemeralPortController, Project, RecordingHandler, SmtpServer
from tests.web.webhook_requests import (
    CERT_URL,
    PROVIDERS,
    RELAY_REPLIES,
    TOPIC,
    Keys,
    Request,
    Sent,
    event_body,
    sign,
    sign_sns,
    webhook_settings,
)

pytestmark = pytest.mark.clock  # signed timestamps are "now": run again at fake dates
SECRET = "test-secret-key-of-enough-length"


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


class _ProviderRelay(RecordingHandler):
    """Takes each message and answers after DATA as `provider`'s relay does."""

    def __init__(self, provider: str) -> None:
        super().__init__()
        self.reply = RELAY_REPLIES[provider]
        self.provider = provider

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await super().handle_DATA(server, session, envelope)
        return self.reply.format(id=f"{self.provider}{len(self.messages):04d}x")


@contextmanager
def _relay(provider: str) -> Iterator[SmtpServer]:
    handler = _ProviderRelay(provider)
    controller = EphemeralPortController(handler, hostname="127.0.0.1", port=0)
    controller.start()
    try:
        yield SmtpServer(handler, controller.port)
    finally:
        controller.stop()


@dataclass
class Sending:
    project: Project
    config: Config
    client: TestClient
    sent: dict[str, Sent]  # by address
    provider: str

    def post(self, request: Request, provider: str | None = None) -> Any:
        return self.client.post(f"/webhooks/{provider or self.provider}", content=request.body,
                                headers=request.headers)

    def status(self, address: str) -> str:
        return str(self.project.query("SELECT status FROM subscribers WHERE email = ?",
                                      address)[0][0])

    def events(self) -> list[tuple[Any, ...]]:
        return self.project.query("SELECT kind, email, matched_by, effect, provider, source "
                                  "FROM feedback_events ORDER BY id")


def _environment(project: Project, extra: dict[str, str]) -> dict[str, str]:
    env = {"AINEWS_SECRET_KEY": SECRET, "AINEWS_LINT__SPAMASSASSIN": "false", **extra}
    if project.storage_url is not None:
        env["AINEWS_STORAGE__URL"] = project.storage_url
    return env


@contextmanager
def _sent_issue(project: Project, provider: str, keys: Keys, tmp_path: Path,
                smtp_provider: str | None = None, **env: str) -> Iterator[Sending]:
    """Three readers sent 2026-W47 through `provider`'s relay; the public app with
    `provider`'s webhook on."""
    lines, secrets_env = webhook_settings(provider, keys, tmp_path / "sns-certificates")
    project.write_config("")
    project.import_readers(3)
    project.write_config(f'[smtp]\nprovider = "{smtp_provider or provider}"\n'
                         f"[webhooks]\n{lines}")
    environment = _environment(project, {**secrets_env, **env})
    with _relay(provider) as relay:
        done = project.run("send", "--week", "2026-W47", "--yes", env={
            **environment, "AINEWS_SMTP__HOST": "127.0.0.1",
            "AINEWS_SMTP__PORT": str(relay.port)})
        assert done.exit_code == 0, done.output
        messages = [message.message for message in relay.handler.messages]
    ids = {str(row[0]): (row[1] or "", row[2] or "") for row in project.query(
        "SELECT email, return_tag, provider_message_id FROM deliveries")}
    sent = {}
    for message in messages:
        address = str(message["To"].addresses[0].addr_spec)
        tag, provider_id = ids[address]
        sent[address] = Sent(address, tag, provider_id, str(message["Message-ID"]))
    dispose_all()
    config = load_config(project.config_path, environ=environment)
    with TestClient(create_public_app(config)) as client:
        yield Sending(project, config, client, sent, provider)
    dispose_all()


def _now() -> float:
    return clock.now().timestamp()


HARD = {"ses": "hard", "sendgrid": "hard", "mailgun": "hard", "postmark": "hard",
        "postal": "hard"}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_signed_bounce_acts_once(any_project: Project, provider: str, keys: Keys,
                                   tmp_path: Path) -> None:
    with _sent_issue(any_project, provider, keys, tmp_path) as sending:
        reader = sending.sent["reader000@example.com"]
        assert reader.tag and (reader.provider_id or provider in ("mailgun", "postal"))
        body = event_body(provider, reader, "hard", event_id="00000001aa")
        answer = sending.post(sign(provider, keys, body, _now()))
        assert answer.status_code == 200, answer.text
        assert answer.json()["new"] == 1
        assert sending.status("reader000@example.com") == "bounced"
        assert sending.status("reader001@example.com") == "active"
        assert sending.events() == [("hard", "reader000@example.com", "tag", "bounced",
                                     provider, f"webhook:{provider}")]
        # The provider retries (a new request, signed anew): stored once, acted on once.
        again = sending.post(sign(provider, keys, body, _now()))
        assert again.status_code == 200 and again.json() == {
            "status": "ok", "events": 1, "new": 0, "repeated": 1, "unmatched": 0}
        assert len(sending.events()) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_tampered_or_wrongly_signed_requests_change_nothing(
        project: Project, provider: str, keys: Keys, tmp_path: Path) -> None:
    with _sent_issue(project, provider, keys, tmp_path) as sending:
        reader = sending.sent["reader001@example.com"]
        good = sign(provider, keys, event_body(provider, reader, "hard"), _now())
        if provider == "postmark":  # nothing is signed: the password is the check
            wrong = Request(good.body, {"Authorization": "Basic YWluZXdzOndyb25n"})
            assert sending.post(wrong).status_code == 401
            refused = sending.post(Request(good.body, {}))
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"].startswith("Basic")
        elif provider == "mailgun":
            # Mailgun signs its timestamp and a one-time token, not the body: a captured
            # request sent again with another body is refused by its token.
            assert sending.post(good).status_code == 200
            tampered = Request(good.body.replace(b"reader001", b"reader002"), good.headers)
            assert sending.post(tampered).status_code == 403
            forged = json.loads(sign(provider, keys, event_body(provider, reader, "hard"),
                                     _now()).body)
            forged["signature"]["signature"] = "0" * 64
            assert sending.post(Request(json.dumps(forged).encode(), {})).status_code == 403
            assert sending.status("reader002@example.com") == "active"
            assert [row[1] for row in sending.events()] == ["reader001@example.com"]
            return
        else:
            tampered = Request(good.body.replace(b"reader001", b"reader002"), good.headers)
            assert sending.post(tampered).status_code == 403
            other_keys = Keys()
            if provider == "ses":  # right certificate URL, someone else's key
                other_keys.pin_sns_certificate(tmp_path / "unused")
                wrong = Request(sign_sns(other_keys, json.loads(event_body(
                    provider, reader, "hard"))), {})
            else:
                wrong = sign(provider, other_keys, event_body(provider, reader, "hard"),
                             _now())
            assert sending.post(wrong).status_code == 403
        assert sending.events() == []
        assert sending.status("reader001@example.com") == "active"
        assert sending.post(good).status_code == 200  # the genuine one still works
        assert sending.status("reader001@example.com") == "bounced"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_event_for_no_delivery_of_ours_is_stored_without_effect(
        any_project: Project, provider: str, keys: Keys, tmp_path: Path) -> None:
    with _sent_issue(any_project, provider, keys, tmp_path) as sending:
        stranger = Sent("stranger@elsewhere.example", "a" * 16, "not-ours-0001",
                        "<not-ours@elsewhere.example>")
        answer = sending.post(sign(provider, keys, event_body(provider, stranger, "hard"),
                                   _now()))
        assert answer.status_code == 200 and answer.json()["unmatched"] == 1
        assert sending.events() == [("hard", "stranger@elsewhere.example", "unknown tag",
                                     "unmatched", provider, f"webhook:{provider}")]
        assert {sending.status(address) for address in sending.sent} == {"active"}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_bodies_that_are_not_events_are_400_and_big_ones_413(
        project: Project, provider: str, keys: Keys, tmp_path: Path) -> None:
    with _sent_issue(project, provider, keys, tmp_path,
                     AINEWS_WEBHOOKS__MAX_BODY_BYTES="4096") as sending:
        for body in (b"not json at all", b'"a string"', b"\xff\xfe{", b"{}", b"[1, 2]"):
            if provider in ("ses", "mailgun"):  # the signature is inside the body itself
                request = Request(body, {})
            else:
                request = sign(provider, keys, body, _now())
            answer = sending.post(request)
            assert answer.status_code == 400, (body, answer.text)
            assert "error" in answer.json()
        huge = Request(b"[" + b'{"email": "x@example.com"},' * 400 + b"{}]", {})
        assert sending.post(huge).status_code == 413
        assert sending.events() == []


def test_a_provider_not_set_up_is_not_found(project: Project, keys: Keys,
                                            tmp_path: Path) -> None:
    with _sent_issue(project, "sendgrid", keys, tmp_path) as sending:
        for provider in ("mailgun", "postmark", "postal", "ses", "brevo"):
            assert sending.post(Request(b"{}", {}), provider).status_code == 404


@pytest.mark.parametrize(("provider", "kind", "status"), [
    ("sendgrid", "complaint", "complained"), ("ses", "complaint", "complained"),
    ("mailgun", "unsubscribe", "unsubscribed"), ("postmark", "unsubscribe", "unsubscribed"),
    ("sendgrid", "unsubscribe", "unsubscribed"), ("postal", "delivered", "active"),
    ("ses", "delivered", "active")])
def test_each_kind_has_its_effect(project: Project, provider: str, kind: str, status: str,
                                  keys: Keys, tmp_path: Path) -> None:
    with _sent_issue(project, provider, keys, tmp_path) as sending:
        reader = sending.sent["reader002@example.com"]
        answer = sending.post(sign(provider, keys, event_body(provider, reader, kind), _now()))
        assert answer.status_code == 200, answer.text
        assert sending.status("reader002@example.com") == status
        assert [row[0] for row in sending.events()] == [kind]
        if kind == "unsubscribe":  # put down to the provider and the issue
            history = project.query("SELECT kind, source, issue_id FROM subscriber_events "
                                    "WHERE kind = 'unsubscribed'")
            assert [(row[0], row[1]) for row in history] == [("unsubscribed", provider)]
            assert history[0][2] is not None


def test_matching_falls_back_to_the_relays_id_then_message_id_then_recipient(
        project: Project, keys: Keys, tmp_path: Path) -> None:
    """Sent without [smtp] provider: no tag in the metadata, yet the relay's id matches."""
    with _sent_issue(project, "sendgrid", keys, tmp_path, smtp_provider="none") as sending:
        reader = sending.sent["reader000@example.com"]
        untagged = Sent(reader.email, "", reader.provider_id, reader.message_id)
        sending.post(sign("sendgrid", keys, event_body("sendgrid", untagged, "delivered"),
                          _now()))
        by_message_id = Sent(reader.email, "", "", reader.message_id)
        sending.post(sign("sendgrid", keys, event_body("sendgrid", by_message_id,
                                                       "delivered"), _now()))
        by_address = Sent(reader.email, "", "", "")
        sending.post(sign("sendgrid", keys, event_body("sendgrid", by_address, "delivered"),
                          _now()))
        assert [row[2] for row in sending.events()] == ["provider-id", "message-id",
                                                        "recipient"]


def test_sns_both_signature_versions_topics_and_certificates(
        project: Project, keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fetched: list[str] = []

    def fake_fetch(url: str, timeout: float) -> bytes:
        fetched.append(url)
        return keys.sns_certificate()

    monkeypatch.setattr(webhook_pipeline, "fetch", fake_fetch)
    monkeypatch.setattr(webhook_pipeline, "_certificates", {})
    with _sent_issue(project, "ses", keys, tmp_path) as sending:
        reader = sending.sent["reader000@example.com"]
        for version in ("1", "2"):
            body = event_body("ses", reader, "delivered")
            assert sending.post(Request(sign_sns(keys, json.loads(body), version), {})
                                ).status_code == 200
        assert fetched == []  # the pinned folder holds the certificate
        # Another topic, or a certificate URL not on SNS's own host: refused.
        message = json.loads(event_body("ses", reader, "hard"))
        assert sending.post(Request(sign_sns(keys, {**message, "TopicArn": TOPIC + "x"}),
                                    {})).status_code == 403
        forged = json.loads(sign_sns(keys, message))
        forged["SigningCertURL"] = "https://sns.eu-west-1.amazonaws.com.evil.example/x.pem"
        assert sending.post(Request(json.dumps(forged).encode(), {})).status_code == 403
        assert sending.status("reader000@example.com") == "active"
        # Without the pinned copy the certificate is fetched once, then cached.
        for pinned in (tmp_path / "sns-certificates").iterdir():
            pinned.unlink()
        for _ in range(2):
            body = event_body("ses", reader, "delivered")
            assert sending.post(Request(sign_sns(keys, json.loads(body)), {})
                                ).status_code == 200
        assert fetched == [CERT_URL]
        # A subscription confirmation for our topic fetches its SubscribeURL.
        url = ("https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription"
               f"&TopicArn={TOPIC}&Token=abc")
        confirmation = {"Type": "SubscriptionConfirmation", "MessageId": "m-1", "Token": "abc",
                        "TopicArn": TOPIC, "Message": "You have chosen to subscribe",
                        "SubscribeURL": url, "Timestamp": "2026-11-23T09:00:00.000Z"}
        assert sending.post(Request(sign_sns(keys, confirmation, "2"), {})).status_code == 200
        assert fetched[-1] == url


def test_a_replayed_mailgun_token_is_refused(project: Project, keys: Keys,
                                            tmp_path: Path) -> None:
    with _sent_issue(project, "mailgun", keys, tmp_path) as sending:
        reader = sending.sent["reader000@example.com"]
        request = sign("mailgun", keys, event_body("mailgun", reader, "delivered"), _now(),
                       mailgun_token="t" * 50)
        assert sending.post(request).status_code == 200
        assert sending.post(request).status_code == 403  # the very same request again
        stale = sign("mailgun", keys, event_body("mailgun", reader, "hard"), _now() - 3600)
        assert sending.post(stale).status_code == 403  # signed an hour ago
        assert sending.status("reader000@example.com") == "active"


def test_saved_bodies_replay_through_the_cli(project: Project, keys: Keys,
                                             tmp_path: Path) -> None:
    with _sent_issue(project, "postmark", keys, tmp_path) as sending:
        reader = sending.sent["reader001@example.com"]
        saved = tmp_path / "postmark-bounce.json"
        saved.write_bytes(event_body("postmark", reader, "hard"))
        env = _environment(project, {"AINEWS_WEBHOOKS__POSTMARK_PASSWORD": "x"})
        done = project.run("bounces", "ingest", "--provider", "postmark", str(saved), "--json",
                           env=env)
        assert done.exit_code == 0, done.output
        assert json.loads(done.output)["events"][0]["provider"] == "postmark"
        assert sending.events()[0][5] == f"manual:{saved}"
        assert sending.status("reader001@example.com") == "bounced"
        again = project.run("bounces", "ingest", "--provider", "postmark", str(saved), env=env)
        assert "1 seen before" in again.output
        other = project.run("bounces", "ingest", "--provider", "brevo", str(saved), env=env)
        assert other.exit_code == 1 and "not supported" in other.output
        listed = project.run("bounces", "list", "--all", env=env)
        assert "postmark" in listed.output


@pytest.mark.skipif(not os.path.exists("/usr/bin/env"), reason="needs a POSIX system")
def test_a_real_serve_process_hears_sendgrid(project: Project, keys: Keys,
                                             tmp_path: Path) -> None:
    from tests.web.test_serve_process import _serving

    lines, _ = webhook_settings("sendgrid", keys, tmp_path / "unused")
    with _sent_issue(project, "sendgrid", keys, tmp_path) as sending, \
            _relay("sendgrid") as relay:
        reader = sending.sent["reader002@example.com"]
        request = sign("sendgrid", keys, event_body("sendgrid", reader, "hard"), _now())
        with _serving(project, relay) as served:
            import urllib.request

            post = urllib.request.Request(f"{served.base}/webhooks/sendgrid",
                                          data=request.body, headers=request.headers)
            with urllib.request.urlopen(post, timeout=30) as answer:
                assert answer.status == 200
                assert json.loads(answer.read())["new"] == 1
        assert sending.status("reader002@example.com") == "bounced"
        assert lines  # the route was on by config, not by the test


def test_the_report_and_the_list_show_who_reported(project: Project, keys: Keys,
                                                   tmp_path: Path) -> None:
    with _sent_issue(project, "sendgrid", keys, tmp_path) as sending:
        for address, kind in (("reader000@example.com", "hard"),
                              ("reader001@example.com", "delivered"),
                              ("reader002@example.com", "delivered")):
            body = event_body("sendgrid", sending.sent[address], kind)
            assert sending.post(sign("sendgrid", keys, body, _now())).status_code == 200
        env = _environment(project, {})
        report = json.loads(project.run("report", "--json", env=env).output)
        assert report["reported_by"] == {"sendgrid": {"delivered": 2, "hard": 1}}
        assert report["delivered"] == 2 and report["bounces"]["hard"] == 1
        text = project.run("report", env=env).output
        assert "reported by: sendgrid delivered 2, hard 1" in text
        listed = json.loads(project.run("bounces", "list", "--all", "--json", env=env).output)
        assert {event["provider"] for event in listed} == {"sendgrid"}
        # The provider's own time of each event is kept as it wrote it.
        assert all(event["reported_at"] and "17950000" in event["reported_at"]
                   for event in listed), [event["reported_at"] for event in listed]


# The real bodies of ../shared/corpora/webhooks through the command line: every file of the
# five providers is read (events stored, no traceback); other providers' files are refused
# with one line naming the provider.
SUPPORTED_FOLDERS = ("ses", "sendgrid", "mailgun", "postmark", "postal")


def test_every_corpus_body_replays_without_a_traceback(project: Project) -> None:
    from tests.conftest import corpus

    root = corpus("webhooks")
    project.write_config("")
    for folder in sorted(path for path in root.iterdir() if path.is_dir()):
        files = sorted(str(path) for path in folder.glob("*.json"))
        done = project.run("bounces", "ingest", "--provider", folder.name, *files, "--json")
        assert "Traceback" not in done.output
        if folder.name in SUPPORTED_FOLDERS:
            assert done.exit_code == 0, (folder.name, done.output[-500:])
            assert json.loads(done.output)["messages"] == len(files)
        elif folder.name == "mailgun-legacy":  # Mailgun's form bodies: not supported
            done = project.run("bounces", "ingest", "--provider", "mailgun", *files)
            assert done.exit_code == 1 and "legacy" in done.output
        else:
            assert done.exit_code == 1
            assert f"provider '{folder.name}' is not supported" in done.output


def test_no_body_makes_a_route_fail(project: Project, keys: Keys, tmp_path: Path,
                                    caplog: pytest.LogCaptureFixture) -> None:
    """Arbitrary bytes and JSON, authenticated so that they reach the parsers: every answer
    is 200 or 400, never a 500, and nothing but JSON comes back."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    lines = "".join(webhook_settings(provider, keys, tmp_path / "sns")[0]
                    for provider in ("sendgrid", "postmark", "postal"))
    project.write_config(f"[webhooks]\n{lines}")
    config = load_config(project.config_path, environ=_environment(
        project, {"AINEWS_WEBHOOKS__POSTMARK_PASSWORD": "postmark-password-for-tests"}))
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
            st.sampled_from(["email", "event", "RecordType", "payload", "Type", "ID", "uuid",
                             "sg_message_id", "message", "status", "x"]), inner, max_size=5),
        max_leaves=20)
    bodies = st.binary(max_size=300) | json_values.map(lambda value: json.dumps(value).encode())

    with TestClient(create_public_app(config)) as client:
        @settings(max_examples=60, deadline=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture])
        @given(body=bodies, provider=st.sampled_from(["sendgrid", "postmark", "postal"]))
        def post(body: bytes, provider: str) -> None:
            request = sign(provider, keys, body, _now())
            answer = client.post(f"/webhooks/{provider}", content=request.body,
                                 headers=request.headers)
            assert answer.status_code in (200, 400), (body, answer.text)
            assert isinstance(answer.json(), dict)

        post()
    # The route's last resort (an exception no check foresaw) logs an ERROR: none came.
    assert [record.getMessage() for record in caplog.records
            if record.levelname == "ERROR"] == []


def test_a_tag_that_is_not_ours_never_falls_back_to_the_address(
        project: Project, keys: Keys, tmp_path: Path) -> None:
    """Another newsletter on the same provider account complains about the same address:
    its tag names no delivery of ours, so our reader is left alone."""
    with _sent_issue(project, "sendgrid", keys, tmp_path) as sending:
        reader = sending.sent["reader000@example.com"]
        foreign = Sent(reader.email, "zzzzzzzzzzzzzzzz", "", "")
        answer = sending.post(sign("sendgrid", keys, event_body("sendgrid", foreign,
                                                                "complaint"), _now()))
        assert answer.status_code == 200 and answer.json()["unmatched"] == 1
        assert sending.events()[0][2:4] == ("unknown tag", "unmatched")
        assert sending.status("reader000@example.com") == "active"


def test_a_mailgun_request_that_failed_is_taken_when_retried(
        project: Project, keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.exc import OperationalError

    with _sent_issue(project, "mailgun", keys, tmp_path) as sending:
        reader = sending.sent["reader001@example.com"]
        request = sign("mailgun", keys, event_body("mailgun", reader, "hard"), _now())
        real = webhook_pipeline.record_provider_events

        def database_away(*args: Any, **kwargs: Any) -> Any:
            raise OperationalError("INSERT", {}, Exception("database is locked"))

        monkeypatch.setattr(webhook_pipeline, "record_provider_events", database_away)
        assert sending.post(request).status_code == 503
        monkeypatch.setattr(webhook_pipeline, "record_provider_events", real)
        assert sending.post(request).status_code == 200  # Mailgun's retry: same token
        assert sending.status("reader001@example.com") == "bounced"
        assert sending.post(request).status_code == 403  # and now it is a replay


def test_postal_sha256_signature_decides_when_present(project: Project, keys: Keys,
                                                      tmp_path: Path) -> None:
    import base64

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    with _sent_issue(project, "postal", keys, tmp_path) as sending:
        reader = sending.sent["reader000@example.com"]
        body = event_body("postal", reader, "delivered")
        strong = base64.b64encode(keys.postal.sign(body, padding.PKCS1v15(),
                                                   hashes.SHA256())).decode()
        weak = sign("postal", keys, body, _now()).headers["X-Postal-Signature"]
        # A good SHA-256 signature beside a broken SHA-1 one: the stronger decides.
        assert sending.post(Request(body, {"X-Postal-Signature-256": strong,
                                           "X-Postal-Signature": "AAAA"})).status_code == 200
        # A broken SHA-256 signature is not rescued by a good SHA-1 one.
        other = event_body("postal", reader, "hard")
        weak_other = sign("postal", keys, other, _now()).headers["X-Postal-Signature"]
        assert sending.post(Request(other, {"X-Postal-Signature-256": weak,
                                            "X-Postal-Signature": weak_other})
                            ).status_code == 403
        assert sending.status("reader000@example.com") == "active"


def test_a_broken_certificate_download_is_not_kept(
        project: Project, keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = [b"<html>an error page</html>", keys.sns_certificate()]
    monkeypatch.setattr(webhook_pipeline, "fetch", lambda url, timeout: answers.pop(0))
    monkeypatch.setattr(webhook_pipeline, "_certificates", {})
    with _sent_issue(project, "ses", keys, tmp_path) as sending:
        for pinned in (tmp_path / "sns-certificates").iterdir():
            pinned.unlink()
        reader = sending.sent["reader000@example.com"]
        body = event_body("ses", reader, "hard")
        assert sending.post(Request(sign_sns(keys, json.loads(body)), {})).status_code == 503
        assert sending.post(Request(sign_sns(keys, json.loads(body)), {})).status_code == 200
        assert sending.status("reader000@example.com") == "bounced"


def test_a_user_name_without_its_password_stops_at_start(project: Project) -> None:
    from ainews_newsletter.errors import ConfigError

    project.write_config('[webhooks]\nsendgrid_public_key = "x"\nsendgrid_username = "u"\n')
    with pytest.raises(ConfigError, match="AINEWS_WEBHOOKS__SENDGRID_PASSWORD"):
        load_config(project.config_path, environ={})
