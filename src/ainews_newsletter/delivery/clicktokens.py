"""Click tokens: `base_url/c/<token>` names one (delivery, link position) and nothing else.

A token is 28 URL-safe characters, base64url of 21 bytes: a version byte (1), the delivery
id (6 bytes, big-endian), the link's position (2 bytes) and the first 12 bytes of an
HMAC-SHA256 of those 9 bytes. The key is derived with HKDF from AINEWS_SECRET_KEY, with its
own `info` so it is never the key of the confirmation links. The token carries no URL: the
endpoint looks the link up in the ledger, so a forged or edited token can never send a
reader anywhere the issue did not link to (no open redirect), and without the secret nobody
can make a valid one. 96 bits of MAC: guessing one takes ~2^95 requests."""

from __future__ import annotations

import base64
import hmac
import re
from dataclasses import dataclass

from ainews_newsletter.errors import ConfigError

VERSION = 1
MAC_BYTES = 12
_PAYLOAD = 1 + 6 + 2
TOKEN_LENGTH = 28  # base64url of 21 bytes: no padding, and no spare bits to alter unseen
_TOKEN = re.compile(rf"[A-Za-z0-9_-]{{{TOKEN_LENGTH}}}")
MAX_DELIVERY_ID = 2**48 - 1
MAX_POSITION = 2**16 - 1
MIN_SECRET_LENGTH = 16  # what `ainews serve` requires of the same secret

# Said wherever click tracking needs the secret and it is missing: one line, what to do.
MISSING_SECRET = ("[tracking] clicks is on, so click links are signed: set AINEWS_SECRET_KEY "
                  "(16+ characters, the same value `ainews serve` uses); make one with: "
                  "python -c 'import secrets; print(secrets.token_urlsafe(32))'")


@dataclass(frozen=True)
class ClickRef:
    """What a valid token names."""

    delivery_id: int
    position: int


class ClickTokens:
    """Makes and checks tokens with one key derived from the site's secret."""

    def __init__(self, secret_key: str) -> None:
        if len(secret_key) < MIN_SECRET_LENGTH:
            raise ConfigError(MISSING_SECRET)
        # Imported here like web/security.py does: `cryptography` is slow to load, and most
        # commands never sign a click link.
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        self._key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                         info=b"ainews click links").derive(secret_key.encode())

    def _mac(self, payload: bytes) -> bytes:
        return hmac.digest(self._key, payload, "sha256")[:MAC_BYTES]

    def make(self, delivery_id: int, position: int) -> str:
        if not (0 < delivery_id <= MAX_DELIVERY_ID and 0 < position <= MAX_POSITION):
            raise ValueError(f"no click token for delivery {delivery_id}, link {position}")
        payload = (bytes((VERSION,)) + delivery_id.to_bytes(6, "big")
                   + position.to_bytes(2, "big"))
        return base64.urlsafe_b64encode(payload + self._mac(payload)).decode("ascii")

    def read(self, token: str) -> ClickRef | None:
        """What the token names, or None for anything this key did not make (a changed
        character, a token cut short, another site's key, garbage)."""
        # The strict pattern first: the decoder would skip characters outside the alphabet,
        # so two different strings could otherwise decode to one valid token.
        if not _TOKEN.fullmatch(token):
            return None
        raw = base64.urlsafe_b64decode(token)
        payload, mac = raw[:_PAYLOAD], raw[_PAYLOAD:]
        if payload[0] != VERSION or not hmac.compare_digest(mac, self._mac(payload)):
            return None
        return ClickRef(int.from_bytes(payload[1:7], "big"), int.from_bytes(payload[7:9], "big"))
