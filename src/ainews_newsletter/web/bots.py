"""What tells a bot's sign-up from a person's: a honeypot field people never see (every
form, the static snippet too), a signed form time on the forms we serve ourselves (the
subscribe page and /embed), and, with [web] proof_of_work, a small puzzle the page's script
solves. A post that fails one gets the answer a person gets and nothing is stored or
mailed, so the answer teaches a bot nothing.

The puzzle: find a decimal number n such that SHA-256(form time + n) starts with POW_BITS
zero bits. 2**16 hashes on average: a fraction of a second for the page's script, the
same for each post a bot wants to count; checking it is one hash."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
from collections.abc import Mapping
from typing import Any

from ainews_newsletter import clock
from ainews_newsletter.web.security import MAX_KEYS, derived_key

# Bots fill in a field called "website"; people never see it (moved off-screen by CSS, not
# type=hidden, which bots skip) and screen readers are told to skip it.
HONEYPOT_FIELD = "website"
# The embed page's form time. Our own page's is its CSRF value (one field, and the cookie
# pins it to the browser it was served to); the embed page has no cookie (in another
# site's frame, browsers keep cookies from it).
FORM_TIME_FIELD = "form_time"
POW_FIELD = "pow"
POW_BITS = 16
MAX_FORM_AGE = 86400.0  # a form older than a day was not filled in by someone reading it
MAX_STAMP_LENGTH = 128
_DIGITS = re.compile(r"[0-9]{1,12}")
_MILLIS = re.compile(r"m[0-9]{1,15}")


class FormTimes:
    """`<kind>.m<Unix milliseconds>.<random>.<HMAC-SHA256>`, keyed from AINEWS_SECRET_KEY:
    when a form was served (to the millisecond: whole seconds made a 2 s minimum 1 to 2 s),
    which form ("page" or "embed": one form's cannot serve as another's), and a random part,
    so that our page's, which is its CSRF value, cannot be guessed. Stamps of the older
    format, `<kind>.<Unix seconds>.<random>.<mac>`, still read (in seconds): a form served
    before an upgrade is at most a day old."""

    def __init__(self, secret_key: str) -> None:
        self._key = derived_key(secret_key, b"ainews form times")

    def make(self, kind: str, at: float | None = None) -> str:
        """`at` (a Unix time) is for tests that need a form served long ago."""
        when = round((clock.now().timestamp() if at is None else at) * 1000)
        body = f"{kind}.m{when}.{secrets.token_urlsafe(12)}"
        return f"{body}.{self._mac(body)}"

    def age(self, stamp: str, kind: str) -> float | None:
        """Seconds since `stamp` was made; None when it is not one of ours of this kind."""
        if len(stamp) > MAX_STAMP_LENGTH:
            return None
        body, _, mac = stamp.rpartition(".")
        parts = body.split(".")
        if len(parts) != 3 or parts[0] != kind:
            return None
        if _MILLIS.fullmatch(parts[1]):
            served = int(parts[1][1:]) / 1000
        elif _DIGITS.fullmatch(parts[1]):  # the older format, in whole seconds
            served = float(parts[1])
        else:
            return None
        if not hmac.compare_digest(self._mac(body).encode("ascii"),
                                   mac.encode("utf-8", "surrogatepass")):
            return None
        return clock.now().timestamp() - served

    def is_ours(self, stamp: str, kind: str) -> bool:
        """Whether `stamp` is a form time we signed for a form of `kind`, whatever its age."""
        return self.age(stamp, kind) is not None

    def _mac(self, body: str) -> str:
        digest = hmac.new(self._key, body.encode("utf-8"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def solved(challenge: str, answer: str, bits: int = POW_BITS) -> bool:
    """Whether SHA-256(challenge + answer) starts with `bits` zero bits."""
    if not _DIGITS.fullmatch(answer):
        return False
    digest = hashlib.sha256(f"{challenge}{answer}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest, "big") >> (256 - bits) == 0


class SpentPuzzles:
    """Form times already posted (with a solved puzzle, when that is on): one form served
    buys one sign-up, not a day of them; a second post of the same form (a double click,
    a reload that sends again) gets the same thank-you and does nothing. In memory, per
    server process, like the throttles, and bounded like them: a restart, or another
    process behind the same address, accepts a form time once more."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def first_use(self, stamp: str) -> bool:
        now = clock.now().timestamp()
        with self._lock:
            if stamp in self._seen:
                return False
            self._seen[stamp] = now
            if len(self._seen) > MAX_KEYS:  # older than a day: their form time refuses them
                self._seen = {key: at for key, at in self._seen.items()
                              if at > now - MAX_FORM_AGE}
                if len(self._seen) > MAX_KEYS:
                    self._seen = dict(list(self._seen.items())[-MAX_KEYS // 2:])
            return True


class BotChecks:
    """The checks for one app: its form-time key, [web] min_form_seconds and
    proof_of_work."""

    def __init__(self, secret_key: str, min_form_seconds: float, proof_of_work: bool) -> None:
        self.times = FormTimes(secret_key)
        self.min_seconds = min_form_seconds
        self.proof_of_work = proof_of_work
        self.spent = SpentPuzzles()

    def why_a_bot(self, data: Mapping[str, Any], stamp: str | None,
                  kind: str | None) -> str | None:
        """Why this post looks like a bot's (for the log), or None. `stamp` is the form time
        it carries as a form of `kind`; `kind` None for another site's static form, which
        cannot carry one (it relies on the honeypot, the origin list and the limits)."""
        if data.get(HONEYPOT_FIELD) not in (None, ""):
            return "the hidden field was filled in"
        if kind is not None:
            age = self.times.age(stamp or "", kind)
            if age is None:
                return "its form time is missing or forged"
            if age < self.min_seconds:
                return "sent too soon after the form was served"
            if age > MAX_FORM_AGE:
                return "its form is more than a day old"
        if self.proof_of_work:
            answer = data.get(POW_FIELD)
            if kind is None or not isinstance(answer, str) or not solved(stamp or "", answer):
                return "no solved puzzle ([web] proof_of_work)"
        if kind is not None and not self.spent.first_use(stamp or ""):
            return ("its puzzle was solved for an earlier post" if self.proof_of_work
                    else "its form was sent before")
        return None

    def form_context(self, stamp: str, script_nonce: str | None) -> dict[str, Any]:
        """What templates/web/_bot_fields.html needs: the honeypot, and the puzzle when on
        (the form time is its challenge, the nonce lets the CSP run its script)."""
        return {"honeypot": HONEYPOT_FIELD, "pow_field": POW_FIELD,
                "pow_bits": POW_BITS if self.proof_of_work else 0,
                "pow_challenge": stamp, "csp_nonce": script_nonce}

    def script_nonce(self) -> str | None:
        """A fresh CSP nonce for a page's puzzle script; None (no script at all) when off."""
        return secrets.token_urlsafe(16) if self.proof_of_work else None
