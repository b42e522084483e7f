"""The `ainews` command line: thin. Parse, call pipeline or a room, print with rich.

Exit codes: 0 done, 1 error (one line on stderr, no traceback), 2 usage."""

from __future__ import annotations

from ainews_newsletter.cli.app import main

__all__ = ["main"]
