"""The reader's own "Erase me" (issue 29): `/preferences/{token}/erase`. GET shows what
erasing means and a CSRF-checked form; the POST erases (pipeline/erasure.py, the same
function as `ainews subscribers erase`) and says it is done. Its own module, so the public
site's file stays a list of routes."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from ainews_newsletter.config import Config
from ainews_newsletter.errors import ConfigError
from ainews_newsletter.pipeline.erasure import erase
from ainews_newsletter.pipeline.issue import open_subscribers
from ainews_newsletter.web.page_language import Languages, _, speak
from ainews_newsletter.web.security import new_csrf_value

Page = Callable[..., HTMLResponse]
Message = Callable[..., HTMLResponse]
Form = Callable[[Request], Awaitable[Mapping[str, Any] | None]]
log = logging.getLogger("ainews.web")


class ErasePage:
    def __init__(self, config: Config, page: Page, message: Message, form: Form) -> None:
        self.config, self.page, self.message, self.form = config, page, message, form
        self.languages = Languages(config)

    async def handle(self, request: Request) -> Response:
        token = str(request.path_params["token"])
        subscriber = await run_in_threadpool(open_subscribers(self.config).by_token, token)
        if subscriber is None:
            # Also what a second POST after the erase meets: the token went with the row.
            return self.message(_("That link does not work"), _(
                "This link is not valid, or the address it was for has been erased "
                "already."), status=400)
        speak(self.languages.for_reader(subscriber.language,
                                        request.headers.get("accept-language")))
        if request.method != "POST":
            return self.page("erase.html", csrf=new_csrf_value(), subscriber=subscriber)
        if await self.form(request) is None:
            return self.message(_("Please try again"), _(
                "The form had expired. Reload the page and press the button again."),
                status=400)
        try:
            await run_in_threadpool(erase, self.config, [subscriber.email], "web")
        except ConfigError as error:
            # The key is missing or not the one earlier erases used: the operator's to fix
            # (the log says how); the reader is told to ask them, nothing was changed.
            log.error("erase from the reader's page refused: %s", error)
            contact = self.config.newsletter.reply_to or self.config.newsletter.from_
            return self.message(_("Not erased yet"), _(
                "Erasing is not possible right now. Nothing was changed; please write to "
                "%(contact)s to ask for it.", contact=contact), status=503)
        return self.message(_("You are erased"), _(
            "Everything %(newsletter)s stored about you is gone, and nothing more will be "
            "sent. You can sign up again at any time.", newsletter=self.config.newsletter.name))
