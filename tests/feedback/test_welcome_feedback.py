"""A bounce or a spam complaint about the welcome mail (a reader's first mail from us, its own
ledger) is matched like one about an issue: by the VERP tag of its return path, or by the
relay's id that a provider's webhook names; the policy then marks the reader."""

from __future__ import annotations

import re

import pytest

from ainews_newsletter.config import Config, load_config
from ainews_newsletter.delivery.lookup import DeliveryLookup
from ainews_newsletter.feedback.mailfile import MailItem
from ainews_newsletter.pipeline.feedback import ingest
from ainews_newsletter.pipeline.issue import open_subscribers
from ainews_newsletter.pipeline.welcome import Welcomes
from tests.conftest import Project, SmtpServer
from tests.feedback.returns import dsn

pytestmark = pytest.mark.clock

BOUNCES = "bounces@news.example.org"
VERP = re.compile(r"bounces\+([a-z2-7]{16})@news\.example\.org")


def _config(project: Project, server: SmtpServer) -> Config:
    overrides: dict[str, object] = {
        "smtp": {"host": "127.0.0.1", "port": server.port},
        "bounces": {"address": BOUNCES}, "subscribers": {"welcome": True}}
    if project.storage_url is not None:
        overrides["storage"] = {"url": project.storage_url}
    return load_config(project.config_path, environ={}, overrides=overrides)


def _welcome(config: Config, address: str) -> None:
    """Welcome `address` (made an active reader) now."""
    open_subscribers(config).add(address)
    welcomes = Welcomes(config)
    assert welcomes.queue_address(address) is not None
    welcomes.send_due()


def _status(project: Project, address: str) -> str:
    return str(project.query("SELECT status FROM subscribers WHERE email = ?", address)[0][0])


def test_a_hard_bounce_of_the_welcome_marks_the_reader_bounced(
        any_project: Project, smtp_server: SmtpServer) -> None:
    config = _config(any_project, smtp_server)
    _welcome(config, "gone@example.com")
    _welcome(config, "stays@example.com")
    [sent] = [m for m in smtp_server.handler.messages if m.rcpt_tos == ["gone@example.com"]]
    tag = VERP.fullmatch(sent.mail_from)
    assert tag is not None, sent.mail_from
    assert any_project.query("SELECT return_tag FROM welcomes WHERE email = ?",
                             "gone@example.com") == [(tag.group(1),)]
    summary = ingest(config, [MailItem("dsn.eml", dsn(sent.mail_from, "gone@example.com",
                                                      original=sent.data))])
    assert (summary.new_events, summary.changed["bounced"], summary.unmatched) == (1, 1, 0)
    event = summary.events[0]
    assert (event.matched_by, event.delivery_id, event.issue_id) == ("tag", None, None)
    assert _status(any_project, "gone@example.com") == "bounced"
    assert _status(any_project, "stays@example.com") == "active"


def test_a_welcome_is_found_by_its_tag_and_by_the_relays_id_once_it_left(
        project: Project, smtp_server: SmtpServer) -> None:
    config = _config(project, smtp_server)
    _welcome(config, "ada@example.com")
    [(tag, subscriber_id)] = project.query("SELECT return_tag, subscriber_id FROM welcomes")
    project.query("UPDATE welcomes SET provider_message_id = 'relay-42'")
    lookup = DeliveryLookup(open_subscribers(config).engine, config.newsletter)
    found = lookup.by_tag(tag)
    assert found is not None and (found.id, found.issue_id, found.subscriber_id,
                                  found.email) == (None, None, subscriber_id,
                                                   "ada@example.com")
    assert lookup.message_id_of(found).startswith("<welcome.")
    assert set(lookup.by_provider_message_ids(["relay-42", "other"])) == {"relay-42"}
    # Queued but never sent: nothing left, so nothing to match.
    project.query("UPDATE welcomes SET state = 'queued'")
    assert lookup.by_tag(tag) is None and lookup.by_provider_message_ids(["relay-42"]) == {}
