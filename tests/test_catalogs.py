"""Every catalog complete and in step with the code (issue 30).

For each gettext domain (mail, web) the strings are extracted afresh from the code, with
Babel and the method map of locale/<domain>.cfg (what scripts/update-catalogs runs), and
each language's locale/<folder>/LC_MESSAGES/<domain>.po is held against them: a string
missing, fuzzy or untranslated (any plural form), a plural entry with another number of
forms than its Plural-Forms header says (or a header that disagrees with CLDR), a
placeholder differing from the source's, and an entry the code no longer has (stale or
`#~` obsolete) each fail, naming the language, the domain and the msgid.

The fix is nearly always `scripts/update-catalogs`, then translating what it brought in
(docs/languages.md, "Adding a language")."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.plurals import get_plural
from babel.messages.pofile import read_po

from ainews_newsletter import translations
from ainews_newsletter.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
LOCALE = ROOT / "locale"
DOMAINS = ("mail", "web")
# Issue 30's list; any other folder in locale/ is held to the same rules.
REQUIRED = ("de", "fr", "es", "pt_BR", "it", "nl", "ja", "ar")
LANGUAGES = sorted({*REQUIRED, *(folder.parent.name for folder in LOCALE.glob("*/LC_MESSAGES")
                                 if folder.is_dir())})
# The number a plural entry is chosen by: Jinja's ngettext passes it as `num`, our Python
# code and `{% trans count=… %}` as `count`. A plural form may leave it out ("one story",
# Arabic's dual "قصتان"); never any other placeholder.
COUNT_NAMES = ("num", "count")
_PERCENT = re.compile(r"%(?:\((?P<name>[^)]*)\))?[-#0 +]*(?:\d+|\*)?(?:\.(?:\d+|\*))?"
                      r"(?P<kind>[diouxXeEfFgGcrsa%])?")
_BRACES = re.compile(r"(?<!\{)\{[A-Za-z_]\w*\}(?!\})")
_SHOWN = 30  # problems listed per catalog: enough to act on, short enough to read

Key = tuple[str | None, str]  # (msgctxt, msgid)


@cache
def source_strings(domain: str, root: Path = ROOT) -> dict[Key, Message]:
    """The domain's strings as the code has them now: `pybabel extract -F
    locale/<domain>.cfg`, through Babel's API (the same extractors, keywords and options)."""
    with (root / "locale" / f"{domain}.cfg").open(encoding="utf-8") as file:
        method_map, options_map = parse_mapping_cfg(file, f"{domain}.cfg")
    catalog = Catalog()
    for filename, lineno, message, _comments, context in extract_from_dir(
            root, method_map, options_map):
        catalog.add(message, locations=[(filename, lineno)], context=context)
    return {(message.context, _msgid(message)): message for message in catalog if message.id}


def _msgid(message: Message) -> str:
    return message.id if isinstance(message.id, str) else message.id[0]


def _forms(message: Message) -> tuple[str, ...]:
    if isinstance(message.string, str):
        return (message.string,)
    return tuple(form or "" for form in message.string)


def placeholders(text: str) -> tuple[frozenset[str], tuple[str, ...]]:
    """(named placeholders: `%(name)s` and `{name}`, which may move; positional ones in
    order: `%s`, `%d`, `%%`, and a stray `%` that %-formatting would choke on)."""
    named: set[str] = set()
    positional: list[str] = []
    for found in _PERCENT.finditer(text):
        if found.group("kind") is None:
            positional.append("a stray %")
        elif found.group("name") is not None:
            named.add(found.group(0))
        else:
            positional.append(found.group(0))
    named.update(found.group(0) for found in _BRACES.finditer(text))
    return frozenset(named), tuple(positional)


def _count_placeholder(token: str) -> bool:
    return any(token.startswith(f"%({name})") for name in COUNT_NAMES)


def _placeholder_problems(source: Message, entry: Message) -> Iterable[str]:
    source_texts = [source.id] if isinstance(source.id, str) else list(source.id)
    wanted_named = frozenset().union(*(placeholders(text)[0] for text in source_texts))
    wanted_positional = placeholders(source_texts[-1])[1]
    plural = len(source_texts) > 1
    for index, form in enumerate(_forms(entry)):
        if not form:
            continue  # reported as empty
        named, positional = placeholders(form)
        missing = wanted_named - named
        if plural:
            missing = frozenset(token for token in missing if not _count_placeholder(token))
        extra = named - wanted_named
        where = f" (form {index})" if plural else ""
        if missing or extra or positional != wanted_positional:
            said = [f"lacks {', '.join(sorted(missing))}" if missing else "",
                    f"adds {', '.join(sorted(extra))}" if extra else "",
                    (f"has {list(positional)} where the source has {list(wanted_positional)}"
                     if positional != wanted_positional else "")]
            yield (f"placeholders differ{where}: "
                   + "; ".join(part for part in said if part))


def _header_problems(catalog: Catalog, folder: str) -> Iterable[str]:
    if catalog.fuzzy:
        yield "the header is marked fuzzy (remove its '#, fuzzy' line)"
    expected = get_plural(folder).num_plurals
    if catalog.num_plurals != expected:
        yield (f"Plural-Forms says nplurals={catalog.num_plurals}, CLDR has {expected} for "
               f"{folder} (keep the header `pybabel init` wrote)")


def catalog_problems(po: Path, folder: str, source: dict[Key, Message]) -> list[str]:
    """What is wrong with one .po against the code's strings, one line each."""
    if not po.is_file():
        return [f"{po.relative_to(po.parents[3])} is missing: pybabel init -D {po.stem} "
                f"-i locale/{po.stem}.pot -d locale -l {folder}"]
    try:
        translations._compiled_po(po)  # what a newsletter does with it: must load
    except ConfigError as error:
        return [str(error)]
    with po.open("rb") as file:
        catalog = read_po(file, abort_invalid=True)
    found: list[str] = list(_header_problems(catalog, folder))
    entries = {(message.context, _msgid(message)): message for message in catalog if message.id}
    for key, wanted in source.items():
        msgid = repr(key[1]) + (f" (context {key[0]!r})" if key[0] else "")
        entry = entries.get(key)
        if entry is None:
            found.append(f"missing msgid {msgid}")
            continue
        if entry.pluralizable != wanted.pluralizable or (
                wanted.pluralizable and entry.id[1] != wanted.id[1]):
            found.append(f"msgid {msgid}: its msgid_plural differs from the code's")
            continue
        if entry.fuzzy:
            found.append(f"fuzzy msgid {msgid} (check it, then remove '#, fuzzy')")
        forms = _forms(entry)
        if wanted.pluralizable and len(forms) != catalog.num_plurals:
            found.append(f"msgid {msgid}: {len(forms)} plural forms, its Plural-Forms "
                         f"header says {catalog.num_plurals}")
        empty = [index for index, form in enumerate(forms) if not form.strip()]
        if empty:
            which = f" (form {', '.join(map(str, empty))})" if wanted.pluralizable else ""
            found.append(f"empty msgstr for msgid {msgid}{which}")
        found.extend(f"msgid {msgid}: {problem}"
                     for problem in _placeholder_problems(wanted, entry))
    for key in entries.keys() - source.keys():
        found.append(f"stale msgid {key[1]!r}: no longer in the code "
                     "(scripts/update-catalogs drops it)")
    for message in catalog.obsolete.values():
        found.append(f"obsolete msgid {_msgid(message)!r} ('#~'): delete it "
                     "(scripts/update-catalogs drops it)")
    return found


def _report(folder: str, domain: str, found: list[str]) -> str:
    shown = "\n".join(f"  {folder} {domain}: {problem}" for problem in found[:_SHOWN])
    more = f"\n  … and {len(found) - _SHOWN} more" if len(found) > _SHOWN else ""
    return (f"locale/{folder}/LC_MESSAGES/{domain}.po: {len(found)} problem(s); run "
            f"scripts/update-catalogs, then translate:\n{shown}{more}")


@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize("folder", LANGUAGES)
def test_catalog_is_complete(folder: str, domain: str) -> None:
    found = catalog_problems(LOCALE / folder / "LC_MESSAGES" / f"{domain}.po", folder,
                             source_strings(domain))
    assert not found, _report(folder, domain, found)


@pytest.mark.parametrize("domain", DOMAINS)
def test_the_templates_match_the_code(domain: str) -> None:
    """locale/<domain>.pot, which `pybabel init` starts a language from, holds the code's
    strings: the .pot is regenerated with the catalogs, never left behind."""
    with (LOCALE / f"{domain}.pot").open("rb") as file:
        template = read_po(file)
    kept = {(message.context, _msgid(message)) for message in template if message.id}
    source = source_strings(domain)
    assert kept == source.keys(), (
        f"locale/{domain}.pot is out of date (run scripts/update-catalogs): lacks "
        f"{sorted(k[1] for k in source.keys() - kept)}, "
        f"has stale {sorted(k[1] for k in kept - source.keys())}")


def test_every_language_folder_is_a_known_language() -> None:
    for folder in LANGUAGES:
        assert translations.canonical(translations.tag_of(folder)) == translations.tag_of(
            folder), f"locale/{folder}: not a language tag Babel knows in canonical form"


# -- the checker itself, on hand-made catalogs ---------------------------------------------

CODE = '''\
from gettext import gettext as _, ngettext

def words(n, name):
    return [_("Hello %(name)s") % {"name": name},
            ngettext("%(num)d story", "%(num)d stories", n) % {"num": n},
            _("{count} new").format(count=n),
            _("Save %d%%") % 5]
'''
TEMPLATE = "<p>{% trans %}\n  Read more\n{% endtrans %}</p>\n"
GOOD = r'''msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\n"
"Language: de\n"
"Plural-Forms: nplurals=2; plural=(n != 1);\n"

msgid "Hello %(name)s"
msgstr "Hallo %(name)s"

msgid "%(num)d story"
msgid_plural "%(num)d stories"
msgstr[0] "Eine Geschichte"
msgstr[1] "%(num)d Geschichten"

msgid "{count} new"
msgstr "{count} neu"

msgid "Save %d%%"
msgstr "%d%% sparen"

msgid "Read more"
msgstr "Weiterlesen"
'''


@pytest.fixture
def small_project(tmp_path: Path) -> Path:
    (tmp_path / "locale").mkdir()
    (tmp_path / "locale" / "mail.cfg").write_text(
        "[python: app/**.py]\n[jinja2: templates/*.j2]\ntrimmed = true\n", encoding="utf-8")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "words.py").write_text(CODE, encoding="utf-8")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "page.j2").write_text(TEMPLATE, encoding="utf-8")
    return tmp_path


def _problems(project: Path, text: str, folder: str = "de") -> list[str]:
    po = project / "locale" / folder / "LC_MESSAGES" / "mail.po"
    po.parent.mkdir(parents=True, exist_ok=True)
    po.write_text(text, encoding="utf-8")
    return catalog_problems(po, folder, source_strings("mail", project))


def test_the_extraction_reads_python_and_trimmed_jinja(small_project: Path) -> None:
    strings = source_strings("mail", small_project)
    assert {key[1] for key in strings} == {"Hello %(name)s", "%(num)d story", "{count} new",
                                           "Save %d%%", "Read more"}
    assert strings[(None, "%(num)d story")].pluralizable


def test_a_complete_catalog_passes(small_project: Path) -> None:
    assert _problems(small_project, GOOD) == []


@pytest.mark.parametrize(("old", "new", "expected"), [
    pytest.param('msgid "Read more"\nmsgstr "Weiterlesen"\n', "",
                 "missing msgid 'Read more'", id="missing"),
    pytest.param('msgid "Hello', '#, fuzzy\nmsgid "Hello',
                 "fuzzy msgid 'Hello %(name)s'", id="fuzzy"),
    pytest.param('msgstr "Weiterlesen"', 'msgstr ""',
                 "empty msgstr for msgid 'Read more'", id="empty"),
    pytest.param('msgstr[0] "Eine Geschichte"', 'msgstr[0] ""',
                 "empty msgstr for msgid '%(num)d story' (form 0)", id="empty-plural-form"),
    # Babel pads a plural entry to the header's count: a form left out reads as empty.
    pytest.param('msgstr[1] "%(num)d Geschichten"\n', "",
                 "empty msgstr for msgid '%(num)d story' (form 1)", id="plural-form-left-out"),
    pytest.param('msgstr[1] "%(num)d Geschichten"\n',
                 'msgstr[1] "%(num)d Geschichten"\nmsgstr[2] "%(num)d Geschichten"\n',
                 "line 10: msg has more translations than num_plurals", id="plural-form-extra"),
    pytest.param("nplurals=2; plural=(n != 1)", "nplurals=3; plural=(n==1 ? 0 : n==2 ? 1 : 2)",
                 "Plural-Forms says nplurals=3, CLDR has 2 for de", id="plural-header"),
    pytest.param('msgstr "Hallo %(name)s"', 'msgstr "Hallo %(nom)s"',
                 "msgid 'Hello %(name)s': placeholders differ: lacks %(name)s; adds %(nom)s",
                 id="named-placeholder"),
    pytest.param('msgstr "Hallo %(name)s"', 'msgstr "Hallo %(name)d"',
                 "placeholders differ: lacks %(name)s; adds %(name)d", id="conversion"),
    pytest.param('msgstr "{count} neu"', 'msgstr "{anzahl} neu"',
                 "msgid '{count} new': placeholders differ: lacks {count}; adds {anzahl}",
                 id="braces"),
    pytest.param('msgstr "%d%% sparen"', 'msgstr "Spare %d %"',
                 "msgid 'Save %d%%': placeholders differ: has ['%d', 'a stray %'] where the "
                 "source has ['%d', '%%']", id="stray-percent"),
    pytest.param('msgstr "%d%% sparen"', 'msgstr "%s%% sparen"',
                 "has ['%s', '%%'] where the source has ['%d', '%%']", id="positional"),
    pytest.param('msgstr "Hallo %(name)s"\n',
                 'msgstr "Hallo %(name)s"\n\nmsgid "Gone"\nmsgstr "Weg"\n',
                 "stale msgid 'Gone': no longer in the code", id="stale"),
    pytest.param('msgstr "Hallo %(name)s"\n',
                 'msgstr "Hallo %(name)s"\n\n#~ msgid "Old"\n#~ msgstr "Alt"\n',
                 "obsolete msgid 'Old' ('#~')", id="obsolete"),
    pytest.param('msgid ""\nmsgstr ""', '#, fuzzy\nmsgid ""\nmsgstr ""',
                 "the header is marked fuzzy", id="fuzzy-header"),
    pytest.param('msgstr "Weiterlesen"', "msgstr Weiterlesen",
                 "mail.po: line 22: not a .po line", id="syntax"),
    pytest.param('msgid "%(num)d story"\nmsgid_plural "%(num)d stories"\n'
                 'msgstr[0] "Eine Geschichte"\nmsgstr[1] "%(num)d Geschichten"',
                 'msgid "%(num)d story"\nmsgstr "Geschichten"',
                 "msgid '%(num)d story': its msgid_plural differs", id="plural-lost"),
])
def test_the_checker_catches_each_failure_kind(small_project: Path, old: str, new: str,
                                               expected: str) -> None:
    assert old in GOOD
    found = _problems(small_project, GOOD.replace(old, new, 1))
    assert any(expected in problem for problem in found), found


def test_a_plural_form_may_leave_out_only_the_count(small_project: Path) -> None:
    without_count = GOOD.replace('msgstr[1] "%(num)d Geschichten"', 'msgstr[1] "Geschichten"')
    assert _problems(small_project, without_count) == []  # "Geschichten", the count implied
    other = GOOD.replace('msgid "%(num)d story"\nmsgid_plural "%(num)d stories"',
                         'msgid "%(num)d story by %(name)s"\n'
                         'msgid_plural "%(num)d stories by %(name)s"')
    code = CODE.replace('"%(num)d story", "%(num)d stories"',
                        '"%(num)d story by %(name)s", "%(num)d stories by %(name)s"')
    (small_project / "app" / "words.py").write_text(code, encoding="utf-8")
    source_strings.cache_clear()
    found = _problems(small_project, other)
    assert any("placeholders differ (form 0): lacks %(name)s" in p for p in found), found


def test_a_missing_catalog_says_how_to_start_it(small_project: Path) -> None:
    po = small_project / "locale" / "nl" / "LC_MESSAGES" / "mail.po"
    [problem] = catalog_problems(po, "nl", source_strings("mail", small_project))
    assert "locale/nl/LC_MESSAGES/mail.po is missing" in problem
    assert "pybabel init -D mail -i locale/mail.pot -d locale -l nl" in problem


def test_a_japanese_catalog_has_one_form(small_project: Path) -> None:
    japanese = (GOOD.replace("Language: de", "Language: ja")
                .replace("nplurals=2; plural=(n != 1);", "nplurals=1; plural=0;")
                .replace('msgstr[0] "Eine Geschichte"\nmsgstr[1] "%(num)d Geschichten"',
                         'msgstr[0] "%(num)d 件の記事"'))
    assert _problems(small_project, japanese, "ja") == []


def test_the_report_names_language_domain_and_msgid() -> None:
    report = _report("pt_BR", "web", ["missing msgid 'Subscribe'"])
    assert "locale/pt_BR/LC_MESSAGES/web.po" in report
    assert "pt_BR web: missing msgid 'Subscribe'" in report
