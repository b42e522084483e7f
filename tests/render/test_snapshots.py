"""The sample week rendered, compared with files kept in the repository (pelican's habit):
a change to templates or rendering shows up as a diff to review. After reviewing, refresh
them with `pytest tests/render/test_snapshots.py --update-snapshots`. The same week in every
shipped language has its own pair (sample-week.<tag>.html and .txt), and the translated
words, dates, `lang` and `dir` are asserted as well, so a reviewed snapshot is not the only
guard."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from ainews_newsletter.config import load_config
from ainews_newsletter.models import Window
from ainews_newsletter.pipeline.issue import build

REPO = Path(__file__).resolve().parents[2]
SNAPSHOTS = REPO / "tests" / "snapshots"
UNSUBSCRIBE = "https://ainews.example/unsubscribe/SNAPSHOT-TOKEN"


# The shipped translations (issue 30), as [newsletter] language spells them.
LANGUAGES = ("de", "fr", "es", "pt-BR", "it", "nl", "ja", "ar")
# Fixed English words of the digest: none may be left in a translated issue.
ENGLISH_WORDS = ("View in", "Read more", "min read", "You receive", "Unsubscribe", "Issue #",
                 "stories", "More this week")


def _render(language: str = "en") -> tuple[str, str]:
    config = load_config(REPO / "config.toml", environ={},
                         overrides={"storage": {"url": "sqlite:///:memory:"},
                                    "newsletter": {"language": language}})
    rendered = build(config, Window(week="2026-W47"))
    return rendered.personalize(UNSUBSCRIBE)


@cache
def rendered_in(language: str) -> tuple[str, str]:
    """The sample week in `language`, rendered once per test session."""
    return _render(language)


def snapshot_name(language: str, suffix: str) -> str:
    return f"sample-week.{suffix}" if language == "en" else f"sample-week.{language}.{suffix}"


@pytest.mark.parametrize("language", ["en", *LANGUAGES])
@pytest.mark.parametrize(("index", "suffix"), [(0, "html"), (1, "txt")])
def test_sample_week_matches_snapshot(language: str, index: int, suffix: str,
                                      update_snapshots: bool) -> None:
    current = rendered_in(language)[index]
    name = snapshot_name(language, suffix)
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


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_language_has_its_own_words_lang_and_direction(language: str) -> None:
    html, text = rendered_in(language)
    direction = "rtl" if language == "ar" else "ltr"
    assert f'<html lang="{language}" dir="{direction}"' in html
    assert f'role="article" lang="{language}" dir="{direction}"' in html
    for part in (html, text):
        left = [word for word in ENGLISH_WORDS if word in part]
        assert left == [], f"English left in the {language} issue: {left}"
    assert UNSUBSCRIBE in html and UNSUBSCRIBE in text


def test_german_words_and_dates() -> None:
    html, text = rendered_in("de")
    assert "Ausgabe Nr. 1 · 16.–22. November 2026 · 5 Meldungen" in text
    assert "Ausgabe Nr. 1 · 16.–22. November 2026 · 5 Meldungen" in html
    assert f"Abbestellen: {UNSUBSCRIBE}" in text
    assert f'Jederzeit mit einem Klick <a href="{UNSUBSCRIBE}"' in html
    assert ">Im Browser ansehen</a>" in html
    assert "Min. Lesezeit" in html and ">Weiterlesen" in html
    assert "Sie erhalten AI News Weekly, weil Sie sich auf https://ainews.example" in text
    # the subject's plural and the HTML title
    assert "(+4 weitere) | AI News Weekly</title>" in html


def test_arabic_reads_right_to_left() -> None:
    html, text = rendered_in("ar")
    assert 'dir="rtl"' in html and "direction:rtl" in html
    assert "direction:ltr" not in html  # no section, column or wrapper left to right
    assert 'text-align:right' in html
    assert "اقرأ المزيد&nbsp;←" in html  # the arrow points the way the text reads
    assert "→" not in html
    assert f"إلغاء الاشتراك: {UNSUBSCRIBE}" in text
    assert "العدد 1 · " in text and " · 5 أخبار" in text  # Arabic's "few" plural (3-10)
    assert "2 دقيقتان للقراءة" in html  # two minutes: the dual form


def test_japanese_has_one_plural_form() -> None:
    html, text = rendered_in("ja")
    assert "第1号" in text and "5件の記事" in text
    assert "分で読めます" in html and "配信停止: " + UNSUBSCRIBE in text
