"""What every command shares: the lazily loaded config, the error handling, JSON output,
and the lazily loaded commands.

Start-up time matters here (`ainews --help`, `ainews subscribers count` in a script): this
module and app.py import only click and the standard library. rich, pydantic (the config),
SQLAlchemy and the rooms are imported when a command needs them."""

from __future__ import annotations

import functools
import importlib
import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

from ainews_newsletter.errors import AinewsError, ConfigError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from ainews_newsletter.config import Config
    from ainews_newsletter.render.lint import Finding

F = TypeVar("F", bound=Callable[..., Any])


@functools.cache
def real_console() -> Console:
    """The one rich console (see output.py), made on first use."""
    from ainews_newsletter.cli.output import make_console

    return make_console()


class _LazyConsole:
    """Stands in for the console until something is printed, so that importing a command
    module does not import rich."""

    def __getattr__(self, name: str) -> Any:
        return getattr(real_console(), name)


if TYPE_CHECKING:
    console: Console
else:
    console = _LazyConsole()


class AppState:
    """Holds --config; the config is loaded on first use so `--help` never needs a file."""

    def __init__(self, config_path: Path | None) -> None:
        self.config_path = config_path
        self._config: Config | None = None

    @property
    def loaded_config(self) -> Config | None:
        """The config if a command loaded it (an error report must not load it now)."""
        return self._config

    @property
    def config(self) -> Config:
        """No command runs on built-in defaults alone: most read or write the database, and
        a default one would quietly appear as data/ainews.db wherever they were started.
        A config file, or AINEWS_STORAGE__URL (a container configured by its environment),
        says where the newsletter lives. `demo` and `init` never come here."""
        if self._config is None:
            from ainews_newsletter.config import load_config
            from ainews_newsletter.config.locate import (
                CONFIG_ENV_VAR,
                DEFAULT_CONFIG_NAME,
                STORAGE_URL_ENV_VAR,
                config_path_from,
                environment_value,
            )

            if (config_path_from(self.config_path, os.environ) is None
                    and not environment_value(os.environ, STORAGE_URL_ENV_VAR)):
                raise ConfigError(
                    f"no configuration: no --config, no {CONFIG_ENV_VAR}, and no "
                    f"{DEFAULT_CONFIG_NAME} in {Path.cwd()}; start a newsletter with "
                    "`ainews init DIR` (or try the sample with `ainews demo`)")
            self._config = load_config(self.config_path)
        return self._config


pass_state = click.make_pass_decorator(AppState)


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)


def one_line_logging() -> None:
    """For commands that read outside input (bounce mail, files): a log record that reaches
    no handler (the CLI sets none up; the scheduler and the web server do) prints as one
    line on stderr, never with a traceback. Python's own fallback (logging.lastResort)
    prints the traceback of a record logged with exc_info, which a user who gave a broken
    file must not see. logging is imported here, not at start-up."""
    import logging

    class OneLine(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                error = record.exc_info[1]
                message += f" ({error.__class__.__name__}: {error})"
            lines = message.splitlines() or [""]
            sys.stderr.write(f"{record.levelname.lower()}: {lines[0]}\n")  # stderr as it is now

    logging.lastResort = OneLine(logging.WARNING)


class LazyGroup(click.Group):
    """A group that knows some commands by name and short help only, and imports a
    command's module when that command is run (or its own --help is asked for): listing
    the commands in `--help` imports none of them.

    `lazy_commands` maps a name to ("package.module:attribute", help), the help being the
    first paragraph of the command's docstring, from which click makes the short help at any
    width (whichever click: how it shortens changed in 8.5); tests/test_cli_startup.py
    checks the table against the commands themselves."""

    def __init__(self, *args: Any, lazy_commands: Mapping[str, tuple[str, str]] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy_commands:
            self.add_command(self.load(cmd_name), cmd_name)
        return super().get_command(ctx, cmd_name)

    def load(self, cmd_name: str) -> click.Command:
        module_name, _, attribute = self.lazy_commands[cmd_name][0].partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{module_name}:{attribute} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's own, but a command not loaded yet shows its short help from the table."""
        rows: list[tuple[str, Callable[[int], str]]] = []
        for name in self.list_commands(ctx):
            command = self.commands.get(name)
            if command is None:
                text = self.lazy_commands[name][1]
                rows.append((name, functools.partial(short_help_of, text)))
            elif not command.hidden:
                rows.append((name, command.get_short_help_str))
        if rows:
            limit = formatter.width - 6 - max(len(name) for name, _ in rows)
            with formatter.section("Commands"):
                formatter.write_dl([(name, short_help(limit)) for name, short_help in rows])


def short_help_of(text: str, limit: int) -> str:
    """The short help click makes of `text` for a listing `limit` wide (through a command,
    click's public way: its helper for it is private from 8.5 on)."""
    return click.Command(None, help=text).get_short_help_str(limit)


def _database_error(exc: Exception) -> bool:
    """An SQLAlchemy error, checked without importing SQLAlchemy: a command that raised one
    has imported it already."""
    sqlalchemy_exc = sys.modules.get("sqlalchemy.exc")
    return sqlalchemy_exc is not None and isinstance(exc, sqlalchemy_exc.SQLAlchemyError)


class ErrorHandlingGroup(LazyGroup):
    """Turns user-facing errors into one line on stderr and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AinewsError as exc:
            fail(str(exc))
            sys.exit(1)
        except Exception as exc:
            line = None
            if isinstance(exc, OSError) or _database_error(exc):
                from ainews_newsletter.cli.storage_failures import storage_line

                line = storage_line(ctx, exc)  # a full disk, a database away: say which
            line = line or _error_line(exc)
            if line is None:
                raise
            fail(line)
            sys.exit(1)


def _error_line(exc: Exception) -> str | None:
    """An OSError naming its file, or any other database error, as one line; None for the
    rest, which is a bug and keeps its traceback."""
    if isinstance(exc, OSError):
        return None if exc.filename is None else f"{exc.filename}: {exc.strerror}"
    if _database_error(exc):
        return f"database: {exc.__class__.__name__}: {str(exc).splitlines()[0]}"
    return None


def confirmed(question: str, yes: bool) -> bool:
    """--yes, or the person at the terminal said yes. Without a terminal (cron, systemd, CI,
    a pipe) there is nobody to ask: stop at once instead of reading "no" from nowhere."""
    if yes:
        return True
    if not sys.stdin.isatty():
        raise AinewsError(f"{question.rstrip('?')}: no terminal to confirm: add --yes")
    return click.confirm(question, default=False, err=True)


def json_option(function: F) -> F:
    return click.option("--json", "as_json", is_flag=True,
                        help="Print machine-readable JSON instead of a table.")(function)


def window_options(function: F) -> F:
    """--week, or --since/--until; the command receives `window` (a models.Window)."""
    options = [
        click.option("--week", metavar="YYYY-Www",
                     help="ISO week in the newsletter timezone, e.g. 2026-W47 [default: "
                          "[posts] window: the last complete week, or since the last issue]."),
        click.option("--since", metavar="DATE",
                     help="Start of a custom window (included), e.g. 2026-11-16."),
        click.option("--until", metavar="DATE",
                     help="End of a custom window (excluded), e.g. 2026-11-23."),
    ]

    @functools.wraps(function)
    def wrapper(*args: Any, week: str | None, since: str | None, until: str | None,
                **kwargs: Any) -> Any:
        from ainews_newsletter.models import Window

        return function(*args, window=Window(week=week, since=since, until=until), **kwargs)

    for option in reversed(options):
        wrapper = option(wrapper)
    return cast(F, wrapper)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def progress_bar(total: int) -> Progress:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("sending"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), console=real_console(), transient=True,
                    disable=not console.is_terminal or total == 0)


def print_findings(findings: list[Finding]) -> None:
    from ainews_newsletter.render.lint import Severity

    if not findings:
        console.print("lint: no findings")
    for finding in findings:
        style = "bold red" if finding.severity is Severity.ERROR else "yellow"
        console.print(f"lint {finding}", style=style, soft_wrap=True)
