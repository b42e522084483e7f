"""The sample week rendered, compared with files kept in the repository (pelican's habit):
a change to templates or rendering shows up as a diff to review. After reviewing, refresh
them with `pytest tests/render/test_snapshots.py --update-snapshots`."""

from __future__ import annotations

from pathlib import Path

import pytest

from ainews_newsletter.config import load_config
from ainews_newsletter.models import Window
from ainews_newsletter.pipeline.issue import build

REPO = Path(__file__).resolve().parents[2]
SNAPSHOTS = REPO / "tests" / "snapshots"
UNSUBSCRIBE = "https://ainews.example/unsubscribe/SNAPSHOT-TOKEN"


def _render() -> tuple[str, str]:
    config = load_config(REPO / "config.toml", environ={},
                         overrides={"storage": {"url": "sqlite:///:memory:"}})
    rendered = build(config, Window(week="2026-W47"))
    return rendered.personalize(UNSUBSCRIBE)


@pytest.mark.parametrize(("index", "name"), [(0, "sample-week.html"), (1, "sample-week.txt")])
def test_sample_week_matches_snapshot(index: int, name: str, update_snapshots: bool) -> None:
    current = _render()[index]
    path = SNAPSHOTS / name
    if update_snapshots or not path.exists():
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(current, encoding="utf-8")
        if not update_snapshots:
            pytest.fail(f"{path} did not exist; written now, review it and commit it")
    expected = path.read_text(encoding="utf-8")
    assert current == expected, (f"{name} changed; review `git diff` after running pytest "
                                 "with --update-snapshots")


def test_rendering_is_deterministic() -> None:
    assert _render() == _render()
