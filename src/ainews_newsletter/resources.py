"""Where the shipped sample files live: inside the wheel (`_shipped/`, put there by hatchling's
force-include) or, for an editable install or a checkout, at the repository root."""

from __future__ import annotations

from pathlib import Path

from ainews_newsletter.errors import AinewsError

_PACKAGE_DIR = Path(__file__).resolve().parent
_CANDIDATES = (_PACKAGE_DIR / "_shipped", _PACKAGE_DIR.parent.parent)


def shipped(name: str) -> Path:
    """The shipped `config.toml`, `templates`, `posts` or `subscribers/sample.csv`."""
    for root in _CANDIDATES:
        candidate = root / name
        if candidate.exists():
            return candidate
    raise AinewsError(f"shipped file {name!r} is missing from this installation; reinstall "
                      "ainews-newsletter")
