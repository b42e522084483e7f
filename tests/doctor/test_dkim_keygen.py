"""`ainews dkim keygen`: a 0600 RSA key where [dkim] points (or beside the config), never
over an existing one without --force, and a TXT record whose key is the new key's public
half, in strings DNS can hold, against which a message signed here verifies (dkimpy)."""

from __future__ import annotations

import base64
import re
import stat

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ainews_newsletter.delivery.dkim import make_signer
from tests.conftest import Project

DKIM_SECTION = ('[dkim]\nselector = "news2026"\ndomain = "mail.example.org"\n'
                'private_key_path = "keys/news.pem"\n')


def record_of(output: str) -> tuple[str, bytes]:
    """The printed record's name and its strings joined, as a resolver hands them to DKIM."""
    name = re.search(r"^  name:  (\S+)$", output, re.MULTILINE)
    value = re.search(r"^  value: (.+)$", output, re.MULTILINE)
    assert name and value, output
    strings = re.findall(r'"([^"]*)"', value.group(1))
    assert value.group(1) == " ".join(f'"{s}"' for s in strings)  # nothing outside quotes
    assert strings and all(len(s.encode()) <= 255 for s in strings)
    return name.group(1), "".join(strings).encode()


def dns_for(name: str, record: bytes) -> object:
    def lookup(query: bytes, timeout: int = 5) -> bytes | None:
        return record if query == f"{name}.".encode() else None
    return lookup


def test_key_goes_where_dkim_points_with_mode_0600(project: Project) -> None:
    project.write_config(DKIM_SECTION)
    result = project.run("dkim", "keygen", "--selector", "news2026")
    assert result.exit_code == 0, result.output
    key_path = project.root / "keys" / "news.pem"  # resolved against the config's folder
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert f"Wrote a 2048-bit RSA key to {key_path}" in result.output
    name, record = record_of(result.output)
    assert name == "news2026._domainkey.mail.example.org"  # [dkim] domain, not From's
    assert "Then" not in result.output  # the config already names this key
    assert list((project.root / "keys").iterdir()) == [key_path]  # no temporary left

    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    assert record.startswith(b"v=DKIM1; k=rsa; p=")
    published = serialization.load_der_public_key(
        base64.b64decode(record.split(b"p=", 1)[1]))
    assert published.public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]
    assert len(record) > 255  # a 2048-bit key really needed splitting


def test_a_message_signed_with_the_new_key_verifies_against_the_printed_record(
        project: Project) -> None:
    project.write_config(DKIM_SECTION)
    result = project.run("dkim", "keygen", "--selector", "news2026")
    assert result.exit_code == 0, result.output
    name, record = record_of(result.output)
    sign = make_signer("news2026", "mail.example.org", project.root / "keys" / "news.pem")
    message = (b"From: digest@mail.example.org\r\nTo: ada@example.com\r\n"
               b"Subject: hello\r\nDate: Mon, 16 Nov 2026 08:00:00 +0000\r\n"
               b"Message-ID: <1@mail.example.org>\r\n\r\nBody text.\r\n")
    signed = sign(message)
    assert dkim.verify(signed, dnsfunc=dns_for(name, record))
    other = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    wrong = b"v=DKIM1; k=rsa; p=" + base64.b64encode(other.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
    assert not dkim.verify(signed, dnsfunc=dns_for(name, wrong))  # the check can fail


def test_refuses_to_overwrite_without_force(project: Project) -> None:
    project.write_config(DKIM_SECTION)
    assert project.run("dkim", "keygen", "--selector", "news2026").exit_code == 0
    key_path = project.root / "keys" / "news.pem"
    first = key_path.read_bytes()
    refused = project.run("dkim", "keygen", "--selector", "news2026")
    assert refused.exit_code == 1
    assert str(key_path) in refused.stderr and "--force" in refused.stderr
    assert key_path.read_bytes() == first
    forced = project.run("dkim", "keygen", "--selector", "news2026", "--force")
    assert forced.exit_code == 0, forced.output
    assert key_path.read_bytes() != first
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    _, record = record_of(forced.output)
    replacement = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert base64.b64encode(replacement.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo,
    )) in record  # the record printed is the new key's
    assert sorted(p.name for p in key_path.parent.iterdir()) == ["news.pem"]


def test_without_dkim_config_the_key_goes_beside_the_config_and_the_lines_are_said(
        project: Project) -> None:
    result = project.run("dkim", "keygen", "--selector", "s1", "--bits", "1024")
    assert result.exit_code == 0, result.output
    key_path = project.root / "dkim" / "s1.private.pem"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 1024
    name, _ = record_of(result.output)
    assert name == "s1._domainkey.news.example.org"  # the From address's domain
    assert f"add these lines under [dkim] in {project.config_path}" in result.output
    for line in ('selector = "s1"', 'domain = "news.example.org"',
                 'private_key_path = "dkim/s1.private.pem"'):
        assert f"  {line}\n" in result.output
    # Pasting the lines as printed makes a config that signs with this key.
    project.write_config("[dkim]\n" + "\n".join(
        line.strip() for line in result.output.splitlines() if " = " in line) + "\n")
    out = project.root / "out"
    assert project.run("build", "--week", "2026-W47", "--out", str(out)).exit_code == 0
    assert (out / "issue.eml").read_bytes().startswith(b"DKIM-Signature:")


def test_domain_option_wins(project: Project) -> None:
    project.write_config(DKIM_SECTION)
    result = project.run("dkim", "keygen", "--selector", "s2", "--domain", "Other.Example")
    assert result.exit_code == 0, result.output
    name, _ = record_of(result.output)
    assert name == "s2._domainkey.other.example"
    # The config signs as news2026 / mail.example.org: the lines to change are said.
    assert "change these lines under [dkim]" in result.output
    assert '  selector = "s2"' in result.output and '  domain = "other.example"' in result.output
    assert "private_key_path" not in result.output.split("change these lines", 1)[1]
