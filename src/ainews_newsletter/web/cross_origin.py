"""Which site a post to /subscribe comes from, and what the sites of [web] allowed_origins
are given: CORS answers (a preflight included) so their pages' fetch() can read ours, and
the right to frame /embed.

A browser names the page a post comes from in Origin (else, older ones, in Referer), and a
page cannot change either: that is what the origin list rests on. Any other client can send
whatever it likes, which is why the rest of the sign-up (double opt-in, the limits, the bot
checks) never trusts it."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from ainews_newsletter.config.site import check_origin

# How long a browser may reuse a preflight's yes (Chromium caps it at two hours).
PREFLIGHT_SECONDS = 600


def _normalized(value: str) -> str:
    """An origin as config.site.check_origin writes them; a malformed one as it came, so it
    matches nothing."""
    try:
        return check_origin(value)
    except ValueError:
        return value


def request_origin(request: Request) -> str | None:
    """The origin of the page that sent `request`: Origin, else (no Origin header at all)
    Referer's; None when it names neither. "Origin: null" names none: a browser sends it
    for a page whose Referrer-Policy is no-referrer (ours), a sandboxed frame or a local
    file."""
    if "origin" in request.headers:
        # Referer only when there is no Origin at all: a browser that says null has said
        # it names none (and a Referer beside it must not overrule that).
        origin = request.headers["origin"].strip()
        return _normalized(origin) if origin and origin != "null" else None
    referer = request.headers.get("referer", "").strip()
    if referer:
        try:
            parts = urlsplit(referer)
        except ValueError:
            return referer
        return _normalized(f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}")
    return None


class Origins:
    """Our own origin (of [newsletter] base_url) and the other sites allowed to post."""

    def __init__(self, base_url: str, allowed: Iterable[str]) -> None:
        parts = urlsplit(base_url)
        self.own = _normalized(f"{parts.scheme}://{parts.netloc}")
        # Our own origin in the list changes nothing: our pages keep their CSRF check.
        self.allowed = tuple(origin for origin in allowed if origin != self.own)

    def is_allowed(self, origin: str | None) -> bool:
        return origin is not None and origin in self.allowed

    def cors_headers(self, origin: str | None) -> dict[str, str]:
        """For a response to `origin`: the page's script may read it when the site is
        allowed; caches keep one answer per Origin either way."""
        headers = {"Vary": "Origin"}
        if self.is_allowed(origin):
            assert origin is not None
            headers["Access-Control-Allow-Origin"] = origin
        return headers

    async def preflight(self, request: Request) -> Response:
        """OPTIONS /subscribe: a fetch() sending JSON asks first. Yes (204) for the allowed
        sites' POST with Content-Type; 403 without CORS headers for anyone else, whose
        browser then never sends the post."""
        sent = request.headers.get("origin", "").strip()
        origin = _normalized(sent) if sent else None
        method = request.headers.get("access-control-request-method", "").upper()
        if not self.is_allowed(origin) or method != "POST":
            return Response(status_code=403, headers={"Vary": "Origin"})
        return Response(status_code=204, headers={
            **self.cors_headers(origin),
            "Access-Control-Allow-Methods": "POST",
            "Access-Control-Allow-Headers": "Content-Type",
            "Access-Control-Max-Age": str(PREFLIGHT_SECONDS)})
