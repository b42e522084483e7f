"""What every command shares: the lazily loaded config, the error handling, JSON output."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click
from rich.console import Console, ConsoleDimensions
from sqlalchemy.exc import SQLAlchemyError

from ainews_newsletter.config import (
    CONFIG_ENV_VAR,
    DEFAULT_CONFIG_NAME,
    ENV_PREFIX,
    Config,
    config_path_from,
    load_config,
)
from ainews_newsletter.errors import AinewsError, ConfigError
from ainews_newsletter.models import Window

if TYPE_CHECKING:
    from rich.progress import Progress

    from ainews_newsletter.render.lint import Finding

PIPED_WIDTH = 10_000  # "no wrapping" for rich, which always lays out to some width


class _Console(Console):
    """On a terminal, lines wrap at its width; piped or redirected (cron mail, a log, grep)
    they never wrap: a sentence cut at column 80 is harder to read and to search."""

    @property
    def soft_wrap(self) -> bool:
        return not self.is_terminal

    @soft_wrap.setter
    def soft_wrap(self, value: bool) -> None:  # Console.__init__ sets it; the terminal decides
        pass

    @property
    def size(self) -> ConsoleDimensions:
        measured: ConsoleDimensions = Console.size.fget(self)  # type: ignore[attr-defined]
        if self.is_terminal:
            return measured
        return ConsoleDimensions(PIPED_WIDTH, measured.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]


# markup=False: titles, names and addresses are printed as they are; "[/]" in a post title
# must not be read as a style tag (or crash the table).
console = _Console(highlight=False, markup=False)
F = TypeVar("F", bound=Callable[..., Any])


class AppState:
    """Holds --config; the config is loaded on first use so `--help` never needs a file."""

    def __init__(self, config_path: Path | None) -> None:
        self.config_path = config_path
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        """No command runs on built-in defaults alone: most read or write the database, and
        a default one would quietly appear as data/ainews.db wherever they were started.
        A config file, or AINEWS_STORAGE__URL (a container configured by its environment),
        says where the newsletter lives. `demo` and `init` never come here."""
        if self._config is None:
            if (config_path_from(self.config_path, os.environ) is None
                    and not os.environ.get(f"{ENV_PREFIX}STORAGE__URL")):
                raise ConfigError(
                    f"no configuration: no --config, no {CONFIG_ENV_VAR}, and no "
                    f"{DEFAULT_CONFIG_NAME} in {Path.cwd()}; start a newsletter with "
                    "`ainews init DIR` (or try the sample with `ainews demo`)")
            self._config = load_config(self.config_path)
        return self._config


pass_state = click.make_pass_decorator(AppState)


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)


class ErrorHandlingGroup(click.Group):
    """Turns user-facing errors into one line on stderr and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AinewsError as exc:
            fail(str(exc))
            sys.exit(1)
        except SQLAlchemyError as exc:
            fail(f"database: {exc.__class__.__name__}: {str(exc).splitlines()[0]}")
            sys.exit(1)
        except OSError as exc:
            if exc.filename is None:
                raise
            fail(f"{exc.filename}: {exc.strerror}")
            sys.exit(1)


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
    """--week, or --since/--until; the command receives `window` (a pipeline.Window)."""
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
                    TimeRemainingColumn(), console=console, transient=True,
                    disable=not console.is_terminal or total == 0)


def print_findings(findings: list[Finding]) -> None:
    from ainews_newsletter.render.lint import Severity

    if not findings:
        console.print("lint: no findings")
    for finding in findings:
        style = "bold red" if finding.severity is Severity.ERROR else "yellow"
        console.print(f"lint {finding}", style=style, soft_wrap=True)
