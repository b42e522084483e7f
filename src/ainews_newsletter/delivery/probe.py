"""`ainews doctor`'s SMTP check: connect to the relay the way the sender does (same TLS
context, same EHLO name, same login), stop before MAIL FROM, and say which setting to change
when a step fails. Nothing is ever sent.

It lives in delivery, not doctor, because it must share the sender's TLS rules
(`transports.tls_context`) and a room may not import another room. For the same reason it
returns its own `SmtpProbe` (the fields of doctor's `Check`) rather than a `Check`:
pipeline/doctor.py, which may cross rooms, turns one into the other."""

from __future__ import annotations

import ipaddress
import smtplib
import ssl
from dataclasses import dataclass
from typing import Literal

from ainews_newsletter.config import SmtpConfig
from ainews_newsletter.delivery.transports import tls_context

ProbeStatus = Literal["pass", "warn", "fail"]

_SELF_SIGNED_FIX = (
    "give the relay a certificate for its name from a public CA (e.g. Let's Encrypt), or set "
    "[smtp] host to the name on its certificate; for a relay on this machine or your own "
    "network only, set [smtp] allow_self_signed = true")


@dataclass(frozen=True)
class SmtpProbe:
    status: ProbeStatus
    detail: str
    fix: str = ""
    name: str = "smtp"


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: mail that never leaves this machine, where plain SMTP
    exposes nothing. A name is not looked up: any other name may point anywhere."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _Failed(Exception):
    """A step failed; carries the verdict."""

    def __init__(self, detail: str, fix: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.fix = fix


def probe_smtp(settings: SmtpConfig) -> SmtpProbe:
    """Connect (within [smtp] timeout), EHLO, TLS as [smtp] security says with the
    certificate verified, AUTH when a username is set, then QUIT."""
    where = f"{settings.host}:{settings.port}"
    if settings.security == "none" and not is_loopback(settings.host):
        # Refused before connecting: the password and every message would cross the
        # network in clear text, whatever the relay answers.
        return SmtpProbe("fail", f"[smtp] security = \"none\" to {where}, which is not this "
                         "machine: messages (and the password) would travel unencrypted",
                         "set [smtp] security = \"starttls\" (port 587 or 25) or \"tls\" "
                         "(port 465), whichever the relay offers")
    try:
        found = _run_steps(settings, where)
    except _Failed as failed:
        return SmtpProbe("fail", failed.detail, failed.fix)
    return SmtpProbe("pass", found)


def _connect(settings: SmtpConfig, where: str, context: ssl.SSLContext) -> smtplib.SMTP:
    try:
        if settings.security == "tls":
            return smtplib.SMTP_SSL(settings.host, settings.port,
                                    local_hostname=settings.ehlo_name,
                                    timeout=settings.timeout, context=context)
        return smtplib.SMTP(settings.host, settings.port, local_hostname=settings.ehlo_name,
                            timeout=settings.timeout)
    except ssl.SSLCertVerificationError as exc:
        raise _Failed(f"the certificate of {where} does not verify: "
                      f"{exc.verify_message}", _SELF_SIGNED_FIX) from None
    except ssl.SSLError as exc:
        raise _Failed(f"TLS with {where} failed: {exc.reason or exc}",
                      "security = \"tls\" is for implicit TLS (usually port 465); for "
                      "port 587 or 25 set [smtp] security = \"starttls\"") from None
    except smtplib.SMTPConnectError as exc:
        raise _Failed(f"{where} greeted with {exc.smtp_code} "
                      f"{_text(exc.smtp_error)}", "the relay is refusing connections; "
                      "check its logs, or [smtp] host and port") from None
    except OSError as exc:
        if _timed_out(exc):
            raise _Failed(f"no answer from {where} within {settings.timeout:g} s",
                          "check [smtp] host and port and that a firewall lets this machine "
                          "through; for a slow relay raise [smtp] timeout") from None
        raise _Failed(f"cannot connect to {where}: {exc.strerror or exc}",
                      "check [smtp] host and port, and that the relay is running") from None
    except UnicodeError:  # the IDNA codec refuses the name ("a..b", a label over 63)
        raise _Failed(f"[smtp] host {settings.host!r} is not a valid host name",
                      "set [smtp] host to the relay's name or address") from None


def _timed_out(exc: BaseException) -> bool:
    """smtplib reports a read that timed out as SMTPServerDisconnected("Connection
    unexpectedly closed: timed out"), the TimeoutError only as its context."""
    return isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError)


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def _run_steps(settings: SmtpConfig, where: str) -> str:
    """The steps in order; returns what was found, or raises _Failed at the first bad one."""
    context = tls_context(settings)
    connection = _connect(settings, where, context)
    notes: list[str] = []
    try:
        try:
            _ehlo(connection, where)
            if settings.security == "starttls":
                _starttls(connection, where, context)
                notes.append("STARTTLS")
            elif settings.security == "tls":
                notes.append("implicit TLS")
            else:
                notes.append("plain SMTP to this machine (fine for a local relay; "
                             "anything else needs TLS)")
            if settings.security != "none":
                notes.append("certificate not verified ([smtp] allow_self_signed)"
                             if settings.allow_self_signed else "certificate verified")
            if settings.username:
                _login(connection, settings, where)
                notes.append(f"AUTH as {settings.username!r} accepted")
        except OSError as exc:  # smtplib's disconnects are OSErrors too
            if _timed_out(exc):
                raise _Failed(f"{where} stopped answering within {settings.timeout:g} s",
                              "check the relay, or raise [smtp] timeout") from None
            raise _Failed(f"{where} closed the connection: {exc}",
                          "check the relay's logs; it may refuse this machine") from None
    finally:
        try:
            connection.quit()  # said politely, so the relay logs no dropped session
        except (OSError, smtplib.SMTPException):
            connection.close()
    return f"{where} answers: " + ", ".join(notes)


def _ehlo(connection: smtplib.SMTP, where: str) -> None:
    code, reply = connection.ehlo()
    if code != 250:
        raise _Failed(f"{where} refused EHLO: {code} {_text(reply)}",
                      "set [smtp] ehlo_name to this machine's public host name")


def _starttls(connection: smtplib.SMTP, where: str, context: ssl.SSLContext) -> None:
    if not connection.has_extn("starttls"):
        raise _Failed(f"{where} does not offer STARTTLS",
                      "turn TLS on at the relay, or if it offers implicit TLS set [smtp] "
                      "security = \"tls\" and its port (usually 465)")
    try:
        connection.starttls(context=context)
    except ssl.SSLCertVerificationError as exc:
        raise _Failed(f"the certificate of {where} does not verify: "
                      f"{exc.verify_message}", _SELF_SIGNED_FIX) from None
    except ssl.SSLError as exc:
        raise _Failed(f"STARTTLS with {where} failed: {exc.reason or exc}",
                      "check the relay's TLS setup (its log says why)") from None
    except smtplib.SMTPResponseException as exc:
        raise _Failed(f"{where} refused STARTTLS: {exc.smtp_code} {_text(exc.smtp_error)}",
                      "check the relay's TLS setup") from None
    _ehlo(connection, where)  # the extensions (AUTH above all) change once encrypted


def _login(connection: smtplib.SMTP, settings: SmtpConfig, where: str) -> None:
    if not connection.has_extn("auth"):
        raise _Failed(f"{where} does not offer AUTH, and [smtp] username is set",
                      "remove [smtp] username if the relay takes mail without login, or "
                      "use the relay's submission port (usually 587 with \"starttls\")")
    password = settings.password.get_secret_value() if settings.password else ""
    try:
        connection.login(settings.username or "", password)
    except UnicodeEncodeError:  # smtplib sends the login as ASCII only
        raise _Failed("[smtp] username or password holds characters smtplib cannot send "
                      "(ASCII only)", "use an ASCII login, or an app password") from None
    except smtplib.SMTPAuthenticationError as exc:
        fix = ("check [smtp] username and the password in AINEWS_SMTP__PASSWORD"
               if password else "set the password in AINEWS_SMTP__PASSWORD (environment only)")
        raise _Failed(f"{where} refused the login of {settings.username!r}: "
                      f"{exc.smtp_code} {_text(exc.smtp_error)}", fix) from None
    except smtplib.SMTPException as exc:  # no mechanism in common, or a refusal mid-way
        raise _Failed(f"login to {where} failed: {exc}",
                      "check [smtp] username and AINEWS_SMTP__PASSWORD, and that the relay "
                      "offers AUTH PLAIN or LOGIN over this connection") from None
