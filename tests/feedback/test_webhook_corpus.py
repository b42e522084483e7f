"""The webhook parsers against payloads nobody here wrote: ../shared/corpora/webhooks (django-
anymail's test bodies and Sisimai's, 13 providers, with expected.tsv). Every SES, SendGrid,
Mailgun, Postmark and Postal file gives its expected (kind, recipient, provider message id)
rows; every other provider's file is refused by name; nothing anywhere raises anything but
the two errors of the contract, and neither does any body hypothesis can make. Skips, saying
why, without ../shared/corpora.

Where our contract reads expected.tsv differently (not a disagreement about any kind):
- SendGrid's provider_message_id is the relay's queue id, the part of sg_message_id before
  its ".filter…" (or ".recvd-…") suffix, and "" when sg_message_id is only that suffix (a
  message dropped before it was queued); expected.tsv lists the whole sg_message_id.
- The SNS control messages (subscription and unsubscribe confirmations, SES's "Successfully
  validated" notice) are one row of kind other with no recipient in expected.tsv; they give
  no event here, since nothing happened to any reader."""

from __future__ import annotations

import csv
import json
import re
import time
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ainews_newsletter.feedback.findings import FeedbackKind
from ainews_newsletter.feedback.webhooks import (
    PROVIDERS,
    ProviderEvent,
    UnsupportedProvider,
    WebhookBodyError,
    parse_body,
)
from tests.conftest import CORPORA, corpus

ROOT = CORPORA / "webhooks"
Row = tuple[str, str, str]  # kind, recipient, provider message id


def _expected() -> dict[str, list[dict[str, str]]]:
    rows: dict[str, list[dict[str, str]]] = {}
    with corpus("webhooks", "expected.tsv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            rows.setdefault(row["file"], []).append(row)
    return rows


def _ours(row: dict[str, str]) -> Row:
    """An expected.tsv row as our contract states it (see the module's docstring)."""
    provider_id = row["provider_message_id"]
    if row["provider"] == "sendgrid":
        found = re.match(r"(.*?)\.(?:filter|recvd-)", provider_id)
        provider_id = "" if provider_id.startswith("filter") else (
            found.group(1) if found else provider_id)
    return row["kind"], row["recipient"], provider_id


def _got(events: list[ProviderEvent]) -> list[Row]:
    return [(e.kind.value, e.recipient.lower(), e.provider_message_id) for e in events]


@pytest.fixture(scope="module")
def expected() -> dict[str, list[dict[str, str]]]:
    return _expected()


def _ours_by_file(expected: dict[str, list[dict[str, str]]]) -> dict[str, list[Row]]:
    """Our expectation per file of the five providers: a single "other" row without a
    recipient or id (an SNS control message) means no event."""
    wanted: dict[str, list[Row]] = {}
    for name, rows in expected.items():
        if rows[0]["provider"] in PROVIDERS:
            ours = [_ours(row) for row in rows]
            control = rows[0]["provider"] == "ses" and ours == [("other", "", "")]
            wanted[name] = [] if control else ours
    return wanted


def test_the_corpus_is_all_there(expected: dict[str, list[dict[str, str]]]) -> None:
    assert len(expected) == 155
    assert sum(len(rows) for rows in expected.values()) == 161
    on_disk = {str(p.relative_to(ROOT)) for p in ROOT.glob("*/*.json")}
    assert on_disk == set(expected)


def test_every_file_of_our_providers_gives_its_rows(
        expected: dict[str, list[dict[str, str]]]) -> None:
    wanted = _ours_by_file(expected)
    assert len(wanted) == 70  # 18 ses, 27 sendgrid, 10 mailgun, 9 postmark, 6 postal
    wrong = []
    for name, rows in sorted(wanted.items()):
        got = _got(parse_body(expected[name][0]["provider"], (ROOT / name).read_bytes()))
        if got != rows:
            wrong.append(f"{name}: expected {rows}, got {got}")
    assert wrong == []


def test_counts_by_kind_per_provider(expected: dict[str, list[dict[str, str]]]) -> None:
    """The note's table: per provider, rows by kind in expected.tsv against events by kind
    from the parser. The one difference: SES's three SNS control messages give no event."""
    for provider in PROVIDERS:
        files = [name for name, rows in expected.items() if rows[0]["provider"] == provider]
        want = Counter(row["kind"] for name in files for row in expected[name])
        got = Counter(e.kind.value for name in files
                      for e in parse_body(provider, (ROOT / name).read_bytes()))
        if provider == "ses":
            want -= Counter({"other": 3})
        assert got == want, provider


def test_events_are_whole(expected: dict[str, list[dict[str, str]]]) -> None:
    """Ids are never empty and differ within a body; diagnostics are one line; times are
    kept; complaints from SES keep their feedback type; our Message-ID keeps its <>."""
    for name in _ours_by_file(expected):
        events = parse_body(expected[name][0]["provider"], (ROOT / name).read_bytes())
        ids = [e.event_id for e in events]
        assert all(ids) and len(set(ids)) == len(ids), name
        for event in events:
            assert "\n" not in event.diagnostic and len(event.diagnostic) <= 1000
            assert event.occurred_at or name.endswith(("bounce-permanent-2.json",
                                                       "complaint-1.json", "open-1.json",
                                                       "rendering-failure-1.json",
                                                       "click-1.json", "accepted-1.json",
                                                       "bounce-unsubscribe-1.json"))
            assert not event.message_id or (event.message_id.startswith("<")
                                            and event.message_id.endswith(">"))
    [complaint] = parse_body("ses", (ROOT / "ses/anymail-complaint-1.json").read_bytes())
    assert complaint.feedback_type == "abuse"
    assert complaint.event_id == "19ba9823-d7f2-53c1-860e-cb10e0d13dfc:0"
    [bounce] = parse_body("ses", (ROOT / "ses/anymail-bounce-permanent-1.json").read_bytes())
    assert (bounce.status, bounce.event_type, bounce.message_id) == (
        "5.1.1", "Bounce/Permanent/General", "<custom-message-ID>")
    assert bounce.diagnostic == "550 5.1.1 <jane@example.com>... User unknown"
    [mailgun] = parse_body("mailgun", (ROOT / "mailgun/anymail-failed-permanent-1.json")
                           .read_bytes())
    assert (mailgun.status, mailgun.event_type) == ("5.1.1", "failed/permanent/bounce")
    assert mailgun.message_id == "<20180812214658.1.0DF563D0B3597700@example.org>"


def test_other_providers_are_refused_by_name(
        expected: dict[str, list[dict[str, str]]]) -> None:
    others = {rows[0]["provider"] for rows in expected.values()} - set(PROVIDERS)
    assert others == {"brevo", "mailersend", "mailgun-legacy", "mailjet", "mailtrap",
                      "mandrill", "resend", "sparkpost", "unisender-go"}
    for provider in sorted(others - {"mailgun-legacy"}):
        with pytest.raises(UnsupportedProvider) as refused:
            parse_body(provider, b"[]")
        assert str(refused.value) == (f"provider {provider!r} is not supported "
                                      "(supported: ses, sendgrid, mailgun, postmark, postal)")


def test_mailgun_legacy_bodies_say_which_webhooks_to_choose() -> None:
    folder = corpus("webhooks", "mailgun-legacy")
    files = sorted(folder.glob("*.json"))
    assert len(files) == 6
    for path in files:
        with pytest.raises(WebhookBodyError, match="legacy form-encoded webhooks are not "
                                                   "supported: choose the JSON webhooks"):
            parse_body("mailgun", path.read_bytes())
    # the same fields as Mailgun really posts them, form-encoded or multipart
    for body in (b"event=bounced&recipient=a%40b.example&token=x&signature=y",
                 b"--boundary\r\nContent-Disposition: form-data; name=\"event\"\r\n\r\nx"):
        with pytest.raises(WebhookBodyError, match="legacy"):
            parse_body("mailgun", body)


def test_every_corpus_file_through_every_parser_raises_nothing_else() -> None:
    """All 155 bodies, each through all five parsers: events or the contract's error."""
    paths = sorted(corpus("webhooks").glob("*/*.json"))
    assert len(paths) == 155
    for path in paths:
        for provider in PROVIDERS:
            _parse_or_refuse(provider, path.read_bytes())


def _parse_or_refuse(provider: str, body: bytes) -> None:
    try:
        events = parse_body(provider, body)
    except WebhookBodyError as exc:
        assert str(exc)
        return
    for event in events:
        assert isinstance(event.kind, FeedbackKind) and event.event_id
        assert "\x00" not in event.recipient + event.diagnostic + event.tag
        (event.recipient + event.diagnostic + event.event_type + event.event_id
         + event.provider_message_id + event.message_id + event.occurred_at).encode("utf-8")


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["Type", "Message", "MessageId", "notificationType", "eventType",
                         "mail", "bounce", "bouncedRecipients", "emailAddress", "event",
                         "email", "sg_message_id", "event-data", "signature", "recipient",
                         "message", "headers", "to", "RecordType", "Type", "Email",
                         "payload", "original_message", "direction", "tags", "delivery",
                         "recipients", "complaint", "complainedRecipients", "status",
                         "reason", "type", "severity", "Metadata", "SuppressSending"])
        | st.text(max_size=8), inner, max_size=5),
    max_leaves=25)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(provider=st.sampled_from(PROVIDERS), body=st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_the_contract_errors(provider: str, body: bytes) -> None:
    _parse_or_refuse(provider, body)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(provider=st.sampled_from(PROVIDERS), value=_JSON, wrap=st.sampled_from(
    ["bare", "list", "sns", "mailgun", "postal"]))
def test_arbitrary_json_raises_only_the_contract_errors(provider: str, value: object,
                                                        wrap: str) -> None:
    """Any JSON value, bare or in each provider's outer shape, so the inner readers see it."""
    shaped: object = {"bare": value, "list": [value],
                      "sns": {"Type": "Notification", "MessageId": "m",
                              "Message": json.dumps(value)},
                      "mailgun": {"event-data": value},
                      "postal": {"event": "MessageSent", "payload": value}}[wrap]
    _parse_or_refuse(provider, json.dumps(shaped).encode())


@pytest.mark.parametrize("body", [
    b"\xff\xfe{}", b"", b"null", b"1" * 5000, b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000, b'"\\ud800"', b'[{"email":"\\u0000\\ud800@x"}]',
    b"NaN", b"[1e999999]", b'{"Type":"Notification","Message":"' + b"[" * 5000 + b'"}',
    b'{"event-data":{"event":"failed","severity":"permanent","recipient":"' + b"a" * 10_000
    + b'@x"}}',
], ids=lambda body: body[:24].decode("latin-1"))
def test_hostile_bodies(body: bytes) -> None:
    for provider in PROVIDERS:
        _parse_or_refuse(provider, body)


def test_deep_nesting_inside_an_event_is_refused_not_a_traceback() -> None:
    """Nested just short of json's limit, it loads; hashing it must not be the crash."""
    for depth in (900, 950, 990, 2000):
        item = "[" * depth + "]" * depth
        _parse_or_refuse("sendgrid", f'[{{"event":"open","x":{item}}}]'.encode())
        _parse_or_refuse("ses", f'{{"notificationType":"Send","x":{item}}}'.encode())


def test_linear_in_the_body_size() -> None:
    """Many recipients in one SES bounce without an SNS id: the event is hashed once, not
    once per recipient. Sixteen times the recipients take about sixteen times as long
    (quadratic would be 256 times); the best of three runs, against a busy machine."""
    def bounce(count: int) -> bytes:
        recipients = [{"emailAddress": f"r{i}@example.com"} for i in range(count)]
        return json.dumps({"notificationType": "Bounce", "bounce": {
            "bounceType": "Permanent", "bouncedRecipients": recipients},
            "mail": {"messageId": "m"}}).encode()

    timings = []
    for count in (2_000, 32_000):
        body = bounce(count)
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            assert len(parse_body("ses", body)) == count
            runs.append(time.perf_counter() - started)
        timings.append(min(runs))
    assert timings[1] < timings[0] * 64


def test_an_unknown_sns_type_and_wrong_shapes_say_what_is_wrong() -> None:
    cases = {("ses", b'{"Type":"Nope"}'): "SNS message type 'Nope'",
             ("ses", b"[]"): "not an SNS message",
             ("sendgrid", b"{}"): "JSON array of events",
             ("sendgrid", b"[1]"): "event 1 is not a JSON object",
             ("mailgun", b"[]"): "one JSON object per event",
             ("mailgun", b'{"signature":{}}'): "\"event-data\" object",
             ("postmark", b"{}"): "RecordType",
             ("postal", b'{"event":"MessageSent"}'): "\"payload\" object",
             ("postal", b"not json"): "not JSON"}
    for (provider, body), words in cases.items():
        with pytest.raises(WebhookBodyError, match=re.escape(words)):
            parse_body(provider, body)


def _ses(kind: str, detail_key: str, detail: dict[str, object]) -> dict[str, object]:
    return {"eventType": kind, detail_key: detail, "mail": {
        "messageId": "m1", "destination": ["a@readers.example", "b@readers.example"]}}


@pytest.mark.parametrize(("body", "provider", "kinds"), [
    # SES rows of the issue's list the corpus has no file for
    (_ses("Bounce", "bounce", {"bounceType": "Transient", "bounceSubType": "MailboxFull",
                               "bouncedRecipients": [{"emailAddress": "a@readers.example"}]}),
     "ses", ["soft"]),
    (_ses("Bounce", "bounce", {"bounceType": "Undetermined",
                               "bouncedRecipients": [{"emailAddress": "a@readers.example"}]}),
     "ses", ["other"]),
    (_ses("DeliveryDelay", "deliveryDelay", {"delayType": "MailboxFull", "delayedRecipients": [
        {"emailAddress": "a@readers.example", "status": "4.2.2"}]}), "ses", ["soft"]),
    (_ses("Subscription", "subscription", {"newTopicPreferences": {"unsubscribeAll": True}}),
     "ses", ["unsubscribe", "unsubscribe"]),
    (_ses("Subscription", "subscription", {"newTopicPreferences": {"unsubscribeAll": False}}),
     "ses", ["other", "other"]),
    # SendGrid: its unsubscribe links, and drops for addresses on its complaint list
    ([{"event": "unsubscribe", "email": "a@r.example"},
      {"event": "group_unsubscribe", "email": "a@r.example"},
      {"event": "dropped", "reason": "Spam Reporting Address", "email": "a@r.example"},
      {"event": "dropped", "reason": "Invalid SMTPAPI header", "email": "a@r.example"},
      {"event": "bounce", "email": "a@r.example"}], "sendgrid",
     ["unsubscribe", "unsubscribe", "complaint", "other", "hard"]),
    # Mailgun: sends refused for its suppression lists; giving up after hours is not "gone"
    *[({"event-data": {"event": "failed", "severity": "permanent", "reason": reason,
                       "recipient": "a@r.example"}}, "mailgun", [kind])
      for reason, kind in [("suppress-bounce", "hard"), ("suppress-complaint", "complaint"),
                           ("suppress-unsubscribe", "unsubscribe"), ("old", "soft"),
                           ("generic", "hard")]],
    # Postmark bounce types beyond the corpus
    *[({"RecordType": "Bounce", "Type": kind_name, "Email": "a@r.example", "ID": 1}, "postmark",
       [kind]) for kind_name, kind in [("SoftBounce", "soft"), ("Transient", "soft"),
                                       ("BadEmailAddress", "hard"), ("AutoResponder",
                                                                     "autoreply"),
                                       ("ManuallyDeactivated", "other")]],
    # Postal's bounce event by its own name; server events concern no message
    ({"event": "MessageBounced", "payload": {"original_message": {"to": "a@r.example"},
                                              "bounce": {}}}, "postal", ["hard"]),
    ({"event": "DomainDNSError", "payload": {"domain": "example.com"}}, "postal", []),
], ids=lambda value: value if isinstance(value, str) else "")
def test_the_issue_mapping_beyond_the_corpus(body: object, provider: str,
                                             kinds: list[str]) -> None:
    events = parse_body(provider, json.dumps(body))
    assert [event.kind.value for event in events] == kinds
