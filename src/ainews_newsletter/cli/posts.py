"""`ainews posts …`: what an issue would carry, and whether every source reads cleanly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from ainews_newsletter.cli.common import (
    AppState,
    console,
    fail,
    json_option,
    pass_state,
    print_json,
    window_options,
)
from ainews_newsletter.models import Post, Unplaced, Window, counted


@click.group()
def posts() -> None:
    """Inspect the posts an issue would carry, and check every source."""


def _post_json(post: Post, state: AppState) -> dict[str, Any]:
    return {"date": post.published.astimezone(state.config.newsletter.tz).isoformat(),
            "category": post.category, "title": post.title,
            "title_derived": post.title_derived, "url": post.url, "source": post.source,
            "guid": post.guid}


# The reason a feed item that cannot be placed is listed under in "excluded".
UNUSABLE = "unusable"


def _unplaced_json(item: Unplaced) -> dict[str, Any]:
    return {"date": None, "category": None, "title": item.title, "title_derived": False,
            "url": item.link, "source": item.source, "guid": item.guid, "item": item.item,
            "reason": UNUSABLE, "detail": item.reason}


def _short_source(source: str) -> str:
    return source if "://" in source else Path(source).name


@posts.command("list")
@window_options
@click.option("--all", "show_all", is_flag=True,
              help="Also list the posts outside the window (JSON always has them).")
@json_option
@pass_state
def posts_list(state: AppState, window: Window, show_all: bool, as_json: bool) -> None:
    """Exactly what the issue would carry, newest first, and what is left out and why:
    a duplicate of another source's post, already carried by an earlier issue, or out of
    the window."""
    from ainews_newsletter.pipeline.issue import select_posts
    from ainews_newsletter.posts.select import Reason
    from ainews_newsletter.render.localized import period_label

    selection = select_posts(state.config, window)
    period = selection.period
    if as_json:
        print_json({
            "window": {"key": period.key, "start": period.start.isoformat(),
                       "end": period.end.isoformat()},
            "in_window": selection.in_window,
            "posts": [_post_json(post, state) for post in selection.posts],
            "more": [_post_json(post, state) for post in selection.more],
            "excluded": [*({**_post_json(item.post, state), "reason": item.reason.value,
                            "detail": item.detail} for item in selection.excluded),
                         *(_unplaced_json(item) for item in selection.unplaced)],
        })
        return
    tz = state.config.newsletter.tz
    table = Table(title=f"{period.key} · {period_label(period)}")
    for column in ("date", "category", "title", "source"):
        table.add_column(column)
    for post in [*selection.posts, *selection.more]:
        more = " (more this week: link only)" if post in selection.more else ""
        table.add_row(f"{post.published.astimezone(tz):%a %d %b %H:%M}", post.category or "",
                      post.title + more, _short_source(post.source))
    console.print(table)
    count = selection.in_window
    console.print(f"{count} post{'' if count == 1 else 's'}"
                  + (f" ({len(selection.more)} beyond max_posts as links)"
                     if selection.more else ""))
    shown = [item for item in selection.excluded
             if show_all or item.reason is not Reason.OUT_OF_WINDOW]
    if shown or selection.unplaced:
        excluded = Table(title="left out")
        for column in ("title", "source", "reason"):
            excluded.add_column(column)
        for item in shown:
            excluded.add_row(item.post.title, _short_source(item.post.source),
                             f"{item.reason.value}: {item.detail}")
        for unplaced in selection.unplaced:
            excluded.add_row(unplaced.title, _short_source(unplaced.source),
                             f"{UNUSABLE}: item {unplaced.item}: {unplaced.reason}")
        console.print(excluded)
    outside = sum(item.reason is Reason.OUT_OF_WINDOW for item in selection.excluded)
    if outside and not show_all:
        console.print(f"{counted(outside, 'post')} out of window (--all lists them)")


@posts.command("check")
@json_option
@pass_state
def posts_check(state: AppState, as_json: bool) -> None:
    """Read every source and report every problem with its file (or feed) and field, and
    every feed item left out with why. Exit code 1 if there is any problem (items left out
    do not stop an issue, so they do not fail the check)."""
    from ainews_newsletter.posts.sources import read_sources

    loaded = read_sources(state.config)
    if as_json:
        print_json({"sources": [{"source": source, "posts": count}
                                for source, count in loaded.sources],
                    "problems": [str(problem) for problem in loaded.problems],
                    "left_out": [f"{item.describe()}: {item.reason}"
                                 for item in loaded.unplaced]})
    else:
        for source, count in loaded.sources:
            console.print(f"{source}: {count} post{'' if count == 1 else 's'}", soft_wrap=True)
        for item in loaded.unplaced:
            console.print(f"left out: {item.describe()}: {item.reason}", soft_wrap=True,
                          markup=False, highlight=False)
        for problem in loaded.problems:
            fail(str(problem))
        total = len(loaded.problems)
        console.print("all sources are fine" if not total else
                      f"{total} problem{'' if total == 1 else 's'}")
    if loaded.problems:
        raise SystemExit(1)
