"""MJML → responsive HTML (mjml-python, a Rust port of MJML) → CSS inlined (css-inline, a
Rust inliner), because Gmail and Outlook drop or ignore much of a <style> block.

css-inline and not premailer: a send renders the issue once, so the inliner's own time does
not matter, but premailer's start does (importing it with lxml and cssutils, and cssutils'
first parse: about 0.4 s of every `ainews send`, against 0.03 s; BENCHMARKS.md). Unlike
premailer it does not copy CSS widths, colours and alignment into HTML attributes
(`width`, `bgcolor`, `align`): Outlook's Word engine reads MJML's own attributes in the
`<!--[if mso]>` tables MJML writes for it, so the CSS is only inlined, as written."""

from __future__ import annotations

from mjml import mjml2html

from ainews_newsletter.errors import RenderError


def mjml_to_html(source: str) -> str:
    try:
        html: str = mjml2html(source, disable_comments=True)
    except Exception as exc:  # mjml-python raises a bare Exception subclass from Rust
        raise RenderError(f"MJML could not be compiled: {exc}") from None
    return html


def inline_css(html: str) -> str:
    import css_inline

    # The <style> blocks stay: media queries for phones and the dark palette only work
    # from there, and their !important rules beat the inlined styles. Classes stay too
    # (those rules select by them), and the <link> of a web font (<mj-font>); no stylesheet
    # is fetched from the network.
    inliner = css_inline.CSSInliner(keep_style_tags=True, keep_link_tags=True,
                                    load_remote_stylesheets=False)
    try:
        result: str = inliner.inline(html)
    except ValueError as exc:  # css-inline's InlineError (a ValueError): CSS it cannot read
        raise RenderError(
            f"the CSS could not be inlined ({exc}): look for a style attribute or a <style> "
            "block the templates write themselves (mj-raw, mj-style, an attribute's value) "
            "that is not CSS") from None
    # One final newline, as a MIME body ends (the message would add it, and the copy kept
    # for the archive and the preview would differ from the one sent).
    return result if result.endswith("\n") else result + "\n"
