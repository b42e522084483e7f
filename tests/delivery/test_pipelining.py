"""The SMTP transport's PIPELINING path against a scripted server on 127.0.0.1 that records
exactly what arrived in each read: one write per message group, replies kept in step."""

from __future__ import annotations

import smtplib
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ainews_newsletter.config import SmtpConfig
from ainews_newsletter.delivery.transports import SmtpTransport, angle_address, dot_stuffed
from ainews_newsletter.models import DeliveryState


@dataclass
class Script:
    rcpt_replies: dict[str, bytes] = field(default_factory=dict)
    lenient_data: bool = False  # answer 354 to DATA even with no accepted recipient
    reads: list[bytes] = field(default_factory=list)  # every recv, as it arrived
    messages: list[bytes] = field(default_factory=list)  # DATA payloads, still dot-stuffed


class _Session(socketserver.StreamRequestHandler):
    script: Script

    def handle(self) -> None:
        script, buffer, accepted = self.script, b"", 0
        self.wfile.write(b"220 scripted ESMTP\r\n")
        while True:
            chunk = self.request.recv(65536)
            if not chunk:
                return
            script.reads.append(chunk)
            buffer += chunk
            while b"\r\n" in buffer:
                line, buffer = buffer.split(b"\r\n", 1)
                verb = line[:4].upper()
                if verb == b"EHLO":
                    self.wfile.write(b"250-scripted\r\n250-PIPELINING\r\n250 OK\r\n")
                elif verb in (b"RSET", b"MAIL"):
                    accepted = 0 if verb == b"RSET" else accepted
                    self.wfile.write(b"250 OK\r\n")
                elif verb == b"RCPT":
                    address = line.split(b"<", 1)[1].rstrip(b">").decode()
                    reply = script.rcpt_replies.get(address, b"250 OK")
                    accepted += reply.startswith(b"250")
                    self.wfile.write(reply + b"\r\n")
                elif verb == b"DATA":
                    if not accepted and not script.lenient_data:
                        self.wfile.write(b"503 no valid recipients\r\n")
                        continue
                    self.wfile.write(b"354 go ahead\r\n")
                    while b"\r\n.\r\n" not in b"\r\n" + buffer:
                        more = self.request.recv(65536)
                        script.reads.append(more)
                        buffer += more
                    payload, buffer = (b"\r\n" + buffer).split(b"\r\n.\r\n", 1)
                    script.messages.append(payload[2:])
                    self.wfile.write(b"250 queued\r\n" if accepted else b"554 nobody\r\n")
                    accepted = 0
                elif verb == b"QUIT":
                    self.wfile.write(b"221 bye\r\n")
                    return


@pytest.fixture
def scripted() -> Iterator[tuple[Script, int]]:
    script = Script()
    handler = type("Session", (_Session,), {"script": script})
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield script, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _transport(port: int) -> SmtpTransport:
    return SmtpTransport(SmtpConfig(host="127.0.0.1", port=port, security="none", timeout=5))


MESSAGE = b"Subject: hi\r\n\r\nline one\r\n.starts with a dot\r\n"


def test_rset_mail_rcpt_data_arrive_in_one_write(scripted: tuple[Script, int]) -> None:
    script, port = scripted
    transport = _transport(port)
    first = transport.send("from@example.com", "a@example.com", MESSAGE)
    second = transport.send("from@example.com", "b@example.com", MESSAGE)
    transport.close()
    assert first.state is second.state is DeliveryState.SENT
    assert b"MAIL FROM:<from@example.com>\r\nRCPT TO:<a@example.com>\r\nDATA\r\n" in script.reads
    assert (b"RSET\r\nMAIL FROM:<from@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
            in script.reads)


def test_a_refused_recipient_keeps_the_connection_in_step(scripted: tuple[Script, int]) -> None:
    """The server refuses RCPT yet (leniently) opens DATA: the transport closes the empty
    message, records the 550, and the next reader on the same connection is sent."""
    script, port = scripted
    script.rcpt_replies = {"gone@example.com": b"550 5.1.1 no such user"}
    script.lenient_data = True
    transport = _transport(port)
    refused = transport.send("from@example.com", "gone@example.com", MESSAGE)
    sent = transport.send("from@example.com", "ok@example.com", MESSAGE)
    transport.close()
    assert (refused.state, refused.code) == (DeliveryState.FAILED, 550)
    assert "no such user" in refused.reply
    assert (sent.state, sent.code) == (DeliveryState.SENT, 250)
    assert script.messages == [b"", dot_stuffed(MESSAGE)[:-5]]  # the empty one, then ours


def test_dot_stuffing_round_trips() -> None:
    stuffed = dot_stuffed(b"a\r\n.b\r\n..c\r\nd")
    assert stuffed == b"a\r\n..b\r\n...c\r\nd\r\n.\r\n"


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from(".ab\t ="), max_size=6), max_size=8),
       st.booleans())
def test_dot_stuffing_is_what_smtplib_does(lines: list[str], final_break: bool) -> None:
    """Every line that starts with "." doubled, as smtplib's multi-line regex does."""
    message = "\r\n".join(lines).encode() + (b"\r\n" if final_break else b"")
    expected = smtplib._quote_periods(message)  # type: ignore[attr-defined]
    if not expected.endswith(b"\r\n"):
        expected += b"\r\n"
    assert dot_stuffed(message) == expected + b".\r\n"


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab.-+_'!#$%&*=?^`{|}~@ \"<>()[],;:\\é1"),
               max_size=24))
def test_angle_address_is_what_smtplib_quoteaddr_gives(address: str) -> None:
    """The fast path for plain addresses must never differ from smtplib's parsing."""
    assert angle_address(address) == smtplib.quoteaddr(address)
