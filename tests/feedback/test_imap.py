"""The bounce-mailbox reader against a real Dovecot (tests/peers/dovecot.py): TLS and STARTTLS
with a verified certificate, every message oldest first, moving handled ones away, and one
clear FeedbackError line for each thing a user can get wrong."""

from __future__ import annotations

import dataclasses
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from datetime import date
from typing import TYPE_CHECKING

import pytest

from ainews_newsletter.errors import FeedbackError
from ainews_newsletter.feedback.imap import ImapMailbox, ImapSettings
from tests.peers import wait_until

if TYPE_CHECKING:  # the peers are pytest plugins (tests/conftest.py)
    from tests.peers.dovecot import DovecotPeer



def bounce(number: int) -> bytes:
    return (f"From: MAILER-DAEMON@mx.readers.example\r\n"
            f"To: bounces+tag{number}@news.example\r\n"
            f"Subject: Undelivered Mail Returned to Sender {number}\r\n"
            f"Message-ID: <dsn{number}@mx.readers.example>\r\n"
            f"\r\n"
            f"Bounce number {number}: user unknown.\r\n").encode()


def lf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n")


@pytest.fixture
def imap(dovecot_peer: DovecotPeer) -> Iterator[DovecotPeer]:
    """The session's Dovecot with the user's mail emptied (no IMAP session is open between
    tests, so removing the Maildir is safe; Dovecot makes it again)."""
    shutil.rmtree(dovecot_peer.maildir, ignore_errors=True)
    yield dovecot_peer


def failure(config: ImapSettings) -> str:
    """The one-line FeedbackError that opening the mailbox with `config` raises."""
    with pytest.raises(FeedbackError) as raised, ImapMailbox(config):
        pass
    message = str(raised.value)
    assert "\n" not in message
    return message


def settings(peer: DovecotPeer, **changes: object) -> ImapSettings:
    base = ImapSettings(host=peer.host, port=peer.imaps_port, user=peer.user,
                        password=peer.password, ca_file=str(peer.ca_file), timeout=10)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_reads_every_message_oldest_first_and_moves_them_to_processed(
        imap: DovecotPeer) -> None:
    sent = [bounce(n) for n in (1, 2, 3)]
    for raw in sent:
        imap.deliver(raw)
    with ImapMailbox(settings(imap)) as box:
        fetched = list(box.messages())
        assert [lf(mail.raw) for mail in fetched] == [lf(raw) for raw in sent]
        assert fetched[0].raw == sent[0]  # over IMAP the lines end in CRLF again
        for mail in fetched:
            box.mark_processed(mail.uid)
    assert imap.folder_messages("INBOX") == []
    assert sorted(imap.folder_messages("Processed")) == sorted(lf(raw) for raw in sent)
    with ImapMailbox(settings(imap)) as box:
        assert list(box.messages()) == []


def test_reads_seen_messages_too_and_leaves_them_unseen(imap: DovecotPeer) -> None:
    imap.deliver(bounce(1))
    with ImapMailbox(settings(imap)) as box:
        assert len(list(box.messages())) == 1
    with ImapMailbox(settings(imap)) as box:  # not marked \Seen, not hidden: read again
        assert len(list(box.messages())) == 1


def test_starttls_on_the_imap_port(imap: DovecotPeer) -> None:
    imap.deliver(bounce(7))
    with ImapMailbox(settings(imap, port=imap.imap_port, security="starttls")) as box:
        [mail] = list(box.messages())
        assert b"Bounce number 7" in mail.raw
        box.mark_processed(mail.uid)
    assert len(imap.folder_messages("Processed")) == 1


def test_localhost_matches_the_certificate_too(imap: DovecotPeer) -> None:
    with ImapMailbox(settings(imap, host="localhost")) as box:
        assert list(box.messages()) == []


def test_limit_is_honoured_and_the_rest_waits_for_the_next_run(imap: DovecotPeer) -> None:
    for number in range(5):
        imap.deliver(bounce(number))
    with ImapMailbox(settings(imap)) as box:
        first = list(box.messages(limit=2))
        assert [b"Bounce number 0" in first[0].raw, b"Bounce number 1" in first[1].raw] == [
            True, True]
        for mail in first:
            box.mark_processed(mail.uid)
    with ImapMailbox(settings(imap)) as box:
        assert len(list(box.messages(limit=10))) == 3


def test_copy_and_expunge_when_the_server_has_no_move(imap: DovecotPeer) -> None:
    for number in (1, 2):
        imap.deliver(bounce(number))
    imap.deliver(bounce(9), folder="Processed")  # the folder exists already: not made again
    with ImapMailbox(settings(imap)) as box:
        # Dovecot always offers MOVE; an older server that does not is simulated here.
        box._capabilities.discard("MOVE")
        for mail in list(box.messages()):
            box.mark_processed(mail.uid)
    assert imap.folder_messages("INBOX") == []
    assert len(imap.folder_messages("Processed")) == 3


def test_without_uidplus_copies_stay_flagged_and_are_skipped(imap: DovecotPeer) -> None:
    imap.deliver(bounce(1))
    imap.deliver(bounce(2))
    with ImapMailbox(settings(imap)) as box:
        # An old server: no MOVE, no UIDPLUS. A plain EXPUNGE would also remove messages
        # another client flagged \Deleted, so the copied message stays, flagged.
        box._capabilities.difference_update({"MOVE", "UIDPLUS"})
        first = next(box.messages())
        box.mark_processed(first.uid)
        assert [lf(m.raw) for m in box.messages()] == [lf(bounce(2))]
    assert len(imap.folder_messages("INBOX")) == 2  # nothing expunged
    assert [lf(m) for m in imap.folder_messages("Processed")] == [lf(bounce(1))]


def test_a_message_over_the_size_cap_comes_without_its_body(imap: DovecotPeer) -> None:
    imap.deliver(bounce(1))
    imap.deliver(bounce(2) + b"x" * 5000 + b"\r\n")
    with ImapMailbox(settings(imap)) as box:
        found = list(box.messages(max_bytes=2000))
    assert [(lf(m.raw) == lf(bounce(1)), m.size) for m in found] == [(True, 0), (False, 2001)]
    assert found[1].raw == b""


def test_a_missing_folder_is_named(imap: DovecotPeer) -> None:
    message = failure(settings(imap, folder="Bounces"))
    assert re.search(r"folder 'Bounces' cannot be opened.*imap_folder", message)


def test_wrong_password_is_a_login_error_without_the_password(imap: DovecotPeer) -> None:
    wrong = "not-the-Right-pass-42"
    message = failure(settings(imap, password=wrong))
    assert "login" in message and f"{imap.host}:{imap.imaps_port}" in message
    assert "\n" not in message
    assert wrong not in message and imap.password not in message
    assert wrong not in repr(settings(imap, password=wrong))


def test_an_untrusted_certificate_names_the_certificate_and_the_setting(
        imap: DovecotPeer) -> None:
    message = failure(settings(imap, ca_file=None))
    assert re.search(r"certificate is refused \(.*certificate.*\); set \[bounces\] imap_ca_file",
                     message)


def test_tls_to_the_plain_port_fails_as_a_handshake(imap: DovecotPeer) -> None:
    assert re.search("TLS handshake failed", failure(settings(imap, port=imap.imap_port)))


def test_a_refused_connection_names_host_and_port(unused_port: int) -> None:
    fake = ImapSettings(host="127.0.0.1", port=unused_port, user="u", password="pw-secret")
    message = failure(fake)
    assert re.search(f"127.0.0.1:{unused_port}: cannot connect: connection refused", message)


def test_a_silent_server_times_out_naming_host_and_port() -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never greets
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        fake = ImapSettings(host="127.0.0.1", port=port, user="u", password="pw-secret",
                            security="none", timeout=0.5)
        started = time.monotonic()
        assert re.search(f"127.0.0.1:{port}: .*no answer within 0.5 s", failure(fake))
        assert time.monotonic() - started < 5


def test_plaintext_to_another_machine_is_refused_before_connecting(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def no_connections(*args: object, **kwargs: object) -> None:
        raise AssertionError("tried to connect")

    monkeypatch.setattr(socket, "create_connection", no_connections)
    remote = ImapSettings(host="imap.news.example", port=143, user="u", password="pw-secret",
                          security="none")
    assert re.search(r'imap_security = "none".*imap\.news\.example', failure(remote))


def test_starttls_missing_is_named() -> None:
    # Dovecot here always offers STARTTLS; a server that greets without it is a few lines.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]

        def serve() -> None:
            connection, _ = listener.accept()
            with connection, connection.makefile("rwb") as stream:
                stream.write(b"* OK hello\r\n")
                stream.flush()
                for line in stream:
                    tag = line.split()[0]
                    if b"CAPABILITY" in line.upper():
                        stream.write(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n")
                        stream.write(tag + b" OK done\r\n")
                    elif b"LOGOUT" in line.upper():
                        stream.write(b"* BYE\r\n" + tag + b" OK bye\r\n")
                        stream.flush()
                        return
                    else:
                        stream.write(tag + b" BAD no\r\n")
                    stream.flush()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        plain = ImapSettings(host="127.0.0.1", port=port, user="u", password="pw-secret",
                             security="starttls", timeout=5)
        assert re.search(f"127.0.0.1:{port} does not offer STARTTLS", failure(plain))
        # A sleep loop, not join(timeout): threading waits can hang under libfaketime.
        assert wait_until(lambda: not thread.is_alive(), 5)


class _CountingImap:
    """Stands for imaplib.IMAP4 in delete_older: 1,234 old messages; records each command."""

    def __init__(self) -> None:
        self.stores: list[str] = []
        self.expunges = 0

    def select(self, _folder: str) -> tuple[str, list[bytes]]:
        return "OK", [b"1234"]

    def uid(self, command: str, *args: str) -> tuple[str, list[bytes]]:
        if command == "SEARCH":
            return "OK", [" ".join(str(n) for n in range(100_000, 101_234)).encode()]
        assert command == "STORE"
        self.stores.append(args[0])
        return "OK", []

    def expunge(self) -> tuple[str, list[bytes]]:
        self.expunges += 1
        return "OK", []


def test_deleting_a_big_folder_sends_its_uids_in_chunks_and_expunges_once() -> None:
    """A processed folder kept long holds thousands of messages: one STORE naming them all
    would pass the server's line limit; chunks of 500 UIDs each, then one EXPUNGE."""
    fake = _CountingImap()
    box = ImapMailbox(ImapSettings(host="127.0.0.1", port=1, user="u", password="pw"))
    box._imap = fake  # type: ignore[assignment]
    assert box.delete_older("Processed", date(2026, 1, 1)) == 1234
    assert [len(chunk.split(",")) for chunk in fake.stores] == [500, 500, 234]
    assert max(len(chunk) for chunk in fake.stores) < 4000
    assert ",".join(fake.stores).split(",") == [str(n) for n in range(100_000, 101_234)]
    assert fake.expunges == 1
