"""Start-up stays quick because the CLI imports little: `ainews --help` loads no command
module (nor SQLAlchemy, pydantic, rich, the renderer), `ainews subscribers count` loads the
config and the store but not the renderer, rich tables or the importer. Checked in fresh
processes by what they imported, never by timing (benchmarks/startup.py times them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import click
import pytest

from ainews_newsletter.cli import app
from ainews_newsletter.cli.common import LazyGroup, short_help_of
from ainews_newsletter.cli.subscribers import subscribers
from tests.conftest import Project

# Runs the CLI in this process, then prints which modules it imported.
PROBE = textwrap.dedent("""\
    import json, os, sys
    import click
    from ainews_newsletter.cli import main
    from ainews_newsletter.cli.app import cli
    if os.environ.get("PROBE_LOAD_ALL"):  # as if every command had been imported up front
        for name in cli.list_commands(click.Context(cli)):
            cli.get_command(click.Context(cli), name)
    sys.argv = ["ainews", *sys.argv[1:]]
    try:
        main()
    except SystemExit as exit:
        code = exit.code
    print("\\n" + json.dumps({"code": code, "modules": sorted(sys.modules)}))
""")
HEAVY = ("sqlalchemy", "pydantic", "pydantic_settings", "rich", "jinja2", "mjml", "premailer",
         "email_validator", "alembic", "ainews_newsletter.config.root",
         "ainews_newsletter.config.loading", "ainews_newsletter.pipeline")
NOT_FOR_COUNTING = ("rich", "jinja2", "mjml", "premailer", "alembic", "ainews_newsletter.render",
                    "ainews_newsletter.pipeline", "ainews_newsletter.delivery",
                    "ainews_newsletter.subscribers.importer",
                    "ainews_newsletter.subscribers.formats")


def _probe(*args: str, load_all: bool = False) -> tuple[int, str, set[str]]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AINEWS_")}
    env["COLUMNS"] = "80"
    if load_all:
        env["PROBE_LOAD_ALL"] = "1"
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True,
                          text=True, env=env, check=False)
    output, _, last = done.stdout.rpartition("\n{")
    report = json.loads("{" + last)
    return report["code"], output, set(report["modules"])


def _loaded(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    return sorted(name for name in modules
                  if any(name == package or name.startswith(package + ".")
                         for package in packages))


def test_help_imports_no_command_and_nothing_heavy() -> None:
    code, output, modules = _probe("--help")
    assert code == 0
    assert "subscribers  Add, remove, unsubscribe, list, count, import and export" in output
    assert _loaded(modules, HEAVY) == []
    commands = {name for name in modules if name.startswith("ainews_newsletter.cli.")}
    assert commands == {"ainews_newsletter.cli.app", "ainews_newsletter.cli.common"}


def test_count_on_sqlite_needs_neither_sqlalchemy_nor_pydantic(project: Project) -> None:
    """Once the full config has accepted the file as it is (the first count), counting
    needs neither."""
    project.import_readers(3)
    first = _probe("--config", str(project.config_path), "subscribers", "count")
    assert first[:2] == (0, "3\n") and "sqlalchemy" in first[2]  # the full path, once
    code, output, modules = _probe("--config", str(project.config_path), "subscribers",
                                   "count")
    assert (code, output.strip()) == (0, "3")
    assert "ainews_newsletter.subscribers.quickcount" in modules
    assert _loaded(modules, (*NOT_FOR_COUNTING, *HEAVY)) == []


def test_count_the_quick_path_cannot_answer_loads_the_store_only(project: Project) -> None:
    """A list the database lacks: the store answers (and says so), still without the
    renderer or the importer."""
    project.import_readers(3)
    code, _, modules = _probe("--config", str(project.config_path), "subscribers",
                                   "count", "--list", "nosuch")
    assert code == 1
    assert "ainews_newsletter.subscribers.store" in modules
    assert _loaded(modules, NOT_FOR_COUNTING) == []


def test_a_database_error_is_one_line_without_sqlalchemy_imported_up_front(
        project: Project) -> None:
    """The error handler recognizes SQLAlchemy's errors without importing SQLAlchemy itself
    (a command that raised one has imported it)."""
    project.database.parent.mkdir(parents=True, exist_ok=True)
    project.database.write_bytes(b"not a database, only text " * 8)
    env = {key: value for key, value in os.environ.items() if not key.startswith("AINEWS_")}
    done = subprocess.run([sys.executable, "-m", "ainews_newsletter", "--config",
                           str(project.config_path), "subscribers", "count"],
                          capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: database: DatabaseError: (sqlite3.DatabaseError) file is not a database"]


@pytest.mark.parametrize("group", [app.cli, subscribers], ids=["ainews", "subscribers"])
def test_the_lazy_table_says_what_the_commands_say(group: click.Group) -> None:
    """Each lazily listed command is where the table says, and its short help in `--help`
    is the one click makes from its docstring, at every width."""
    assert isinstance(group, LazyGroup)
    for name, (_, short_help) in group.lazy_commands.items():
        command = group.load(name)
        assert command.name == name
        for limit in range(20, 200):
            assert short_help_of(short_help, limit) == \
                command.get_short_help_str(limit), (name, limit)


def test_help_reads_the_same_before_and_after_the_commands_are_loaded() -> None:
    lazy_code, lazy, lazy_modules = _probe("--help")
    loaded_code, loaded, loaded_modules = _probe("--help", load_all=True)
    assert (lazy_code, loaded_code) == (0, 0)
    assert "ainews_newsletter.cli.subscribers" in loaded_modules - lazy_modules
    assert lazy == loaded
