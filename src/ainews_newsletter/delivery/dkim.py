"""DKIM signing (dkimpy). The signature covers the unsubscribe headers too, as Gmail and
Yahoo require for one-click unsubscribe (RFC 8058)."""

from __future__ import annotations

import base64
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from ainews_newsletter.errors import ConfigError, DeliveryError

# Named one by one, never "every header": a relay provider's metadata headers (provider_headers.py's
# ProviderHeaders: X-SES-MESSAGE-TAGS, X-SMTPAPI, …) must stay out, since the provider removes
# or rewrites them and a signature over them would then fail.
SIGNED_HEADERS = (b"From", b"To", b"Subject", b"Date", b"Message-ID", b"Reply-To",
                  b"List-Id", b"List-Unsubscribe", b"List-Unsubscribe-Post", b"MIME-Version",
                  b"Content-Type")
Signer = Callable[[bytes], bytes]
# One character-string in a TXT record holds at most 255 bytes (RFC 1035 3.3); a 2048-bit
# key's record is ~400, so it is published as several strings, which DKIM joins (RFC 6376
# 3.6.2.2).
TXT_STRING_LIMIT = 255


def make_signer(selector: str, domain: str, private_key_path: Path) -> Signer:
    """A function that returns the message with a DKIM-Signature header in front. The key
    is read and checked once, here, so a bad key fails before the first message."""
    import dkim  # here, not at the top: a send without DKIM never loads it

    try:
        private_key = private_key_path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"dkim.private_key_path: cannot read {private_key_path}: "
                          f"{exc.strerror}") from None
    try:
        dkim.parse_pem_private_key(private_key)
    except (dkim.KeyFormatError, dkim.UnparsableKeyError) as exc:
        raise ConfigError(f"dkim.private_key_path: {private_key_path} is not a PEM private "
                          f"key: {exc}") from None

    def sign(message: bytes) -> bytes:
        try:
            signature = dkim.sign(message, selector.encode(), domain.encode(), private_key,
                                  include_headers=list(SIGNED_HEADERS))
        except dkim.DKIMException as exc:
            raise DeliveryError(f"DKIM signing failed: {exc}") from None
        return bytes(signature) + message

    return sign


def public_key_text(private_key_pem: bytes) -> str:
    """The DKIM key record (`v=DKIM1; k=rsa; p=…`) of a PEM private key: what a verifier
    must find at <selector>._domainkey.<domain>."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    try:
        key = serialization.load_pem_private_key(private_key_pem, password=None)
    except (ValueError, TypeError) as exc:  # not PEM, encrypted, or not a key at all
        raise ConfigError(f"not a usable PEM private key: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError("the DKIM key must be RSA (ed25519 is not yet verified by every "
                          "mailbox provider)")
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(public).decode("ascii")


def public_key_record(private_key_pem: bytes) -> str:
    """The TXT record's value ready to paste into a zone or a DNS provider's form: the key
    record as double-quoted strings of at most 255 bytes each, separated by spaces."""
    text = public_key_text(private_key_pem)  # base64 and ASCII: no quoting or escaping needed
    chunks = [text[start:start + TXT_STRING_LIMIT]
              for start in range(0, len(text), TXT_STRING_LIMIT)]
    return " ".join(f'"{chunk}"' for chunk in chunks)


def new_private_key(bits: int = 2048) -> bytes:
    """A fresh RSA key as PKCS#1 PEM ("BEGIN RSA PRIVATE KEY"), the form dkimpy, OpenDKIM
    and rspamd all read. 2048 bits is what providers expect; 1024 is the floor (RFC 8301)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


class KeyExists(ConfigError):
    """A key is already where the new one would go (and --force was not given)."""


def write_private_key(path: Path, pem: bytes, force: bool = False) -> None:
    """Write the key readable by its owner only (0600), making the folder. Without `force`
    an existing file is never replaced: it may be the key DNS publishes right now. The bytes
    go to a 0600 temporary file first, so the key is never readable by others even for a
    moment, then take the name in one step (a link, which fails if the name is taken, or
    with `force` a rename): a crash leaves the old key or the new one, never half of one."""
    refusal = (f"{path} exists: it may be the key DNS publishes now; use another selector "
               "(and private_key_path), or --force to replace it")
    if path.exists() and not force:
        raise KeyExists(refusal)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # a new folder: keys only
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".dkim-", suffix=".tmp")
    try:
        os.fchmod(descriptor, 0o600)  # mkstemp makes 0600 already; said, not assumed
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(pem)
        if force:
            os.replace(temporary, path)
        else:
            try:
                os.link(temporary, path)
            except FileExistsError:  # made by someone else since the check above
                raise KeyExists(refusal) from None
    finally:
        Path(temporary).unlink(missing_ok=True)
