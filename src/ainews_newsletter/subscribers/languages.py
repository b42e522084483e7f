"""A reader's language in a subscriber file: a `language` or `locale` column, in any format
that carries one (our export writes `language`)."""

from __future__ import annotations

import functools

from ainews_newsletter import translations
from ainews_newsletter.errors import ConfigError
from ainews_newsletter.subscribers.foreign_formats import RefusedRow, Row, cell

LANGUAGE_COLUMNS = ("language", "locale")


@functools.lru_cache(maxsize=512)
def _canonical_language(value: str) -> str:
    """Cached: a file of a million rows holds a handful of distinct tags."""
    return translations.canonical(value)


def row_language(row: Row) -> str | None:
    """The row's `language` (or `locale`) cell as canonical BCP 47 ("pt_br" → "pt-BR");
    None when empty. A tag Babel does not know refuses the row, naming the column. Stored
    whether or not catalogs exist for it: a send falls back to the newsletter's language."""
    for column in LANGUAGE_COLUMNS:
        value = cell(row, column)
        if value:
            try:
                return _canonical_language(value)
            except ConfigError:
                raise RefusedRow(f"{column}: unknown language {value!r} (a BCP 47 tag such "
                                 "as 'de' or 'pt-BR')") from None
    return None
