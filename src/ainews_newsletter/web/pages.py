"""The Jinja2 environment of the web pages: templates shipped in web/templates, everything
escaped (user input and post titles end up in these pages)."""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, select_autoescape


def page_templates() -> Environment:
    return Environment(loader=PackageLoader("ainews_newsletter.web", "templates"),
                       autoescape=select_autoescape(default=True), trim_blocks=True,
                       lstrip_blocks=True)
