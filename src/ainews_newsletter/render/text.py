"""Plain-text lines: folding at a width in columns (wide East Asian characters take two,
combining marks none; a URL is never broken) and tidying a rendered text part."""

from __future__ import annotations

import re
import unicodedata

TEXT_WIDTH = 72
_BLANK_RUNS = re.compile(r"\n{3,}")
# Kinsoku: no line starts with closing punctuation or a small kana, none ends with an
# opening bracket (JIS X 4051, the common subset).
# Written as escapes: ruff rightly flags look-alikes of ASCII punctuation in source text.
_NO_START = frozenset("\u3001\u3002\uff0c\uff0e\u30fb\uff1a\uff1b\uff1f\uff01\u30fc\u2015"
                      "\u2026\u2025\u300d\u300f\uff09\uff3d\uff5d\u3015\u3009\u300b\u3011"
                      "\u3019\u3017\u301f\u2019\u201d\u309d\u309e\u3005\u3041\u3043\u3045"
                      "\u3047\u3049\u3063\u3083\u3085\u3087\u308e\u30a1\u30a3\u30a5\u30a7"
                      "\u30a9\u30c3\u30e3\u30e5\u30e7\u30ee\u30f5\u30f6,.!?:;)]}%"
                      # render/plain.py's mark of a link's reference: it stays on the line
                      # of the link's text.
                      "\ue002")
_NO_END = frozenset("\u300c\u300e\uff08\uff3b\uff5b\u3014\u3008\u300a\u3010\u3018\u3016"
                    "\u301d\u2018\u201c([{")
_INVISIBLE = frozenset("\u200b\u200c\u200d\u2060\ufeff")
_URL_OPENERS = frozenset("(<[\"'")


def tidy(text: str) -> str:
    """Trailing spaces off every line, at most one blank line in a row, one final newline."""
    lines = [line.rstrip() for line in text.splitlines()]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip() + "\n"


def _char_width(char: str) -> int:
    if char.isascii():
        return 1 if char.isprintable() or char == "\t" else 0  # as display_width counts it
    if unicodedata.combining(char) or char in _INVISIBLE:
        return 0
    return 2 if unicodedata.east_asian_width(char) in "WF" else 1


def display_width(text: str) -> int:
    """Columns `text` takes in a terminal or a fixed-width mail reader."""
    if text.isascii():
        return len(text)
    return sum(_char_width(char) for char in text)


def _wide(char: str) -> bool:
    return not char.isascii() and unicodedata.east_asian_width(char) in "WF"


def is_url(word: str) -> bool:
    """Whether a word holds a URL (which a fold never breaks)."""
    bare = word.lstrip("(<[\"'").lower()
    return "://" in bare or bare.startswith("mailto:")


def _pieces(word: str) -> list[str]:
    """A word cut where a line may break inside it: between wide (CJK) characters, which
    take no spaces, except before closing or after opening punctuation."""
    if word.isascii() or is_url(word):
        return [word]
    pieces: list[str] = []
    start = 0
    for index in range(1, len(word)):
        before, char = word[index - 1], word[index]
        if (_wide(before) or _wide(char)) and char not in _NO_START \
                and before not in _NO_END:
            pieces.append(word[start:index])
            start = index
    pieces.append(word[start:])
    return pieces


def _split_long(piece: str, room: int) -> list[str]:
    """A word wider than `room` in chunks of at most `room` columns (never a URL)."""
    chunks: list[str] = []
    current, used = "", 0
    for char in piece:
        width = _char_width(char)
        if current and used + width > room:
            chunks.append(current)
            current, used = "", 0
        current += char
        used += width
    return [*chunks, current]


def fold(text: str, width: int = TEXT_WIDTH, first: str = "", rest: str = "",
         hard: bool = False) -> list[str]:
    """`text` as lines of at most `width` columns, the first after `first`, the others
    after `rest`; breaks at spaces (only U+0020: a no-break space holds) and between CJK
    characters. A URL is never broken, so its line may be longer; a longer word is cut.
    `hard`: the text is code, whose spaces are kept: only a line past `width` is cut, at
    its last space that fits, else at `width`."""
    if hard:
        return _fold_code(text, width, first, rest)
    lines: list[str] = []
    line, used, filled = first, display_width(first), False
    for number, word in enumerate(text.split(" ")):
        if not word:
            continue
        for index, piece in enumerate(_pieces(word)):
            spaced = index == 0 and number > 0 and filled
            piece_width = display_width(piece)
            if filled and used + spaced + piece_width > width:
                lines.append(line)
                line, used, spaced, filled = rest, display_width(rest), False, False
            room = width - used
            if piece_width > room and not is_url(piece) and room > 0 and not filled:
                *whole, piece = _split_long(piece, room)
                lines.extend(line + chunk for chunk in whole)
                if whole:
                    line, used = rest, display_width(rest)
                piece_width = display_width(piece)
            line += " " * spaced + piece
            used += spaced + piece_width
            filled = True
    lines.append(line)
    return lines


def _fold_code(text: str, width: int, first: str, rest: str) -> list[str]:
    """`fold`'s hard mode in one walk over `text` (a 1,000,000-character line of code is
    read once, not measured again from each cut): a line whose remaining text holds a URL
    is left whole, as `is_url` would."""
    last_scheme = text.rfind("://")
    lines: list[str] = []
    prefix, start, length = first, 0, len(text)
    blank = bracket = 0  # where the rest's leading whitespace, then brackets, end
    while start > last_scheme:
        blank = max(blank, start)
        while blank < length and text[blank].isspace():
            blank += 1
        bracket = max(bracket, blank)
        while bracket < length and text[bracket] in _URL_OPENERS:
            bracket += 1
        if text[bracket:bracket + 7].lower() == "mailto:":
            break
        room = width - display_width(prefix)
        end, used = (start, 0) if room > 0 else (length, 0)
        while end < length:  # the longest run of at most `room` columns (one char at least)
            char_width = _char_width(text[end])
            if end > start and used + char_width > room:
                break
            used += char_width
            end += 1
        if end >= length and room > 0:
            break  # the rest fits
        leading = start
        while leading < end and text[leading] == " ":
            leading += 1
        space = text.rfind(" ", start, end)
        if space > leading:  # past its indent: cut after the last space that fits
            end = space + 1
        if end >= length:
            break  # no room, and no space to cut at before the end
        lines.append((prefix + text[start:end]).rstrip())
        start, prefix = end, rest
    lines.append(prefix + text[start:])
    return lines
