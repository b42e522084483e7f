"""Reading the bounce mailbox over IMAP: every message in one folder, oldest first, each handled
one moved to a "processed" folder (removed from the folder read only once copied; retention
deletes it from "processed" after keep_feedback_details_days). Certificate and host name are
always verified; a password goes in clear only to this machine. Every failure is one
FeedbackError line naming host:port and what to do about it."""

from __future__ import annotations

import base64
import contextlib
import imaplib
import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal, TypeVar

from ainews_newsletter.errors import FeedbackError

_T = TypeVar("_T")
# IMAP dates name months in English, whatever the locale (RFC 3501 date-month).
_STORE_CHUNK = 500  # UIDs per STORE command
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int
    user: str
    password: str = field(repr=False)  # a secret: never in a repr, a log or an error
    folder: str = "INBOX"
    processed_folder: str = "Processed"
    security: Literal["tls", "starttls", "none"] = "tls"
    ca_file: str | None = None  # a CA to trust besides the system's store
    timeout: float = 30.0


@dataclass(frozen=True)
class FetchedMail:
    uid: str     # the message's UID in the folder, for mark_processed
    raw: bytes   # the message as the server holds it (CRLF line ends); b"" when too big
    size: int = 0  # set (and raw left empty) for a message over the size cap


class ImapMailbox:
    """`with ImapMailbox(settings) as box:` connects, logs in and selects the folder; leaving
    the block logs out, whatever happened inside."""

    def __init__(self, settings: ImapSettings) -> None:
        self._settings = settings
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        self._where = f"IMAP server {host}:{settings.port}"
        self._imap: imaplib.IMAP4 | None = None
        self._capabilities: set[str] = set()
        self._processed_ready = False
        self._broken = False  # the connection failed mid-command: do not wait on LOGOUT

    def __enter__(self) -> ImapMailbox:
        settings = self._settings
        if settings.processed_folder == settings.folder:
            raise FeedbackError("[bounces] processed_folder must differ from imap_folder "
                                f"(both are {settings.folder!r}): handled mail would never leave")
        try:
            self._imap = self._connect()
            self._login()
            typ, data = self._call("selecting the folder", self._imap.select,
                                   _mailbox(settings.folder))
            if typ != "OK":
                raise FeedbackError(f"{self._where}: folder {settings.folder!r} cannot be opened "
                                    f"({_text(data)}); check [bounces] imap_folder")
        except BaseException:
            self._close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._close()

    def _search(self, *criteria: str) -> list[str]:
        imap = self._connection()
        typ, data = self._call("searching the folder", imap.uid, "SEARCH", *criteria)
        found = data[0].split() if typ == "OK" and data and data[0] else []
        return [item.decode() for item in found]

    def messages(self, limit: int = 500, max_bytes: int = 20 * 1024 * 1024
                 ) -> Iterator[FetchedMail]:
        """Every message in the folder, read or not (a person glancing at the mailbox must
        not hide a bounce from us), oldest first, at most `limit` per run, one in memory at
        a time. Messages flagged \\Deleted are skipped: a server without UIDPLUS keeps the
        ones we copied away that way (see mark_processed). One over `max_bytes` comes with
        its size and no body."""
        imap = self._connection()
        too_big = set(self._search("UNDELETED", "LARGER", str(max_bytes)))
        # UIDs grow with arrival, so the lowest are the oldest.
        for uid in sorted(self._search("UNDELETED"), key=int)[:max(limit, 0)]:
            if uid in too_big:
                yield FetchedMail(uid, b"", size=max_bytes + 1)
                continue
            # BODY.PEEK: reading must not mark the message \Seen for people who look too.
            typ, data = self._call(f"fetching message {uid}", imap.uid, "FETCH", uid,
                                   "(BODY.PEEK[])")
            raw = _body(data) if typ == "OK" else None
            if raw is not None:  # None: moved away meanwhile by another reader
                yield FetchedMail(uid, raw)

    def mark_processed(self, uid: str) -> None:
        """Move message `uid` to the processed folder (made on first use if missing)."""
        imap, target = self._connection(), self._settings.processed_folder
        self._ensure_processed_folder()
        # MOVE (RFC 6851) is atomic; without it COPY first, and only a copied message is
        # flagged and expunged.
        verb = "move" if "MOVE" in self._capabilities else "copy"
        typ, data = self._call(f"{verb} of message {uid}", imap.uid, verb.upper(), uid,
                               _mailbox(target))
        if typ != "OK":  # neither moved nor copied: it stays where it is, untouched
            raise FeedbackError(f"{self._where}: cannot {verb} message {uid} to {target!r} "
                                f"({_text(data)}); it stays in {self._settings.folder!r}")
        if verb == "move":
            return
        self._call(f"flagging message {uid}", imap.uid, "STORE", uid, "+FLAGS.SILENT",
                   r"(\Deleted)")
        if "UIDPLUS" in self._capabilities:
            self._call(f"expunging message {uid}", imap.uid, "EXPUNGE", uid)
        # Without UIDPLUS only a plain EXPUNGE exists, and it would also remove messages
        # someone else flagged \Deleted: the copy stays flagged instead, and `messages`
        # skips flagged ones (the mail client or server expunges them in its own time).

    def delete_older(self, folder: str, before: date) -> int:
        """Delete every message that arrived in `folder` before the day `before` (the
        server's INTERNALDATE: SEARCH BEFORE, flag \\Deleted, EXPUNGE); how many. Meant for
        the processed folder, which only we write to, so a plain EXPUNGE removes nothing of
        anyone else's. A folder that does not exist yet holds nothing: 0."""
        imap = self._connection()
        typ, _ = self._call(f"selecting folder {folder!r}", imap.select, _mailbox(folder))
        if typ != "OK":
            return 0
        day = f"{before.day}-{_MONTHS[before.month - 1]}-{before.year}"  # RFC 3501 date
        uids = self._search("BEFORE", day)
        if not uids:
            return 0
        # Servers cap a command line (Dovecot: 64 kB): a long-kept folder's UIDs go a chunk
        # at a time, and one EXPUNGE at the end.
        for start in range(0, len(uids), _STORE_CHUNK):
            chunk = uids[start:start + _STORE_CHUNK]
            self._call(f"flagging {len(chunk)} old messages", imap.uid, "STORE",
                       ",".join(chunk), "+FLAGS.SILENT", r"(\Deleted)")
        self._call("expunging old messages", imap.expunge)
        return len(uids)

    def _connect(self) -> imaplib.IMAP4:
        settings = self._settings
        if settings.security == "none" and not _is_loopback(settings.host):
            raise FeedbackError(f'[bounces] imap_security = "none" would send the password in '
                                f"clear to {settings.host}; it is allowed only to 127.0.0.1, "
                                '::1 or localhost: use "tls" or "starttls"')
        context = self._tls_context() if settings.security != "none" else None
        try:
            if settings.security == "tls":
                return imaplib.IMAP4_SSL(settings.host, settings.port, ssl_context=context,
                                         timeout=settings.timeout)
            imap = imaplib.IMAP4(settings.host, settings.port, timeout=settings.timeout)
        except (imaplib.IMAP4.error, OSError) as exc:
            raise FeedbackError(f"{self._where}: cannot connect: {self._describe(exc)}") from exc
        if settings.security == "starttls":
            self._imap = imap  # so that __enter__ closes it if what follows fails
            if "STARTTLS" not in imap.capabilities:
                raise FeedbackError(f"{self._where} does not offer STARTTLS: use its IMAPS port "
                                    'with [bounces] imap_security = "tls"')
            self._call("starting TLS", imap.starttls, context)
        return imap

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()  # verifies the chain and the host name
        if self._settings.ca_file:
            try:
                context.load_verify_locations(cafile=self._settings.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise FeedbackError(f"[bounces] imap_ca_file {self._settings.ca_file}: cannot "
                                    f"be read as PEM certificates ({exc})") from exc
        return context

    def _login(self) -> None:
        imap, settings = self._connection(), self._settings
        self._call(f"login as {settings.user!r}", imap.login, settings.user, settings.password)
        # Servers announce more (MOVE, UIDPLUS) once logged in.
        typ, data = self._call("asking for capabilities", imap.capability)
        if typ == "OK" and data and data[-1]:
            self._capabilities = {word.upper() for word in data[-1].decode().split()}

    def _ensure_processed_folder(self) -> None:
        if self._processed_ready:
            return
        imap, name = self._connection(), self._settings.processed_folder
        typ, data = self._call("listing folders", imap.list, '""', _mailbox(name))
        if not (typ == "OK" and any(data)):
            typ, data = self._call(f"creating folder {name!r}", imap.create, _mailbox(name))
            # ALREADYEXISTS (RFC 5530): another client made it between our LIST and CREATE
            # (the scheduler's retention round and its bounce round start together).
            if typ != "OK" and b"ALREADYEXISTS" not in b" ".join(
                    item for item in data if isinstance(item, bytes)).upper():
                raise FeedbackError(f"{self._where}: cannot create folder {name!r} "
                                    f"({_text(data)}); check [bounces] processed_folder")
            self._call(f"subscribing to {name!r}", imap.subscribe, _mailbox(name))
        self._processed_ready = True

    def _call(self, what: str, command: Callable[..., _T], *args: Any) -> _T:
        try:
            return command(*args)
        except (imaplib.IMAP4.error, OSError) as exc:
            self._broken |= isinstance(exc, OSError | imaplib.IMAP4.abort)  # socket is gone
            raise FeedbackError(f"{self._where}: {what} failed: {self._describe(exc)}") from exc

    def _describe(self, exc: BaseException) -> str:
        """What went wrong, in words a user can act on; never the password."""
        settings = self._settings
        if isinstance(exc, ssl.SSLCertVerificationError):
            text = (f"the server's certificate is refused ({exc.verify_message}); " + (
                f"connect by a name it lists, not {settings.host!r}" if exc.verify_code in {62, 64}
                else "set [bounces] imap_ca_file to the CA that signed it"))
        elif isinstance(exc, ssl.SSLError):
            text = (f"TLS handshake failed ({exc.reason or exc}); is {settings.port} the "
                    f"{'IMAPS' if settings.security == 'tls' else 'IMAP'} port?")
        elif isinstance(exc, TimeoutError):
            text = f"no answer within {settings.timeout:g} s"
        elif isinstance(exc, ConnectionRefusedError):
            text = "connection refused (is the server running, and is this its port?)"
        elif isinstance(exc, socket.gaierror):
            text = f"cannot resolve the host name {settings.host!r}"
        elif isinstance(exc, OSError):
            text = exc.strerror or str(exc) or type(exc).__name__
        else:
            text = _text(exc.args)
        # Servers do not echo passwords; this is a second lock. A password of a few letters
        # would mangle words rather than hide a secret, so those are left alone.
        return text.replace(settings.password, "***") if len(settings.password) > 5 else text

    def _connection(self) -> imaplib.IMAP4:
        if self._imap is None:
            raise FeedbackError(f"{self._where}: the mailbox is not open (use it in a with block)")
        return self._imap

    def _close(self) -> None:
        imap, self._imap = self._imap, None
        if imap is None:
            return
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            (imap.shutdown if self._broken else imap.logout)()


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host.lower().rstrip(".") == "localhost"


def _mailbox(name: str) -> str:
    """A folder name as an IMAP quoted string, non-ASCII in modified UTF-7 (RFC 3501 5.1.3),
    since imaplib sends arguments as they are."""
    encoded: list[str] = []
    pending = ""
    for char in [*name, None]:  # None: the end, which flushes the last non-ASCII run
        if char is not None and not " " <= char <= "~":
            pending += char
            continue
        if pending:
            packed = base64.b64encode(pending.encode("utf-16-be")).decode()
            encoded.append("&" + packed.rstrip("=").replace("/", ",") + "-")
            pending = ""
        if char is not None:
            encoded.append("&-" if char == "&" else char)
    text = "".join(encoded)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _body(data: list[Any]) -> bytes | None:
    """The BODY[] literal in a UID FETCH answer (unasked flag changes may come along)."""
    for item in data:
        if isinstance(item, tuple) and len(item) == 2 and b"BODY[]" in item[0].upper():
            return bytes(item[1])
    return None


def _text(data: Any) -> str:
    """A server's answer (bytes, or a list or tuple of them: the last counts) as one line."""
    last = (data[-1] if data else b"") if isinstance(data, list | tuple) else data
    text = last.decode(errors="replace") if isinstance(last, bytes) else str(last)
    return " ".join(text.split())
