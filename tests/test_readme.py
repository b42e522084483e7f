"""The README's promises: a Quickstart of exactly two commands, the second being what CI runs."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _quickstart_commands() -> list[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```\w*\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 1, "the Quickstart has exactly one fenced block"
    return [line for line in blocks[0].splitlines() if line.strip()]


def test_quickstart_is_two_commands_demo_then_tests() -> None:
    first, second = _quickstart_commands()
    assert first.startswith("pip install") and first.endswith("ainews demo")
    assert second == "./scripts/test"


def test_ci_runs_the_readme_test_command_unweakened() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    second = _quickstart_commands()[1]
    assert re.search(rf"^{re.escape(second)}$", ci, re.MULTILINE)
    assert "set -euo pipefail" in ci
    script = (REPO / "scripts" / "test").read_text(encoding="utf-8")
    assert "set -euo pipefail" in script and "|| true" not in script + ci
    for tool in ("ruff check", "mypy --strict src", "pytest"):
        assert tool in script


def test_scripts_are_executable() -> None:
    for path in (REPO / ".ci" / "run", REPO / "scripts" / "test"):
        assert path.stat().st_mode & 0o111, path
