"""What keeps the public pages safe: signed expiring confirmation tokens, CSRF for forms,
throttles against subscription bombing, and the headers every response carries."""

from __future__ import annotations

import base64
import hmac
import ipaddress
import json
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from ainews_newsletter.errors import AinewsError
from ainews_newsletter.web.page_language import N_

MAX_KEYS = 100_000
CSRF_COOKIE = "ainews_csrf"
CSRF_FIELD = "csrf"


def content_security_policy(frame_ancestors: Sequence[str] = (),
                            script_nonce: str | None = None) -> str:
    """Archive pages show the issue's own HTML (inline styles, remote images); nothing runs
    scripts, nothing may frame us, and forms post only to ourselves. Two exceptions, each
    only where it is needed: /embed may be framed by [web] allowed_origins, and with [web]
    proof_of_work a form's page runs its one inline script, the one carrying the nonce."""
    ancestors = " ".join(frame_ancestors) or "'none'"
    scripts = f"; script-src 'nonce-{script_nonce}'" if script_nonce else ""
    return ("default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
            f"form-action 'self'; frame-ancestors {ancestors}; base-uri 'none'{scripts}")


CONTENT_SECURITY_POLICY = content_security_policy()
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Unsubscribe and confirmation URLs carry secrets: never hand them to another site.
    "Referrer-Policy": "no-referrer",
}


# /confirm/<token>, /unsubscribe/<token>, /preferences/<token>: the token is a key to the
# reader's subscription. Logs show the path without it.
_TOKEN_PATH = re.compile(r"^(/(?:confirm|unsubscribe|preferences|c)/)[^/?\s]+")


def mask_tokens(path: str) -> str:
    return _TOKEN_PATH.sub(r"\1…", path)


def mask_address(address: str) -> str:
    """`j***@example.com`: enough to tell which provider refused, not who signed up (logs
    are kept and shared more freely than the subscriber list)."""
    local, at, domain = address.rpartition("@")
    return f"{local[:1]}***@{domain}" if at and local else "***"


class BadToken(AinewsError):
    """A link that was forged, altered, expired or is not for this address."""


@dataclass(frozen=True)
class Confirmation:
    email: str
    list_name: str | None
    name: str | None
    issued_at: datetime  # to the second: the link must be newer than an unsubscribe


class ConfirmationTokens:
    """`/confirm/<token>`: the address, list and name, encrypted and authenticated (Fernet:
    AES-CBC with HMAC-SHA256) with a key derived from AINEWS_SECRET_KEY, valid for
    `max_age_seconds` after the sign-up. Encrypted, not only signed: a link that leaks (a
    forwarded mail, a proxy log) must not reveal whose it is."""

    def __init__(self, secret_key: str, max_age_seconds: float) -> None:
        from cryptography.fernet import Fernet

        key = derived_key(secret_key, b"ainews confirmation links")
        self._fernet = Fernet(base64.urlsafe_b64encode(key))
        self.max_age = int(max_age_seconds)

    def make(self, email: str, list_name: str | None, name: str | None = None,
             issued_at: float | None = None) -> str:
        """`issued_at` (a Unix time) is for tests that need an old link."""
        data = json.dumps({"e": email, "l": list_name, "n": name}).encode()
        when = int(time.time() if issued_at is None else issued_at)
        return self._fernet.encrypt_at_time(data, when).decode("ascii")

    def read(self, token: str) -> Confirmation:
        from cryptography.fernet import InvalidToken

        try:
            raw = token.encode("ascii")
            issued = self._fernet.extract_timestamp(raw)  # checks the signature too
            data = json.loads(self._fernet.decrypt(raw))
        except (InvalidToken, UnicodeError, ValueError):
            raise BadToken(N_("This confirmation link is not valid.")) from None
        if time.time() - issued > self.max_age:
            raise BadToken(N_("This confirmation link has expired; sign up again to get a "
                              "new one."))
        if not isinstance(data, dict) or not isinstance(data.get("e"), str):
            raise BadToken(N_("This confirmation link is not valid."))
        list_name, name = data.get("l"), data.get("n")
        return Confirmation(data["e"], list_name if isinstance(list_name, str) else None,
                            name if isinstance(name, str) else None,
                            datetime.fromtimestamp(issued, UTC))


def derived_key(secret_key: str, purpose: bytes) -> bytes:
    """A 32-byte key for one purpose, derived from AINEWS_SECRET_KEY (HKDF-SHA256): a key
    that leaks from one use opens no other."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=purpose).derive(secret_key.encode())


def new_csrf_value() -> str:
    return secrets.token_urlsafe(24)


# Our CSRF values are 32 URL-safe characters; anything much longer is not one of them.
MAX_CSRF_LENGTH = 128


def csrf_ok(cookie_value: str | None, form_value: str | None) -> bool:
    """Double-submit check: the form field must equal the cookie set with the form. Another
    site can make a browser post to us, but cannot read or set our cookie. Compared as
    bytes: `hmac.compare_digest` refuses non-ASCII str (a TypeError, once a 500)."""
    if not cookie_value or not form_value:
        return False
    if len(cookie_value) > MAX_CSRF_LENGTH or len(form_value) > MAX_CSRF_LENGTH:
        return False
    return hmac.compare_digest(cookie_value.encode("utf-8", "surrogatepass"),
                               form_value.encode("utf-8", "surrogatepass"))


def client_key(host: str) -> str:
    """Who is signing up, for the per-network throttle: an IPv4 address, or an IPv6 /64 (one
    home or server gets a whole /64, so single IPv6 addresses are free to rotate)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def mailbox_key(normalized: str) -> str:
    """One mailbox, for the per-address throttle: plus-tags dropped (name+1@, name+2@ land in
    one inbox)."""
    local, _, domain = normalized.partition("@")
    return f"{local.split('+', 1)[0]}@{domain}"


class Throttle:
    """At most `limit` events per key in any `window_seconds` (in memory, per process)."""

    def __init__(self, limit: int, window_seconds: float,
                 clock_: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window = limit, window_seconds
        self._clock = clock_
        self._events: dict[str, deque[float]] = {}
        self._calls = 0
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        """Count an event for `key`; False (and not counted) once over the limit."""
        now = self._clock()
        with self._lock:
            events = self._events.setdefault(key, deque())
            while events and events[0] <= now - self.window:
                events.popleft()
            if len(events) >= self.limit:
                return False
            events.append(now)
            self._calls += 1
            if self._calls % 1000 == 0 or len(self._events) > MAX_KEYS:
                self._forget_quiet_keys(now)
            return True

    def _forget_quiet_keys(self, now: float) -> None:
        """Keys with no event inside the window say nothing any more; and under a flood of
        new keys the oldest go first, so memory stays bounded."""
        self._events = {key: events for key, events in self._events.items()
                        if events[-1] > now - self.window}
        if len(self._events) > MAX_KEYS:
            newest = sorted(self._events.items(), key=lambda item: item[1][-1])[-MAX_KEYS // 2:]
            self._events = dict(newest)
