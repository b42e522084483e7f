"""Files a command writes for the operator (exports): whole or not at all."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO


@contextmanager
def whole_file(path: Path) -> Iterator[TextIO]:
    """Open `path` for writing text, but write a hidden file beside it and rename it over
    `path` only once complete: a disk that fills half-way leaves no truncated export that
    looks whole, and the OSError names `path` (a write's own error names no file). Not a
    regular file (/dev/stdout, a pipe): written in place, there is nothing to rename."""
    if path.exists() and not path.is_file():
        with path.open("w", encoding="utf-8", newline="") as handle:
            yield handle
        return
    partial = path.with_name(f".{path.name}.partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as handle:
            yield handle
        partial.replace(path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        if exc.filename is None:
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
