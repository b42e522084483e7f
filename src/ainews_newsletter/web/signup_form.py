"""POST /subscribe from every form that may post there, and GET /embed.

Three kinds of form post here (docs/signup-forms.md):
- our own page (/): the CSRF double-submit as ever; its CSRF value is also its signed
  form time (bots.py);
- /embed, our minimal form in an iframe on one of [web] allowed_origins' pages: posted from
  our own origin but without our cookie (browsers keep cookies from another site's frame),
  so it carries its own signed form time instead;
- a form or a fetch() on an allowed site's own page (`ainews web snippet`): no token of
  ours at all; the origin list and double opt-in (always, for these) keep it safe.
A post naming any other site, or no site and no valid CSRF token, is refused (403).

Whatever becomes of the address, the answer is the same (a bot's too): the sign-up and the
mail run after the response, so neither its words nor its timing tell anything."""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from ainews_newsletter.config import Config
from ainews_newsletter.errors import ConfigError, SubscriberError
from ainews_newsletter.subscribers.addresses import normalize
from ainews_newsletter.subscribers.consent_records import Agreement, kept_ip, kept_user_agent
from ainews_newsletter.subscribers.names import clean_name
from ainews_newsletter.web.bots import FORM_TIME_FIELD, POW_FIELD, BotChecks
from ainews_newsletter.web.consent_wording import wording_hash
from ainews_newsletter.web.cross_origin import Origins, request_origin
from ainews_newsletter.web.double_opt_in import STORAGE_PAUSE_SECONDS, DoubleOptIn
from ainews_newsletter.web.page_language import N_, _, current
from ainews_newsletter.web.security import (
    CSRF_COOKIE,
    CSRF_FIELD,
    SECURITY_HEADERS,
    client_key,
    content_security_policy,
    csrf_ok,
)

log = logging.getLogger("ainews.web")
NOT_AN_ADDRESS = N_("That does not look like an email address.")
TOO_MANY = N_("Too many sign-ups from your network; please try again in an hour.")


class PageMaker(Protocol):
    """PublicSite.page: a page template rendered with the site's context."""

    def __call__(self, template: str, status: int = 200, csrf: str | None = None,
                 headers: Mapping[str, str] | None = None, **context: Any) -> HTMLResponse: ...


class Channel(enum.Enum):
    OWN = "our page"
    EMBED = "/embed"
    OTHER_SITE = "another site"
    EXPIRED = "our page, its CSRF token stale"  # answered as ever: reload and send again
    REFUSED = "a site not allowed"


@dataclass(frozen=True)
class Post:
    origin: str | None
    json: bool  # a fetch() sending JSON: answered in JSON
    channel: Channel = Channel.REFUSED


class SignUpForm:
    def __init__(self, config: Config, opt_in: DoubleOptIn, secret: str,
                 page: PageMaker) -> None:
        self.config, self.opt_in, self.page = config, opt_in, page
        self.origins = Origins(config.newsletter.base_url, config.web.allowed_origins)
        self.bots = BotChecks(secret, config.web.min_form_seconds, config.web.proof_of_work)
        if config.web.proof_of_work:
            self._check_puzzle_fields()
        self._wording: dict[tuple[Channel, str], str] = {}  # see `wording`

    # -- the forms we serve ---------------------------------------------------------------

    def own_page(self, status: int = 200, **context: Any) -> HTMLResponse:
        """The subscribe page: its CSRF value is its signed form time."""
        stamp = self.bots.times.make("page")
        nonce = self.bots.script_nonce()
        # no-store: each copy carries its own form time (and cookie, and nonce).
        headers = {**SECURITY_HEADERS, "Cache-Control": "no-store"}
        if nonce is not None:
            headers["Content-Security-Policy"] = content_security_policy(script_nonce=nonce)
        return self.page("subscribe.html", status=status, csrf=stamp, headers=headers,
                         **self.bots.form_context(stamp, nonce), **context)

    def embed_page(self, status: int = 200, **context: Any) -> HTMLResponse:
        """/embed: framed by the allowed sites only (frame-ancestors; no X-Frame-Options).
        Its Referrer-Policy lets its post name our origin, which a post needs without a
        CSRF cookie; the page's own URL is all a Referer could say."""
        stamp = self.bots.times.make("embed")
        nonce = self.bots.script_nonce()
        headers = {
            "Content-Security-Policy": content_security_policy(self.origins.allowed, nonce),
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
            "Cache-Control": "no-store"}  # each copy carries its own form time
        return self.page("embed.html", status=status, headers=headers,
                         form_time_field=FORM_TIME_FIELD, form_time=stamp,
                         **self.bots.form_context(stamp, nonce), **context)

    async def embed(self, request: Request) -> Response:
        return self.embed_page()

    def _check_puzzle_fields(self) -> None:
        """With proof_of_work on, a page override without the puzzle would drop every
        sign-up without a word: stop `serve` instead, saying what to add."""
        for response, name in ((self.own_page(), "subscribe.html"),
                               (self.embed_page(), "embed.html")):
            if response.status_code == 200 and f'name="{POW_FIELD}"'.encode() not in \
                    response.body:
                raise ConfigError(f"[web] proof_of_work is on but templates/web/{name} has "
                                  "no puzzle field: add {% include \"_bot_fields.html\" %} "
                                  "inside its <form>")

    # -- POST /subscribe ------------------------------------------------------------------

    async def subscribe(self, request: Request) -> Response:
        content_type = request.headers.get("content-type", "").partition(";")[0]
        post = Post(request_origin(request), content_type.strip().lower() == "application/json")
        data = await self._read(request, post)
        if data is None:
            response = self._error(post, 400, _("The request body is not a JSON object."))
        else:
            post = Post(post.origin, post.json, self._channel(post.origin, request, data))
            response = await self._answer(request, post, data)
        for name, value in self.origins.cors_headers(post.origin).items():
            if name.lower() == "vary":  # beside the page's own Vary: Accept-Language
                response.headers.append(name, value)
            else:
                response.headers[name] = value
        return response

    async def _read(self, request: Request, post: Post) -> Mapping[str, Any] | None:
        if not post.json:
            return await request.form()
        try:
            data = await request.json()
        except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested 30,000 deep
            return None
        return data if isinstance(data, dict) else None

    def _channel(self, origin: str | None, request: Request,
                 data: Mapping[str, Any]) -> Channel:
        if origin is not None and origin != self.origins.own:
            return Channel.OTHER_SITE if self.origins.is_allowed(origin) else Channel.REFUSED
        if csrf_ok(request.cookies.get(CSRF_COOKIE), _text(data, CSRF_FIELD)):
            return Channel.OWN
        if origin == self.origins.own and FORM_TIME_FIELD in data:
            return Channel.EMBED
        # Our origin without a valid token is our own page, its form stale (a second tab
        # replaced the cookie). No origin (our pages' no-referrer makes browsers send
        # "Origin: null") could be anyone's, unless the form carries a form time we signed
        # for our page: then it is ours too, its cookie gone (a browser restarted with its
        # tabs, /confirm opened in another tab). Expired either way: nothing is stored.
        if origin == self.origins.own or (
                origin is None and self.bots.times.is_ours(_text(data, CSRF_FIELD), "page")):
            return Channel.EXPIRED
        return Channel.REFUSED

    async def _answer(self, request: Request, post: Post, data: Mapping[str, Any]) -> Response:
        if post.channel is Channel.REFUSED:
            log.info("sign-up refused: posted from %.100s, not in [web] allowed_origins",
                     post.origin or "a page that names no origin")
            return self._error(post, 403, _("This form may not sign anyone up to "
                                            "%(newsletter)s.",
                                            newsletter=self.config.newsletter.name))
        if post.channel is Channel.EXPIRED:
            return self._error(post, 400, _("The form had expired. Reload the page and send "
                                            "it again."))
        client = client_key(request.client.host if request.client else "unknown")
        if not self.opt_in.may_sign_up_from(client):
            return self._error(post, 429, _(TOO_MANY))
        if self.opt_in.storage_failing():  # a sign-up just now could not be stored
            busy = self._error(post, 503, _("Please try again in a minute."))
            busy.headers["Retry-After"] = str(int(STORAGE_PAUSE_SECONDS))
            return busy
        typed = _text(data, "email")
        try:
            address, _normalized = normalize(
                typed, allow_test=self.config.subscribers.allow_test_domains)
        except SubscriberError:
            return self._not_an_address(post, typed)
        name = clean_name(_text(data, "name"))
        response = self._thanks(post, address)
        stamp, kind = {Channel.OWN: (_text(data, CSRF_FIELD), "page"),
                       Channel.EMBED: (_text(data, FORM_TIME_FIELD), "embed")}.get(
                           post.channel, (None, None))
        why = self.bots.why_a_bot(data, stamp, kind)
        if why is not None:  # the answer a person gets; nothing stored, nothing mailed
            log.info("sign-up from %s dropped: %s", post.channel.value, why)
            return response
        # The per-mailbox limit is counted there, in the database, only when a mail goes.
        # The confirmation mail speaks the language this answer (and the form) was shown in.
        language = current()
        response.background = BackgroundTask(
            self.opt_in.sign_up_and_mail, address, name,
            cross_origin=post.channel is not Channel.OWN,
            agreement=self._agreement(request, post),
            language=language.tag if language is not None else None)
        return response

    def _agreement(self, request: Request, post: Post) -> Agreement:
        """The consent record's facts about this post: the page (or the other site's
        origin), the IP address and user agent as [privacy] keeps them, and the wording."""
        privacy = self.config.privacy
        return Agreement(
            how="web",
            source=post.origin if post.channel is Channel.OTHER_SITE else post.channel.value,
            # Behind a proxy, uvicorn has already put the forwarded address here
            # (server.py's forwarded_allow_ips).
            ip=kept_ip(request.client.host if request.client else None, privacy.store_ip),
            user_agent=kept_user_agent(request.headers.get("user-agent"),
                                       privacy.store_user_agent),
            consent_text=self.wording(post.channel))

    def wording(self, channel: Channel) -> str | None:
        """The hash of the consent wording our form on `channel` shows in the request's
        language, from the page as rendered (once per language, at its first sign-up: a
        page override that fails to render is the page's own 500, logged when it is asked
        for, not an error at start-up). Another site's form is theirs: we never see its
        words."""
        language = current()
        key = (channel, language.tag if language is not None else "")
        if key not in self._wording and channel in (Channel.OWN, Channel.EMBED):
            page = self.own_page() if channel is Channel.OWN else self.embed_page()
            if page.status_code == 200:
                self._wording[key] = wording_hash(page.body)
        return self._wording.get(key)

    # -- answers --------------------------------------------------------------------------

    def _thanks(self, post: Post, address: str) -> Response:
        # Other sites' posts are always double opt-in; our own page's follow the setting.
        title, text = self.opt_in.thanks(address, cross_origin=post.channel is not Channel.OWN)
        if post.json:
            return JSONResponse({"status": "pending"})
        if post.channel is Channel.EMBED:
            return self.embed_page(title=title, text=text)
        after = self.config.web.after_subscribe_url
        if post.channel is Channel.OTHER_SITE and after:
            return RedirectResponse(after, status_code=303)
        return self._message(title, text)

    def _error(self, post: Post, status: int, text: str) -> Response:
        if post.json:
            return JSONResponse({"error": text}, status_code=status)
        title = {400: _("Please try again"), 403: _("Not allowed"),
                 429: _("Too many sign-ups")}.get(status) or _("That did not work")
        if post.channel is Channel.EMBED:
            return self.embed_page(status=status, title=title, text=text, retry=True)
        return self._message(title, text, status)

    def _not_an_address(self, post: Post, typed: str) -> Response:
        if post.json:
            return self._error(post, 400, _(NOT_AN_ADDRESS))
        if post.channel is Channel.EMBED:
            return self.embed_page(status=400, error=_(NOT_AN_ADDRESS), email=typed[:320])
        # Our page, also for another site's plain form: the reader corrects it here.
        return self.own_page(status=400, error=_(NOT_AN_ADDRESS), email=typed[:320])

    def _message(self, title: str, text: str, status: int = 200) -> HTMLResponse:
        return self.page("message.html", status=status, title=title, text=text)


def _text(data: Mapping[str, Any], key: str) -> str:
    """A field's text: a form's string, or a JSON value that is one ("" for anything else:
    a number or a list is not an address)."""
    value = data.get(key)
    return value if isinstance(value, str) else ""
