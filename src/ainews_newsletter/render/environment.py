"""The Jinja2 environment of the mails: StrictUndefined so a typo in a template fails the build
instead of sending an email with a blank, and autoescape so post text can never become markup.

Templates are found file by file: the operator's folder (`templates/` beside the config, see
Config.templates_dir) first, then the shipped copy. So a folder made before a template
existed (one without confirmation.txt.j2 or partials/more.mjml.j2) keeps working, and an
operator can override digest.txt.j2 alone."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta

from ainews_newsletter import resources, translations
from ainews_newsletter.errors import RenderError

TEXT_WIDTH = 72


def wrap(text: str, hang: str = "", width: int = TEXT_WIDTH) -> str:
    """Fold prose at `width` columns, continuation lines indented by `hang`; a long URL
    stays whole on its own line."""
    return textwrap.fill(str(text), width=width, subsequent_indent=hang,
                         break_long_words=False, break_on_hyphens=False)


def _autoescape(template_name: str | None) -> bool:
    return not (template_name or "").endswith(".txt.j2")


def template_folders(templates_dir: Path) -> list[Path]:
    """Where templates are looked for, first match wins: `templates_dir`, then the shipped
    copy (once, when they are the same folder, as for the sample config in a checkout)."""
    shipped = resources.shipped("templates")
    return [shipped] if templates_dir.resolve() == shipped.resolve() else [templates_dir, shipped]


def text_from_html(environment: jinja2.Environment, html_name: str, text_name: str) -> bool:
    """Whether the text part is made from the rendered HTML: the environment reads an
    operator's own folder, that folder overrides the HTML (`html_name` itself, or a
    template it includes, such as partials/post.mjml.j2) and leaves out `text_name`. A
    folder that only holds other templates (web/subscribe.html), or all of them as
    `ainews init` copies them, keeps the shipped text template."""
    loader = environment.loader
    if not isinstance(loader, jinja2.ChoiceLoader) or len(loader.loaders) < 2:
        return False
    own = loader.loaders[0]
    if not isinstance(own, jinja2.FileSystemLoader):
        return False
    folder = Path(own.searchpath[0])
    if (folder / text_name).is_file():
        return False
    if (folder / html_name).is_file():
        return True
    try:
        source = loader.get_source(environment, html_name)[0]
        used = jinja2.meta.find_referenced_templates(environment.parse(source))
    except jinja2.TemplateError:
        return False  # reported where the template is rendered
    return any(name is not None and (folder / name).is_file() for name in used)


def make_environment(templates_dir: Path, language: str = translations.SOURCE,
                     locale_dir: Path | None = None) -> jinja2.Environment:
    """The mails' environment in `language`: Jinja2's i18n extension with new-style gettext
    over the `mail` catalogs (translations.py), so `{{ _("Unsubscribe") }}` and
    `{% trans %}` blocks come out translated and placeholders are checked; the templates
    also see `language` (for `<html lang>`) and `direction` ("ltr" or "rtl")."""
    if not templates_dir.is_dir():
        raise RenderError(f"templates folder not found: {templates_dir}")
    environment = jinja2.Environment(
        loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(folder)
                                    for folder in template_folders(templates_dir)]),
        undefined=jinja2.StrictUndefined,
        autoescape=_autoescape,
        keep_trailing_newline=True,
        extensions=["jinja2.ext.i18n"],
    )
    environment.filters["wrap"] = wrap
    # {% trans %} blocks without their line breaks and indents, as `pybabel extract` reads
    # them (trimmed = true in locale/mail.cfg).
    environment.policies["ext.i18n.trimmed"] = True
    catalog = translations.translations(language, "mail", locale_dir)
    environment.install_gettext_translations(catalog, newstyle=True)  # type: ignore[attr-defined]
    environment.globals["language"] = language
    environment.globals["direction"] = (translations.direction(language)
                                        if language != translations.SOURCE else "ltr")
    return environment


def compile_template(environment: jinja2.Environment, name: str) -> None:
    """Load `name` now, so a broken override stops a long-running command at start-up with
    its file and line (a RenderError) instead of failing later, at its first use."""
    try:
        environment.get_template(name)
    except (jinja2.TemplateNotFound, jinja2.TemplateSyntaxError) as exc:
        raise RenderError(_failure(exc, name)) from None


def render_template(environment: jinja2.Environment, name: str, context: dict[str, Any]) -> str:
    try:
        return environment.get_template(name).render(context)
    except (jinja2.TemplateNotFound, jinja2.TemplateSyntaxError, jinja2.UndefinedError) as exc:
        raise RenderError(_failure(exc, name)) from None


def _failure(exc: jinja2.TemplateError, name: str) -> str:
    """One line saying which template failed, where, and how."""
    if isinstance(exc, jinja2.TemplateNotFound):
        return f"template not found: {exc.name}"
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return f"{exc.filename or exc.name}:{exc.lineno}: template syntax error: {exc.message}"
    return f"template {name}: {exc.message}"
