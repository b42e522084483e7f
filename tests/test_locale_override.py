"""The operator's own catalogs (issue 30): a locale/<lang>/LC_MESSAGES/mail.po or web.po
beside config.toml overrides single strings, the rest still coming from the shipped
catalog; an edited override is read again; a broken one is one clear error naming its file
and line; a language tag that is not one, or a language without any catalog, stops
`ainews build`, `send` and `serve` with one line.

The shipped catalogs here are a stand-in written by the test (translations.shipped_locale_dir
patched), so what is asserted does not move when the real translations change."""

from __future__ import annotations

import email
import email.policy
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ainews_newsletter import translations
from ainews_newsletter.errors import ConfigError
from ainews_newsletter.render.localized import subject_line
from tests.conftest import Project

SUBJECT = "%(title)s | %(newsletter)s"
MORE = "%(title)s (+%(count)d more) | %(newsletter)s"
HEADER = r'''msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\n"
"Language: de\n"
"Plural-Forms: nplurals=2; plural=(n != 1);\n"
'''
SHIPPED_MAIL = HEADER + r'''
msgid "%(title)s | %(newsletter)s"
msgstr "%(title)s · %(newsletter)s"

msgid "%(title)s (+%(count)d more) | %(newsletter)s"
msgid_plural "%(title)s (+%(count)d more) | %(newsletter)s"
msgstr[0] "%(title)s (+%(count)d weiterer) · %(newsletter)s"
msgstr[1] "%(title)s (+%(count)d weitere) · %(newsletter)s"
'''
SHIPPED_WEB = HEADER + '''
msgid "Subscribe"
msgstr "Abonnieren"

msgid "Unsubscribe"
msgstr "Abbestellen"
'''
# The operator's: one string each, nothing else.
OVERRIDE_MAIL = HEADER + r'''
msgid "%(title)s (+%(count)d more) | %(newsletter)s"
msgid_plural "%(title)s (+%(count)d more) | %(newsletter)s"
msgstr[0] "%(title)s und %(count)d Meldung mehr · %(newsletter)s"
msgstr[1] "%(title)s und %(count)d Meldungen mehr · %(newsletter)s"
'''
OVERRIDE_WEB = HEADER + '''
msgid "Subscribe"
msgstr "Jetzt anmelden"
'''


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _clear_caches() -> None:
    translations.shipped_languages.cache_clear()
    translations._translations.cache_clear()


@pytest.fixture
def shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A shipped locale/ with a German catalog for each domain, standing in for the real."""
    folder = tmp_path / "shipped-locale"
    _write(folder / "de" / "LC_MESSAGES" / "mail.po", SHIPPED_MAIL)
    _write(folder / "de" / "LC_MESSAGES" / "web.po", SHIPPED_WEB)
    monkeypatch.setattr(translations, "shipped_locale_dir", lambda: folder)
    _clear_caches()  # cached chains do not know the shipped folder changed
    yield folder
    _clear_caches()


def _override(project: Project, domain: str, text: str, language: str = "de") -> Path:
    return _write(project.root / "locale" / language / "LC_MESSAGES" / f"{domain}.po", text)


def _built_subject(project: Project, *options: str) -> str:
    result = project.run("build", "--week", "2026-W47", "--out", str(project.root / "out"),
                         *options)
    assert result.exit_code == 0, result.output
    message = email.message_from_bytes((project.root / "out" / "issue.eml").read_bytes(),
                                       policy=email.policy.default)
    return str(message["Subject"])


def _bump(path: Path) -> None:
    """A later modification time than the file had, as an editor saving it leaves (not
    left to the clock's resolution)."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))


def test_an_override_changes_one_string_and_leaves_the_rest_shipped(
        project: Project, shipped: Path) -> None:
    project.write_config('language = "de"\n')
    assert _built_subject(project).endswith("(+2 weitere) · Test Digest")  # the shipped one
    _override(project, "mail", OVERRIDE_MAIL)
    assert _built_subject(project).endswith("und 2 Meldungen mehr · Test Digest")

    locale_dir = project.root / "locale"
    # The strings the override leaves out still come from the shipped catalog…
    assert subject_line("Chips", 0, "Test Digest", "de", locale_dir) == "Chips · Test Digest"
    assert (subject_line("Chips", 1, "Test Digest", "de", locale_dir)
            == "Chips und 1 Meldung mehr · Test Digest")
    # …and English, which has no catalog, is the source whatever the override says.
    assert (subject_line("Chips", 2, "Test Digest", "en", locale_dir)
            == "Chips (+2 more) | Test Digest")


def test_a_web_override_changes_one_string(project: Project, shipped: Path) -> None:
    _override(project, "web", OVERRIDE_WEB)
    catalog = translations.translations("de", "web", project.root / "locale")
    assert catalog.gettext("Subscribe") == "Jetzt anmelden"
    assert catalog.gettext("Unsubscribe") == "Abbestellen"  # shipped
    assert catalog.gettext("Archive") == "Archive"  # in no catalog: the source
    # The mail domain is another catalog: a web override does not reach it.
    assert translations.translations("de", "mail", project.root / "locale").gettext(
        SUBJECT) == "%(title)s · %(newsletter)s"


def test_an_edited_override_is_read_again(project: Project, shipped: Path) -> None:
    project.write_config('language = "de"\n')
    po = _override(project, "mail", OVERRIDE_MAIL)
    assert _built_subject(project).endswith("und 2 Meldungen mehr · Test Digest")
    po.write_text(OVERRIDE_MAIL.replace("Meldungen mehr", "Nachrichten mehr"), encoding="utf-8")
    _bump(po)
    # The same process (a scheduler, `ainews serve`) sees the edit: no restart.
    assert _built_subject(project).endswith("und 2 Nachrichten mehr · Test Digest")
    po.unlink()
    assert _built_subject(project).endswith("(+2 weitere) · Test Digest")


@pytest.mark.parametrize(("broken", "line"), [
    pytest.param(('msgstr[1] "%(title)s und', "msgstr[1] %(title)s und"), 10, id="unquoted"),
    pytest.param(("msgid_plural", "msgid_plurl"), 8, id="keyword"),
    pytest.param(('msgstr[1] "%', 'msgstr[2] "x"\nmsgstr[1] "%'), 7,
                 id="too-many-forms"),  # Babel names the entry's first line
])
def test_a_broken_override_is_one_error_naming_file_and_line(
        project: Project, shipped: Path, broken: tuple[str, str], line: int) -> None:
    project.write_config('language = "de"\n')
    po = _override(project, "mail", OVERRIDE_MAIL.replace(*broken))
    result = project.run("build", "--week", "2026-W47", "--out", str(project.root / "out"))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {po}: line {line}: "), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    assert not (project.root / "out").exists()  # stopped before anything was written
    with pytest.raises(ConfigError, match=f"line {line}"):
        translations.translations("de", "mail", project.root / "locale", strict=True)


def test_a_catalog_in_another_charset_is_a_clear_error(project: Project, shipped: Path) -> None:
    po = _override(project, "mail", "")
    po.write_bytes(OVERRIDE_MAIL.replace("Meldungen", "Meldungen für").encode("latin-1"))
    with pytest.raises(ConfigError, match="cannot be read in its declared charset"):
        translations.translations("de", "mail", project.root / "locale", strict=True)


def test_a_broken_override_of_another_language_stops_serve_at_start(
        project: Project, shipped: Path) -> None:
    """The newsletter is in English, but readers of French get the operator's broken
    catalog: `serve` says so when it starts, not at a French reader's first page."""
    po = _override(project, "web", "msgid \"Subscribe\"\nmsgstr S'abonner\n", language="fr")
    result = project.run("serve")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {po}: line 2: not a .po line"), result.stderr


def test_a_tag_that_is_no_language_is_a_config_error(project: Project) -> None:
    project.write_config('language = "xx-invalid"\n')
    result = project.run("build", "--week", "2026-W47", "--out", str(project.root / "out"))
    assert result.exit_code == 1
    assert "newsletter.language: unknown language 'xx-invalid'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("command", [
    pytest.param(("build", "--week", "2026-W47", "--out", "out"), id="build"),
    pytest.param(("send", "--week", "2026-W47", "--yes"), id="send"),
    pytest.param(("serve",), id="serve"),
])
def test_a_language_without_any_catalog_stops_the_command(
        project: Project, shipped: Path, command: tuple[str, ...]) -> None:
    project.write_config('language = "sv"\n')
    result = project.run(*command)  # `build --out out`: out/ in the test's own folder
    assert result.exit_code == 1
    assert result.stderr.startswith("error: newsletter.language: no translation for 'sv' "
                                    "(there are: en, de)"), result.stderr
    assert "locale/sv/LC_MESSAGES/mail.po and web.po beside config.toml" in result.stderr
    assert not Path("out").exists()


def test_an_operator_can_add_a_language_of_their_own(project: Project, shipped: Path) -> None:
    """A language nobody ships, translated in the operator's locale/: accepted, and used."""
    project.write_config('language = "sv"\n')
    _override(project, "mail", OVERRIDE_MAIL.replace("Language: de", "Language: sv")
              .replace("und %(count)d Meldungen mehr", "och %(count)d till"), language="sv")
    assert _built_subject(project).endswith("och 2 till · Test Digest")


def test_a_broken_override_met_while_running_is_logged_once_and_skipped(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """`serve` checked the files at start; one broken afterwards must not make every
    request fail: the shipped words, one log line, and strict callers still get the error."""
    from ainews_newsletter import translations

    folder = tmp_path / "locale" / "de" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    (folder / "web.po").write_text('msgid "Subscribe"\nmsgstr Abonnieren\n', encoding="utf-8")
    shipped = translations.translations("de", "web").gettext("Subscribe")
    assert shipped != "Subscribe"  # the shipped German catalog translates it
    with caplog.at_level("ERROR", logger="ainews.translations"):
        for _ in range(3):
            assert translations.translations("de", "web", tmp_path / "locale").gettext(
                "Subscribe") == shipped
    assert [record.getMessage().split(":")[0] for record in caplog.records] == [
        str(folder / "web.po")]
    with pytest.raises(ConfigError, match="line 2"):
        translations.translations("de", "web", tmp_path / "locale", strict=True)


def test_a_misnamed_or_unknown_language_folder_is_named_at_start(tmp_path: Path) -> None:
    from ainews_newsletter import translations

    for name in ("pt_br", "klingon"):
        folder = tmp_path / "locale" / name / "LC_MESSAGES"
        folder.mkdir(parents=True)
        (folder / "web.po").write_text('msgid "Subscribe"\nmsgstr "X"\n', encoding="utf-8")
    assert translations.misnamed_folders(tmp_path / "locale") == ["klingon", "pt_br"]
    assert "klingon" not in translations.available_languages(tmp_path / "locale")
    with pytest.raises(ConfigError, match="klingon, pt_br: not named after a language"):
        translations.check_catalogs("en", tmp_path / "locale")


@pytest.mark.parametrize(("given", "tag"), [
    ("de", "de"), ("  DE ", "de"), ("pt_br", "pt-BR"), ("en_US", "en-US"),
    ("de_DE.UTF-8@euro", "de-DE"), ("en_US@calendar=gregorian;collation=phonebook", "en-US"),
])
def test_language_tags_are_made_canonical(given: str, tag: str) -> None:
    """As a locale column or a config value may give them: POSIX charsets and modifiers
    dropped (a modifier once made a 57-character value PostgreSQL refused to store)."""
    assert translations.canonical(given) == tag
    assert len(translations.canonical(given)) <= 35


@pytest.mark.parametrize("given", ["xx-invalid", "", "x" * 40, "de-" + "a" * 60])
def test_what_is_no_language_is_one_clear_error(given: str) -> None:
    with pytest.raises(ConfigError, match="unknown language"):
        translations.canonical(given)
