"""Hatchling build hook (pyproject.toml, [tool.hatch.build.targets.wheel.hooks.custom]):
every locale/<folder>/LC_MESSAGES/<domain>.po is compiled into a .mo inside the wheel, at
ainews_newsletter/_shipped/locale/<folder>/LC_MESSAGES/<domain>.mo, so an installed
newsletter reads compiled catalogs and never parses a .po at run time (issue 30).

An editable install is left alone: there the catalogs are the checkout's .po files, which
translations.py compiles when it loads them, so an edited .po shows without a rebuild.

The .mo files are written to a temporary folder outside the project: a target outside the
root wins over a stale .mo a developer may have compiled inside locale/ (hatchling reserves
the path), and the checkout stays clean."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

TARGET = "ainews_newsletter/_shipped/locale"


def compile_catalogs(locale_dir: Path, out_dir: Path) -> dict[str, str]:
    """Compile every <folder>/LC_MESSAGES/<domain>.po under `locale_dir` into `out_dir`;
    {compiled file: its path in the wheel}. Fuzzy and untranslated entries are left out,
    as translations.py leaves them out when it compiles a .po itself."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    included: dict[str, str] = {}
    for po in sorted(locale_dir.glob("*/LC_MESSAGES/*.po")):
        relative = po.relative_to(locale_dir).with_suffix(".mo")
        mo = out_dir / relative
        mo.parent.mkdir(parents=True, exist_ok=True)
        with po.open("rb") as source:
            # abort_invalid: a broken catalog fails the build, naming the file and line,
            # instead of shipping a wheel that lacks its strings.
            catalog = read_po(source, ignore_obsolete=True, abort_invalid=True)
        with mo.open("wb") as target:
            write_mo(target, catalog, use_fuzzy=False)
        included[str(mo)] = f"{TARGET}/{relative.as_posix()}"
    return included


class CatalogBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"
    _compiled: Path | None = None

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable":
            return
        locale_dir = Path(self.root) / "locale"
        if not locale_dir.is_dir():
            return
        self._compiled = Path(tempfile.mkdtemp(prefix="ainews-catalogs-"))
        try:
            build_data["force_include"].update(compile_catalogs(locale_dir, self._compiled))
        except BaseException:  # a broken catalog fails the build: leave no folder behind
            shutil.rmtree(self._compiled, ignore_errors=True)
            self._compiled = None
            raise

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if self._compiled is not None:
            shutil.rmtree(self._compiled, ignore_errors=True)
            self._compiled = None
