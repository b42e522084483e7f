"""The `dkim` check: `<selector>._domainkey.<domain>` holds one key, and it is the public half
of the configured private key: a message signed here with dkimpy verifies against the record
as looked up (dkimpy is handed that record, so it asks no DNS of its own); and d= aligns with
the From domain, so DKIM counts for DMARC. Also the record itself, which `ainews dkim keygen`
prints (dkim_txt_record)."""

from __future__ import annotations

import base64

import dkim as dkimpy
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ainews_newsletter.config import DkimConfig
from ainews_newsletter.doctor.checks import Check, Status
from ainews_newsletter.doctor.dns import Lookup, organizational_domain, quoted_txt
from ainews_newsletter.errors import ConfigError


def dkim_txt_value(private_key_pem: bytes) -> str:
    """`v=DKIM1; k=rsa; p=<base64 SubjectPublicKeyInfo>` for a PEM RSA private key (the only
    kind delivery/dkim.py signs with). Raises ConfigError for anything else."""
    try:
        key = serialization.load_pem_private_key(private_key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"dkim.private_key_path: not an unencrypted PEM private key "
                          f"({exc})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError("dkim.private_key_path: not an RSA key (DKIM signing here is RSA)")
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode('ascii')}"


def dkim_txt_record(private_key_pem: bytes) -> str:
    """The TXT data to publish, as zone-file text in strings of at most 255 bytes:
    `"v=DKIM1; k=rsa; p=MIIB…" "…"`. Put `<selector>._domainkey.<domain>. TXT ` before it."""
    return quoted_txt(dkim_txt_value(private_key_pem))


def dkim_tags(value: str) -> dict[str, str]:
    """A DKIM key record's tags (RFC 6376 3.6.1), whitespace removed from the values (a key
    split over strings is sometimes published with spaces between the parts)."""
    tags: dict[str, str] = {}
    for part in value.split(";"):
        name, equals, argument = part.partition("=")
        if equals and name.strip():
            tags[name.strip().lower()] = "".join(argument.split())
    return tags


def check_dkim(lookup: Lookup, dkim: DkimConfig, private_key: bytes | None,
               from_domain: str) -> Check:
    """`dkim`: the [dkim] section; `private_key`: the bytes at its private_key_path (None
    when that cannot be read). Raises DnsUnreachable when DNS does not answer."""
    from_domain = from_domain.lower().rstrip(".")
    if not (dkim.enabled and dkim.selector and dkim.domain):
        return Check("dkim", Status.WARN,
                     "[dkim] is not set: messages go out unsigned, and Gmail and Yahoo want "
                     "bulk mail DKIM-signed.",
                     f"Make a key: `ainews dkim keygen --selector news --domain {from_domain}` "
                     "(with [dkim] selector, domain and private_key_path set in config.toml; "
                     "it writes the key there and prints the TXT record to publish).")
    selector, domain = dkim.selector, dkim.domain.lower().rstrip(".")
    path = dkim.private_key_path
    name = f"{selector}._domainkey.{domain}"
    keygen = f"ainews dkim keygen --selector {selector} --domain {domain} --force"
    if private_key is None:
        return Check("dkim", Status.FAIL, f"The private key {path} cannot be read.",
                     f"Point [dkim] private_key_path at the key, or make one: `{keygen}`.")
    try:
        fix = f"{name}. TXT {dkim_txt_record(private_key)}"
    except ConfigError as exc:
        return Check("dkim", Status.FAIL, str(exc), f"Make a key: `{keygen}`.")
    records = [value for value in lookup.txt(name) if "p" in dkim_tags(value)]
    if not records:
        return Check("dkim", Status.FAIL, f"No DKIM key at {name}: receivers cannot verify "
                     f"the signature, so it counts as none. Publish the key of {path}.", fix)
    if len(records) > 1:
        return Check("dkim", Status.FAIL, f"{name} has {len(records)} DKIM keys; verifiers "
                     "may pick any of them. Publish only this one:", fix)
    if not dkim_tags(records[0])["p"]:
        return Check("dkim", Status.FAIL, f"The key at {name} is revoked (empty p=). "
                     f"Publish the key of {path}.", fix)
    problem = _verify_problem(records[0], selector, domain, private_key)
    if problem:
        return Check("dkim", Status.FAIL, f"The key at {name} is not the public half of "
                     f"{path}: a message signed here does not verify against it ({problem}). "
                     "Publish this record in its place.", fix)
    found = f"{name} holds the public half of {path} (a message signed here verifies)"
    if organizational_domain(domain) != organizational_domain(from_domain):
        return Check("dkim", Status.WARN,
                     f"{found}, but d={domain} does not align with the From domain "
                     f"{from_domain}, so DKIM does not count for DMARC.",
                     f"Set [dkim] domain = \"{from_domain}\" in config.toml and publish "
                     f"`{selector}._domainkey.{from_domain}. TXT "
                     f"{dkim_txt_record(private_key)}`.")
    return Check("dkim", Status.PASS, f"{found}; d={domain} aligns with From {from_domain}.")


def _verify_problem(record: str, selector: str, domain: str, private_key: bytes) -> str:
    """Why a message signed with the private key does not verify against `record`
    ("" when it does)."""
    message = (f"From: doctor@{domain}\r\nTo: doctor@{domain}\r\nSubject: ainews doctor\r\n"
               "\r\nA message to check that the published DKIM key is ours.\r\n").encode()
    try:
        signature = dkimpy.sign(message, selector.encode(), domain.encode(), private_key,
                              include_headers=[b"From", b"To", b"Subject"])
    except dkimpy.DKIMException as exc:
        return f"signing failed: {exc}"

    def dnsfunc(name: bytes, timeout: float = 5) -> bytes:
        return record.encode()  # the record as looked up: dkimpy asks no DNS itself

    verifier = dkimpy.DKIM(bytes(signature) + message)
    try:
        return "" if verifier.verify(dnsfunc=dnsfunc) else "the signature does not match"
    except dkimpy.DKIMException as exc:
        return str(exc)
