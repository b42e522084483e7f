"""The mails' templates are found file by file: the operator's `templates/` beside the config
first, then the shipped copy. A folder made before a template existed keeps working."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ainews_newsletter.config import load_config
from ainews_newsletter.errors import RenderError
from ainews_newsletter.models import Window
from ainews_newsletter.pipeline.issue import build
from ainews_newsletter.render.environment import (
    compile_template,
    make_environment,
    render_template,
    template_folders,
)
from ainews_newsletter.resources import shipped
from tests.conftest import Project

W47 = Window(week="2026-W47")
UNSUBSCRIBE = "https://news.example.org/unsubscribe/t"
OUR_TEXT = "Our own text part.\n{{ issue.subject }}\nLeave: {{ unsubscribe_url }}\n"


def _personal(project: Project) -> tuple[str, str]:
    config = load_config(project.config_path, environ={})
    return build(config, W47).personalize(UNSUBSCRIBE)


def test_an_override_of_the_text_part_alone_keeps_the_shipped_html(project: Project) -> None:
    shipped_html, shipped_text = _personal(project)
    templates = project.root / "templates"
    templates.mkdir()
    (templates / "digest.txt.j2").write_text(OUR_TEXT, encoding="utf-8")
    html, text = _personal(project)
    assert html == shipped_html  # digest.mjml.j2 and its partials: the shipped ones
    assert text.startswith("Our own text part.\n") and UNSUBSCRIBE in text
    assert text != shipped_text


def test_a_folder_made_before_a_partial_existed_keeps_working(project: Project) -> None:
    shipped_html, _ = _personal(project)
    templates = project.root / "templates"
    shutil.copytree(shipped("templates"), templates)
    (templates / "partials" / "more.mjml.j2").unlink()
    footer = templates / "partials" / "footer.mjml.j2"
    footer.write_text(footer.read_text().replace("Unsubscribe", "Leave this list"))
    html, _ = _personal(project)
    assert "Leave this list" in html  # their footer...
    assert html.replace("Leave this list", "Unsubscribe") == shipped_html  # ...the rest ours


def test_the_operators_folder_comes_first_and_the_shipped_one_once(tmp_path: Path) -> None:
    assert template_folders(tmp_path) == [tmp_path, shipped("templates")]
    assert template_folders(shipped("templates")) == [shipped("templates")]


def test_a_template_in_neither_folder_is_a_render_error(tmp_path: Path) -> None:
    environment = make_environment(tmp_path)
    with pytest.raises(RenderError, match=r"template not found: nothing\.txt\.j2"):
        compile_template(environment, "nothing.txt.j2")
    with pytest.raises(RenderError, match=r"template not found: nothing\.txt\.j2"):
        render_template(environment, "nothing.txt.j2", {})
    (tmp_path / "broken.txt.j2").write_text("line one\n{{ oops }\n")
    with pytest.raises(RenderError, match=r"broken.txt.j2:2: template syntax error"):
        compile_template(environment, "broken.txt.j2")
