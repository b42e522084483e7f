"""Start-up stays quick because the CLI imports little: `ainews --help` loads no command
module (nor SQLAlchemy, pydantic, rich, the renderer); `ainews subscribers count` loads and
checks the whole config, in every configuration (file, environment, both), then counts a
SQLite file with sqlite3: no SQLAlchemy, pydantic-settings or email-validator, nor the
renderer, rich tables or the importer. Checked in fresh processes by what they imported,
never by timing (benchmarks/startup.py times them)."""

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
from ainews_newsletter.database import dispose_all
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
HEAVY = ("sqlalchemy", "pydantic", "pydantic_settings", "rich", "jinja2", "mjml", "css_inline",
         "html2text",
         "email_validator", "alembic", "ainews_newsletter.config.root",
         "ainews_newsletter.config.loading", "ainews_newsletter.pipeline")
NOT_FOR_COUNTING = ("rich", "jinja2", "mjml", "css_inline", "html2text", "alembic",
                    "ainews_newsletter.render",
                    "ainews_newsletter.pipeline", "ainews_newsletter.delivery",
                    "ainews_newsletter.subscribers.importer",
                    "ainews_newsletter.subscribers.formats")


def _probe(*args: str, load_all: bool = False,
           environ: dict[str, str] | None = None) -> tuple[int, str, set[str]]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AINEWS_")}
    env["COLUMNS"] = "80"
    env.update(environ or {})
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


SECRETS = {"AINEWS_SECRET_KEY": "a secret key of the test", "AINEWS_SMTP__PASSWORD": "pw"}


def _configuration(project: Project, which: str) -> tuple[list[str], dict[str, str]]:
    """The arguments and environment of a count configured by its file, by its environment
    alone (as a container or a systemd unit: no file at all), or by both."""
    if which == "file":
        return ["--config", str(project.config_path)], {}
    if which == "environment":
        return [], {"AINEWS_STORAGE__URL": f"sqlite:///{project.database}",
                    "AINEWS_NEWSLETTER__NAME": "From The Environment",
                    "AINEWS_NEWSLETTER__FROM": "digest@news.example.org",
                    "AINEWS_SMTP__PORT": "587", **SECRETS}
    return ["--config", str(project.config_path)], {"AINEWS_SMTP__PORT": "587", **SECRETS}


@pytest.mark.parametrize("which", ["file", "environment", "both"])
def test_count_loads_the_whole_config_and_counts_with_sqlite3(project: Project,
                                                                which: str) -> None:
    """One path whatever the configuration: the config loaded and checked (pydantic), then
    one sqlite3 query; no SQLAlchemy, no pydantic-settings, no email-validator."""
    project.import_readers(3)
    args, environ = _configuration(project, which)
    code, output, modules = _probe(*args, "subscribers", "count", environ=environ)
    assert (code, output.strip()) == (0, "3")
    assert {"ainews_newsletter.config.root", "ainews_newsletter.config.loading",
            "ainews_newsletter.subscribers.quickcount"} <= modules
    assert _loaded(modules, (*NOT_FOR_COUNTING, "sqlalchemy", "pydantic_settings",
                             "email_validator", "ainews_newsletter.subscribers.store")) == []


@pytest.mark.parametrize("which", ["environment", "both"])
def test_count_judges_the_environment_in_every_configuration(project: Project,
                                                             which: str) -> None:
    """A bad value in the environment stops the count as it stops any command."""
    project.import_readers(3)
    args, environ = _configuration(project, which)
    env = {key: value for key, value in os.environ.items() if not key.startswith("AINEWS_")}
    done = subprocess.run([sys.executable, "-m", "ainews_newsletter", *args, "subscribers",
                           "count"], capture_output=True, text=True, check=False,
                          env={**env, **environ, "AINEWS_SMTP__PORT": "99999"})
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith("error: environment AINEWS_SMTP__PORT: smtp.port")


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


@pytest.mark.parametrize(("args", "code"), [(("subscribers", "list"), 0),
                                            (("send", "--issue", "2099-W01", "--yes"), 1)])
def test_the_end_closes_the_database_and_keeps_the_exit_code(project: Project,
                                                              args: tuple[str, ...],
                                                              code: int) -> None:
    """At the end (cli/app.py's _before_exit) the pooled connections are closed, so SQLite
    folds its write-ahead log back and removes it, and the collector is frozen (no full
    collections while the interpreter shuts down): the command's exit code and output are
    what they were, whether it succeeded or failed."""
    project.import_readers(2)
    dispose_all()  # this process's connections closed: the command's are the last ones
    env = {key: value for key, value in os.environ.items() if not key.startswith("AINEWS_")}
    probe = PROBE.replace('print("\\n"', 'import gc; print(gc.get_freeze_count() > 0)\n'
                                         'print("\\n"')
    done = subprocess.run([sys.executable, "-c", probe, "--config", str(project.config_path),
                           *args], capture_output=True, text=True, env=env, check=False)
    output, _, last = done.stdout.rpartition("\n{")
    assert json.loads("{" + last)["code"] == code
    assert output.splitlines()[-1] == "True"
    if code == 0:
        assert "reader001@example.com" in output
    else:
        assert "no issue '2099-W01' in the ledger" in done.stderr
    assert project.database.exists()
    assert not project.database.with_name(project.database.name + "-wal").exists()
