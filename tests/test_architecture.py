"""The rooms and their rules (docs/contributing.md), checked by parsing imports so they
cannot rot: leaves import nothing of ours (but other leaves), a room imports only leaves and
itself, orchestrators (pipeline, demo) cross rooms, and nothing imports an entry point except
the CLI, which is how `ainews schedule` and `ainews preview`/`serve` reach theirs."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "ainews_newsletter"
SRC = Path(__file__).resolve().parent.parent / "src" / PACKAGE
LEAVES = {"models", "errors", "config", "clock", "database", "resources", "translations",
          "html_limits",
          "language_tags", "storage_faults", "migrations"}
ROOMS = {"posts", "render", "subscribers", "delivery", "feedback", "reports", "doctor"}
ORCHESTRATORS = {"pipeline", "demo", "init"}
ENTRY_POINTS = {"cli", "schedule", "web", "__main__"}


def _unit(module_path: Path) -> str:
    """The first component below the package: 'posts' for posts/sources.py."""
    relative = module_path.relative_to(SRC)
    return relative.parts[0].removesuffix(".py")


def _imports(module_path: Path) -> set[str]:
    """Units of our package this module imports."""
    found: set[str] = set()
    tree = ast.parse(module_path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.level:
                raise AssertionError(f"{module_path}: use absolute imports")
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == PACKAGE and len(parts) > 1:
                # `from ainews_newsletter import __version__` reads the package's __init__
                found.add("__init__" if parts[1].startswith("__") else parts[1])
    return found


MODULES = sorted(p for p in SRC.rglob("*.py") if _unit(p) != "__init__")


def test_every_module_is_classified() -> None:
    units = {_unit(path) for path in MODULES}
    unknown = units - LEAVES - ROOMS - ORCHESTRATORS - ENTRY_POINTS
    assert not unknown, f"classify these in test_architecture.py: {unknown}"
    assert units >= ROOMS and {"pipeline", "cli"} <= units


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_follow_the_house_rules(path: Path) -> None:
    unit = _unit(path)
    imported = _imports(path) - {unit, "__init__"}
    if unit in LEAVES or unit in ROOMS:
        allowed = LEAVES
    elif unit == "__main__":  # `python -m ainews_newsletter` is the CLI by another door
        allowed = {"cli"}
    elif unit == "cli":  # the command line is also the door to the scheduler and the web
        allowed = LEAVES | ROOMS | ORCHESTRATORS | {"schedule", "web"}
    else:  # orchestrators and entry points cross rooms; nobody else imports an entry point
        allowed = LEAVES | ROOMS | ORCHESTRATORS
    assert imported <= allowed, f"{path.relative_to(SRC)} imports {imported - allowed}"


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    """Guard against a checker that passes everything: a room importing a room is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("from ainews_newsletter.delivery.ledger import Ledger\n"
                   "import ainews_newsletter.cli\n")
    assert _imports(bad) == {"delivery", "cli"}


def test_no_clock_outside_clock_module() -> None:
    offenders = [str(p.relative_to(SRC)) for p in MODULES if p.name != "clock.py"
                 and ("datetime.now(" in p.read_text() or "utcnow(" in p.read_text())]
    assert offenders == []


MAX_MODULE_LINES = 400  # docs/contributing.md: split a module by job before it grows past this


def long_modules(root: Path) -> list[str]:
    """Modules of `root` longer than MAX_MODULE_LINES, with their length."""
    found = []
    for path in sorted(root.rglob("*.py")):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_MODULE_LINES:
            found.append(f"{path.relative_to(root)}: {lines} lines")
    return found


def test_no_module_is_over_400_lines() -> None:
    assert long_modules(SRC) == []


def test_the_size_check_sees_a_long_module(tmp_path: Path) -> None:
    (tmp_path / "short.py").write_text("x = 1\n" * MAX_MODULE_LINES)
    (tmp_path / "long.py").write_text("x = 1\n" * (MAX_MODULE_LINES + 1))
    assert long_modules(tmp_path) == [f"long.py: {MAX_MODULE_LINES + 1} lines"]
