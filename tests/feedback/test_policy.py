"""The feedback loop end to end on SQLite and PostgreSQL: each message's VERP return path,
bounces and complaints matched to their delivery, the one policy turning them into subscriber
states, repeats counted once, and forged or stray reports changing nobody."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta

import pytest

from ainews_newsletter import clock
from ainews_newsletter.config import Config, load_config
from ainews_newsletter.feedback.events import FeedbackEvent, event_key
from ainews_newsletter.feedback.findings import FeedbackReport
from ainews_newsletter.feedback.mailfile import MailItem
from ainews_newsletter.models import Window
from ainews_newsletter.pipeline.feedback import (
    FeedbackRecorder,
    IngestSummary,
    feedback_events,
    ingest,
    issue_feedback,
    parse_items,
)
from ainews_newsletter.pipeline.send import execute_send, plan_send
from tests.conftest import Project, SmtpServer, post_text, write_post
from tests.feedback.returns import arf, dsn, out_of_office

pytestmark = pytest.mark.clock

BOUNCES = "bounces@news.example.org"
VERP = re.compile(r"bounces\+([a-z2-7]{16})@news\.example\.org")


def _config(project: Project, server: SmtpServer, bounces: dict[str, object] | None = None,
            **delivery: object) -> Config:
    overrides: dict[str, object] = {
        "smtp": {"host": "127.0.0.1", "port": server.port}, "delivery": delivery,
        "bounces": {"address": BOUNCES, **(bounces or {})}}
    if project.storage_url is not None:
        overrides["storage"] = {"url": project.storage_url}
    return load_config(project.config_path, environ={}, overrides=overrides)


def _send(config: Config, week: str = "2026-W47") -> None:
    window = Window(week=week)
    assert execute_send(config, plan_send(config, window)).failed == 0


def _sent(server: SmtpServer, address: str) -> tuple[str, bytes]:
    """(envelope sender, bytes) of the newest message to `address`."""
    found = [m for m in server.handler.messages if address in m.rcpt_tos]
    assert found, f"nothing was sent to {address}"
    return found[-1].mail_from, found[-1].data


def _ingest(config: Config, raw: bytes, source: str = "report.eml") -> IngestSummary:
    return ingest(config, [MailItem(source, raw)])


def _status(project: Project, address: str) -> str:
    return str(project.query("SELECT status FROM subscribers WHERE email = ?", address)[0][0])


def test_every_message_has_its_own_unguessable_return_path(
        any_project: Project, smtp_server: SmtpServer) -> None:
    readers = any_project.import_readers(3)
    config = _config(any_project, smtp_server)
    _send(config)
    tags = {}
    for reader in readers:
        envelope, data = _sent(smtp_server, reader)
        match = VERP.fullmatch(envelope)
        assert match is not None, envelope
        tags[reader] = match.group(1)
        token = any_project.query("SELECT token FROM subscribers WHERE email = ?", reader)[0][0]
        assert token not in envelope  # not the unsubscribe token
        assert b"From: Test Digest <digest@news.example.org>" in data  # From: unchanged
    assert len(set(tags.values())) == 3
    stored = dict(any_project.query("SELECT email, return_tag FROM deliveries"))
    assert stored == tags


def test_without_a_bounce_address_the_envelope_sender_is_from(
        project: Project, smtp_server: SmtpServer) -> None:
    project.import_readers(2)
    config = _config(project, smtp_server, bounces={"address": None})
    _send(config)
    assert {m.mail_from for m in smtp_server.handler.messages} == {"digest@news.example.org"}


def test_a_hard_bounce_by_tag_marks_the_reader_bounced_once(
        any_project: Project, smtp_server: SmtpServer) -> None:
    readers = any_project.import_readers(3)
    config = _config(any_project, smtp_server)
    _send(config)
    envelope, original = _sent(smtp_server, readers[1])
    # The DSN names a forwarding target, not our reader: the tag still finds the row.
    report = dsn(envelope, "forwarded-to@elsewhere.example", original=original)
    summary = _ingest(config, report)
    assert (summary.new_events, summary.changed["bounced"], summary.unmatched) == (1, 1, 0)
    assert [_status(any_project, r) for r in readers] == ["active", "bounced", "active"]
    assert any_project.query("SELECT reason FROM suppressions") == [("bounced",)]
    event = summary.events[0]
    assert (event.matched_by, event.kind.value, event.status) == ("tag", "hard", "5.1.1")
    again = _ingest(config, report, source="again.eml")
    assert (again.new_events, again.repeated) == (0, 1)
    assert any_project.query("SELECT count(*) FROM feedback_events") == [(1,)]


def test_a_forged_tag_or_a_stranger_changes_nobody(any_project: Project,
                                                   smtp_server: SmtpServer) -> None:
    readers = any_project.import_readers(2)
    config = _config(any_project, smtp_server)
    _send(config)
    forged_tag = dsn("bounces+aaaaaaaaaaaaaaaa@news.example.org", readers[0],
                     message_id="<forged-1@attacker.example>")
    stranger = dsn(BOUNCES, "never-mailed@readers.example",
                   message_id="<forged-2@attacker.example>")
    summary = ingest(config, [MailItem("a.eml", forged_tag),
                                       MailItem("b.eml", stranger)])
    assert (summary.new_events, summary.unmatched, sum(summary.changed.values())) == (2, 2, 0)
    assert {e.effect for e in summary.events} == {"unmatched"}
    assert [_status(any_project, r) for r in readers] == ["active", "active"]
    assert any_project.query("SELECT count(*) FROM suppressions") == [(0,)]


def test_a_recipient_alone_matches_only_within_match_days(project: Project,
                                                          smtp_server: SmtpServer) -> None:
    readers = project.import_readers(2)
    config = _config(project, smtp_server, bounces={"address": None})  # no VERP
    _send(config)
    late = dsn("digest@news.example.org", readers[0], message_id="<late@mx.readers.example>")
    with clock.use_clock(clock.frozen(clock.now() + timedelta(days=15))):
        assert _ingest(config, late).unmatched == 1  # 15 days > match_days 14
    assert _status(project, readers[0]) == "active"
    in_time = dsn("digest@news.example.org", readers[1].upper(),  # case does not matter
                  message_id="<in-time@mx.readers.example>")
    summary = _ingest(config, in_time)
    assert summary.events[0].matched_by == "recipient"
    assert _status(project, readers[1]) == "bounced"


def test_with_verp_naming_a_reader_is_not_enough(any_project: Project,
                                                 smtp_server: SmtpServer) -> None:
    reader = any_project.import_readers(1)[0]
    config = _config(any_project, smtp_server)
    _send(config)
    # Anyone can mail the plain bounce address a DSN naming a reader: a genuine one for a
    # message that left with a VERP return path would have come to its tag.
    forged = dsn(BOUNCES, reader, message_id="<forged-3@attacker.example>")
    summary = _ingest(config, forged)
    assert (summary.unmatched, summary.events[0].matched_by) == (1, "no tag")
    assert _status(any_project, reader) == "active"


def test_a_reader_who_came_back_is_not_bounced_again_by_an_old_report(
        project: Project, smtp_server: SmtpServer) -> None:
    reader = project.import_readers(1)[0]
    config = _config(project, smtp_server)
    _send(config)
    envelope, original = _sent(smtp_server, reader)
    report = dsn(envelope, reader, original=original)
    assert _ingest(config, report).changed["bounced"] == 1
    assert project.run("subscribers", "resubscribe", reader).exit_code == 0
    again = _ingest(config, report, source="the same Maildir, read again")
    assert (again.repeated, sum(again.changed.values())) == (1, 0)
    assert _status(project, reader) == "active"


def test_an_event_stored_but_never_acted_on_is_finished_later(
        any_project: Project, smtp_server: SmtpServer) -> None:
    reader = any_project.import_readers(1)[0]
    config = _config(any_project, smtp_server)
    _send(config)
    envelope, original = _sent(smtp_server, reader)
    recorder = FeedbackRecorder(config)
    # A crash right after storing: the event is there, the policy never ran.
    parsed = parse_items([MailItem("r.eml", dsn(envelope, reader,
                                                         original=original))])[0]
    assert isinstance(parsed, FeedbackReport)
    stored, _ = recorder.log.record(replace(_event_for(recorder, parsed), effect="none"))
    assert _status(any_project, reader) == "active"
    ingest(config, [])  # the next ingest (or send) starts by finishing it
    assert _status(any_project, reader) == "bounced"
    assert recorder.log.by_key(stored.dedup_key).effect == "bounced"  # type: ignore[union-attr]


def _event_for(recorder: FeedbackRecorder, report: FeedbackReport) -> FeedbackEvent:
    """The event record_report would store, built without storing it."""
    anchor, how = recorder._delivery_of_report(report)
    delivery, matched_by = recorder._match_recipient(report, report.recipients[0], anchor, how)
    assert delivery is not None
    recipient = report.recipients[0]
    return FeedbackEvent(
        dedup_key=event_key(report.message_id or "", "0", recipient.email),
        received_at=clock.now(), kind=recipient.kind, email=recipient.email,
        status=recipient.status, action=recipient.action, diagnostic=recipient.diagnostic,
        feedback_type=None, source=report.source, matched_by=matched_by,
        delivery_id=delivery.id, issue_id=delivery.issue_id,
        subscriber_id=delivery.subscriber_id, sent_at=delivery.sent_at)


def test_oversized_fields_are_cut_to_fit(any_project: Project,
                                         smtp_server: SmtpServer) -> None:
    reader = any_project.import_readers(1)[0]
    config = _config(any_project, smtp_server)
    _send(config)
    envelope, original = _sent(smtp_server, reader)
    report = dsn(envelope, reader, original=original, action="failed" + "-x" * 40,
                 status="5.1.1" + ".1" * 30)
    event = _ingest(config, report).events[0]
    assert event.effect == "bounced"
    stored = any_project.query("SELECT action, status FROM feedback_events")[0]
    assert len(stored[0]) <= 32 and len(stored[1]) <= 32 and stored[0].startswith("failed")


def test_a_redacted_complaint_is_matched_by_the_returned_copy(
        any_project: Project, smtp_server: SmtpServer) -> None:
    readers = any_project.import_readers(3)
    config = _config(any_project, smtp_server)
    _send(config)
    envelope, original = _sent(smtp_server, readers[2])
    delivered = f"Return-Path: <{envelope}>\n".encode() + original  # as the mailbox kept it
    summary = _ingest(config, arf("fbl@news.example.org", delivered, recipient=None))
    event = summary.events[0]
    assert (event.kind.value, event.feedback_type, event.matched_by) == (
        "complaint", "abuse", "tag")  # the quoted Return-Path carries our tag
    assert [_status(any_project, r) for r in readers] == ["active", "active", "complained"]
    assert any_project.query("SELECT reason FROM suppressions") == [("complained",)]


def test_a_complaint_without_return_path_is_matched_by_its_token(
        project: Project, smtp_server: SmtpServer) -> None:
    readers = project.import_readers(2)
    config = _config(project, smtp_server, bounces={"address": None})
    _send(config)
    _, original = _sent(smtp_server, readers[0])
    summary = _ingest(config, arf("fbl@news.example.org", original, recipient=None))
    assert summary.events[0].matched_by == "token"
    assert _status(project, readers[0]) == "complained"


def test_soft_bounces_count_distinct_issues_within_the_window(
        any_project: Project, smtp_server: SmtpServer) -> None:
    write_post(any_project.posts, "2026-11-24-tuesday.md",
               post_text("Tuesday Model Release", "2026-11-24T09:00:00Z"))
    reader = any_project.import_readers(1)[0]
    config = _config(any_project, smtp_server)
    effects = []
    for number, week in enumerate(("2026-W46", "2026-W47", "2026-W48")):
        _send(config, week)
        envelope, original = _sent(smtp_server, reader)
        full = dsn(envelope, reader, status="5.2.2", original=original,
                   diagnostic="552 5.2.2 <{r}>: mailbox full",
                   message_id=f"<full-{number}@mx.readers.example>")
        effects.append(_ingest(config, full).events[0].effect)
        if number == 0:  # a second report about the same issue adds nothing to the count
            other = full.replace(b"<full-0@", b"<full-0b@")
            assert _ingest(config, other).events[0].effect == "counted 1 of 3"
    assert effects == ["counted 1 of 3", "counted 2 of 3", "bounced"]
    assert _status(any_project, reader) == "bounced"


def test_auto_replies_and_delays_change_nothing(project: Project,
                                                smtp_server: SmtpServer) -> None:
    reader = project.import_readers(1)[0]
    config = _config(project, smtp_server)
    _send(config)
    envelope, original = _sent(smtp_server, reader)
    delayed = dsn(envelope, reader, status="4.4.1", action="delayed", original=original,
                  diagnostic="421 4.4.1 connection timed out, still trying")
    summary = ingest(config, [MailItem("ooo.eml", out_of_office(envelope, reader)),
                                       MailItem("delay.eml", delayed)])
    assert sorted(summary.kinds) == ["autoreply", "other"]
    assert {e.effect for e in summary.events} == {"none"}
    assert _status(project, reader) == "active"


def test_refusals_while_sending_follow_the_same_policy(any_project: Project,
                                                      smtp_server: SmtpServer) -> None:
    readers = any_project.import_readers(3)
    smtp_server.handler.replies = {readers[0]: "550 5.1.1 No such user here",
                                   readers[1]: "554 5.7.1 Message refused as spam"}
    config = _config(any_project, smtp_server)
    counts = execute_send(config, plan_send(config, Window(week="2026-W47")))
    assert counts.failed == 2
    assert [_status(any_project, r) for r in readers] == ["bounced", "active", "active"]
    events = {e.email: e for e in feedback_events(config)}
    assert (events[readers[0]].kind.value, events[readers[0]].source) == ("hard", "smtp")
    assert (events[readers[1]].kind.value, events[readers[1]].effect) == ("soft",
                                                                          "counted 1 of 3")
    assert issue_feedback(config, "2026-W47")["bounced"] == 2


def test_the_older_bounce_limit_still_counts(project: Project,
                                            smtp_server: SmtpServer) -> None:
    reader = project.import_readers(1)[0]
    smtp_server.handler.replies = {reader: "550 5.1.1 No such user here"}
    config = _config(project, smtp_server, bounce_limit=2)
    assert config.hard_bounce_limit == 2
    execute_send(config, plan_send(config, Window(week="2026-W47")))
    assert _status(project, reader) == "active"
    assert feedback_events(config)[0].effect == "counted 1 of 2"
