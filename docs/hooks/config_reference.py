"""MkDocs hook: fills the configuration reference page from the config models.

The page (docs/reference/configuration.md) holds a marker line; this replaces it with the
tables `ainews_newsletter.config.reference.markdown()` makes from the models, so every key's
type, default, environment variable and description come from the one place they are
written. tests/test_docs.py checks that no key lacks a description."""

from __future__ import annotations

from typing import Any

MARKER = "<!-- config-reference -->"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if MARKER not in markdown:
        return markdown
    from ainews_newsletter.config.reference import markdown as reference

    return markdown.replace(MARKER, reference())
