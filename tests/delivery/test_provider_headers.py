"""[smtp] provider: each message carries its delivery's tag in the relay provider's metadata
header (never DKIM-signed, no address in it); the relay's id for the message is read from
its 250 reply and kept per delivery, by the threaded and the worker-process sender alike;
the lookups find a delivery by tag, by that id and by our Message-ID."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast

import dkim
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ainews_newsletter.config import Config, load_config
from ainews_newsletter.delivery.dkim import make_signer, new_private_key, public_key_text
from ainews_newsletter.delivery.lookup import DeliveryLookup
from ainews_newsletter.delivery.message import IssueMessages
from ainews_newsletter.delivery.provider_headers import PROVIDERS, ProviderHeaders
from ainews_newsletter.delivery.provider_ids import MAX_LENGTH, provider_message_id
from ainews_newsletter.delivery.returnpath import new_return_tag
from ainews_newsletter.models import Recipient, RenderedIssue, Window
from ainews_newsletter.pipeline.issue import build, open_subscribers
from ainews_newsletter.pipeline.send import execute_send, plan_send
from tests.conftest import EphemeralPortController, Project, RecordingHandler, SmtpServer

REPO = Path(__file__).resolve().parents[2]
CONFIG = load_config(REPO / "config.toml", environ={},
                     overrides={"storage": {"url": "sqlite:///:memory:"}})
DATE = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
W47 = Window(week="2026-W47")
READER = Recipient(7, "zoe.reader@example.com", "Zoe Reader", "tok-7")
# The header each provider's webhook events bring the tag back from, and its value.
EXPECTED = {
    "ses": ("X-SES-MESSAGE-TAGS", "ainews_tag={tag}"),
    "sendgrid": ("X-SMTPAPI", '{{"unique_args": {{"ainews_tag": "{tag}"}}}}'),
    "mailgun": ("X-Mailgun-Variables", '{{"ainews_tag": "{tag}"}}'),
    "postmark": ("X-PM-Metadata-ainews_tag", "{tag}"),
    "postal": ("X-Postal-Tag", "{tag}"),
}
PROVIDER_NAMES = {name for name, _ in EXPECTED.values()} | {
    "X-SES-CONFIGURATION-SET", "X-PM-Message-Stream"}


@pytest.fixture(scope="module")
def rendered() -> RenderedIssue:
    return build(CONFIG, Window(week="2026-W47"))


def _parse(raw: bytes) -> EmailMessage:
    return cast(EmailMessage, email.message_from_bytes(raw, policy=email.policy.default))


def _provider_lines(raw: bytes) -> list[bytes]:
    head = raw.split(b"\r\n\r\n", 1)[0]
    return [line for line in head.split(b"\r\n")
            if line.split(b":", 1)[0].decode() in PROVIDER_NAMES]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_each_provider_header_carries_the_rows_tag(rendered: RenderedIssue,
                                                   provider: str) -> None:
    tag = new_return_tag()
    messages = IssueMessages(rendered, CONFIG.newsletter, DATE,
                             provider=ProviderHeaders.of(provider, "weekly-news"))
    raw = messages.bytes_for(READER, tag=tag)
    message = _parse(raw)
    name, value = EXPECTED[provider]
    assert message[name] == value.format(tag=tag)
    stream = {"ses": "X-SES-CONFIGURATION-SET", "postmark": "X-PM-Message-Stream"}.get(provider)
    if stream is not None:
        assert message[stream] == "weekly-news"
    # No address in them: the tag alone names the delivery.
    lines = _provider_lines(raw)
    assert lines and not any(b"@" in line for line in lines)
    # Everything else is as without a provider (but the MIME boundary, random per build).
    plain = _parse(IssueMessages(rendered, CONFIG.newsletter, DATE).bytes_for(READER))
    assert [(key, str(value)) for key, value in message.items()
            if key not in PROVIDER_NAMES and key != "Content-Type"] == [
        (key, str(value)) for key, value in plain.items() if key != "Content-Type"]
    for kind in ("plain", "html"):
        assert _content(message, kind) == _content(plain, kind)


def _content(message: EmailMessage, kind: str) -> str:
    part = message.get_body((kind,))
    assert part is not None
    return str(cast(EmailMessage, part).get_content())


def test_no_provider_no_header(rendered: RenderedIssue) -> None:
    assert ProviderHeaders.of("none", "weekly-news") is None
    raw = IssueMessages(rendered, CONFIG.newsletter, DATE).bytes_for(READER, tag="abc")
    assert _provider_lines(raw) == []


def test_a_row_without_tag_gets_only_the_stream(rendered: RenderedIssue) -> None:
    messages = IssueMessages(rendered, CONFIG.newsletter, DATE,
                             provider=ProviderHeaders.of("ses", "weekly-news"))
    assert _provider_lines(messages.bytes_for(READER)) == [
        b"X-SES-CONFIGURATION-SET: weekly-news"]
    with pytest.raises(ValueError):
        messages.bytes_for(READER, tag="x\r\nBcc: a@b")  # never from our ledger, but refused


def test_provider_headers_are_not_signed(rendered: RenderedIssue, tmp_path: Path) -> None:
    """Left out of h=: a provider that removes or rewrites them leaves the signature valid."""
    key_path = tmp_path / "dkim.pem"
    pem = new_private_key(1024)
    key_path.write_bytes(pem)
    sign = make_signer("s1", "example.org", key_path)
    record = public_key_text(pem).encode()
    tag = new_return_tag()
    for provider in PROVIDERS:
        messages = IssueMessages(rendered, CONFIG.newsletter, DATE,
                                 provider=ProviderHeaders.of(provider, "weekly-news"))
        signed = sign(messages.bytes_for(READER, tag=tag))
        header = _parse(signed)["DKIM-Signature"]
        signed_names = {name.strip().lower() for name in
                        re.search(r"\bh=([^;]+)", re.sub(r"\s", "", header)).group(1).split(":")}
        assert not signed_names & {name.lower() for name in PROVIDER_NAMES}
        assert dkim.verify(signed, dnsfunc=lambda *_, **__: record)
        stripped = b"\r\n".join(line for line in signed.split(b"\r\n")
                                if line not in _provider_lines(signed))
        assert dkim.verify(stripped, dnsfunc=lambda *_, **__: record)


@pytest.mark.parametrize(("reply", "expected"), [
    ("Ok 0000014a-f4d4-4f89-93c3-1f2a1b3c4d5e-000000",
     "0000014a-f4d4-4f89-93c3-1f2a1b3c4d5e-000000"),
    ("250 Ok 0100018c2f6fa2bb-b6ed0b8c-000000", "0100018c2f6fa2bb-b6ed0b8c-000000"),
    ("Ok: queued as 14c2Xr7bRfOxvxBf8Jh4mA", "14c2Xr7bRfOxvxBf8Jh4mA"),
    ("2.0.0 Ok: queued as 4XyZ12Q", "4XyZ12Q"),
    ("OK id=1vXyZa-000Abc-Q1", "1vXyZa-000Abc-Q1"),
    ("mx.example\n2.0.0 Ok: queued as <ABC.123@relay>", "ABC.123@relay"),
    ("Message accepted", ""),
    ("Ok thanks", ""),
    ("Great success", ""),
    ("queued as", ""),
    ("", ""),
])
def test_the_relays_id_is_read_from_its_reply(reply: str, expected: str) -> None:
    assert provider_message_id(reply) == expected


@given(st.text(max_size=400))
def test_reading_a_reply_never_fails(reply: str) -> None:
    found = provider_message_id(reply)
    assert len(found) <= MAX_LENGTH and not any(ch.isspace() for ch in found)


# -- a real send through a relay that answers with an id ------------------------------------

class _ProviderRelay(RecordingHandler):
    """Answers each message like SendGrid or Postfix: "250 Ok: queued as <id>"."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await super().handle_DATA(server, session, envelope)
        return f"250 Ok: queued as Q{len(self.messages):05d}"


@contextmanager
def _relay() -> Iterator[SmtpServer]:
    handler = _ProviderRelay()
    controller = EphemeralPortController(handler, hostname="127.0.0.1", port=0)
    controller.start()
    try:
        yield SmtpServer(handler, controller.port)
    finally:
        controller.stop()


def _config(project: Project, server: SmtpServer, **smtp: Any) -> Config:
    overrides: dict[str, Any] = {"smtp": {"host": "127.0.0.1", "port": server.port, **smtp}}
    if project.storage_url is not None:
        overrides["storage"] = {"url": project.storage_url}
    return load_config(project.config_path, environ={}, overrides=overrides)


def _send(config: Config, count: int) -> None:
    store = open_subscribers(config)
    for number in range(count):
        store.add(f"reader{number:03d}@example.com")
    counts = execute_send(config, plan_send(config, W47))
    assert counts.sent == count


@pytest.mark.clock
def test_the_relays_id_and_the_tag_are_kept_threads(any_project: Project) -> None:
    """Threads, SQLite and PostgreSQL; no [bounces] address: rows are tagged anyway."""
    with _relay() as server:
        config = _config(any_project, server, provider="sendgrid")
        assert config.bounces.address is None
        _send(config, 6)
        rows = any_project.query("SELECT email, return_tag, provider_message_id, "
                                 "message_digest FROM deliveries ORDER BY id")
        received = {message.rcpt_tos[0]: message for message in server.handler.messages}
    assert sorted(row[2] for row in rows) == [f"Q{n:05d}" for n in range(1, 7)]
    for address, tag, _, digest in rows:
        message = received[address].message
        assert message["X-SMTPAPI"] == f'{{"unique_args": {{"ainews_tag": "{tag}"}}}}'
        assert digest is not None and digest in message["Message-ID"]
        assert received[address].mail_from == config.newsletter.from_  # no VERP without it
    lookup = DeliveryLookup(_engine(config), config.newsletter)
    tags = {row[1]: row[0] for row in rows}
    assert {tag: found.email for tag, found in lookup.by_tags([*tags, "nosuchtag"]).items()} \
        == tags
    ids = {row[2]: row[0] for row in rows}
    assert {key: found.email for key, found in
            lookup.by_provider_message_ids([*ids, "Q99999", ""]).items()} == ids
    message_ids = {received[address].message["Message-ID"]: address for address, *_ in rows}
    bare = [key.strip("<>") for key in message_ids]
    wrong = [key.replace("@", "@x.") for key in message_ids]
    found = lookup.by_message_ids([*message_ids, bare[0], *wrong, "<junk@example.org>"])
    assert {key: value.email for key, value in found.items()} == {
        **message_ids, bare[0]: message_ids[f"<{bare[0]}>"]}


@pytest.mark.clock
def test_the_relays_id_is_kept_by_worker_processes(project: Project) -> None:
    with _relay() as server:
        config = _config(project, server, provider="ses", provider_stream="news",
                         connections=2, workers=2)
        _send(config, 8)
        rows = project.query("SELECT email, return_tag, provider_message_id FROM deliveries")
        received = {message.rcpt_tos[0]: message.message for message in server.handler.messages}
    assert sorted(row[2] for row in rows) == [f"Q{n:05d}" for n in range(1, 9)]
    for address, tag, _ in rows:
        assert received[address]["X-SES-MESSAGE-TAGS"] == f"ainews_tag={tag}"
        assert received[address]["X-SES-CONFIGURATION-SET"] == "news"


@pytest.mark.clock
def test_no_provider_no_tag_but_the_id_is_kept(project: Project) -> None:
    """[smtp] provider unset and no bounce mailbox: untagged rows, no provider header; a
    relay's id is kept all the same (a plain "250 Message accepted" names none)."""
    with _relay() as server:
        config = _config(project, server)
        _send(config, 3)
        rows = project.query("SELECT return_tag, provider_message_id FROM deliveries")
        names = [set(message.message.keys()) for message in server.handler.messages]
    assert [row[0] for row in rows] == [None] * 3
    assert sorted(row[1] for row in rows) == ["Q00001", "Q00002", "Q00003"]
    assert len(names) == 3 and not any(found & PROVIDER_NAMES for found in names)


def _engine(config: Config) -> Any:
    from ainews_newsletter.database import engine_for

    return engine_for(config.database_url)
