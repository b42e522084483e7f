"""DKIM: messages signed with a key from the config verify with dkimpy against the matching
public key (served by a stand-in for DNS), cover the unsubscribe headers, and break when a
signed header is changed."""

from __future__ import annotations

import base64
import email
import email.policy
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ainews_newsletter.delivery.dkim import make_signer
from ainews_newsletter.errors import ConfigError
from tests.conftest import Project, SmtpServer, smtp_env


@pytest.fixture(scope="module")
def keypair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path_factory.mktemp("dkim") / "private.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    return path, record


def _dns(record: bytes, name: bytes) -> object:
    def lookup(query: bytes, timeout: int = 5) -> bytes | None:
        return record if query == name else None
    return lookup


def test_sent_messages_verify_against_the_published_key(
        project: Project, smtp_server: SmtpServer, keypair: tuple[Path, bytes]) -> None:
    path, record = keypair
    project.write_config(f'[dkim]\nselector = "news2026"\ndomain = "news.example.org"\n'
                         f'private_key_path = "{path}"\n')
    for address in ("a@example.com", "b@example.org"):
        project.run("subscribers", "add", address)
    result = project.run("send", "--week", "2026-W47", "--yes", env=smtp_env(smtp_server))
    assert result.exit_code == 0, result.output
    dnsfunc = _dns(record, b"news2026._domainkey.news.example.org.")
    for received in smtp_server.handler.messages:
        assert dkim.verify(received.data, dnsfunc=dnsfunc)
        signature = received.message["DKIM-Signature"]
        tags = dict(part.strip().split("=", 1) for part in signature.split(";"))
        signed = {name.strip().lower() for name in tags["h"].split(":")}
        assert {"from", "subject", "list-unsubscribe", "list-unsubscribe-post"} <= signed
        assert tags["d"] == "news.example.org" and tags["s"] == "news2026"
        tampered = received.data.replace(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
                                         b"List-Unsubscribe-Post: List-Unsubscribe=Nope")
        assert tampered != received.data and not dkim.verify(tampered, dnsfunc=dnsfunc)


def test_build_writes_a_signed_eml(project: Project, keypair: tuple[Path, bytes]) -> None:
    path, record = keypair
    project.write_config(f'[dkim]\nselector = "s1"\ndomain = "news.example.org"\n'
                         f'private_key_path = "{path}"\n')
    out = project.root / "out"
    assert project.run("build", "--week", "2026-W47", "--out", str(out)).exit_code == 0
    raw = (out / "issue.eml").read_bytes()
    assert raw.startswith(b"DKIM-Signature:")
    assert dkim.verify(raw, dnsfunc=_dns(record, b"s1._domainkey.news.example.org."))
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_bad_key_fails_before_sending(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        make_signer("s", "d.example", tmp_path / "missing.pem")
    (tmp_path / "junk.pem").write_text("not a key")
    with pytest.raises(ConfigError, match="not a PEM private key"):
        make_signer("s", "d.example", tmp_path / "junk.pem")


def test_partial_dkim_config_names_the_section(project: Project) -> None:
    project.write_config('[dkim]\nselector = "s1"\n')
    result = project.run("posts", "list")
    assert result.exit_code == 1
    assert "dkim: set all of selector, domain and private_key_path" in result.stderr
