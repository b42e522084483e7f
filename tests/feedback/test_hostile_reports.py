"""Reports built to break the parser: each still comes out as a report or one clear line,
never an exception that would stop an ingest or block the IMAP folder behind it."""

from __future__ import annotations

import pytest

from ainews_newsletter.feedback import parse
from ainews_newsletter.feedback.findings import FeedbackKind, FeedbackReport
from ainews_newsletter.feedback.mailfile import MailItem, Unreadable
from ainews_newsletter.feedback.parse import parse_message
from ainews_newsletter.pipeline.feedback import parse_items

SES = (b"From: no-reply@sns.amazonaws.com\nSubject: AWS Notification Message\n"
       b"Content-Type: text/plain\n\n")
CASES = {
    "empty Feedback-Type": (
        b"From: fbl@mailbox.example\nContent-Type: multipart/report; "
        b"report-type=feedback-report; boundary=B\n\n--B\nContent-Type: "
        b"message/feedback-report\n\nFeedback-Type: \nUser-Agent: x\n--B--\n",
        FeedbackKind.COMPLAINT),
    "SES complaint with a number for recipients": (
        SES + b'{"notificationType":"Complaint","complaint":{"complainedRecipients":5}}',
        FeedbackKind.COMPLAINT),
    "SES bounce with a number for recipients": (
        SES + b'{"notificationType":"Bounce","bounce":{"bouncedRecipients":5}}',
        FeedbackKind.OTHER),
    "SES delivery with a string for recipients": (
        SES + b'{"notificationType":"Delivery","delivery":{"recipients":"a@b.example"}}',
        FeedbackKind.OTHER),
    "JSON nested deeper than Python recurses": (
        SES + b'{"notificationType":"Bounce","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        FeedbackKind.OTHER),
}


@pytest.mark.parametrize("name", CASES)
def test_hostile_reports_parse_without_an_exception(name: str) -> None:
    raw, kind = CASES[name]
    report = parse_message(raw, name)
    assert (report.kind, report.recipients) == (kind, ())


def test_a_parser_failure_is_one_named_line_and_the_rest_goes_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    real = parse.parse_message

    def breaks_on_the_first(raw: bytes, source: str) -> FeedbackReport:
        if source == "first.eml":  # a parser bug no real message triggers on demand
            raise TypeError("unexpected shape")
        return real(raw, source)

    monkeypatch.setattr("ainews_newsletter.pipeline.feedback.parse_message",
                        breaks_on_the_first)
    raw = CASES["empty Feedback-Type"][0]
    parsed = parse_items([MailItem("first.eml", raw), MailItem("second.eml", raw)])
    assert isinstance(parsed[0], Unreadable)
    assert parsed[0].reason == "could not be parsed (TypeError: unexpected shape)"
    assert isinstance(parsed[1], FeedbackReport) and parsed[1].kind is FeedbackKind.COMPLAINT
