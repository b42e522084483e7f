"""MkDocs hook for the command reference that mkdocs-click writes (docs/reference/commands.md).

1. Every lazily registered `ainews` command is loaded first. The CLI's groups import a
   command's module only when it runs (cli/common.py's LazyGroup), so a group holds in
   `commands` only those loaded so far; mkdocs-click lists `commands` when it is not empty,
   and would leave out the rest (`ainews subscribers import` is lazy, its siblings are not).
2. Click 8.3 and later give an option without a default the sentinel UNSET, which
   mkdocs-click 0.9 prints as `Sentinel.UNSET`; the table says what it means instead:
   `False` for a flag, None for anything else (mkdocs-click's own word for no default)."""

from __future__ import annotations

import re
from typing import Any

import click

_ROW = re.compile(r"<tr>.*?</tr>", re.DOTALL)
_UNSET = "<td><code>Sentinel.UNSET</code></td>"


def _load_all(group: click.Group, info_name: str) -> None:
    ctx = click.Context(group, info_name=info_name)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            _load_all(command, name)


def on_config(config: Any) -> Any:
    from ainews_newsletter.cli.app import cli

    _load_all(cli, "ainews")
    return config


def _default_shown(row: re.Match[str]) -> str:
    text = row.group(0)
    if _UNSET not in text:
        return text
    meaning = "<code>False</code>" if "<td>boolean</td>" in text else "None"
    return text.replace(_UNSET, f"<td>{meaning}</td>")


def on_page_content(html: str, page: Any, **kwargs: Any) -> str:
    if page.file.src_uri != "reference/commands.md":
        return html
    return _ROW.sub(_default_shown, html)
