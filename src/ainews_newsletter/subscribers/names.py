"""Subscribers' display names as they may be stored and shown: no control characters.

A name typed into the web form or found in an import can carry NUL, terminal escape
sequences (ESC [ …) or bidirectional overrides (U+202E makes "gpj.exe" read "exe.jpg"); stored
raw they reach the operator's terminal through `subscribers list` and the To: header of
every issue. Every way in cleans them here, and the CLI cleans what it prints (names stored
before this rule)."""

from __future__ import annotations

import re
import unicodedata

MAX_NAME = 200

# Line breaks and tabs become spaces ("Ada\nLovelace" from a multi-line CSV cell).
_SPACES = str.maketrans({ch: " " for ch in "\t\n\r\x0b\x0c\x85\u2028\u2029"})
# Other C0 controls, DEL, C1 controls, the bidi embeddings, overrides and isolates, the bidi
# marks, the Arabic letter mark, a stray BOM, and lone surrogates (undecodable bytes).
_UNWANTED = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e"
                       "\u2066-\u2069\ufeff\ud800-\udfff]")


def clean_name(raw: str | None) -> str | None:
    """The name without control or bidi-control characters, whitespace collapsed, at most
    MAX_NAME characters; None when nothing is left."""
    if raw is None:
        return None
    text = _UNWANTED.sub("", unicodedata.normalize("NFC", raw.translate(_SPACES)))
    text = " ".join(text.split())[:MAX_NAME]
    return text or None
