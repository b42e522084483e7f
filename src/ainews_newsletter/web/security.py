"""What keeps the public pages safe: signed expiring confirmation tokens, CSRF for forms,
throttles against subscription bombing, and the headers every response carries."""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from ainews_newsletter.errors import AinewsError

CSRF_COOKIE = "ainews_csrf"
CSRF_FIELD = "csrf"

# Archive pages show the issue's own HTML (inline styles, remote images); nothing runs
# scripts, nothing may frame us, and forms post only to ourselves.
CONTENT_SECURITY_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
                           "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Unsubscribe and confirmation URLs carry secrets: never hand them to another site.
    "Referrer-Policy": "no-referrer",
}


class BadToken(AinewsError):
    """A link that was forged, altered, expired or is not for this address."""


@dataclass(frozen=True)
class Confirmation:
    email: str
    list_name: str | None


class ConfirmationTokens:
    """`/confirm/<token>`: the address and list signed with AINEWS_SECRET_KEY, valid for
    `max_age_seconds` after the sign-up."""

    def __init__(self, secret_key: str, max_age_seconds: float) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt="ainews-confirm")
        self.max_age = int(max_age_seconds)

    def make(self, email: str, list_name: str | None) -> str:
        return str(self._serializer.dumps({"e": email, "l": list_name}))

    def read(self, token: str) -> Confirmation:
        try:
            data = self._serializer.loads(token, max_age=self.max_age)
        except SignatureExpired:
            raise BadToken("this confirmation link has expired; sign up again to get a new "
                           "one") from None
        except BadSignature:
            raise BadToken("this confirmation link is not valid") from None
        if not isinstance(data, dict) or not isinstance(data.get("e"), str):
            raise BadToken("this confirmation link is not valid")
        list_name = data.get("l")
        return Confirmation(data["e"], list_name if isinstance(list_name, str) else None)


def new_csrf_value() -> str:
    return secrets.token_urlsafe(24)


def csrf_ok(cookie_value: str | None, form_value: str | None) -> bool:
    """Double-submit check: the form field must equal the cookie set with the form. Another
    site can make a browser post to us, but cannot read or set our cookie."""
    if not cookie_value or not form_value:
        return False
    return hmac.compare_digest(cookie_value, form_value)


class Throttle:
    """At most `limit` events per key in any `window_seconds` (in memory, per process)."""

    def __init__(self, limit: int, window_seconds: float,
                 clock_: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window = limit, window_seconds
        self._clock = clock_
        self._events: dict[str, deque[float]] = {}
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
            if len(self._events) > 100_000:  # bounded memory under a flood of keys
                self._events = {k: v for k, v in self._events.items() if v}
            return True
