"""The wheel ships compiled catalogs (issue 30): hatch_build.py compiles every
locale/<folder>/LC_MESSAGES/<domain>.po into ainews_newsletter/_shipped/locale/…/<domain>.mo,
and an installed newsletter reads them. Built for real (`pip wheel`, hatchling) from a copy
of the repository with a small catalog of its own, so it does not wait for the real ones."""

from __future__ import annotations

import gettext
import importlib.util
import io
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from ainews_newsletter import translations

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = "ainews_newsletter/_shipped/locale"
# What the wheel needs of the repository (pyproject's force-include and the package).
PARTS = ("pyproject.toml", "hatch_build.py", "README.md", "config.toml", "src", "templates",
         "locale", "posts", "subscribers/sample.csv")
SUBJECT = "%(title)s | %(newsletter)s"
MORE = "%(title)s (+%(count)d more) | %(newsletter)s"
# A language no shipped catalog covers, so the test's own catalog is the only one.
FINNISH = r'''msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\n"
"Language: fi\n"
"Plural-Forms: nplurals=2; plural=(n != 1);\n"

msgid "%(title)s | %(newsletter)s"
msgstr "%(title)s – %(newsletter)s"

msgid "%(title)s (+%(count)d more) | %(newsletter)s"
msgid_plural "%(title)s (+%(count)d more) | %(newsletter)s"
msgstr[0] "%(title)s (+%(count)d muu) – %(newsletter)s"
msgstr[1] "%(title)s (+%(count)d muuta) – %(newsletter)s"

#, fuzzy
msgid "Unsubscribe"
msgstr "Peru tilaus"
'''


def _hatchling_or_fail() -> None:
    if importlib.util.find_spec("hatchling") is None:
        pytest.fail("hatchling is not installed; `pip install -e '.[test]'` installs it")


def _copy_repository(target: Path) -> Path:
    for part in PARTS:
        source, destination = ROOT / part, target / part
        destination.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, destination,
                            ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
        else:
            shutil.copy2(source, destination)
    messages = target / "locale" / "fi" / "LC_MESSAGES"
    messages.mkdir(parents=True)
    (messages / "mail.po").write_text(FINNISH, encoding="utf-8")
    return target


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the copied repository, the wheel built from it)."""
    _hatchling_or_fail()
    repository = _copy_repository(tmp_path_factory.mktemp("repository"))
    # A stale .mo a developer compiled by hand, of an older translation: the build's own
    # compile must win, not be shipped beside it.
    stale = repository / "locale" / "fi" / "LC_MESSAGES" / "mail.mo"
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    older = read_po(io.StringIO(FINNISH.replace("%(title)s – %(newsletter)s", "vanha")))
    with stale.open("wb") as file:
        write_mo(file, older)
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "-q", "-w", str(out), "."],
        cwd=repository, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    [built] = out.glob("ainews_newsletter-*.whl")
    return repository, built


def test_every_catalog_is_compiled_into_the_wheel(wheel: tuple[Path, Path]) -> None:
    repository, built = wheel
    catalogs = sorted(path.relative_to(repository / "locale").as_posix()
                      for path in (repository / "locale").glob("*/LC_MESSAGES/*.po"))
    assert "fi/LC_MESSAGES/mail.po" in catalogs
    names = set(zipfile.ZipFile(built).namelist())
    for po in catalogs:
        assert f"{SHIPPED}/{po}" in names, f"{po} is not shipped"
        assert f"{SHIPPED}/{po[:-3]}.mo" in names, f"{po} is not compiled into the wheel"
    compiled = sorted(name for name in zipfile.ZipFile(built).namelist() if name.endswith(".mo"))
    assert compiled == sorted(f"{SHIPPED}/{po[:-3]}.mo" for po in catalogs)  # each once


def test_a_compiled_catalog_translates_with_gettext(wheel: tuple[Path, Path]) -> None:
    _, built = wheel
    with zipfile.ZipFile(built) as archive, \
            archive.open(f"{SHIPPED}/fi/LC_MESSAGES/mail.mo") as file:
        catalog = gettext.GNUTranslations(file)
    assert catalog.gettext(SUBJECT) == "%(title)s – %(newsletter)s"
    assert catalog.ngettext(MORE, MORE, 1) == "%(title)s (+%(count)d muu) – %(newsletter)s"
    assert catalog.ngettext(MORE, MORE, 5) == "%(title)s (+%(count)d muuta) – %(newsletter)s"
    # A fuzzy entry is a guess nobody checked: left out, so the reader gets the source.
    assert catalog.gettext("Unsubscribe") == "Unsubscribe"


def test_an_installed_newsletter_reads_the_compiled_catalog(
        wheel: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, built = wheel
    with zipfile.ZipFile(built) as archive:
        archive.extractall(tmp_path)
    shipped = tmp_path / SHIPPED
    for po in shipped.glob("*/LC_MESSAGES/*.po"):
        po.unlink()  # only the .mo left: it alone must carry the translation
    monkeypatch.setattr(translations, "shipped_locale_dir", lambda: shipped)
    translations.shipped_languages.cache_clear()
    translations._translations.cache_clear()
    try:
        assert "fi" in translations.shipped_languages()
        assert translations.check_language("fi") == "fi"
        catalog = translations.translations("fi", "mail")
        assert catalog.gettext(SUBJECT) == "%(title)s – %(newsletter)s"
    finally:
        translations.shipped_languages.cache_clear()
        translations._translations.cache_clear()


def _hook_module() -> ModuleType:
    _hatchling_or_fail()
    spec = importlib.util.spec_from_file_location("hatch_build", ROOT / "hatch_build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_an_editable_install_compiles_nothing(tmp_path: Path) -> None:
    """An editable install reads the checkout's .po (compiled when loaded), so an edited
    catalog shows without a rebuild; the hook adds nothing to it."""
    hook_module = _hook_module()
    repository = _copy_repository(tmp_path / "repository")

    def data_for(version: str) -> dict[str, object]:
        hook = hook_module.CatalogBuildHook(str(repository), {}, None, None,
                                            str(tmp_path / "out"), "wheel")
        build_data: dict[str, dict[str, str]] = {"force_include": {}}
        hook.initialize(version, build_data)
        hook.finalize(version, build_data, "")
        return build_data

    assert data_for("editable") == {"force_include": {}}
    standard = data_for("standard")["force_include"]
    assert isinstance(standard, dict)
    assert f"{SHIPPED}/fi/LC_MESSAGES/mail.mo" in standard.values()


def test_a_broken_catalog_fails_the_build(tmp_path: Path) -> None:
    hook_module = _hook_module()
    from babel.messages.pofile import PoFileError

    broken = tmp_path / "locale" / "fi" / "LC_MESSAGES" / "mail.po"
    broken.parent.mkdir(parents=True)
    broken.write_text(FINNISH.replace('\n#, fuzzy', '\nmsgstr[3] "kolmas"\n#, fuzzy'),
                      encoding="utf-8")
    with pytest.raises(PoFileError, match="num_plurals"):
        hook_module.compile_catalogs(tmp_path / "locale", tmp_path / "out")
    assert not list((tmp_path / "out").glob("**/*.mo"))
