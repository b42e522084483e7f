"""Where the config file is and what a storage URL names, found without pydantic: what every
command asks before it loads the config. Importing it loads no other part of the config
package (its __init__ is lazy), so `ainews --help` stays free of pydantic."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

ENV_PREFIX = "AINEWS_"
CONFIG_ENV_VAR = "AINEWS_CONFIG"
DEFAULT_CONFIG_NAME = "config.toml"
DEFAULT_STORAGE_URL = "sqlite:///data/ainews.db"
STORAGE_URL_ENV_VAR = f"{ENV_PREFIX}STORAGE__URL"
_SQLITE_PREFIX = "sqlite:///"


def environment_value(environ: Mapping[str, str], name: str) -> str | None:
    """The variable `name` in any case, as the config reads it (config/environment.py: of
    two spellings the later one; None: unset)."""
    found = None
    for key, value in environ.items():
        if key.lower() == name.lower():
            found = value
    return found


def config_path_from(explicit: str | Path | None, environ: Mapping[str, str]) -> Path | None:
    """Which file to read: --config, else $AINEWS_CONFIG, else ./config.toml if present."""
    if explicit is not None:
        return Path(explicit)
    if environ.get(CONFIG_ENV_VAR):
        return Path(environ[CONFIG_ENV_VAR])
    default = Path.cwd() / DEFAULT_CONFIG_NAME
    return default if default.is_file() else None


def absolute_storage_url(url: str, base_dir: Path) -> str:
    """A SQLite URL's relative path made absolute against the config file's folder."""
    if url.startswith(_SQLITE_PREFIX) and url != "sqlite:///:memory:":
        path = Path(url[len(_SQLITE_PREFIX):]).expanduser()
        return _SQLITE_PREFIX + str(path if path.is_absolute() else base_dir / path)
    return url


def sqlite_file(url: str) -> Path | None:
    """The file of a plain `sqlite:///path` URL (no query options), else None."""
    if not url.startswith(_SQLITE_PREFIX) or "?" in url or url == "sqlite:///:memory:":
        return None
    return Path(url[len(_SQLITE_PREFIX):])
