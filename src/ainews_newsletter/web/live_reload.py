"""What the preview watches, and how a change reaches every open page (server-sent events
carrying a build version)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from pathlib import Path

from watchfiles import Change, DefaultFilter, awatch

from ainews_newsletter.config import Config, FeedSource, MarkdownSource

logger = logging.getLogger(__name__)
HEARTBEAT_SECONDS = 15.0


@dataclass(frozen=True)
class WatchTargets:
    """What reloads the page: posts (*.md in a posts folder), anything under the templates
    folder, and the config and feed files. Folders are watched flat where possible: the
    config's folder also holds the SQLite file, which every page load touches."""

    trees: tuple[Path, ...]  # watched recursively
    folders: tuple[Path, ...]  # watched flat
    post_folders: frozenset[Path]
    files: frozenset[Path]
    _default: DefaultFilter = field(default_factory=DefaultFilter)

    def __call__(self, change: Change, path: str) -> bool:
        if not self._default(change, path):
            return False
        changed = Path(path)
        if changed in self.files:
            return True
        if changed.parent in self.post_folders and changed.suffix == ".md":
            return True
        return any(changed.is_relative_to(tree) for tree in self.trees)


def watch_targets(config: Config) -> WatchTargets:
    posts = {config.resolve(s.path).resolve() for s in config.posts.sources
             if isinstance(s, MarkdownSource)}
    files = {config.resolve(s.path).resolve() for s in config.posts.sources
             if isinstance(s, FeedSource) and s.path}
    if config.source is not None:
        files.add(config.source.resolve())
    folders = {folder for folder in posts | {f.parent for f in files} if folder.is_dir()}
    trees = (config.templates_dir.resolve(),) if config.templates_dir.is_dir() else ()
    return WatchTargets(trees, tuple(sorted(folders)), frozenset(posts), frozenset(files))


class Hub:
    """Tells every open page the current build version: a per-run id (a restarted preview
    reloads its pages too) and a counter bumped on each relevant file change."""

    def __init__(self) -> None:
        self._run = secrets.token_hex(4)
        self._count = 0
        self._queues: set[asyncio.Queue[str]] = set()
        self._closed = False

    @property
    def version(self) -> str:
        return f"{self._run}-{self._count}"

    def changed(self) -> None:
        self._count += 1
        for queue in self._queues:
            queue.put_nowait(self.version)

    def close(self) -> None:
        """End every stream: the server is stopping and must not wait for open tabs."""
        self._closed = True
        for queue in self._queues:
            queue.put_nowait("")

    async def stream(self) -> AsyncGenerator[str, None]:
        queue: asyncio.Queue[str] = asyncio.Queue()
        self._queues.add(queue)
        try:
            yield f"retry: 1000\nevent: version\ndata: {self.version}\n\n"
            while not self._closed:
                try:
                    version = await asyncio.wait_for(queue.get(), HEARTBEAT_SECONDS)
                except TimeoutError:
                    yield ": ping\n\n"  # a closed tab shows up as a failed write
                    continue
                if version:
                    yield f"event: version\ndata: {version}\n\n"
        finally:
            self._queues.discard(queue)


async def watch_files(targets: WatchTargets, hub: Hub, stop: asyncio.Event) -> None:
    async def one(roots: tuple[Path, ...], recursive: bool) -> None:
        try:
            async for changes in awatch(*roots, watch_filter=targets, recursive=recursive,
                                        debounce=400, stop_event=stop):
                logger.info("changed: %s", ", ".join(sorted(path for _, path in changes)))
                hub.changed()
        except Exception:  # e.g. out of inotify watches: say so rather than go quiet
            logger.exception("watching %s stopped; reload the page by hand", roots)

    await asyncio.gather(*(one(roots, deep) for roots, deep in
                           ((targets.trees, True), (targets.folders, False)) if roots))
