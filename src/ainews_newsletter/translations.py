"""The newsletter in its readers' languages (issue 30): which languages there are, their
gettext catalogs and their writing direction (which of them someone gets, by tag:
language_tags.py).

Two gettext domains, so the mails and the public site can be translated (and overridden)
apart: `mail` (the digest, the confirmation and welcome mails, the subject wording built in
Python) and `web` (the public pages). English is the source language: its catalog is the
strings as written, so "en" needs no files.

Catalogs are looked for, first match wins for each string:
1. the operator's `locale/<lang>/LC_MESSAGES/<domain>.po` beside config.toml (compiled when
   loaded; only the strings it translates are taken from it);
2. the shipped `<domain>.mo` (compiled into the wheel) or, in a checkout, its `.po`;
3. the English source.

A language tag is BCP 47 ("pt-BR"); folders use gettext's form ("pt_BR"). A leaf: it
imports nothing of ours but resources and errors, so every room can ask it."""

from __future__ import annotations

import gettext
import io
import logging
import re
import struct
import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal

from ainews_newsletter import resources
from ainews_newsletter.errors import ConfigError

if TYPE_CHECKING:
    from babel import Locale

SOURCE = "en"
DOMAINS = ("mail", "web")
Domain = Literal["mail", "web"]
_BOTH: tuple[Domain, ...] = ("mail", "web")
_lock = threading.Lock()
log = logging.getLogger("ainews.translations")
# A .po line that is not blank or a comment: a keyword and a quoted string, or a quoted
# string continuing the one before.
_PO_LINE = re.compile(rb'(?:(?:msgctxt|msgid|msgid_plural|msgstr(?:\[\d+\])?)\s+)?'
                      rb'"(?:[^"\\]|\\.)*"')


def folder_name(tag: str) -> str:
    """"pt-BR" → "pt_BR" (gettext's folders), "de" → "de"."""
    return tag.replace("-", "_")


def tag_of(folder: str) -> str:
    """"pt_BR" → "pt-BR"."""
    return folder.replace("_", "-")


def shipped_locale_dir() -> Path | None:
    try:
        return resources.shipped("locale")
    except Exception:  # an installation without catalogs: English only
        return None


def _languages_in(folder: Path | None, domain: str | None = None) -> set[str]:
    """The languages with a catalog in `folder` (of `domain`, or of any), by their tag. A
    folder not named as gettext names a language Babel knows (see misnamed_folders) is not
    one."""
    if folder is None or not folder.is_dir():
        return set()
    pattern = f"{domain or '*'}.[mp]o"
    return {tag_of(entry.name) for entry in folder.iterdir()
            if (entry / "LC_MESSAGES").is_dir() and any((entry / "LC_MESSAGES").glob(pattern))
            and _well_named(entry.name)}


def _well_named(folder: str) -> bool:
    try:
        return folder_name(canonical(tag_of(folder))) == folder
    except ConfigError:
        return False


@lru_cache(maxsize=1)
def _shipped_tags() -> frozenset[str]:
    """The shipped catalogs' tags as their folders give them (trusted: tests check them)."""
    folder = shipped_locale_dir()
    if folder is None or not folder.is_dir():
        return frozenset()
    return frozenset(tag_of(entry.name) for entry in folder.iterdir()
                     if (entry / "LC_MESSAGES").is_dir())


def misnamed_folders(folder: Path | None) -> list[str]:
    """Folders of `folder` (the operator's locale/) that hold catalogs but are not named
    after a language as gettext writes it ("de", "pt_BR"): they would be ignored."""
    if folder is None or not folder.is_dir():
        return []
    return sorted(entry.name for entry in folder.iterdir()
                  if (entry / "LC_MESSAGES").is_dir() and not _well_named(entry.name))


@lru_cache(maxsize=2)
def shipped_languages(domain: str | None = None) -> tuple[str, ...]:
    """The languages with a shipped catalog (of `domain`, or of any), English first."""
    return (SOURCE, *sorted(_languages_in(shipped_locale_dir(), domain) - {SOURCE}))


def available_languages(override_dir: Path | None = None,
                        domain: str | None = None) -> tuple[str, ...]:
    """Shipped languages and those an operator added in their own `locale/` (with a
    catalog of `domain`, when given: a page is offered only in languages it has words in)."""
    shipped = shipped_languages(domain)
    extra = _languages_in(override_dir, domain) - set(shipped)
    return (*shipped, *sorted(extra))


def canonical(tag: str) -> str:
    """A language tag as BCP 47 with Babel's casing ("pt-br" → "pt-BR", "DE" → "de");
    ConfigError naming it when Babel does not know it."""
    # A POSIX locale's charset and modifier ("de_DE.UTF-8@euro") are no part of a language.
    cleaned = tag.strip().split("@", 1)[0].split(".", 1)[0]
    if len(cleaned) > 35:  # BCP 47's longest useful tags are far shorter (and stored so)
        raise ConfigError(f"unknown language {tag[:40]!r}… (a BCP 47 tag such as 'de' or "
                          "'pt-BR')")
    if cleaned == SOURCE or cleaned in _shipped_tags():
        return cleaned  # already canonical: no Babel import (it costs every command ~30 ms)
    from babel import Locale, UnknownLocaleError

    try:
        locale = Locale.parse(cleaned.replace("_", "-"), sep="-")
    except (UnknownLocaleError, ValueError, TypeError):
        raise ConfigError(f"unknown language {tag!r} (a BCP 47 tag such as 'de' or "
                          "'pt-BR')") from None
    return tag_of(str(locale))


def babel_locale(tag: str) -> Locale:
    from babel import Locale

    return Locale.parse(folder_name(tag))


def direction(tag: str) -> Literal["ltr", "rtl"]:
    """"rtl" for Arabic, Hebrew, Persian, Urdu…, from CLDR's character order."""
    return "rtl" if babel_locale(tag).character_order == "right-to-left" else "ltr"


def _check_lines(path: Path, data: bytes) -> None:
    """ConfigError naming the file and line of the first line that is no .po syntax: Babel
    reads an unquoted or unterminated string as an empty one and drops the translation
    without a word, so an operator's typo would silently show English."""
    for number, raw in enumerate(data.splitlines(), 1):
        line = raw.strip()
        if line and not line.startswith(b"#") and not _PO_LINE.fullmatch(line):
            shown = line.decode("utf-8", "replace")[:60]
            raise ConfigError(f"{path}: line {number}: not a .po line ({shown!r}); a "
                              'string is quoted, as in msgstr "…"')


# No language has more than six plural forms (Arabic); Babel builds lists of this length.
_MAX_PLURALS = 10
_NPLURALS = re.compile(rb"nplurals\s*=\s*(\d+)")


def _check_plural_count(path: Path, data: bytes) -> None:
    """ConfigError for a Plural-Forms header claiming more forms than any language has: an
    absurd count (10**30) would make Babel allocate for each of them."""
    for found in _NPLURALS.finditer(data[:65536]):
        digits = found.group(1)
        if len(digits) > 3 or int(digits) > _MAX_PLURALS:
            shown = digits[:12].decode("ascii")
            raise ConfigError(f"{path}: Plural-Forms says nplurals={shown}"
                              f"{'…' if len(digits) > 12 else ''}; no language has more "
                              f"than {_MAX_PLURALS} (copy the header of a shipped catalog)")


def _compiled_po(path: Path) -> gettext.GNUTranslations:
    """A .po file compiled in memory (Babel's reader and writer): untranslated and fuzzy
    entries are left out, so they fall through to the next catalog. A broken file is one
    ConfigError naming it and the line."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import PoFileError, read_po

    data = path.read_bytes()
    _check_lines(path, data)
    _check_plural_count(path, data)
    try:
        catalog = read_po(io.BytesIO(data), ignore_obsolete=True, abort_invalid=True)
    except PoFileError as error:
        # Babel counts lines from 0 and appends " on <line>" to its message.
        message = str(error).rsplit(" on ", 1)[0]
        raise ConfigError(f"{path}: line {error.lineno + 1}: {message}") from None
    except (UnicodeError, LookupError) as error:  # "undefined" raises a plain UnicodeError
        raise ConfigError(f"{path}: cannot be read in its declared charset ({error}); save "
                          "it as UTF-8 with charset=UTF-8 in its header") from None
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return _loaded(path, buffer)


def _loaded(path: Path, file: BinaryIO) -> gettext.GNUTranslations:
    """A compiled catalog read by gettext, which also compiles its Plural-Forms expression
    into Python: a bad one (too long, too deep, code) or a corrupt .mo is one ConfigError
    naming the file, not a traceback."""
    try:
        return gettext.GNUTranslations(file)
    except (ValueError, OSError, LookupError, struct.error, RecursionError) as error:
        raise ConfigError(f"{path}: cannot be used ({error}); check its Plural-Forms "
                          "header against a shipped catalog of the language") from None


def _catalog(folder: Path, tag: str, domain: str,
             prefer_mo: bool = False) -> gettext.GNUTranslations | None:
    """`prefer_mo`: the shipped catalogs, whose .mo the wheel compiled from the .po beside
    it; an operator's .mo counts only when newer than their .po (they edit the .po)."""
    messages = folder / folder_name(tag) / "LC_MESSAGES"
    mo, po = messages / f"{domain}.mo", messages / f"{domain}.po"
    if mo.is_file() and (prefer_mo or not po.is_file()
                         or mo.stat().st_mtime >= po.stat().st_mtime):
        with mo.open("rb") as file:
            return _loaded(mo, file)
    if po.is_file():
        return _compiled_po(po)
    return None


def _chain(catalogs: list[gettext.NullTranslations]) -> gettext.NullTranslations:
    """The first catalog, falling back to the next for what it lacks, and to the source."""
    first: gettext.NullTranslations = gettext.NullTranslations()
    for catalog in reversed(catalogs):
        catalog.add_fallback(first)
        first = catalog
    return first


@lru_cache(maxsize=64)
def _translations(tag: str, domain: str, override_dir: Path | None,
                  stamp: float) -> gettext.NullTranslations:
    del stamp  # part of the cache key only: an edited override is read again
    found: list[gettext.NullTranslations] = []
    base = tag.split("-")[0]
    shipped = shipped_locale_dir()
    for folder in (override_dir, shipped):
        if folder is None:
            continue
        # "pt-BR" takes "pt-BR" first, then "pt" (a region without its own catalog).
        for candidate in dict.fromkeys((tag, base)):
            catalog = _catalog(folder, candidate, domain, prefer_mo=folder == shipped)
            if catalog is not None:
                found.append(catalog)
    return _chain(found)


def _stamp(override_dir: Path | None, tag: str) -> float:
    """The newest change among the operator's catalogs `tag` reads (its own folder and its
    base language's)."""
    if override_dir is None:
        return 0.0
    newest = 0.0
    for candidate in dict.fromkeys((tag, tag.split("-")[0])):
        messages = override_dir / folder_name(candidate) / "LC_MESSAGES"
        try:
            newest = max([newest, *(path.stat().st_mtime for path in messages.glob("*.[mp]o"))])
        except OSError:
            continue
    return newest


# Broken operator catalogs already reported, by (tag, domain, folder, stamp): a running
# server says it once and goes on with the shipped words (not a 500 on every request).
_broken: dict[tuple[str, str, Path, float], str] = {}


def translations(tag: str, domain: Domain, override_dir: Path | None = None,
                 strict: bool = False) -> gettext.NullTranslations:
    """The catalog chain for `tag` in `domain` (see the module's docstring). English, or a
    language without any catalog, gives the source strings. A broken operator catalog is
    ConfigError with `strict` (check_catalogs, when a command starts); otherwise it is
    logged once and left out until it changes."""
    if domain not in DOMAINS:
        raise ValueError(f"unknown gettext domain {domain!r}")
    if override_dir is not None and not override_dir.is_dir():
        override_dir = None
    with _lock:
        stamp = _stamp(override_dir, tag)
        key = (tag, domain, override_dir or Path(), stamp)
        if override_dir is not None and key in _broken and not strict:
            return _translations(tag, domain, None, 0.0)
        try:
            return _translations(tag, domain, override_dir, stamp)
        except ConfigError as error:
            if strict or override_dir is None:
                raise
            _broken[key] = str(error)
            log.error("%s (the shipped words are used until the file is fixed)", error)
            return _translations(tag, domain, None, 0.0)


def check_language(tag: str, override_dir: Path | None = None) -> str:
    """`tag` in canonical form when it can be used (English, a shipped catalog, or one in
    the operator's `locale/`); else ConfigError saying which there are and how to add one."""
    canonical_tag = canonical(tag)
    languages = available_languages(override_dir)
    if canonical_tag in languages or canonical_tag.split("-")[0] in languages:
        return canonical_tag
    raise ConfigError(
        f"newsletter.language: no translation for {canonical_tag!r} (there are: "
        f"{', '.join(languages)}); to add one, put locale/{folder_name(canonical_tag)}/"
        "LC_MESSAGES/mail.po and web.po beside config.toml")


def check_catalogs(tag: str, override_dir: Path | None = None) -> str:
    """check_language, then every catalog a run may read loaded once (`tag`'s and each of
    the operator's own languages, both domains): a broken .po stops a command when it
    starts, naming its file and line, not at the first reader of that language."""
    canonical_tag = check_language(tag, override_dir)
    misnamed = misnamed_folders(override_dir)
    if misnamed:
        raise ConfigError(f"{override_dir}: {', '.join(misnamed)}: not named after a "
                          "language as gettext writes it (such as de, fr, pt_BR): rename "
                          "the folder")
    for language in sorted({canonical_tag, *_languages_in(override_dir)}):
        for domain in _BOTH:
            translations(language, domain, override_dir, strict=True)
    return canonical_tag
