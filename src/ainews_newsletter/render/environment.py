"""The Jinja2 environment: StrictUndefined so a typo in a template fails the build instead of
sending an email with a blank, and autoescape so post text can never become markup."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import jinja2

from ainews_newsletter.errors import RenderError

TEXT_WIDTH = 72


def wrap(text: str, hang: str = "", width: int = TEXT_WIDTH) -> str:
    """Fold prose at `width` columns, continuation lines indented by `hang`; a long URL
    stays whole on its own line."""
    return textwrap.fill(str(text), width=width, subsequent_indent=hang,
                         break_long_words=False, break_on_hyphens=False)


def _autoescape(template_name: str | None) -> bool:
    return not (template_name or "").endswith(".txt.j2")


def make_environment(templates_dir: Path) -> jinja2.Environment:
    if not templates_dir.is_dir():
        raise RenderError(f"templates folder not found: {templates_dir}")
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir),
        undefined=jinja2.StrictUndefined,
        autoescape=_autoescape,
        keep_trailing_newline=True,
    )
    environment.filters["wrap"] = wrap
    return environment


def render_template(environment: jinja2.Environment, name: str, context: dict[str, Any]) -> str:
    try:
        return environment.get_template(name).render(context)
    except jinja2.TemplateNotFound as exc:
        raise RenderError(f"template not found: {exc.name}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise RenderError(f"{exc.filename or exc.name}:{exc.lineno}: template syntax error: "
                          f"{exc.message}") from None
    except jinja2.UndefinedError as exc:
        raise RenderError(f"template {name}: {exc.message}") from None
