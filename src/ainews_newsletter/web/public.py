"""`ainews serve`: the readers' pages.

/                     subscribe form (email, name): double opt-in
/subscribe            POST: mails an encrypted, expiring confirmation link (same answer for
                      every address, so the form cannot tell who is subscribed), from our
                      page, /embed or the sites of [web] allowed_origins (signup_form.py);
                      OPTIONS: the CORS preflight of those sites' fetch()
/embed                the subscribe form for an iframe on those sites
/confirm/<token>      GET shows a button; POST (CSRF-checked) confirms; with [subscribers]
                      confirm_on_click a person's GET confirms (scanners.py: not a scanner's)
/unsubscribe/<token>  GET shows a button and changes nothing (link scanners follow GETs);
                      POST "List-Unsubscribe=One-Click" unsubscribes (RFC 8058): idempotent,
                      200, no redirect, no CSRF (mail providers post it without cookies)
/preferences/<token>  the lists someone is on (CSRF-checked form); /language: their own
                      language (web/preferences_page.py)
/preferences/<token>/data  "Download my data": everything kept about them, as JSON
/preferences/<token>/erase  "Erase me": a confirmation, then erased (web/erase_page.py)
/issues/, /issues/<key>, /feed.xml   the archive of sent issues and its Atom feed
/c/<token>            GET/HEAD: a click link ([tracking] clicks): 302 to the link, see clicks.py
/healthz              for load balancers
/webhooks/<provider>  POST: a mail provider's events (webhooks.py), 404 until configured

The sign-up policy (throttles, the confirmation mail, who may confirm) is double_opt_in.py;
the forms and who may post them signup_form.py, bots.py and cross_origin.py; the feed is
atom_feed.py."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy.exc import OperationalError
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from ainews_newsletter import clock
from ainews_newsletter.config import Config
from ainews_newsletter.delivery.ledger import IssueRecord
from ainews_newsletter.errors import AinewsError, ConfigError, RenderError
from ainews_newsletter.models import Subscriber, SubscriberStatus
from ainews_newsletter.pipeline.issue import audience_list, open_ledger, open_subscribers
from ainews_newsletter.subscribers.history import Attribution
from ainews_newsletter.subscribers.store import SubscriberStore
from ainews_newsletter.web.atom_feed import MEDIA_TYPE, archive_feed
from ainews_newsletter.web.clicks import ClickRedirects
from ainews_newsletter.web.double_opt_in import DoubleOptIn
from ainews_newsletter.web.erase_page import ErasePage
from ainews_newsletter.web.hardening import BodyLimit, BodyTooLarge, SecurityHeaders
from ainews_newsletter.web.page_language import (
    Languages,
    RequestLanguage,
    _,
    current,
    speak,
)
from ainews_newsletter.web.preferences_page import PreferencesPage
from ainews_newsletter.web.scanners import link_scanner
from ainews_newsletter.web.security import (
    CSRF_COOKIE,
    CSRF_FIELD,
    SECURITY_HEADERS,
    BadToken,
    Confirmation,
    csrf_ok,
    mask_tokens,
    new_csrf_value,
)
from ainews_newsletter.web.signup_form import SignUpForm
from ainews_newsletter.web.templating import PublicPages, render_page
from ainews_newsletter.web.webhooks import PATH_PREFIX as WEBHOOKS
from ainews_newsletter.web.webhooks import WebhookRoutes

log = logging.getLogger("ainews.web")
BUSY_RETRY_SECONDS = 30
_ISSUE_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")


class PublicSite:
    """The routes, sharing one config, one page environment and the sign-up policy."""

    def __init__(self, config: Config) -> None:
        secret = config.secret_key.get_secret_value() if config.secret_key else ""
        if len(secret) < 16:
            raise ConfigError("AINEWS_SECRET_KEY must be set (16+ characters) for `ainews "
                              "serve`: it encrypts confirmation links. Make one with: python -c "
                              "'import secrets; print(secrets.token_urlsafe(32))'")
        self.config, self.secret = config, secret
        self.languages = Languages(config)
        self.templates = PublicPages(config)  # a broken override stops here
        self.opt_in = DoubleOptIn(config, secret)
        self.signup_form = SignUpForm(config, self.opt_in, secret, self.page)
        self.erase_page = ErasePage(config, self.page, self.message, self.form)
        self.preferences = PreferencesPage(config, self.page, self.message, self.form,
                                           self.languages)

    # -- helpers ----------------------------------------------------------------------

    def page(self, template: str, status: int = 200, csrf: str | None = None,
             headers: Mapping[str, str] | None = None, **context: Any) -> HTMLResponse:
        """`headers` replace SECURITY_HEADERS (a page framed elsewhere, or running a
        script, has a policy of its own). The page is in the request's language
        (page_language.py), which its headers name."""
        language = current() or self.languages.newsletters()
        try:
            html = render_page(self.templates.environment(language.tag), template, {
                "newsletter": self.config.newsletter, "tagline": self.config.web.tagline,
                "csrf": csrf, "csrf_field": CSRF_FIELD, **context})
        except RenderError as exc:  # an edited page: one line naming it, a page without it
            log.error("page %s not shown: %s", template, exc)
            return HTMLResponse("<h1>Something went wrong</h1>", status_code=500,
                                headers=SECURITY_HEADERS)
        response = HTMLResponse(html, status_code=status,
                                headers=SECURITY_HEADERS if headers is None else headers)
        response.headers["Content-Language"] = language.tag
        if language.from_header:
            response.headers.append("Vary", "Accept-Language")
        if csrf is not None:
            response.set_cookie(CSRF_COOKIE, csrf, httponly=True, samesite="strict",
                                secure=self.config.newsletter.base_url.startswith("https:"))
        return response

    def message(self, title: str, text: str, status: int = 200) -> HTMLResponse:
        return self.page("message.html", status=status, title=title, text=text)

    def bad_link(self, text: str) -> HTMLResponse:
        return self.message(_("That link does not work"), text, status=400)

    def speak_to(self, request: Request, subscriber: Subscriber | None) -> None:
        """The rest of this request in the reader's own language, when they chose one."""
        if subscriber is not None:
            speak(self.languages.for_reader(subscriber.language,
                                            request.headers.get("accept-language")))

    async def form(self, request: Request, check_csrf: bool = True) -> Mapping[str, Any] | None:
        """The posted form, or None when its CSRF token does not match the cookie."""
        data = await request.form()
        if check_csrf and not csrf_ok(request.cookies.get(CSRF_COOKIE),
                                      str(data.get(CSRF_FIELD) or "")):
            return None
        return data

    def store(self) -> SubscriberStore:
        return open_subscribers(self.config)

    # -- subscribe and confirm --------------------------------------------------------

    async def home(self, request: Request) -> Response:
        return self.signup_form.own_page()

    async def subscribe(self, request: Request) -> Response:
        """Our page's form, /embed's and the allowed sites' (signup_form.py)."""
        return await self.signup_form.subscribe(request)

    async def _confirmation(self, request: Request) -> Confirmation:
        """The link's sign-up; the rest of the request in the reader's language when their
        row has one."""
        confirmation = self.opt_in.read(str(request.path_params["token"]))
        self.speak_to(request, await run_in_threadpool(self.store().get, confirmation.email))
        return confirmation

    async def confirm_page(self, request: Request) -> Response:
        try:
            confirmation = await self._confirmation(request)
        except BadToken as exc:
            return self.bad_link(_(str(exc)))
        if self.config.subscribers.confirm_on_click:
            scanner = link_scanner(request.method, request.headers, confirmation.issued_at,
                                   clock.now())
            if scanner is None:
                return await self.confirm_on_click(confirmation)
            log.info("confirmation link opened by what looks like a link scanner (%s): "
                     "the button is shown", scanner)
        return self.page("confirm.html", csrf=new_csrf_value(), email=confirmation.email)

    async def confirm_on_click(self, confirmation: Confirmation) -> Response:
        """[subscribers] confirm_on_click: the link itself confirms (a person's GET, see
        scanners.py); the welcome goes after the response."""
        return await self._confirmed(confirmation)

    async def confirm(self, request: Request) -> Response:
        try:
            confirmation = await self._confirmation(request)
        except BadToken as exc:
            return self.bad_link(_(str(exc)))
        if await self.form(request) is None:
            return self.message(_("Please try again"), _("The form had expired. Open the link "
                                "from the email again."), status=400)
        return await self._confirmed(confirmation)

    async def _confirmed(self, confirmation: Confirmation) -> Response:
        refusal = await run_in_threadpool(self.opt_in.confirm, confirmation)
        if refusal is not None:
            message, values = refusal
            return self.bad_link(_(message, **values))
        response = self.message(_("You are subscribed"), _(
            "%(email)s will receive %(newsletter)s. Every issue has a one-click unsubscribe "
            "link.", email=confirmation.email, newsletter=self.config.newsletter.name))
        # The welcome mail, after the confirmation committed (and after the response).
        response.background = BackgroundTask(self.opt_in.after_joined, confirmation.email)
        return response

    # -- unsubscribe and preferences --------------------------------------------------

    def _by_token(self, request: Request) -> Subscriber | None:
        return self.store().by_token(str(request.path_params["token"]))

    async def unsubscribe_page(self, request: Request) -> Response:
        subscriber = await run_in_threadpool(self._by_token, request)
        if subscriber is None:
            return self.bad_link(_("This unsubscribe link is not valid (it may have been "
                                   "copied incompletely)."))
        self.speak_to(request, subscriber)
        return self.page("unsubscribe.html", subscriber=subscriber,
                         left=subscriber.status is SubscriberStatus.UNSUBSCRIBED)

    async def unsubscribe(self, request: Request) -> Response:
        data = await self.form(request, check_csrf=False)
        assert data is not None
        if data.get("List-Unsubscribe") != "One-Click":
            return self.message(_("Nothing changed"), _(
                "This address unsubscribes with a POST of List-Unsubscribe=One-Click "
                "(RFC 8058)."), status=400)
        # The page's button is a browser navigating (a form POST: Sec-Fetch-Mode navigate);
        # a mail provider's RFC 8058 POST is a server's request with no fetch metadata.
        source = "web" if request.headers.get("sec-fetch-mode") == "navigate" else "one-click"
        subscriber = await run_in_threadpool(self._unsubscribe,
                                             str(request.path_params["token"]), source)
        if subscriber is None:
            return self.bad_link(_("This unsubscribe link is not valid."))
        self.speak_to(request, subscriber)
        return self.message(_("You are unsubscribed"), _(
            "%(email)s will not receive %(newsletter)s any more.", email=subscriber.email,
            newsletter=self.config.newsletter.name))

    def _unsubscribe(self, token: str, source: str) -> Subscriber | None:
        """Unsubscribe whoever holds `token`, put down to the last issue they were sent: the
        link is the reader's, the same in every issue, so it cannot say which one they used."""
        store = self.store()
        found = store.by_token(token)
        if found is None:
            return None
        issue_id = open_ledger(self.config).last_issue_sent_to(found.id)
        store.attribution = Attribution(source, issue_id)
        return store.unsubscribe_token(token)

    async def unsubscribe_help(self, request: Request) -> Response:
        return self.message(_("Unsubscribe"), _(
            "Use the unsubscribe link at the bottom of any issue you received: it is "
            "personal, so this page cannot know who you are."))

    # -- archive and feed -------------------------------------------------------------

    def _archive(self) -> list[IssueRecord]:
        return open_ledger(self.config).sent_issues(audience_list(self.config))

    async def archive(self, request: Request) -> Response:
        speak(self.languages.newsletters())  # the issues are stored in it
        return self.page("archive.html", issues=await run_in_threadpool(self._archive))

    async def issue(self, request: Request) -> Response:
        key = str(request.path_params["key"])
        if not _ISSUE_KEY.fullmatch(key):
            raise HTTPException(404)
        found = await run_in_threadpool(open_ledger(self.config).find_issue,
                                        audience_list(self.config), key)
        if found is None or found.snapshot_at is None:  # drafts are not public
            raise HTTPException(404)
        # The archive copy is nobody's: its unsubscribe link explains where the real one is.
        html, _placeholder = found.rendered.personalize(
            f"{self.config.newsletter.base_url}/unsubscribe")
        # Stored in the newsletter's language (the archive's rendering, issue 30).
        return HTMLResponse(html, headers={**SECURITY_HEADERS,
                                           "Content-Language": self.config.newsletter.language})

    async def feed(self, request: Request) -> Response:
        body = archive_feed(self.config.newsletter.name, self.config.newsletter.base_url,
                            await run_in_threadpool(self._archive), clock.now(),
                            self.config.newsletter.language)
        return Response(body, media_type=MEDIA_TYPE, headers=SECURITY_HEADERS)

    async def healthz(self, request: Request) -> Response:
        return PlainTextResponse("ok")

    async def archive_without_slash(self, request: Request) -> Response:
        """Starlette's own slash redirect builds its target from the request's Host header;
        ours comes from base_url."""
        return RedirectResponse(f"{self.config.newsletter.base_url}/issues/", status_code=308)

    async def http_error(self, request: Request, exc: Exception) -> Response:
        """Starlette's 400 (an unreadable form), 405 and the like, as our page."""
        assert isinstance(exc, HTTPException)
        response = self.message(_("That did not work"), exc.detail,
                                status=exc.status_code)
        response.headers.update(exc.headers or {})
        return response

    async def too_large(self, request: Request, exc: Exception) -> Response:
        response = self.message(_("Too large"), _("That request was too large."), status=413)
        response.headers["connection"] = "close"  # do not read the rest of it
        return response

    async def client_gone(self, request: Request, exc: Exception) -> Response:
        """The client hung up before its request was read: expected, one line in the log
        (a traceback per hang-up would let anyone flood the log)."""
        log.info("%s %s: client disconnected", request.method, mask_tokens(request.url.path))
        return Response(status_code=400)

    async def not_found(self, request: Request, exc: Exception) -> Response:
        return self.message(_("Not found"), _("There is nothing at this address."),
                            status=404)

    async def busy(self, request: Request, exc: Exception) -> Response:
        """The database is locked or away for a moment: say so (503, retry) instead of a
        500; mail providers retry a one-click unsubscribe that gets a 5xx."""
        log.warning("database unavailable for %s: %s", mask_tokens(request.url.path),
                    str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        response = self.message(_("Busy for a moment"), _("Please try again in a minute."),
                                status=503)
        # Mail providers retrying a one-click unsubscribe, and load balancers, wait this
        # long. The pool pings a connection before lending it (database.engine_for), so
        # once the database is back the next request gets a fresh one: no restart needed.
        response.headers["Retry-After"] = str(BUSY_RETRY_SECONDS)
        return response

    async def failure(self, request: Request, exc: Exception) -> Response:
        return self.message(_("Something went wrong"), _("Please try again in a moment."),
                            status=500)


def create_public_app(config: Config) -> ASGIApp:
    """The app `ainews serve` runs; ConfigError if AINEWS_SECRET_KEY is missing. Wrapped so
    that every response, errors included, carries the security headers."""
    site = PublicSite(config)
    routes = [
        Route("/", site.home),
        Route("/subscribe", site.subscribe, methods=["POST"]),
        Route("/subscribe", site.signup_form.origins.preflight, methods=["OPTIONS"]),
        Route("/embed", site.signup_form.embed, methods=["GET"]),
        Route("/confirm/{token}", site.confirm_page, methods=["GET"]),
        Route("/confirm/{token}", site.confirm, methods=["POST"]),
        Route("/unsubscribe", site.unsubscribe_help),
        Route("/unsubscribe/{token}", site.unsubscribe_page, methods=["GET"]),
        Route("/unsubscribe/{token}", site.unsubscribe, methods=["POST"]),
        Route("/preferences/{token}", site.preferences.lists, methods=["GET", "POST"]),
        Route("/preferences/{token}/language", site.preferences.language, methods=["POST"]),
        Route("/preferences/{token}/data", site.preferences.my_data, methods=["GET"]),
        Route("/preferences/{token}/erase", site.erase_page.handle, methods=["GET", "POST"]),
        Route("/issues", site.archive_without_slash),
        Route("/issues/", site.archive),
        Route("/issues/{key}", site.issue),
        Route("/feed.xml", site.feed),
        Route("/healthz", site.healthz),
        Route("/c/{token}", ClickRedirects(config, site.secret).redirect, methods=["GET"]),
        Route(WEBHOOKS + "{provider}", WebhookRoutes(config).receive, methods=["POST"]),
    ]
    app = Starlette(routes=routes,
                    middleware=[Middleware(BodyLimit, max_bytes=config.web.max_body_bytes,
                                           by_prefix={WEBHOOKS: config.webhooks.max_body_bytes})],
                    exception_handlers={404: site.not_found,
                                        HTTPException: site.http_error,
                                        BodyTooLarge: site.too_large,
                                        ClientDisconnect: site.client_gone,
                                        OperationalError: site.busy,
                                        AinewsError: site.failure})
    app.router.redirect_slashes = False  # it would build a Location from the Host header
    return SecurityHeaders(RequestLanguage(app, site.languages), SECURITY_HEADERS)
