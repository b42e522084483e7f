"""ASGI wrappers that hold for every response of the public app, whatever produced it (a
page, a redirect, a 405, a 400 from form parsing, the 500 of an unexpected error): the
security headers, `Cache-Control: no-store` on pages that show a reader's data, and a cap
on request bodies enforced while they are read."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Paths whose pages show a reader's address or lists: no cache may keep them.
PRIVATE_PREFIXES = ("/confirm/", "/unsubscribe/", "/preferences/")


class BodyTooLarge(Exception):
    """The request body passed [web] max_body_bytes (answered 413 by the app)."""


class SecurityHeaders:
    """Adds `headers` to every HTTP response that does not set them itself, and
    `Cache-Control: no-store` under PRIVATE_PREFIXES. The outermost layer, so even Starlette's
    own 500 carries them."""

    def __init__(self, app: ASGIApp, headers: Mapping[str, str]) -> None:
        self.app = app
        self.headers = [(name.lower().encode("latin-1"), value.encode("latin-1"))
                        for name, value in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = list(self.headers)
        if str(scope.get("path", "")).startswith(PRIVATE_PREFIXES):
            extra.append((b"cache-control", b"no-store"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                if b"content-security-policy" in present:
                    # Its own policy's frame-ancestors decides who may frame it (/embed):
                    # a default X-Frame-Options: DENY would contradict it.
                    present.add(b"x-frame-options")
                message = {**message, "headers": [
                    *message.get("headers", []),
                    *_missing(extra, present)]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _missing(headers: Iterable[tuple[bytes, bytes]],
             present: set[bytes]) -> list[tuple[bytes, bytes]]:
    return [(name, value) for name, value in headers if name not in present]


class BodyLimit:
    """Refuses bodies over `max_bytes`: at once when Content-Length says so (413, nothing
    read), else by raising BodyTooLarge from `receive` as soon as the count passes it, so
    a chunked upload is never read whole."""

    def __init__(self, app: ASGIApp, max_bytes: int,
                 by_prefix: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # Paths with a limit of their own (the webhooks: a provider's batch is megabytes).
        self.by_prefix = dict(by_prefix or {})

    def _limit(self, path: str) -> int:
        for prefix, limit in self.by_prefix.items():
            if path.startswith(prefix):
                return limit
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(str(scope.get("path", "")))
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _too_large(send)
            return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(f"request body over {limit} bytes")
            return message

        await self.app(scope, counting_receive, send)


async def _too_large(send: Send) -> None:
    body = b"Request body too large\n"
    await send({"type": "http.response.start", "status": 413, "headers": [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
