"""The text part's edges found in review: the cost of a long line of code, `<ol start>` of
thousands of digits, the private-use marks render/plain.py uses while html2text works
(headings in a list item or a cell, code in a list item), a link's reference in CJK text,
post tables in a rendered mail, paragraphs and line breaks in a list item, a linked image
without alt. Sizes are asserted, never times (a stall is the fuzz way's to catch)."""

from __future__ import annotations

import re

from ainews_newsletter.posts.text import sanitize_html
from ainews_newsletter.render.plain import MAX_HANG, html_to_text
from ainews_newsletter.render.text import display_width, fold

PRIVATE_USE = re.compile("[\ue000-\uf8ff]")


def text_of(fragment: str) -> str:
    return html_to_text(sanitize_html(fragment)).with_references()


def test_a_million_character_line_of_code_is_cut_at_72_columns_and_kept_whole() -> None:
    """One walk over the line (it was measured again from each cut: 33 s for 100,000 "é")."""
    text = text_of("<pre><code>" + "\u00e9" * 1_000_000 + "</code></pre>")
    lines = text.splitlines()
    assert all(display_width(line) <= 72 for line in lines)
    assert "".join(line.strip() for line in lines) == "\u00e9" * 1_000_000
    assert len(fold("x" * 40_000, 72, hard=True)) == -(-40_000 // 72)


def test_code_is_cut_at_its_last_space_that_fits_and_a_url_line_is_left_whole() -> None:
    assert fold("aaa bbb ccc", 8, "> ", "> ", hard=True) == ["> aaa", "> bbb", "> ccc"]
    assert fold("  indented " + "y" * 10, 8, hard=True) == ["  indent", "ed", "yyyyyyyy",
                                                            "yy"]
    url = "see https://example.org/" + "a" * 100
    assert fold(url, 72, hard=True) == [url]
    # A tab counts one column, as display_width counts it in ASCII text.
    assert fold("\ta" * 5, 4, hard=True) == ["\ta\ta", "\ta\ta", "\ta"]


def test_a_huge_list_start_neither_survives_the_sanitizer_nor_widens_the_text() -> None:
    post = '<ol start="' + "9" * 4_000 + '"><li>' + "word " * 2_000 + "</li></ol>"
    assert "start" not in sanitize_html(post)
    assert 'start="12"' in sanitize_html('<ol start="12"><li>x</li></ol>')
    text = text_of(post)
    assert len(text) < 2 * len(post)
    # Past the sanitizer (a rendered mail is not sanitized again), the indent is capped.
    raw = html_to_text('<ol start="' + "9" * 4_000 + '"><li>' + "word " * 2_000 +
                       "</li></ol>").body
    assert len(raw) < 2 * len(post)
    assert all(len(line) - len(line.lstrip(" ")) <= MAX_HANG + 2
               for line in raw.splitlines()[1:])


def test_no_private_use_mark_reaches_the_text() -> None:
    text = text_of("<ul><li><h2>Listed heading</h2></li></ul><h2></h2>"
                   "<table><tr><td>a</td><td><h3>cell heading</h3></td></tr></table>"
                   "<p>\ue001\ue002 \uf8ff kept</p>")
    assert PRIVATE_USE.search(text) is None
    assert "  * Listed heading" in text
    assert "a | cell heading" in text  # the heading stays on its row
    assert "\n-\n" not in f"\n{text}\n"  # no underline under an empty heading
    assert "kept" in text


def test_code_in_a_list_item_shows_no_code_marks() -> None:
    from markdown_it import MarkdownIt  # the posts' Markdown reader (posts/markdown.py)

    fenced = MarkdownIt("commonmark").render(
        "- item\n\n  ```python\n  x = 1\n    y = 2\n  ```\n- next\n")
    assert text_of(fenced).splitlines() == ["  * item", "", "        x = 1",
                                            "          y = 2", "", "  * next"]
    for fragment in ("<ul><li><pre><code>x = 1\ny = 2</code></pre></li></ul>",
                     "<blockquote><ul><li><p>item</p><pre><code>x = 1\ny = 2</code></pre>"
                     "</li></ul></blockquote>"):
        text = text_of(fragment)
        assert "[code]" not in text and "[/code]" not in text, text
        assert "x = 1" in text and "y = 2" in text


def test_a_links_reference_never_starts_a_line_in_cjk_text() -> None:
    body = html_to_text("<p>" + "\u8a9e" * 33 +
                        '<a href="https://example.org/">\u30ea\u30f3\u30af</a>'
                        "\u3067\u3059\u3002</p>").body
    assert len(body.splitlines()) == 2
    assert not any(line.startswith((" ", "[")) for line in body.splitlines())
    assert "\u30af [1]" in body


def test_a_post_table_in_a_rendered_mail_keeps_its_cells_apart() -> None:
    mail = ('<table role="presentation"><tr><td><p>Intro</p>'
            "<table><tr><th>Model</th><th>Price</th></tr>"
            "<tr><td>Small</td><td>$1</td></tr></table></td></tr></table>")
    text = html_to_text(mail, layout=True).body
    assert "Model | Price" in text and "Small | $1" in text and "Intro" in text


def test_paragraphs_and_line_breaks_in_a_list_item_keep_its_indent() -> None:
    text = text_of("<ul><li><p>one</p><p>two</p></li><li>x<br>y</li></ul>")
    assert text.splitlines() == ["  * one", "", "    two", "", "  * x", "    y"]


def test_a_linked_image_without_alt_keeps_its_link() -> None:
    text = text_of('<p><a href="https://example.org/i"><img src="https://example.org/p.png">'
                   '</a> and <a href="https://example.org/j"></a></p>')
    assert "[1] https://example.org/i" in text and "[2] https://example.org/j" in text
    assert text.splitlines()[0] == "[1] and [2]"


def test_a_rendered_mail_is_not_held_to_a_posts_tag_limit() -> None:
    """Two posts of 14,000 paragraphs each pass 50,000 tags together: the mail is ours
    (its posts were bounded when read), so it is not bounded again."""
    mail = "<table role=\"presentation\"><tr><td>" + "<p>para</p>" * 28_000 + \
        "</td></tr></table>"
    assert html_to_text(mail, layout=True).body.count("para") == 28_000
