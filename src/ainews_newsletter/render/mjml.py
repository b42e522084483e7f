"""MJML → responsive HTML (mjml-python, a Rust port of MJML) → CSS inlined (premailer),
because Gmail and Outlook drop or ignore much of a <style> block."""

from __future__ import annotations

import logging

import premailer
from mjml import mjml2html

from ainews_newsletter.errors import RenderError


def mjml_to_html(source: str) -> str:
    try:
        html: str = mjml2html(source, disable_comments=True)
    except Exception as exc:  # mjml-python raises a bare Exception subclass from Rust
        raise RenderError(f"MJML could not be compiled: {exc}") from None
    return html


def inline_css(html: str) -> str:
    inliner = premailer.Premailer(
        html,
        keep_style_tags=True,  # media queries for phones only work from a <style> block
        # MJML's mobile rules and our dark palette must beat the inlined styles: keep
        # their !important (premailer strips it by default).
        strip_important=False,
        remove_classes=False,
        disable_validation=True,
        allow_network=False,
        cssutils_logging_level=logging.CRITICAL,
    )
    result: str = inliner.transform()
    return result
