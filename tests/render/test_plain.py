"""Post HTML as the plain-text part shows it (render/plain.py through html2text, folded by
render/text.py): the shapes a mail reader expects, link references matching the HTML's
links, no Markdown escapes, 72 columns except a URL, and a cost bounded on hostile nesting
(by what comes out, never by timing)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from ainews_newsletter.posts.text import sanitize_html
from ainews_newsletter.render.plain import MAX_NESTING, html_to_text
from ainews_newsletter.render.text import display_width, fold

LONG_URL = "https://example.org/" + "a1b2c3d4e5" * 198  # 2,000 characters


def text_of(fragment: str) -> str:
    return html_to_text(sanitize_html(fragment)).with_references()


def assert_fits(text: str, width: int = 72) -> None:
    """Every line within `width` columns, unless the word that overflows is a URL."""
    for line in text.splitlines():
        if display_width(line) > width:
            assert any("://" in word for word in line.split()), line


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.hrefs.append(href)


def test_paragraphs_stay_apart_and_emphasis_has_no_marks() -> None:
    text = text_of("<p>First <strong>bold</strong> and <em>quiet</em> words.</p>"
                   "<p>Second paragraph.</p>")
    assert text == "First bold and quiet words.\n\nSecond paragraph."


def test_nested_lists_are_bullets_indented_by_their_depth() -> None:
    text = text_of("<ul><li>Fruit<ul><li>Apples<ol><li>Cox</li><li>Gala</li></ol></li>"
                   "<li>Pears</li></ul></li><li>Bread</li></ul>")
    assert text.splitlines() == ["  * Fruit", "    * Apples", "      1. Cox", "      2. Gala",
                                 "    * Pears", "  * Bread"]


def test_a_long_list_item_folds_under_its_own_text() -> None:
    text = text_of("<ul><li>" + "many words in one item " * 8 + "</li></ul>")
    first, *rest = text.splitlines()
    assert first.startswith("  * many") and rest
    assert all(line.startswith("    ") and not line.startswith("     ") for line in rest)
    assert_fits(text)


def test_a_table_is_a_row_a_line() -> None:
    text = text_of("<p>Prices:</p><table><tr><th>Model</th><th>Price</th></tr>"
                   "<tr><td>Small</td><td>$1</td></tr><tr><td>Large</td><td>$9</td></tr>"
                   "</table><p>After.</p>")
    assert "Model | Price\nSmall | $1\nLarge | $9" in text
    assert "---" not in text and text.endswith("After.")


def test_a_blockquote_keeps_its_mark_on_every_folded_line() -> None:
    text = text_of("<p>She said:</p><blockquote><p>" + "quoted words " * 15 +
                   "</p><p>Second.</p></blockquote><p>Back.</p>")
    quoted = [line for line in text.splitlines() if line.startswith(">")]
    assert len(quoted) >= 4 and ">" in quoted and "> Second." in quoted
    assert all(line == ">" or line.startswith("> ") for line in quoted)
    assert text.endswith("\n\nBack.")
    assert_fits(text)


def test_code_keeps_its_lines_and_characters() -> None:
    text = text_of("<p>Run:</p><pre><code>def f(x_y):\n    return x_y * 2  # [a] \\d+\\.\n"
                   "</code></pre><p>Inline <code>a_b*c</code> too.</p>")
    assert "    def f(x_y):\n        return x_y * 2  # [a] \\d+\\." in text
    assert "Inline `a_b*c` too." in text


def test_headings_are_underlined_and_images_are_their_alt_text() -> None:
    text = text_of('<h2>What changed</h2><p><img src="https://x.example/i.png" '
                   'alt="A chart [rising]"> below.</p><h3>日本語</h3>')
    assert text.startswith("What changed\n------------\n\nA chart [rising] below.")
    assert text.endswith("日本語\n------")  # three wide characters: six columns


def test_no_markdown_escape_reaches_the_reader() -> None:
    words = r"1986. was a year; - dash; + plus; # hash; * star_under [x](y) a\b \* {}!"
    text = text_of(f"<p>{words}</p><p>1. Not a list</p><p>- not a bullet</p>")
    assert words in " ".join(text.split("\n"))
    assert "\n1. Not a list\n" in f"\n{text}\n" and "\n- not a bullet" in text
    assert "\\[" not in text and "\\." not in text and "\\-" not in text


def test_links_are_numbered_references_under_the_text() -> None:
    fragment = sanitize_html(
        '<p>Read <a href="https://a.example/paper">the paper</a>, the <a '
        'href="https://b.example/code">code</a> and <a href="https://a.example/paper">the '
        'paper again</a>; mail <a href="mailto:desk@news.example">the desk</a> or visit '
        '<a href="https://c.example/">https://c.example/</a>.</p>'
        '<ul><li><a href="https://d.example/x?a=1&amp;b=2">listed</a></li></ul>')
    plain = html_to_text(fragment)
    assert "Read the paper [1], the code [2] and the paper again [1]; mail the desk [3]" \
        in " ".join(plain.body.split("\n"))
    assert "visit https://c.example/." in plain.body  # shows its own address: no number
    assert "  * listed [4]" in plain.body
    assert plain.links == ("https://a.example/paper", "https://b.example/code",
                           "mailto:desk@news.example", "https://d.example/x?a=1&b=2")
    assert plain.with_references().endswith(
        "\n\n[1] https://a.example/paper\n[2] https://b.example/code\n"
        "[3] mailto:desk@news.example\n[4] https://d.example/x?a=1&b=2")
    # Every link of the HTML is in the text: numbered, or shown as it is.
    parser = _Links()
    parser.feed(fragment)
    assert set(parser.hrefs) == set(plain.links) | {"https://c.example/"}
    assert all(href in plain.with_references() for href in parser.hrefs)


def test_a_2000_character_url_is_never_broken() -> None:
    text = text_of(f'<p>The full record is <a href="{LONG_URL}">here</a> and also at '
                   f'{LONG_URL} for anyone.</p>')
    lines = text.splitlines()
    assert LONG_URL in lines  # alone on its line in the text...
    assert f"[1] {LONG_URL}" in lines  # ...and whole in the references
    assert_fits(text)


def test_japanese_folds_at_72_columns_and_arabic_at_spaces() -> None:
    japanese = "日本語の文章は空白なしで続くので、七十二桁で折り返されなければなりません。" * 4
    arabic = "هذا نص عربي طويل يجب أن يلتف عند المسافات وليس داخل الكلمات " * 4
    text = text_of(f"<p>{japanese}</p><p>{arabic}</p>")
    lines = text.splitlines()
    assert all(display_width(line) <= 72 for line in lines)
    folded = [line for line in lines if line and "\u3040" <= line[0] <= "\u9fff"]
    assert len(folded) >= 4 and "".join(folded) == japanese  # nothing lost or added
    assert not any(line.startswith(("、", "。")) for line in folded)  # kinsoku
    arabic_lines = [line for line in lines if "عربي" in line or "الكلمات" in line]
    assert " ".join(arabic_lines) == arabic.strip()


def test_every_line_fits_except_url_lines_in_a_mixed_post() -> None:
    text = text_of("<h2>" + "A heading of many words " * 4 + "</h2><p>" + "prose " * 60 +
                   f'<a href="{LONG_URL}">linked</a></p><ul><li>' + "item words " * 20 +
                   "<ul><li>" + "deeper words " * 15 + "</li></ul></li></ul><blockquote><p>" +
                   "quote " * 40 + "</p></blockquote><p>" + "Donaudampfschiff" * 6 + "</p>")
    assert_fits(text)
    assert "Donaudampfschiff" * 6 not in text  # a long word that is no URL is cut...
    assert "Donaudampfschiff" * 6 in text.replace("\n", "")  # ...and nothing lost


def test_deep_nesting_is_flattened_to_a_bounded_indent() -> None:
    """2,000 nested quotes or lists (what the nesting guard lets through) cost html2text a
    ">" or an indent per level per line: they are kept to MAX_NESTING levels, so the text
    grows with the post, not with its depth times its length."""
    quotes = "<blockquote>" * 1_999 + "<p>deep</p>" * 100 + "</blockquote>" * 1_999
    text = text_of(quotes)
    assert text.count("deep") == 100
    assert max(len(re.match(r"[> ]*", line).group(0)) for line in text.splitlines()) \
        <= 2 * MAX_NESTING + 1
    lists = "<ul><li>x" * 1_999 + "</li></ul>" * 1_999
    listed = text_of(lists)
    assert listed.count("* x") == 1_999
    assert max(len(line) for line in listed.splitlines()) <= 2 * MAX_NESTING + 3


@pytest.mark.parametrize(("text", "width", "expected"), [
    ("one two three", 7, ["one two", "three"]),
    ("see https://example.org/a/very/long/path now", 10,
     ["see", "https://example.org/a/very/long/path", "now"]),
    ("abcdefghij", 4, ["abcd", "efgh", "ij"]),
    ("日本語です。", 6, ["日本語", "です。"]),
])
def test_fold(text: str, width: int, expected: list[str]) -> None:
    assert fold(text, width) == expected


def test_fold_hangs_continuation_lines() -> None:
    assert fold("aa bb cc dd", 7, "* ", "  ") == ["* aa bb", "  cc dd"]
