"""`ainews preview`: the writer's live-reloading preview, on 127.0.0.1 only.

GET  /           the issue at 375 px and 600 px in sandboxed frames, plain text, headers, HTML
                 source, lint findings, every post with why it is in or out, a week picker and
                 a test send; ?week=2026-W47 &view=both|mobile|desktop|full &dark=1
GET  /events     text/event-stream: the build version at once, then each new one (a post, a
                 template or the config file changed); the page reloads when it differs
GET  /spam       SpamAssassin's score of the sample message (JSON; seconds, so fetched later)
POST /send-test  one copy to an address, like `send --to`: the ledger is not touched
GET  /healthz    ok

The issue is rebuilt on every request, so the page never shows a stale copy (what a rebuild
costs: BENCHMARKS.md)."""

from __future__ import annotations

import asyncio
import email.policy
import hashlib
import logging
import re
import secrets
import socket
import threading
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import timedelta
from email.parser import BytesParser
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from ainews_newsletter import clock
from ainews_newsletter.config import Config, load_config
from ainews_newsletter.delivery.message import unsubscribe_url
from ainews_newsletter.errors import AinewsError, ConfigError
from ainews_newsletter.models import Period, RenderedIssue, Window
from ainews_newsletter.pipeline.issue import (
    lint,
    render_selection,
    resolve_period,
    sample_message,
    sample_recipient,
    select_posts,
)
from ainews_newsletter.pipeline.send import send_test
from ainews_newsletter.posts.select import Selection
from ainews_newsletter.posts.windows import last_complete_week
from ainews_newsletter.render.lint import Finding, spamassassin_score
from ainews_newsletter.web.live_reload import Hub, watch_files, watch_targets
from ainews_newsletter.web.security import csrf_ok
from ainews_newsletter.web.templating import page_templates

logger = logging.getLogger(__name__)

LOCAL_HOSTS = ("127.0.0.1", "localhost")
VIEWS = ("both", "mobile", "desktop", "full")
HEADERS = ("From", "To", "Reply-To", "Subject", "Date", "Message-ID", "List-Id",
           "List-Unsubscribe", "List-Unsubscribe-Post")
_DARK = re.compile(r"\(\s*prefers-color-scheme\s*:\s*dark\s*\)", re.IGNORECASE)
_LIGHT = re.compile(r"\(\s*prefers-color-scheme\s*:\s*light\s*\)", re.IGNORECASE)
_SCHEME_META = re.compile(r"<meta\s+name=[\"']color-scheme[\"'][^>]*>", re.IGNORECASE)
_HEAD = re.compile(r"<head[^>]*>", re.IGNORECASE)


def force_dark(html: str) -> str:
    """The issue as a dark-mode mail client shows it. A sandboxed frame follows the browser's
    colour scheme, not a toggle on the page, so the template's own dark rules are made
    unconditional: `(prefers-color-scheme: dark)` becomes always true, `light` never."""
    html = _DARK.sub("(min-width: 0px)", html)
    html = _LIGHT.sub("(max-width: 0px) and (min-width: 1px)", html)
    html = _SCHEME_META.sub("", html)
    dark = '<meta name="color-scheme" content="dark"><style>:root{color-scheme:dark}</style>'
    head = _HEAD.search(html)
    return html[:head.end()] + dark + html[head.end():] if head else dark + html


def week_key(period: Period, weeks: int) -> str:
    """The ISO week `weeks` after (or before) the one the period starts in."""
    year, week, _ = (period.start + timedelta(weeks=weeks)).isocalendar()
    return f"{year}-W{week:02d}"


# -- building the issue ------------------------------------------------------------------

@dataclass
class Build:
    """Everything the page shows; `error` says why the rest may be missing."""

    period: Period | None = None
    selection: Selection | None = None
    rendered: RenderedIssue | None = None
    error: str | None = None
    html: str = ""  # personalized for the sample reader
    text: str = ""
    message: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


def _fast_lint(config: Config) -> Config:
    # SpamAssassin takes seconds: the page would stop reloading "within a second"; /spam
    # scores the message once the page is up.
    return config.model_copy(update={"lint": config.lint.model_copy(
        update={"spamassassin": False})})


def build_issue(config: Config, window: Window) -> Build:
    result = Build()
    try:
        result.period = resolve_period(config, window)
        result.selection = select_posts(config, window)
        rendered = render_selection(config, result.selection, force=True)
        result.rendered = rendered
        recipient = sample_recipient(config)
        result.html, result.text = rendered.personalize(
            unsubscribe_url(config.newsletter, recipient.token))
        result.message = sample_message(config, rendered, recipient)
        parsed = BytesParser(policy=email.policy.default).parsebytes(result.message,
                                                                     headersonly=True)
        result.headers = [(name, str(parsed[name])) for name in HEADERS if name in parsed]
        result.findings = lint(_fast_lint(config), rendered)
    except AinewsError as exc:
        result.error = str(exc)
    except Exception as exc:  # a half-saved template: show it, keep serving
        logger.exception("preview build failed")
        result.error = f"{type(exc).__name__}: {exc}"
    return result


# -- configuration and watching ----------------------------------------------------------

class ConfigFile:
    """The config, read again when its file changes; an invalid edit keeps the last good
    config and reports the error, so the preview survives a half-typed line."""

    def __init__(self, config: Config, environ: Mapping[str, str] | None) -> None:
        self.config = config
        self.error: str | None = None
        self._environ = environ
        self._lock = threading.Lock()
        self._stamp = self._stat()

    def _stat(self) -> tuple[int, int] | None:
        with suppress(OSError):
            info = self.config.source.stat() if self.config.source else None
            return (info.st_mtime_ns, info.st_size) if info else None
        return None

    def current(self) -> tuple[Config, str | None]:
        with self._lock:
            stamp = self._stat()
            if stamp != self._stamp and self.config.source is not None:
                self._stamp = stamp
                try:
                    self.config = load_config(self.config.source, environ=self._environ)
                    self.error = None
                except ConfigError as exc:
                    self.error = str(exc)
            return self.config, self.error


# -- the app -----------------------------------------------------------------------------

@dataclass(frozen=True)
class SentCopy:
    """What the test send reported, kept for the page the POST redirects to."""

    address: str
    state: str = ""
    code: int | None = None
    reply: str = ""
    error: str | None = None


DASHBOARD_REFRESH = 5  # seconds between reloads of /dashboard while a send runs

class Preview:
    def __init__(self, config: Config, window: Window,
                 environ: Mapping[str, str] | None) -> None:
        self.config_file = ConfigFile(config, environ)
        self.window = window
        self.hub = Hub()
        self.csrf = secrets.token_urlsafe(32)  # per run: only a page we served knows it
        self.sends: dict[str, SentCopy] = {}
        self.spam_cache: dict[str, dict[str, Any]] = {}
        self.spam_lock = threading.Lock()  # one SpamAssassin at a time: it is a big process
        self.templates = page_templates()

    def window_for(self, request: Request) -> Window:
        week = request.query_params.get("week", "").strip()
        return Window(week=week[:40]) if week else self.window

    async def page(self, request: Request) -> Response:
        config, config_error = self.config_file.current()
        window = self.window_for(request)
        built = await run_in_threadpool(build_issue, config, window)
        view = request.query_params.get("view", "both")
        view = view if view in VIEWS else "both"
        dark = request.query_params.get("dark") == "1"
        state = {"week": window.week or "", "view": view, "dark": "1" if dark else ""}

        def link(**changes: str) -> str:
            query = {key: value for key, value in {**state, **changes}.items() if value}
            return "/?" + urlencode(query) if query else "/"

        anchor = built.period or last_complete_week(clock.now(), config.newsletter.tz)
        nonce = secrets.token_urlsafe(16)
        html = self.templates.get_template("preview.html").render(
            config=config, config_error=config_error, build=built, window=window,
            view=view, dark=dark, link=link, version=self.hub.version, csrf=self.csrf,
            nonce=nonce, frame_html=force_dark(built.html) if dark else built.html,
            week=week_key(anchor, 0), previous_week=week_key(anchor, -1),
            next_week=week_key(anchor, 1), sent=self.sends.get(request.query_params.get(
                "sent", "")), query=urlencode({k: v for k, v in state.items() if v}),
            tz=config.newsletter.tz)
        return HTMLResponse(html, headers=_headers(nonce))

    async def send_test(self, request: Request) -> Response:
        origin = request.headers.get("origin")
        if origin is not None and not _same_local_origin(origin, request.headers.get("host")):
            return PlainTextResponse("cross-site request refused", status_code=403)
        form = await request.form()
        token = str(form.get("csrf") or "")
        if not csrf_ok(self.csrf, token):
            return PlainTextResponse("missing or wrong CSRF token: reload the preview and "
                                     "send again", status_code=400)
        address = str(form.get("address") or "").strip()[:320]
        week = str(form.get("week") or "").strip()[:40]
        config, _ = self.config_file.current()
        outcome = await run_in_threadpool(self._send, config,
                                          Window(week=week) if week else self.window, address)
        key = secrets.token_urlsafe(8)
        self.sends = {**dict(list(self.sends.items())[-19:]), key: outcome}
        view, dark = str(form.get("view") or ""), str(form.get("dark") or "")
        query = {"week": week, "view": view if view in VIEWS else "", "sent": key,
                 "dark": "1" if dark == "1" else ""}
        # Redirect, so a live reload afterwards is a GET and never sends the copy again.
        return RedirectResponse("/?" + urlencode({k: v for k, v in query.items() if v}),
                                status_code=303)

    @staticmethod
    def _send(config: Config, window: Window, address: str) -> SentCopy:
        built = build_issue(config, window)
        if built.rendered is None:
            return SentCopy(address, error=f"nothing to send: {built.error}")
        try:
            outcome = send_test(config, built.rendered, address)
        except (AinewsError, OSError) as exc:
            return SentCopy(address, error=str(exc))
        return SentCopy(address, outcome.state.value, outcome.code, outcome.reply)

    async def spam(self, request: Request) -> Response:
        config, _ = self.config_file.current()
        if not config.lint.spamassassin:
            return JSONResponse({"note": "off ([lint] spamassassin = false)"})
        built = await run_in_threadpool(build_issue, config, self.window_for(request))
        if built.rendered is None:
            return JSONResponse({"note": "no issue to score"})
        return JSONResponse(await run_in_threadpool(self._score, built))

    def _score(self, built: Build) -> dict[str, Any]:
        assert built.rendered is not None
        key = hashlib.sha256("\0".join((built.rendered.subject, built.html, built.text))
                             .encode()).hexdigest()
        with self.spam_lock:
            if key not in self.spam_cache:
                scored = spamassassin_score(built.message)
                self.spam_cache = dict(list(self.spam_cache.items())[-9:])
                self.spam_cache[key] = (
                    {"note": "SpamAssassin is not installed"} if scored is None
                    else {"score": scored[0], "rules": scored[1]})
            return self.spam_cache[key]

    async def events(self, request: Request) -> Response:
        return StreamingResponse(self.hub.stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})

    async def healthz(self, request: Request) -> Response:
        return PlainTextResponse("ok")

    async def dashboard(self, request: Request) -> Response:
        """The report page of the latest issue and the list; it reloads itself every few
        seconds (a meta refresh: no script) while that issue's send is still running."""
        from ainews_newsletter.pipeline.reports import report_html

        config, _ = self.config_file.current()
        html = await run_in_threadpool(report_html, config, None, 12, DASHBOARD_REFRESH)
        return HTMLResponse(html, headers=_headers(secrets.token_urlsafe(16)))


def _same_local_origin(origin: str, host: str | None) -> bool:
    parts = urlsplit(origin)
    return parts.scheme == "http" and parts.hostname in LOCAL_HOSTS and parts.netloc == host


def _headers(nonce: str) -> dict[str, str]:
    # The frames (srcdoc) inherit this policy: the issue's inline styles and remote images
    # load, nothing in it can run a script, and no other site can frame the send form.
    policy = (f"default-src 'self'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; "
              "img-src https: http: data:; connect-src 'self'; form-action 'self'; "
              "frame-ancestors 'none'; base-uri 'none'")
    return {"Content-Security-Policy": policy, "X-Frame-Options": "DENY",
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store"}


def create_preview_app(config: Config, window: Window, *, watch: bool = True,
                       environ: Mapping[str, str] | None = None) -> Starlette:
    """The preview app. `environ` is what the config was loaded with (default os.environ),
    used again when the config file changes; `watch=False` starts no file watcher."""
    preview = Preview(config, window, environ)
    targets = watch_targets(config)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if not watch:
            yield
            return
        stop = asyncio.Event()
        task = asyncio.create_task(watch_files(targets, preview.hub, stop))
        try:
            yield
        finally:
            stop.set()
            await asyncio.gather(task, return_exceptions=True)

    routes = [Route("/", preview.page), Route("/events", preview.events),
              Route("/spam", preview.spam), Route("/healthz", preview.healthz),
              Route("/dashboard", preview.dashboard),
              Route("/send-test", preview.send_test, methods=["POST"])]
    # Only our own names: a DNS-rebinding page (evil.example → 127.0.0.1) is refused
    # before it could read the CSRF token.
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=list(LOCAL_HOSTS))]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.hub = preview.hub
    return app


def run_preview(config: Config, window: Window, port: int = 8025) -> None:
    """Serve the preview on 127.0.0.1:`port` until Ctrl-C."""
    import uvicorn

    app = create_preview_app(config, window)
    hub: Hub = app.state.hub

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            hub.close()  # open tabs hold /events: end those streams, or Ctrl-C waits
            await super().shutdown(sockets)

    Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                          timeout_graceful_shutdown=2)).run()
