"""What every command shares: the lazily loaded config, the error handling, JSON output."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click
from rich.console import Console
from sqlalchemy.exc import SQLAlchemyError

from ainews_newsletter.config import Config, load_config
from ainews_newsletter.errors import AinewsError
from ainews_newsletter.models import Window

if TYPE_CHECKING:
    from rich.progress import Progress

    from ainews_newsletter.render.lint import Finding

# markup=False: titles, names and addresses are printed as they are; "[/]" in a post title
# must not be read as a style tag (or crash the table).
console = Console(highlight=False, markup=False)
F = TypeVar("F", bound=Callable[..., Any])


class AppState:
    """Holds --config; the config is loaded on first use so `--help` never needs a file."""

    def __init__(self, config_path: Path | None) -> None:
        self.config_path = config_path
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
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
