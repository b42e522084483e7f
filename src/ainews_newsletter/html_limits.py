"""How much HTML a fragment may hold before a parser is given it: a leaf, so the posts'
sanitizer (nh3) and the renderer's plain-text converter (html2text) share one guard."""

from __future__ import annotations

import re

# nh3 (html5ever) is quadratic in how many elements a fragment leaves open: each start tag
# scans the stack of open elements (the "in scope" checks) and re-opens the active formatting
# elements. 100,000 unclosed <div> took 22 s, 20,000 took 0.9 s, 2,000 take 0.02 s; closed
# elements cost nothing of the kind (100,000 well-formed tags: 0.4 s) (BENCHMARKS.md,
# "Hostile input"). So no fragment whose elements stand more than MAX_OPEN_ELEMENTS deep at
# any point (unclosed, or nested) reaches nh3, counted per element name (a stray </span>
# does not close a <div>), leaving out the void elements and those HTML closes by itself
# (<p>, <li>, …: the next one closes them). A long but well-formed post or article passes;
# MAX_HTML_TAGS bounds the rest. The same guard stands in front of html2text
# (render/plain.py), whose work per tag grows with how deep lists and quotes nest.
MAX_OPEN_ELEMENTS = 2_000
MAX_HTML_TAGS = 50_000
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*)")
_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
                   "param", "source", "track", "wbr"})
_CLOSED_BY_THE_NEXT = frozenset({"p", "li", "dt", "dd", "tr", "td", "th", "option",
                                 "optgroup", "thead", "tbody", "tfoot", "rb", "rt", "rp",
                                 "colgroup", "caption"})


class TooMuchHtml(ValueError):
    """A fragment the sanitizer is not given: too many elements left open, or too many
    tags (MAX_OPEN_ELEMENTS, MAX_HTML_TAGS)."""


def bounded(fragment: str) -> str:
    """`fragment` unchanged, or TooMuchHtml (see MAX_OPEN_ELEMENTS, MAX_HTML_TAGS)."""
    if fragment.count("<") <= MAX_OPEN_ELEMENTS:
        return fragment
    open_by_name: dict[str, int] = {}
    tags = depth = deepest = 0
    for match in _TAG.finditer(fragment):
        tags += 1
        name = match.group(2).lower()
        if name in _VOID or name in _CLOSED_BY_THE_NEXT:
            continue
        if not match.group(1):
            open_by_name[name] = open_by_name.get(name, 0) + 1
            depth += 1
            deepest = max(deepest, depth)
        elif open_by_name.get(name, 0) > 0:  # a stray end tag closes nothing
            open_by_name[name] -= 1
            depth -= 1
    if tags > MAX_HTML_TAGS:
        raise TooMuchHtml(f"its HTML has {tags:,} tags, more than the {MAX_HTML_TAGS:,} a "
                          "post may have")
    if deepest > MAX_OPEN_ELEMENTS:
        raise TooMuchHtml(f"its HTML nests {deepest:,} elements deep (or leaves them "
                          f"unclosed), more than the {MAX_OPEN_ELEMENTS:,} a post may have")
    return fragment
