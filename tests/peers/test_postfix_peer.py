"""The private Postfix delivers, and bounces with real DSNs to a VERP envelope sender."""

from __future__ import annotations

import email
import email.policy
import smtplib
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the peers are pytest plugins (tests/conftest.py)
    from tests.peers.postfix import PostfixPeer


BOUNCES = "bounces@news.example"


def send(peer: PostfixPeer, tag: str, to: str) -> str:
    """One message from bounces+TAG@news.example; returns its Message-ID."""
    message = EmailMessage()
    message["From"] = "digest@news.example"
    message["To"] = to
    message["Subject"] = f"Test digest {tag}"
    message["Message-ID"] = f"<{tag}@news.example>"
    message.set_content(f"Hello {to}, this is message {tag}.\n")
    with smtplib.SMTP(peer.host, peer.port, timeout=30) as client:
        refused = client.send_message(message, from_addr=f"bounces+{tag}@news.example",
                                      to_addrs=[to])
    assert refused == {}
    return str(message["Message-ID"])


def new_mail(peer: PostfixPeer, folder: Path, before: set[Path], marker: str) -> EmailMessage:
    """Wait for one more message in `folder` than `before`, and return the one naming
    `marker` (the session's Postfix is shared: other tests' DSNs may arrive too)."""
    files = peer.wait_for_mail(folder, len(before) + 1)
    for path in files:
        raw = path.read_bytes()
        if path not in before and marker.encode() in raw:
            return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]
    raise AssertionError(f"no message naming {marker} in {folder}; log:\n{peer.log()}")


def existing(folder: Path) -> set[Path]:
    return {path for sub in ("new", "cur") if (folder / sub).is_dir()
            for path in (folder / sub).iterdir()}


def delivery_status(dsn: EmailMessage) -> str:
    assert dsn.get_content_type() == "multipart/report"
    parts = [part for part in dsn.walk() if part.get_content_type() == "message/delivery-status"]
    assert len(parts) == 1
    return "\n".join(str(block) for block in parts[0].get_payload())  # type: ignore[union-attr]


def test_delivers_to_an_existing_reader_with_the_verp_return_path(
        postfix_peer: PostfixPeer) -> None:
    folder = postfix_peer.maildir("ada@readers.example")
    before = existing(folder)
    message_id = send(postfix_peer, "abc123", "ada@readers.example")
    delivered = new_mail(postfix_peer, folder, before, message_id)
    assert delivered["Return-Path"] == "<bounces+abc123@news.example>"
    assert delivered["Delivered-To"] == "ada@readers.example"
    assert "Hello ada@readers.example" in delivered.get_body().get_content()  # type: ignore[union-attr]


def test_unknown_reader_comes_back_as_a_hard_dsn_to_the_verp_address(
        postfix_peer: PostfixPeer) -> None:
    folder = postfix_peer.maildir(BOUNCES)
    before = existing(folder)
    message_id = send(postfix_peer, "hard5511", "nobody@readers.example")
    dsn = new_mail(postfix_peer, folder, before, message_id)
    assert dsn["To"] == "bounces+hard5511@news.example"
    assert dsn["Delivered-To"] == "bounces+hard5511@news.example"
    assert dsn["Return-Path"] == "<>"
    assert "MAILER-DAEMON@" in dsn["From"]
    status = delivery_status(dsn)
    assert "Final-Recipient: rfc822; nobody@readers.example" in status
    assert "Action: failed" in status
    assert "Status: 5.1.1" in status


def test_full_mailbox_comes_back_at_once_as_a_soft_failed_dsn(postfix_peer: PostfixPeer) -> None:
    folder = postfix_peer.maildir(BOUNCES)
    before = existing(folder)
    message_id = send(postfix_peer, "soft422", "full@readers.example")
    dsn = new_mail(postfix_peer, folder, before, message_id)
    assert dsn["To"] == "bounces+soft422@news.example"
    status = delivery_status(dsn)
    assert "Final-Recipient: rfc822; full@readers.example" in status
    assert "Action: failed" in status
    assert "Status: 4.2.2" in status
    assert "Mailbox full" in status
    assert "status=expired, returned to sender" in postfix_peer.log()
