"""The CSS inliner (render/mjml.py, css-inline): what a mail client needs stays — the <style>
blocks with their media queries, the web font's <link>, classes — the rules land on the
elements, and CSS it cannot read is one clear RenderError, not a traceback."""

from __future__ import annotations

import pytest

from ainews_newsletter.errors import RenderError
from ainews_newsletter.render.mjml import inline_css, mjml_to_html

MJML = """<mjml><mj-head>
<mj-font name="Raleway" href="https://fonts.example.org/css?family=Raleway" />
<mj-style>.note { color: #336699; } @media (prefers-color-scheme: dark) {
 .note { color: #eeeeee !important; } }</mj-style>
</mj-head><mj-body><mj-section><mj-column>
<mj-text font-family="Raleway" css-class="note">Hello</mj-text>
</mj-column></mj-section></mj-body></mjml>"""


def test_style_blocks_links_and_classes_stay_and_rules_are_inlined() -> None:
    html = inline_css(mjml_to_html(MJML))
    assert '<link href="https://fonts.example.org/css?family=Raleway"' in html
    assert "prefers-color-scheme: dark" in html and "!important" in html
    assert 'class="note"' in html
    assert "color: #336699" in html  # the class's rule, on the element
    assert html.endswith("\n")


def test_css_that_is_not_css_is_one_render_error() -> None:
    broken = ('<html><head><style>a{color:red}</style></head><body>'
              '<a style="{{{;;:" href="https://x.example/">a</a></body></html>')
    with pytest.raises(RenderError, match=r"the CSS could not be inlined \(.+\): look for a "
                                          r"style attribute"):
        inline_css(broken)
