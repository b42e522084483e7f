"""HTML → the plain-text part, through html2text, set up once for mail: paragraphs kept,
lists as `* ` bullets (nested ones indented), headings underlined, emphasis without marks,
links as numbered references ("the paper [1]", then "[1] https://…" under the text),
images as their alt text, tables a row a line, code kept as written; folded at 72 columns
(`fold`), never inside a URL; no Markdown escapes.

html2text writes Markdown; what a mail reader would see of it is taken out here: its
escaping is off (data is passed on as an entity's text, which it never escapes), links,
images, headings, tables and abbreviations are handled by `_MailText` before html2text's
own code sees them (its reference numbering also scans every earlier link per link:
quadratic), and code blocks are found by its `[code]` marks.

Cost: the fragment passes `html_limits.bounded` (at most 2,000 elements deep, 50,000 tags)
and lists and quotes deeper than MAX_NESTING are flattened into the deepest level kept
(html2text indents each line by its depth: 2,000 nested quotes would write 2,000 ">" per
line), so the work is linear in the fragment. html2text is imported where it is used
(start-up: tests/test_cli_startup.py)."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from ainews_newsletter.html_limits import bounded
from ainews_newsletter.render.text import TEXT_WIDTH, display_width, fold, tidy

MAX_NESTING = 8
_NESTED = frozenset({"ul", "ol", "blockquote"})
_ELEMENT = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*)\b[^<>]*>")
# Any element of a post deeper than this loses its tags, in both parts: HTML parsers give
# up on deep documents (lxml, under the premailer we used, stopped past 256 levels and
# dropped the footer with its unsubscribe link; mail clients have limits of their own).
MAX_DEPTH = 64
# Private-use characters stand in for what html2text must not touch while it works:
# "[" of the data (so only html2text's own `[code]` marks and our link marks are brackets),
# the start of a heading (with its level), and the space before a link's mark (no fold
# there). Every private-use character of the input is dropped first, and any left at the end
# (a mark html2text put where `_finish` does not look for it) is dropped from the text.
# In a list item, html2text strips the first line of a code block of its indent (and puts
# it on the `[code]` line); `_CODE_START` before it keeps the line whole, on a line of its own.
_BRACKET, _HEADING, _JOIN, _CODE_START = "\ue000", "\ue001", "\ue002", "\ue003"
_PRIVATE = re.compile("[\ue000-\uf8ff]")
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_TABLE_TAGS = frozenset({"table", "tr", "td", "th", "caption"})
# A continuation line of a list item is indented by its lead ("* ", "12. "), at most this
# many columns: `<ol start>` with thousands of digits would otherwise indent every line
# by thousands of spaces.
MAX_HANG = 8
_SCHEMES = ("http://", "https://", "mailto:")
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none", re.IGNORECASE)
_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
                   "param", "source", "track", "wbr"})


@dataclass(frozen=True)
class PlainText:
    """A fragment as text: `body` folded, links marked [n] in it, `links[n - 1]` the URL."""

    body: str
    links: tuple[str, ...]

    def with_references(self) -> str:
        """The body, then its links under it, one a line ("[1] https://…")."""
        if not self.links:
            return self.body
        listed = "\n".join(f"[{number}] {url}" for number, url in
                           enumerate(self.links, start=1))
        return f"{self.body}\n\n{listed}" if self.body else listed


def html_to_text(fragment: str, layout: bool = False, width: int = TEXT_WIDTH) -> PlainText:
    """`fragment` (a post's sanitized HTML; with `layout`, a whole rendered mail, whose
    tables are layout: their cells become paragraphs, hidden elements are left out) as
    text, or TooMuchHtml (html_limits) for a post. A rendered mail is not bounded: it is
    ours, its posts were bounded and kept to MAX_DEPTH when they were read, and two long
    posts pass the tag limit together."""
    source = flattened(_PRIVATE.sub("", fragment if layout else bounded(fragment)),
                       MAX_NESTING, _NESTED)
    converter = _converter_class()(layout)
    markdown = converter.handle(source)
    return PlainText(_finish(markdown, width), tuple(converter.references))


def text_of_mail(rendered_html: str) -> str:
    """A whole rendered mail's text part made from its HTML (an operator's own HTML
    template without a text template of its own: digest and welcome alike)."""
    return tidy(html_to_text(rendered_html, layout=True).with_references())


def text_escape(text: str) -> str:
    """Plain text as one paragraph of HTML."""
    return f"<p>{html.escape(text, quote=False)}</p>" if text.strip() else ""


def flattened(fragment: str, limit: int, names: frozenset[str] | None = None) -> str:
    """`fragment` with no element (of `names`, or of any kind) more than `limit` deep: the
    start and end tags of deeper ones are dropped, their content stays where it is; an end
    tag with no start is dropped too. One linear pass over sanitized (well-formed) HTML."""
    if fragment.count("<") <= limit:
        return fragment
    stacks: dict[str, list[bool]] = {}
    depth = 0
    pieces: list[str] = []
    last = 0
    for match in _ELEMENT.finditer(fragment):
        name = match.group(2).lower()
        if (name not in names) if names is not None else (
                name in _VOID or match.group(0).endswith("/>")):
            continue
        stack = stacks.setdefault(name, [])
        if not match.group(1):
            keep = depth < limit
            stack.append(keep)
            depth += 1
        elif stack:
            keep = stack.pop()
            depth -= 1
        else:
            keep = False
        if not keep:
            pieces.append(fragment[last:match.start()])
            last = match.end()
    pieces.append(fragment[last:])
    return "".join(pieces)


@cache
def _converter_class() -> type[Any]:
    """`_MailText`, made on first use: html2text is imported only when text is made."""
    import html2text

    class _MailText(html2text.HTML2Text):
        def __init__(self, layout: bool) -> None:
            super().__init__(bodywidth=0)
            self.layout = layout
            self.unicode_snob = True  # é, “, — stay themselves
            self.ignore_emphasis = True
            # Tables are handled by `_table`, except (in a rendered mail) MJML's layout
            # tables (role="presentation"), whose cells html2text makes paragraphs.
            self.ignore_tables = True
            self.tables: list[bool] = []  # whether each open table is layout
            self.cells = 0  # open data cells: a heading in one stays on the row
            self.in_item_lead = False  # html2text is writing a list item's lead
            self.item_break = False  # a <br> in a list item: indent the next line
            self.mark_code = True
            self.ul_item_mark = "*"
            self.references: list[str] = []
            self.numbers: dict[str, int] = {}
            self.anchors: list[tuple[str | None, list[str]]] = []  # (href, text seen)
            self.hidden: list[int] = []  # depth inside an element hidden by its style
            self.cell = 0

        def handle_data(self, data: str, entity_char: bool = False) -> None:
            if self.hidden:
                return
            if self.anchors:  # the innermost link's text (sanitized HTML never nests them)
                self.anchors[-1][1].append(data)
            # As an entity's text: html2text escapes no Markdown in that.
            super().handle_data(data.replace("[", _BRACKET), True)

        def handle_tag(self, tag: str, attrs: dict[str, str | None], start: bool) -> None:
            if self.hidden:
                if tag not in _VOID:
                    self.hidden[-1] += 1 if start else -1
                    if self.hidden[-1] == 0:
                        self.hidden.pop()
                return
            if start and tag not in _VOID and _HIDDEN_STYLE.search(attrs.get("style") or ""):
                self.hidden.append(1)
                return
            if tag == "abbr":
                return  # html2text would list its title as a Markdown footnote
            if tag == "a":
                self._anchor(attrs, start)
            elif tag == "img":
                if start and self.anchors:
                    self.anchors[-1][1].append("\0")  # a linked image: not a bare link
                if start and (attrs.get("alt") or "").strip():
                    self.o((attrs.get("alt") or "").strip().replace("[", _BRACKET))
            elif tag in _HEADINGS:
                if self.cells:
                    return  # a heading in a cell: its text stays on the row
                self.p()
                if start and not self.list:  # in a list item: the item's text, no mark
                    self.o(f"{_HEADING}{tag[1]}")
            elif tag in _TABLE_TAGS and not self._layout_table(tag, attrs, start):
                self._table(tag, start)
            elif tag == "li":
                self.in_item_lead = True
                super().handle_tag(tag, attrs, start)
                self.in_item_lead = False
            else:
                super().handle_tag(tag, attrs, start)
                if tag == "br" and start and self.list and not self.pre:
                    self.item_break = True

        def o(self, data: str, puredata: bool = False, force: bool | str = False) -> None:
            # A paragraph or a line after <br> inside a list item keeps the item's indent
            # (html2text starts it at the margin).
            if (self.list and not self.in_item_lead and not self.start and not self.pre
                    and not force and data.strip() and (self.p_p or self.item_break)
                    and self.list_code_indent):
                self.item_break = False
                super().o(self.list_code_indent)
            if self.startpre and self.list and data:
                data = _CODE_START + ("" if data.startswith("\n") else "\n") + data
            super().o(data, puredata, force)

        def _layout_table(self, tag: str, attrs: dict[str, str | None], start: bool) -> bool:
            """Whether `tag` belongs to one of MJML's layout tables (then html2text, with
            ignore_tables, makes its cells paragraphs); only in a rendered mail."""
            if not self.layout:
                return False
            if tag == "table":
                if start:
                    self.tables.append(attrs.get("role") == "presentation")
                    return self.tables[-1]
                return self.tables.pop() if self.tables else True
            return not self.tables or self.tables[-1]

        def _anchor(self, attrs: dict[str, str | None], start: bool) -> None:
            if start:
                href = (attrs.get("href") or "").strip()
                self.anchors.append((href if href.lower().startswith(_SCHEMES) else None, []))
                return
            if not self.anchors:
                return
            target, seen = self.anchors.pop()
            text = " ".join("".join(seen).split())
            if target is None or text in (target, target.removeprefix("mailto:")):
                return  # no link, or one that shows its own address
            if target not in self.numbers:
                self.references.append(target)
                self.numbers[target] = len(self.references)
            # A link with no text (an image without alt) is its reference alone.
            shown = text.replace("\0", "").strip()
            self.o(f"{_JOIN if shown else ''}[{self.numbers[target]}]")

        def _table(self, tag: str, start: bool) -> None:
            if tag == "table" or tag == "caption":
                self.p()
            elif tag == "tr":
                self.cell = 0
                self.pbr()
            elif start:  # a cell: " | " between the cells of a row
                if self.cell:
                    self.o(" | ")
                self.cell += 1
                self.cells += 1
            else:
                self.cells = max(0, self.cells - 1)

    return _MailText


_QUOTE = re.compile(r">+(?: |$)")
_ITEM = re.compile(r" *(?:\* |\d+\. )")
_BLANKS = re.compile(r"\n{3,}")


def _finish(markdown: str, width: int) -> str:
    """html2text's lines folded at `width`: a quote's ">" and an item's indent carried onto
    its continuation lines, code as written (folded only past `width`), headings
    underlined, runs of blank lines made one."""
    lines: list[str] = []
    for line, code in _marked_code(markdown.splitlines()):
        line = line.rstrip()
        quote = _QUOTE.match(line)
        prefix = quote.group(0) if quote else ""
        if prefix and not prefix.endswith(" "):
            prefix += " "
        rest = line[quote.end():] if quote else line
        if code:
            lines.extend(fold(rest, width, prefix, prefix, hard=True))
        elif rest.startswith(_HEADING):
            title = " ".join(rest[2:].split())
            if not title:
                continue  # an empty heading: no lone underline
            folded = fold(title, width, prefix, prefix)
            underline = "=" if rest[1] == "1" else "-"
            longest = max(display_width(part) for part in folded) - display_width(prefix)
            lines.extend([*folded, prefix + underline * max(1, longest)])
        elif not rest.strip():
            lines.append(prefix.rstrip())
        else:
            item = _ITEM.match(rest)
            lead = item.group(0) if item else rest[:len(rest) - len(rest.lstrip(" "))]
            text = " ".join(rest[len(lead):].split(" ")).strip()
            hang = " " * min(len(lead), MAX_HANG)
            lines.extend(fold(text, width, prefix + lead, prefix + hang))
    text = "\n".join(line.rstrip() for line in lines)
    text = _PRIVATE.sub("", text.replace(_BRACKET, "[").replace(_JOIN, " "))
    return _BLANKS.sub("\n\n", text).strip("\n")


_CODE_MARK = re.compile(r"\[/?code\]")


def _marked_code(lines: list[str]) -> Iterator[tuple[str, bool]]:
    """Each line with whether it is code: between html2text's `[code]` and `[/code]` (the
    data's own brackets are _BRACKET at this point, so only html2text writes these),
    wherever in a line it writes them (in a list item, on the item's line)."""
    code = False
    for line in lines:
        marks = list(_CODE_MARK.finditer(line))
        if not marks:
            yield line, code
            continue
        quote = _QUOTE.match(line)
        prefix = quote.group(0) if quote else ""
        last = 0
        for mark in marks:
            before = line[last:mark.start()]
            if before.strip("> " + _CODE_START):
                yield (before if last == 0 else prefix + before), code
            code = mark.group(0) == "[code]"
            yield "", False  # a blank line around the block
            last = mark.end()
        after = line[last:]
        if after.strip("> " + _CODE_START):
            yield prefix + after, code

