"""The Jinja2 environments of the web pages, everything escaped (user input and post titles
end up in these pages).

The public pages of `ainews serve` are the user's to edit, found like the email's templates,
file by file: `templates/web/<name>.html` beside the config file when that file exists,
else the shipped one. So a newsletter can override subscribe.html alone and keep the shipped
base.html it extends. The shipped copy has one home, the repository's `templates/web/`, which
hatchling puts into the wheel with the rest of `templates/` (see resources.py). The writer's
preview page is the tool's own and stays in the package (web/templates)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from jinja2 import (
    BaseLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    TemplateError,
    TemplateSyntaxError,
    select_autoescape,
)

from ainews_newsletter import translations
from ainews_newsletter.config import Config
from ainews_newsletter.errors import RenderError
from ainews_newsletter.models import Period
from ainews_newsletter.render.environment import template_folders
from ainews_newsletter.render.localized import period_label

# Every page public.py renders: each must be found (in an override or the shipped copy) and
# compile before `ainews serve` listens.
PUBLIC_PAGES = ("archive.html", "base.html", "confirm.html", "embed.html", "erase.html",
                "message.html", "preferences.html", "subscribe.html", "unsubscribe.html")


def _environment(loader: BaseLoader, extensions: list[str] | None = None) -> Environment:
    return Environment(loader=loader, autoescape=select_autoescape(default=True),
                       trim_blocks=True, lstrip_blocks=True, extensions=extensions or [])


def page_templates() -> Environment:
    """The preview's page (web/templates/preview.html), shipped in the package only."""
    return _environment(PackageLoader("ainews_newsletter.web", "templates"))


def public_page_folders(config: Config) -> list[Path]:
    """Where public pages are looked for, first match wins: the `web/` of each folder the
    mails' templates are looked for in."""
    return [folder / "web" for folder in template_folders(config.templates_dir)]


def public_page_templates(config: Config,
                          language: str = translations.SOURCE) -> Environment:
    """The public pages' environment in `language`, every page compiled now: a broken
    override stops `ainews serve` at start-up with its file and line (a RenderError), not a
    traceback at the first reader's request. Jinja2's i18n extension (new-style gettext,
    `{% trans %}` trimmed as `pybabel extract` reads it) over the `web` catalogs; the pages
    also see `language` and `direction` (for `<html lang dir>`) and a `period` filter (an
    issue's days as the language writes them)."""
    environment = _environment(FileSystemLoader(public_page_folders(config)),
                               extensions=["jinja2.ext.i18n"])
    environment.policies["ext.i18n.trimmed"] = True
    catalog = translations.translations(language, "web", config.locale_dir)
    environment.install_gettext_translations(catalog, newstyle=True)  # type: ignore[attr-defined]
    environment.globals["language"] = language
    environment.globals["direction"] = (translations.direction(language)
                                        if language != translations.SOURCE else "ltr")

    def period(value: Period) -> str:
        return period_label(value, language)

    environment.filters["period"] = period
    extra = environment.list_templates(filter_func=lambda name: name.endswith(".html"))
    for name in dict.fromkeys([*PUBLIC_PAGES, *extra]):  # partials an override includes, too
        try:
            environment.get_template(name)
        except TemplateError as exc:
            raise RenderError(describe_failure(exc, name)) from None
    return environment


class PublicPages:
    """One environment per language, made at its first page and kept (a page's templates
    compile once per language, not per request). The newsletter's language is made at
    start-up, which checks every page."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._by_language = {config.newsletter.language:
                             public_page_templates(config, config.newsletter.language)}

    def environment(self, language: str) -> Environment:
        with self._lock:
            found = self._by_language.get(language)
            if found is None:
                found = self._by_language[language] = public_page_templates(self.config,
                                                                            language)
            return found


def render_page(environment: Environment, name: str, context: dict[str, Any]) -> str:
    """A page, or a RenderError naming the file and line that failed (an override can still
    fail while rendering: an `{% extends %}` of a missing file, a method of an undefined)."""
    try:
        return environment.get_template(name).render(context)
    except TemplateError as exc:
        raise RenderError(describe_failure(exc, name)) from None


def describe_failure(exc: TemplateError, name: str) -> str:
    """`<file>:<line>: <what>`, one line. Jinja2 rewrites a render error's traceback into
    frames of the template files, so the innermost one is where the failure is (maybe in
    base.html, not the page that was asked for)."""
    if isinstance(exc, TemplateSyntaxError):
        where = f"{exc.filename or exc.name or name}:{exc.lineno}"
        return f"{where}: template syntax error: {exc.message}"
    where = name
    frame = exc.__traceback__
    while frame is not None:
        filename = frame.tb_frame.f_code.co_filename
        if filename.endswith(".html"):
            where = f"{filename}:{frame.tb_lineno}"
        frame = frame.tb_next
    kind = type(exc).__name__
    return f"{where}: {kind}: {exc}"
