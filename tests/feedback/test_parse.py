"""parse_message on hand-written fixtures (tests/fixtures/bounces, our own words): one test per
kind of returned mail the pipeline has to tell apart."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ainews_newsletter.errors import FeedbackError
from ainews_newsletter.feedback.classify import classify
from ainews_newsletter.feedback.findings import FeedbackKind, FeedbackReport
from ainews_newsletter.feedback.mailfile import MailItem, read_mail
from ainews_newsletter.feedback.parse import parse_message

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "bounces"


def _parse(name: str) -> FeedbackReport:
    return parse_message((FIXTURES / name).read_bytes(), name)


def _by_email(report: FeedbackReport) -> dict[str, tuple[FeedbackKind, str, str]]:
    return {r.email.lower(): (r.kind, r.status, r.action) for r in report.recipients}


def test_multi_recipient_dsn_keeps_each_fate_and_takes_the_worst() -> None:
    report = _parse("postfix-two-recipients.eml")
    assert report.kind is FeedbackKind.HARD
    assert _by_email(report) == {
        "gone@readers.example": (FeedbackKind.HARD, "5.1.1", "failed"),
        "full@readers.example": (FeedbackKind.SOFT, "4.2.2", "failed"),
    }
    # the angle brackets and "rfc822;" are gone, the domain lower-cased
    assert "Gone@readers.example" in [r.email for r in report.recipients]
    gone = next(r for r in report.recipients if r.email.lower().startswith("gone"))
    assert "User unknown in virtual mailbox table" in gone.diagnostic
    assert "\n" not in gone.diagnostic and not gone.diagnostic.startswith("smtp;")


def test_dsn_identifiers_of_the_report_and_of_the_returned_original() -> None:
    raw = (FIXTURES / "postfix-two-recipients.eml").read_bytes()
    report = parse_message(raw, "x.eml")
    assert report.source == "x.eml"
    assert report.message_id == "<20261123100005.4QXyz1@mx.news.example>"
    assert report.digest == hashlib.sha256(raw).hexdigest()
    assert report.sent_to == ("bounces+abc@news.example",)
    assert report.subject == "Undelivered Mail Returned to Sender"
    assert report.date == "Mon, 23 Nov 2026 10:00:05 +0000 (UTC)"
    assert report.returned.message_ids == ("<issue-2026-W47.r42@news.example>",)
    assert report.returned.return_paths == ("bounces+abc@news.example",)
    assert report.returned.unsubscribe_urls == (
        "https://news.example/u/tok42", "mailto:unsubscribe@news.example?subject=tok42")


@pytest.mark.parametrize("name", ["postfix-two-recipients-crlf.eml",
                                  "postfix-two-recipients-cr.eml"])
def test_crlf_and_bare_cr_copies_parse_the_same(name: str) -> None:
    lf = _parse("postfix-two-recipients.eml")
    other = _parse(name)
    assert other.recipients == lf.recipients
    assert other.returned == lf.returned
    assert other.kind is lf.kind and other.digest == lf.digest


def test_exim_prose_bounce_with_auto_submitted_is_a_bounce_not_an_autoreply() -> None:
    report = _parse("exim-prose.eml")
    assert report.kind is FeedbackKind.HARD
    [recipient] = report.recipients
    assert recipient.email == "nobody-here@readers.example"
    assert recipient.status == "5.1.1"
    assert "No such user here" in recipient.diagnostic
    assert report.sent_to == ("bounces+def@news.example",)
    # found in the quoted copy after Exim's "This is a copy of the message" line
    assert report.returned.message_ids == ("<issue-2026-W47.r43@news.example>",)
    assert report.returned.return_paths == ("bounces+def@news.example",)
    assert report.returned.unsubscribe_urls == ("https://news.example/u/tok43",)


def test_delayed_dsn_is_other_with_its_recipient_and_returned_headers() -> None:
    report = _parse("delayed-dsn.eml")
    assert report.kind is FeedbackKind.OTHER
    assert _by_email(report) == {"slow@readers.example": (FeedbackKind.OTHER, "4.4.1", "delayed")}
    assert report.returned.message_ids == ("<issue-2026-W47.r44@news.example>",)  # rfc822-headers


def test_delivered_dsn_is_other() -> None:
    report = _parse("delivered-dsn.eml")
    assert report.kind is FeedbackKind.OTHER
    assert _by_email(report) == {
        "happy@readers.example": (FeedbackKind.OTHER, "2.0.0", "delivered")}


def test_arf_abuse_report_names_the_reader_and_our_message() -> None:
    report = _parse("arf-abuse.eml")
    assert report.kind is FeedbackKind.COMPLAINT
    assert report.feedback_type == "abuse"
    assert [(r.email, r.kind) for r in report.recipients] == [
        ("Annoyed@readers.example", FeedbackKind.COMPLAINT)]
    assert report.returned.message_ids == ("<issue-2026-W47.r45@news.example>",)
    assert report.returned.return_paths == ("bounces+abc@news.example",)
    assert report.returned.unsubscribe_urls == (
        "https://news.example/u/tok45", "mailto:unsubscribe@news.example?subject=tok45")


def test_out_of_office_without_auto_submitted_is_an_autoreply() -> None:
    report = _parse("out-of-office.eml")
    assert report.kind is FeedbackKind.AUTOREPLY
    assert [r.email for r in report.recipients] == ["away@readers.example"]


def test_ordinary_mail_with_an_attached_message_is_other_and_names_nobody() -> None:
    report = _parse("forwarded-attachment.eml")
    assert report.kind is FeedbackKind.OTHER
    assert report.recipients == ()
    assert report.returned.message_ids == ("<issue-2026-W47.r46@news.example>",)


@pytest.mark.parametrize(("name", "email", "subject"), [
    ("japanese-iso2022.eml", "tanaka@readers.example", "配信エラーのお知らせ"),
    ("japanese-sjis-base64.eml", "suzuki@readers.example", "配信エラー"),
])
def test_japanese_bounces_decode_and_classify(name: str, email: str, subject: str) -> None:
    report = _parse(name)
    assert report.subject == subject
    assert report.kind is FeedbackKind.HARD
    [recipient] = report.recipients
    assert recipient.email == email
    assert "宛先不明" in recipient.diagnostic
    assert report.returned.message_ids == ("<issue-2026-W47.r47@news.example>",)


def test_each_message_of_an_mbox_parses_on_its_own() -> None:
    items = [i for i in read_mail([str(FIXTURES / "two-messages.mbox")])
             if isinstance(i, MailItem)]
    kinds = [parse_message(i.raw, i.source).kind for i in items]
    assert kinds == [FeedbackKind.HARD, FeedbackKind.AUTOREPLY]


@pytest.mark.parametrize("raw", [b"", b"\n\n", b"just prose, no header\n", b"\x00\x01\x02"])
def test_input_that_is_not_mail_raises_feedback_error(raw: bytes) -> None:
    with pytest.raises(FeedbackError, match="not a mail message"):
        parse_message(raw, "bad.eml")


@pytest.mark.parametrize(("status", "words", "action", "kind"), [
    ("5.1.1", "550 5.1.1 User unknown", "failed", FeedbackKind.HARD),
    ("4.1.1", "450 4.1.1 User unknown in local recipient table", "failed", FeedbackKind.HARD),
    ("5.1.1", "552 5.1.1 Mailbox full", "failed", FeedbackKind.SOFT),  # words win over codes
    ("5.2.2", "552 5.2.2 Mailbox full", "failed", FeedbackKind.SOFT),
    ("5.7.1", "554 5.7.1 Message rejected as spam", "failed", FeedbackKind.SOFT),
    ("5.0.0", "550 No such user here", "failed", FeedbackKind.HARD),
    ("5.4.4", "Host or domain name not found", "failed", FeedbackKind.HARD),
    ("4.4.4", "no MX or A for domain", "failed", FeedbackKind.SOFT),  # DNS may recover
    ("5.1.8", "501 5.1.8 Sender address rejected", "failed", FeedbackKind.SOFT),  # our side
    ("4.4.1", "Connection timed out", "delayed", FeedbackKind.OTHER),
    ("2.0.0", "250 ok", "delivered", FeedbackKind.OTHER),
    ("", "", "failed", FeedbackKind.SOFT),
])
def test_classify(status: str, words: str, action: str, kind: FeedbackKind) -> None:
    assert classify(status, words, action) is kind


def test_unknown_user_said_after_data_is_a_content_refusal() -> None:
    context = ">>> DATA\n<<< 550 Unknown user kijitora@readers.example"
    assert classify("5.0.0", "550 Unknown user", "failed", context) is FeedbackKind.SOFT
    assert classify("5.0.0", "550 Unknown user", "failed", "") is FeedbackKind.HARD
