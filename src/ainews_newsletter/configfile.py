"""Where the config file is and where it puts the database, found without loading the config
(pydantic): what every command asks first, and all a quick count needs. A leaf; config.py
builds on it."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path

ENV_PREFIX = "AINEWS_"
CONFIG_ENV_VAR = "AINEWS_CONFIG"
DEFAULT_CONFIG_NAME = "config.toml"
DEFAULT_STORAGE_URL = "sqlite:///data/ainews.db"
STORAGE_URL_ENV_VAR = f"{ENV_PREFIX}STORAGE__URL"
_SQLITE_PREFIX = "sqlite:///"
# What may be in the environment without changing where the database is (anything else
# might: the quick path then steps aside for the full config).
_NOT_ABOUT_STORAGE = {CONFIG_ENV_VAR, STORAGE_URL_ENV_VAR, f"{ENV_PREFIX}SECRET_KEY",
                      f"{ENV_PREFIX}SMTP__PASSWORD", f"{ENV_PREFIX}BOUNCES__PASSWORD"}


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


def quick_storage_url(explicit: str | Path | None, environ: Mapping[str, str]) -> str | None:
    """The database URL as the full config would give it, read from the TOML file and the
    environment alone; None whenever that is not plainly so (no config file, a file that
    does not parse, settings in the environment that the full config must judge): the
    caller then loads the config, which says what is wrong."""
    if any(key.startswith(ENV_PREFIX) and key not in _NOT_ABOUT_STORAGE for key in environ):
        return None
    path = config_path_from(explicit, environ)
    if path is None:
        return None
    try:
        with path.open("rb") as handle:
            storage = tomllib.load(handle).get("storage", {})
    except (OSError, tomllib.TOMLDecodeError):
        return None
    url = environ.get(STORAGE_URL_ENV_VAR) or storage.get("url", DEFAULT_STORAGE_URL)
    if not isinstance(url, str) or not isinstance(storage, dict):
        return None
    return absolute_storage_url(url, path.resolve().parent)


def sqlite_file(url: str) -> Path | None:
    """The file of a plain `sqlite:///path` URL (no query options), else None."""
    if not url.startswith(_SQLITE_PREFIX) or "?" in url or url == "sqlite:///:memory:":
        return None
    return Path(url[len(_SQLITE_PREFIX):])
