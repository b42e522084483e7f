"""The reader's preferences: `/preferences/{token}` (the lists they are on, a CSRF-checked
form), `/preferences/{token}/language` (their own language, issue 30) and
`/preferences/{token}/data` ("Download my data"). Its own module, so the public site's file
stays a list of routes."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from ainews_newsletter import translations
from ainews_newsletter.config import Config
from ainews_newsletter.models import Subscriber
from ainews_newsletter.pipeline.issue import open_subscribers
from ainews_newsletter.web.page_language import Languages, _, speak
from ainews_newsletter.web.security import SECURITY_HEADERS, new_csrf_value

Page = Callable[..., HTMLResponse]
Form = Callable[[Request], Awaitable[Mapping[str, Any] | None]]


def own_name(tag: str) -> str:
    """A language by its own name, as a menu shows it: "Deutsch", "Français", "日本語",
    "العربية" (CLDR's name, its first letter capitalized as menus of most languages do)."""
    name = translations.babel_locale(tag).display_name or tag
    return name[:1].upper() + name[1:]


class PreferencesPage:
    def __init__(self, config: Config, page: Page, message: Page, form: Form,
                 languages: Languages) -> None:
        self.config, self.page, self.message, self.form = config, page, message, form
        self.languages = languages
        self.choices = [(tag, own_name(tag)) for tag in languages.available]

    def _bad_link(self) -> HTMLResponse:
        return self.message(_("That link does not work"),
                            _("This preferences link is not valid."), status=400)

    def _expired(self) -> HTMLResponse:
        return self.message(_("Please try again"), _(
            "The form had expired. Reload the page and save again."), status=400)

    async def _reader(self, request: Request) -> Subscriber | None:
        """The link's reader; the rest of the request in their language."""
        found = await run_in_threadpool(open_subscribers(self.config).by_token,
                                        str(request.path_params["token"]))
        if found is not None:
            speak(self.languages.for_reader(found.language,
                                            request.headers.get("accept-language")))
        return found

    async def lists(self, request: Request) -> Response:
        subscriber = await self._reader(request)
        if subscriber is None:
            return self._bad_link()
        saved = False
        if request.method == "POST":
            data = await self.form(request)
            if data is None:
                return self._expired()
            wanted = [info.name for info in await self._offered(subscriber)
                      if data.get(f"list:{info.name}") == "on"]
            subscriber = await run_in_threadpool(open_subscribers(self.config).set_lists,
                                                 subscriber.email, wanted)
            saved = True
        return await self._show(subscriber, saved=saved)

    async def language(self, request: Request) -> Response:
        """POST: the reader's own language, one of the offered tags (or a tag whose nearest
        is one, as `language_tags.closest` reads it: "pt" stores "pt-BR"), or "" for the
        newsletter's (NULL); anything else is refused (400) and nothing is stored."""
        subscriber = await self._reader(request)
        if subscriber is None:
            return self._bad_link()
        data = await self.form(request)
        if data is None:
            return self._expired()
        wanted = data.get("language")
        chosen = self.languages.known(wanted) if isinstance(wanted, str) else None
        if chosen is None and wanted != "":
            return self.message(_("Please try again"),
                                _("That language is not one of those offered."), status=400)
        store = open_subscribers(self.config)
        await run_in_threadpool(store.set_language, subscriber.id, chosen)
        refreshed = await run_in_threadpool(store.by_token, subscriber.token)
        if refreshed is None:  # erased meanwhile
            return self._bad_link()
        # The answer already speaks the reader's new choice.
        speak(self.languages.for_reader(chosen, request.headers.get("accept-language")))
        return await self._show(refreshed, saved_language=True)

    async def _offered(self, subscriber: Subscriber) -> list[Any]:
        # Only the lists they are on and the public default list: internal lists are
        # neither shown nor joinable from here.
        store = open_subscribers(self.config)
        return [info for info in await run_in_threadpool(store.lists)
                if info.name in subscriber.lists or info.name == store.default_list]

    async def _show(self, subscriber: Subscriber, saved: bool = False,
                    saved_language: bool = False) -> Response:
        return self.page("preferences.html", csrf=new_csrf_value(), subscriber=subscriber,
                         lists=await self._offered(subscriber), saved=saved,
                         saved_language=saved_language, languages=self.choices,
                         newsletter_language=own_name(self.languages.newsletter))

    async def my_data(self, request: Request) -> Response:
        """"Download my data": everything kept about the reader (pipeline/reader_data.py),
        as a JSON file; never cached, since it is one person's."""
        from ainews_newsletter.pipeline.reader_data import reader_data_by_token

        found = await run_in_threadpool(reader_data_by_token, self.config,
                                        str(request.path_params["token"]))
        if found is None:
            return self._bad_link()
        body = json.dumps(found, indent=2, ensure_ascii=False).encode("utf-8")
        return Response(body, media_type="application/json", headers={
            **SECURITY_HEADERS, "cache-control": "no-store",
            "content-disposition": 'attachment; filename="my-data.json"'})
