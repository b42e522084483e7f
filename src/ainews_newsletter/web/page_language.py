"""Which language a public page is shown in (issue 30), and its words in Python.

A page whose link names a reader (a token: preferences, unsubscribe, erase, the
confirmation link) speaks the reader's own language when they chose one; every other page,
and those readers without one, the best of the browser's Accept-Language among the
languages there are catalogs for; failing both, the newsletter's ([newsletter] language).
The archive and the feed are the newsletter's: the issues are stored in it.

The choice is made once per request (`RequestLanguage`, an ASGI wrapper, from the header)
and kept in a context variable, so the site's many `self.message(...)` calls and the
page renderer need no extra argument; a token page replaces it with the reader's (`speak`).
`_` translates a message of the site's Python code in that language, in the `web` domain."""

from __future__ import annotations

import gettext as gettext_module
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from ainews_newsletter import language_tags, translations
from ainews_newsletter.config import Config


@dataclass(frozen=True)
class PageLanguage:
    tag: str  # BCP 47, one of the available languages (or the newsletter's)
    # Chosen from Accept-Language: the answer then says `Vary: Accept-Language`.
    from_header: bool
    catalog: gettext_module.NullTranslations

    @property
    def direction(self) -> str:
        return "ltr" if self.tag == translations.SOURCE else translations.direction(self.tag)


_current: ContextVar[PageLanguage | None] = ContextVar("ainews_page_language", default=None)


class Languages:
    """The site's languages: those with catalogs (shipped, or the operator's `locale/`)
    and the newsletter's own."""

    def __init__(self, config: Config) -> None:
        self.locale_dir: Path | None = config.locale_dir
        self.newsletter = config.newsletter.language
        self.available = translations.available_languages(self.locale_dir, "web")

    def make(self, tag: str, from_header: bool = False) -> PageLanguage:
        return PageLanguage(tag, from_header,
                            translations.translations(tag, "web", self.locale_dir))

    def newsletters(self) -> PageLanguage:
        return self.make(self.newsletter)

    def from_header(self, header: str | None) -> PageLanguage:
        """The best of Accept-Language, else the newsletter's language. The answer varies
        with the header either way (another header could have chosen another)."""
        return self.make(language_tags.negotiate(header, self.available) or self.newsletter,
                         from_header=True)

    def known(self, tag: str | None) -> str | None:
        """The available language `tag` names, as it is spelled there ("DE" → "de"; a
        region without a catalog of its own, as an import may have stored it, finds its
        language: "de-AT" → "de"), else None: `language_tags.closest`."""
        return language_tags.closest(tag, self.available)

    def for_reader(self, reader_language: str | None, header: str | None) -> PageLanguage:
        known = self.known(reader_language)
        return self.make(known) if known else self.from_header(header)


def current() -> PageLanguage | None:
    return _current.get()


def speak(language: PageLanguage) -> None:
    """Show the rest of this request's pages and messages in `language`."""
    _current.set(language)


def _(message: str, **values: Any) -> str:
    """`message` in the current page's language (English outside a request), its
    `%(name)s` placeholders filled from `values`."""
    language = _current.get()
    text = language.catalog.gettext(message) if language is not None else message
    return text % values if values else text


def N_(message: str) -> str:  # the name `pybabel extract` knows
    """Marks a message for extraction where it is written; translated where shown."""
    return message


class RequestLanguage:
    """Sets the request's language from its Accept-Language header before the app runs."""

    def __init__(self, app: ASGIApp, languages: Languages) -> None:
        self.app, self.languages = app, languages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            header = next((value.decode("latin-1") for name, value in scope["headers"]
                           if name == b"accept-language"), None)
            token = _current.set(self.languages.from_header(header))
            try:
                await self.app(scope, receive, send)
            finally:
                _current.reset(token)
            return
        await self.app(scope, receive, send)
