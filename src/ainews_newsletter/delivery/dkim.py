"""DKIM signing (dkimpy). The signature covers the unsubscribe headers too, as Gmail and
Yahoo require for one-click unsubscribe (RFC 8058)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import dkim

from ainews_newsletter.errors import ConfigError, DeliveryError

SIGNED_HEADERS = (b"From", b"To", b"Subject", b"Date", b"Message-ID", b"Reply-To",
                  b"List-Id", b"List-Unsubscribe", b"List-Unsubscribe-Post", b"MIME-Version",
                  b"Content-Type")
Signer = Callable[[bytes], bytes]


def make_signer(selector: str, domain: str, private_key_path: Path) -> Signer:
    """A function that returns the message with a DKIM-Signature header in front. The key
    is read and checked once, here, so a bad key fails before the first message."""
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
