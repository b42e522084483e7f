"""The README's promises: a Quickstart of exactly two commands, the second being what CI runs;
and the documentation's `posts list --json` example, which the README used to carry."""

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


def test_posts_list_json_example_matches_the_real_output(tmp_path: Path) -> None:
    """The documentation's `ainews posts list --json` example (docs/posts.md) has the keys
    the command prints."""
    import json

    from click.testing import CliRunner

    from ainews_newsletter.cli import app

    page = (REPO / "docs" / "posts.md").read_text(encoding="utf-8")
    example = json.loads(page.split("`ainews posts list --json` shows exactly that:", 1)[1]
                         .split("```json\n", 1)[1].split("```", 1)[0])
    result = CliRunner().invoke(app.cli, ["--config", str(REPO / "config.toml"), "posts", "list",
                                          "--week", "2026-W47", "--json"],
                           env={"AINEWS_STORAGE__URL": f"sqlite:///{tmp_path / 'a.db'}"})
    real = json.loads(result.output)
    assert set(example) == set(real)
    assert set(example["window"]) == set(real["window"])
    assert set(example["posts"][0]) == set(real["posts"][0])
    assert set(example["excluded"][0]) == set(real["excluded"][0])
    assert example["posts"][0]["date"] == real["posts"][0]["date"]
    assert example["in_window"] == real["in_window"]
