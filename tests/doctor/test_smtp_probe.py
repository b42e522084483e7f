"""`ainews doctor`'s smtp check against a real aiosmtpd on 127.0.0.1: plain to loopback,
STARTTLS with a self-signed certificate (refused unless allow_self_signed), AUTH right and
wrong, a refused port, a silent server, implicit TLS to a plain server, and plain SMTP to
an address off this machine (refused without connecting). Nothing is ever sent."""

from __future__ import annotations

import socket
import ssl
import time
from typing import Any

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import SecretStr

from ainews_newsletter.config import SmtpConfig
from ainews_newsletter.delivery.probe import is_loopback, probe_smtp
from tests.conftest import SmtpServer, running_smtp_server, self_signed_server_context


def _settings(port: int, **values: Any) -> SmtpConfig:
    return SmtpConfig.model_validate({"host": "127.0.0.1", "port": port, "timeout": 5,
                                      **values})


def _count_mail_from(server: SmtpServer) -> list[str]:
    """Every MAIL FROM the server sees (the probe must never say one)."""
    seen: list[str] = []

    async def handle_mail(*args: Any) -> str:
        seen.append(str(args[3]))
        return "250 OK"

    server.handler.handle_MAIL = handle_mail  # type: ignore[method-assign,assignment]
    return seen


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    return self_signed_server_context(tmp_path_factory.mktemp("tls"))


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                   data: Any) -> AuthResult:
    ok = (isinstance(data, LoginPassword) and data.login == b"editor"
          and data.password == b"right-password")
    return AuthResult(success=ok, handled=False)


def test_plain_smtp_to_loopback_passes_with_a_note() -> None:
    with running_smtp_server() as server:
        mail_from = _count_mail_from(server)
        result = probe_smtp(_settings(server.port))
        assert server.handler.connections == 1  # it did connect and say EHLO
    assert result.status == "pass", result
    assert "plain SMTP to this machine" in result.detail
    assert f"127.0.0.1:{server.port}" in result.detail
    assert mail_from == [] and server.handler.messages == []


def test_starttls_with_a_self_signed_certificate_fails_unless_allowed(
        self_signed: ssl.SSLContext) -> None:
    with running_smtp_server(tls_context=self_signed, require_starttls=True) as server:
        strict = probe_smtp(_settings(server.port, security="starttls"))
        relaxed = probe_smtp(_settings(server.port, security="starttls",
                                       allow_self_signed=True))
    assert strict.status == "fail"
    assert "certificate" in strict.detail and "does not verify" in strict.detail
    assert "allow_self_signed = true" in strict.fix
    assert relaxed.status == "pass", relaxed
    assert "STARTTLS" in relaxed.detail and "not verified" in relaxed.detail


def test_starttls_not_offered_fails() -> None:
    with running_smtp_server() as server:  # no tls_context: aiosmtpd offers no STARTTLS
        result = probe_smtp(_settings(server.port, security="starttls"))
    assert result.status == "fail"
    assert "does not offer STARTTLS" in result.detail
    assert 'security = "tls"' in result.fix


def test_implicit_tls_to_a_plain_server_fails_naming_starttls() -> None:
    with running_smtp_server() as server:
        result = probe_smtp(_settings(server.port, security="tls"))
    assert result.status == "fail" and "TLS with" in result.detail
    assert 'security = "starttls"' in result.fix


def test_auth_right_password_passes_and_wrong_fails() -> None:
    with running_smtp_server(auth_require_tls=False, authenticator=_authenticator) as server:
        mail_from = _count_mail_from(server)
        right = probe_smtp(_settings(server.port, username="editor",
                                     password=SecretStr("right-password")))
        wrong = probe_smtp(_settings(server.port, username="editor",
                                     password=SecretStr("wrong-password")))
        missing = probe_smtp(_settings(server.port, username="editor"))
    assert right.status == "pass", right
    assert "AUTH as 'editor' accepted" in right.detail
    assert wrong.status == "fail" and "refused the login of 'editor'" in wrong.detail
    assert "535" in wrong.detail and "AINEWS_SMTP__PASSWORD" in wrong.fix
    assert "wrong-password" not in wrong.detail + wrong.fix  # the secret is never shown
    assert missing.status == "fail" and "set the password" in missing.fix
    assert mail_from == [] and server.handler.messages == []


def test_username_set_but_no_auth_offered_fails() -> None:
    with running_smtp_server() as server:  # aiosmtpd offers AUTH only with an authenticator
        result = probe_smtp(_settings(server.port, username="editor",
                                      password=SecretStr("x")))
    assert result.status == "fail" and "does not offer AUTH" in result.detail
    assert "username" in result.fix


def test_refused_port_fails_naming_host_and_port(unused_port: int) -> None:
    result = probe_smtp(_settings(unused_port))
    assert result.status == "fail"
    assert f"cannot connect to 127.0.0.1:{unused_port}" in result.detail
    assert "[smtp] host and port" in result.fix
    assert "\n" not in result.detail


def test_a_silent_server_times_out() -> None:
    # Listening, so the TCP handshake completes, but no greeting ever comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        started = time.monotonic()
        result = probe_smtp(_settings(port, timeout=0.5))
        elapsed = time.monotonic() - started
    assert result.status == "fail"
    assert f"no answer from 127.0.0.1:{port} within 0.5 s" in result.detail
    assert "[smtp] timeout" in result.fix
    assert elapsed < 3


def test_plain_smtp_off_this_machine_fails_without_connecting() -> None:
    started = time.monotonic()
    # 192.0.2.1 is TEST-NET-1: nothing answers there, so a connection attempt would hang
    # for the whole timeout; a fast verdict shows none was made.
    result = probe_smtp(SmtpConfig(host="192.0.2.1", port=25, security="none", timeout=10))
    assert time.monotonic() - started < 0.5
    assert result.status == "fail" and result.name == "smtp"
    assert "192.0.2.1:25" in result.detail and "unencrypted" in result.detail
    assert 'security = "starttls"' in result.fix


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.3.4.5", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("LOCALHOST.", True), ("192.0.2.1", False),
    ("smtp.example.org", False), ("localhost.example.org", False), ("::2", False)])
def test_loopback_is_only_this_machine(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_the_sender_uses_the_same_tls_rules() -> None:
    """The probe's verdict is the sender's: both take their context from tls_context."""
    from ainews_newsletter.delivery.transports import tls_context

    assert tls_context(SmtpConfig()).verify_mode is ssl.CERT_REQUIRED
    assert tls_context(SmtpConfig()).check_hostname
    relaxed = tls_context(SmtpConfig(allow_self_signed=True))
    assert relaxed.verify_mode is ssl.CERT_NONE and not relaxed.check_hostname



def test_implicit_tls_verifies_the_certificate(self_signed: ssl.SSLContext) -> None:
    with running_smtp_server(ssl_context=self_signed) as server:  # TLS from the first byte
        strict = probe_smtp(_settings(server.port, security="tls"))
        relaxed = probe_smtp(_settings(server.port, security="tls", allow_self_signed=True))
    assert strict.status == "fail" and "does not verify" in strict.detail
    assert "allow_self_signed = true" in strict.fix
    assert relaxed.status == "pass", relaxed
    assert "implicit TLS" in relaxed.detail
