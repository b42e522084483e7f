"""Ways a message leaves: SMTP (the real one), a folder of .eml files, the console.

Each returns a SendOutcome per message: 2xx sent, 4xx deferred (try later), 5xx failed.
A transport raises TransportUnavailable when it cannot take messages at all (server down),
so the sender stops instead of marking the whole list deferred."""

from __future__ import annotations

import contextlib
import smtplib
import ssl
import sys
import threading
import time
from email import message_from_bytes
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path
from typing import Protocol, TextIO, runtime_checkable

from ainews_newsletter.config import SmtpConfig
from ainews_newsletter.delivery.message import PLAIN_ADDRESS, eml_filename
from ainews_newsletter.errors import DeliveryError
from ainews_newsletter.models import DeliveryState, SendOutcome

# smtplib's exceptions all derive from OSError, as do socket errors and timeouts; a reply
# code (SMTPResponseException) is caught before this, so what remains is a lost connection.
_CONNECTION_ERRORS = OSError


class TransportUnavailable(DeliveryError):
    """Nothing can be sent right now (connection refused, login failed)."""


class ConnectionSurplus(TransportUnavailable):
    """This connection has no relay to send through while the others do: every relay that
    is up has its own `connections` in use. The connection ends, and its row goes back to
    the queue for the others (a kind of TransportUnavailable, so every path that puts the
    row in hand back does so for this too)."""


@runtime_checkable
class SharedByProcesses(Protocol):
    """A transport factory whose limits (a relay's rate, quota, connections) are shared out
    over the send's worker processes: each forked worker calls `in_process` once, before
    it makes a transport (worker `number` of `processes`, the send having `connections`)."""

    def __call__(self) -> Transport: ...

    def in_process(self, number: int, processes: int, connections: int) -> None: ...


class _BusyAtConnect(Exception):
    """The server greeted with a 4xx: worth another try in a moment."""


# Pauses (seconds) between connection attempts when the greeting is a 4xx.
CONNECT_RETRY_PAUSES = (0.5, 2.0)
_CRLF = b"\r\n"
_END_OF_DATA = b".\r\n"
Reply = tuple[int, bytes]


def dot_stuffed(message: bytes) -> bytes:
    """The DATA payload: lines starting with "." doubled, then the lone "." that ends it.
    Our messages end every line with CRLF (the SMTP policy and quoted-printable see to it),
    so a plain byte search does what smtplib's multi-line regex does, at a fraction of
    its cost."""
    # split + join: one search through the message; replace() makes two (count, then copy).
    payload = b"\r\n..".join(message.split(b"\r\n."))
    if payload.startswith(b"."):
        payload = b"." + payload
    if not payload.endswith(_CRLF):
        payload += _CRLF
    return payload + _END_OF_DATA  # one copy of the message, not two


def angle_address(address: str) -> str:
    """`<address>` for MAIL FROM and RCPT TO, as smtplib.quoteaddr gives it: a plain one
    (the message's own test) without the parsing quoteaddr does, a tenth of a message's
    cost."""
    if PLAIN_ADDRESS.fullmatch(address):
        return f"<{address}>"
    return smtplib.quoteaddr(address)


def outcome_for(code: int, reply: str) -> SendOutcome:
    if 200 <= code < 300:
        state = DeliveryState.SENT
    elif 400 <= code < 500:
        state = DeliveryState.DEFERRED
    else:
        state = DeliveryState.FAILED
    return SendOutcome(state=state, code=code, reply=reply)


def tls_context(settings: SmtpConfig) -> ssl.SSLContext:
    """How the relay's certificate is checked, for sending and for `ainews doctor` alike (so
    the doctor's verdict is the sender's): the system's trust store and the host name, unless
    [smtp] allow_self_signed turns verification off for a relay on this machine or network."""
    context = ssl.create_default_context()
    if settings.allow_self_signed:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class Transport(Protocol):
    def describe(self) -> str: ...

    def send(self, envelope_from: str, recipient: str, message: bytes) -> SendOutcome: ...

    def close(self) -> None: ...


class SmtpTransport:
    """One SMTP connection reused for many messages, RSET between them, reopened if the
    server drops it. Every reply code is read and recorded. When the server offers
    PIPELINING (RFC 2920; every common MTA does) RSET, MAIL, RCPT and DATA go in one write
    and their replies are read in order: two round trips per message instead of five,
    which is most of the difference to an MTA's own speed on a fast link."""

    def __init__(self, settings: SmtpConfig) -> None:
        self.settings = settings
        self._connection: smtplib.SMTP | None = None
        self._used = False
        self._message_handed_over = False

    def describe(self) -> str:
        return f"smtp {self.settings.host}:{self.settings.port} ({self.settings.security})"

    def _open(self) -> smtplib.SMTP:
        """Connect, retrying a server that greets with a 4xx ("421 too busy") a few times
        with a short pause before calling it unavailable."""
        for pause in CONNECT_RETRY_PAUSES:
            try:
                return self._open_once()
            except _BusyAtConnect:
                time.sleep(pause)
        try:
            return self._open_once()
        except _BusyAtConnect as exc:
            raise TransportUnavailable(f"{self.describe()} keeps answering {exc}") from None

    def _open_once(self) -> smtplib.SMTP:
        s = self.settings
        context = tls_context(s)
        connection: smtplib.SMTP | None = None
        try:
            if s.security == "tls":
                connection = smtplib.SMTP_SSL(s.host, s.port, local_hostname=s.ehlo_name,
                                              timeout=s.timeout, context=context)
            else:
                connection = smtplib.SMTP(s.host, s.port, local_hostname=s.ehlo_name,
                                          timeout=s.timeout)
            connection.ehlo()
            if s.security == "starttls":
                connection.starttls(context=context)
                connection.ehlo()
            if s.username:
                password = s.password.get_secret_value() if s.password else ""
                connection.login(s.username, password)
        except _CONNECTION_ERRORS as exc:
            if connection is not None:
                connection.close()
            if isinstance(exc, smtplib.SMTPConnectError) and 400 <= exc.smtp_code < 500:
                raise _BusyAtConnect(f"{exc.smtp_code} {exc.smtp_error!r}") from None
            if isinstance(exc, smtplib.SMTPAuthenticationError):
                raise TransportUnavailable(f"{self.describe()}: login refused for "
                                           f"{s.username!r}: {exc.smtp_code}") from None
            raise TransportUnavailable(f"cannot connect to {self.describe()}: {exc}") from None
        self._used = False
        return connection

    def _ready_connection(self) -> smtplib.SMTP:
        if self._connection is not None and self._used:
            try:
                self._connection.rset()  # a clean transaction; never inherit the last one's state
            except _CONNECTION_ERRORS:
                self._drop()
        if self._connection is None:
            self._connection = self._open()
        return self._connection

    def _drop(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            finally:
                self._connection = None

    def _not_sent(self, code: int, reply: bytes | str, envelope_from: str | None = None,
                  ) -> SendOutcome:
        """A refusal before the message was taken. Only DATA's final 250 means sent, so an
        odd 2xx/3xx here is treated as temporary. A 5xx to MAIL FROM is about us, not the
        recipient (bad sender, authentication required): stop the send rather than fail
        every recipient on the list."""
        text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
        if code == 421:  # the server is closing this connection; the next message reopens
            self._drop()
        if envelope_from is not None and 500 <= code < 600:
            raise TransportUnavailable(f"{self.describe()} refused the sender "
                                       f"{envelope_from!r}: {code} {text}")
        state = DeliveryState.FAILED if 500 <= code < 600 else DeliveryState.DEFERRED
        return SendOutcome(state=state, code=code, reply=text)

    def _transaction(self, envelope_from: str, recipient: str, message: bytes) -> SendOutcome:
        self._message_handed_over = False
        if self._connection is None:
            self._connection = self._open()
        connection = self._connection
        # RFC 6531: an address with a non-ASCII local part (or a UTF-8 header) goes only
        # to a server that offers SMTPUTF8; elsewhere only this row fails, saying why.
        utf8 = not (envelope_from.isascii() and recipient.isascii() and message.isascii())
        if utf8 and not connection.has_extn("smtputf8"):
            return SendOutcome(DeliveryState.FAILED, 0, f"{self.describe()} does not offer "
                               f"SMTPUTF8, which {recipient!r} needs (RFC 6531)")
        options = " SMTPUTF8" if utf8 else ""
        commands = (f"MAIL FROM:{angle_address(envelope_from)}{options}\r\n"
                    f"RCPT TO:{angle_address(recipient)}\r\n").encode()
        if connection.has_extn("pipelining"):
            return self._pipelined(connection, commands, envelope_from, message)
        connection = self._ready_connection()
        self._used = True
        try:
            code, reply = connection.mail(envelope_from, ["SMTPUTF8"] if utf8 else [])
            if code != 250:
                return self._not_sent(code, reply, envelope_from)
            code, reply = connection.rcpt(recipient)
            if code not in (250, 251):
                return self._not_sent(code, reply)
            self._message_handed_over = True
            code, reply = connection.data(message)
        except smtplib.SMTPResponseException as exc:  # data() raises on a non-354 reply
            return self._not_sent(exc.smtp_code, exc.smtp_error)
        return self._message_outcome(code, reply)

    def _message_outcome(self, code: int, reply: bytes) -> SendOutcome:
        """The reply to the message itself: only this 250 marks a row sent."""
        if code == 421:
            self._drop()
        return outcome_for(code, reply.decode("utf-8", "replace"))

    def _pipelined(self, connection: smtplib.SMTP, commands: bytes, envelope_from: str,
                   message: bytes) -> SendOutcome:
        """One write for [RSET,] MAIL, RCPT, DATA, then their replies in order. A refusal is
        returned only after every reply of the group is read, so the connection stays in
        step for the next message."""
        reset = self._used
        self._used = True
        connection.send((b"RSET\r\n" if reset else b"") + commands + b"DATA\r\n")
        replies: list[Reply] = []
        if reset and connection.getreply()[0] == 421:
            # Closing before our transaction began: nothing handed over, so `send` reopens
            # and tries again at once, as for any connection lost before MAIL.
            self._drop()
            raise smtplib.SMTPServerDisconnected("421 in reply to RSET")
        for _ in range(3):
            replies.append(connection.getreply())
            if replies[-1][0] == 421:  # the server is closing: no more replies will come
                return self._not_sent(*replies[-1])
        (mail_code, mail_reply), (rcpt_code, rcpt_reply), (data_code, data_reply) = replies
        refusal: tuple[int, bytes, str | None] | None = None
        if mail_code != 250:
            refusal = (mail_code, mail_reply, envelope_from)
        elif rcpt_code not in (250, 251):
            refusal = (rcpt_code, rcpt_reply, None)
        if refusal is not None:
            if data_code == 354:  # a lenient server opened DATA anyway: close it empty
                connection.send(b".\r\n")
                connection.getreply()
            return self._not_sent(*refusal)
        if data_code != 354:
            return self._not_sent(data_code, data_reply)
        self._message_handed_over = True
        connection.send(dot_stuffed(message))
        return self._message_outcome(*connection.getreply())

    def send(self, envelope_from: str, recipient: str, message: bytes) -> SendOutcome:
        try:
            return self._transaction(envelope_from, recipient, message)
        except _CONNECTION_ERRORS as exc:
            self._drop()
            if self._message_handed_over:
                # Lost after the message went out: the server may have it. Do not resend at
                # once; retry later (at-least-once allows a duplicate, not a loss).
                return SendOutcome(DeliveryState.DEFERRED, 0,
                                   f"connection lost during DATA: {exc}")
        # Lost before MAIL or between commands (idle timeout, server restart): nothing was
        # handed over, so reopen once and try again straight away.
        try:
            return self._transaction(envelope_from, recipient, message)
        except _CONNECTION_ERRORS as exc:
            self._drop()
            if self._message_handed_over:
                return SendOutcome(DeliveryState.DEFERRED, 0,
                                   f"connection lost during DATA: {exc}")
            raise TransportUnavailable(f"{self.describe()}: connection lost: {exc}") from None

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(_CONNECTION_ERRORS):
                self._connection.quit()
            self._drop()


class FileTransport:
    """Writes each message as an .eml file: for checking a send without a mail server."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.count = 0

    def describe(self) -> str:
        return f"files in {self.out_dir}"

    def send(self, envelope_from: str, recipient: str, message: bytes) -> SendOutcome:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.count += 1
        (self.out_dir / eml_filename(self.count, recipient)).write_bytes(message)
        return outcome_for(250, "written")

    def close(self) -> None:
        return None


# (envelope from, recipient, message) of every MemoryTransport made without its own list.
MEMORY_OUTBOX: list[tuple[str, str, bytes]] = []


class MemoryTransport:
    """Keeps every message in a list (MEMORY_OUTBOX unless one is given), for tests and
    the preview; `replies` scripts an answer per recipient, e.g.
    {"gone@example.com": (550, "5.1.1 no such user")}."""

    def __init__(self, outbox: list[tuple[str, str, bytes]] | None = None,
                 replies: dict[str, tuple[int, str]] | None = None) -> None:
        self.outbox = MEMORY_OUTBOX if outbox is None else outbox
        self.replies = replies or {}
        self._lock = threading.Lock()  # parallel connections append to one list

    def describe(self) -> str:
        return "memory"

    def send(self, envelope_from: str, recipient: str, message: bytes) -> SendOutcome:
        code, reply = self.replies.get(recipient, (250, "kept in memory"))
        if 200 <= code < 300:
            with self._lock:
                self.outbox.append((envelope_from, recipient, message))
        return outcome_for(code, reply)

    def close(self) -> None:
        return None


class ConsoleTransport:
    """Prints the headers and text part of each message."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def describe(self) -> str:
        return "console"

    def send(self, envelope_from: str, recipient: str, message: bytes) -> SendOutcome:
        parsed = message_from_bytes(message, policy=SMTP_POLICY)
        print(f"--- to {recipient} (from {envelope_from}) ---", file=self.stream)
        for name in ("Subject", "To", "Message-ID"):
            print(f"{name}: {parsed[name]}", file=self.stream)
        return outcome_for(250, "printed")

    def close(self) -> None:
        return None
