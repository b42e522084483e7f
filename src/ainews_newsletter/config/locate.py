"""Where the config file is and where it puts the database, found without loading the config
(pydantic): what every command asks first, and all a quick count needs. Importing it loads
no other part of the config package (its __init__ is lazy), so `ainews subscribers count`
and `ainews --help` stay free of pydantic."""

from __future__ import annotations

import hashlib
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path

from ainews_newsletter import __version__

ENV_PREFIX = "AINEWS_"
CONFIG_ENV_VAR = "AINEWS_CONFIG"
DEFAULT_CONFIG_NAME = "config.toml"
DEFAULT_STORAGE_URL = "sqlite:///data/ainews.db"
STORAGE_URL_ENV_VAR = f"{ENV_PREFIX}STORAGE__URL"
_SQLITE_PREFIX = "sqlite:///"
# What may be in the environment without changing where the database is (anything else
# might: the quick path then steps aside for the full config). Names in upper case: the
# full config reads the environment without regard to case, and so does this.
_NOT_ABOUT_STORAGE = {CONFIG_ENV_VAR, STORAGE_URL_ENV_VAR, f"{ENV_PREFIX}SECRET_KEY",
                      f"{ENV_PREFIX}SMTP__PASSWORD", f"{ENV_PREFIX}BOUNCES__PASSWORD",
                      f"{ENV_PREFIX}WEBHOOKS__SENDGRID_PASSWORD",
                      f"{ENV_PREFIX}WEBHOOKS__MAILGUN_SIGNING_KEY",
                      f"{ENV_PREFIX}WEBHOOKS__POSTMARK_PASSWORD"}
CHECKED_SUFFIX = ".config-checked"


def environment_value(environ: Mapping[str, str], name: str) -> str | None:
    """The variable `name` in any case, as the full config reads it (None: unset)."""
    if name in environ:
        return environ[name]
    found = [value for key, value in environ.items() if key.upper() == name]
    return found[0] if len(found) == 1 else None


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


def quick_sqlite_database(explicit: str | Path | None, environ: Mapping[str, str],
                          ) -> Path | None:
    """The SQLite database file the full config would name, read from the TOML file and
    the environment alone; None whenever that is not plainly so (no config file, one
    the full config has not accepted as it is now, settings in the environment that the
    full config must judge, another database): the caller then loads the config, which
    says what is wrong."""
    if not _plain_environment(environ):
        return None
    path = config_path_from(explicit, environ)
    if path is None:
        return None
    try:
        content = path.read_bytes()
        storage = tomllib.loads(content.decode("utf-8")).get("storage", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    from_environment = environment_value(environ, STORAGE_URL_ENV_VAR)
    url = from_environment if from_environment is not None else (
        storage.get("url", DEFAULT_STORAGE_URL) if isinstance(storage, dict) else None)
    if not isinstance(url, str) or not url:
        return None
    database = sqlite_file(absolute_storage_url(url, path.resolve().parent))
    if database is None or _checked_stamp(path, content) != _read_stamp(database):
        return None  # not this file as the full config last accepted it
    return database


def _plain_environment(environ: Mapping[str, str]) -> bool:
    """No setting in the environment beyond where the config is, where the database is, and
    secrets without rules: nothing that could make a file valid (or not) for the full
    config."""
    ours = [key.upper() for key in environ if key.upper().startswith(ENV_PREFIX)]
    return all(key in _NOT_ABOUT_STORAGE for key in ours) and len(ours) == len(set(ours))


def _checked_stamp(path: Path, content: bytes) -> bytes:
    """Which file, its exact bytes, and the version whose rules accepted them."""
    return b"\n".join((os.fsencode(path.resolve()), hashlib.sha256(content).hexdigest()
                       .encode(), __version__.encode(), b""))


def _read_stamp(database: Path) -> bytes | None:
    try:
        return database.with_name(database.name + CHECKED_SUFFIX).read_bytes()
    except OSError:
        return None


def remember_checked(path: Path | None, database_url: str, environ: Mapping[str, str],
                     ) -> None:
    """Note, beside a SQLite database, that the full config accepted the config file as it
    is now, in an environment that could not have helped it: the quick path answers only
    for a file noted so (any error in it, anywhere, is then reported by the full config
    first). Nothing happens where it cannot be written."""
    database = sqlite_file(database_url)
    if path is None or database is None or not _plain_environment(environ):
        return
    try:
        if not database.parent.is_dir():
            return
        stamp = _checked_stamp(path, path.read_bytes())
        if _read_stamp(database) != stamp:
            database.with_name(database.name + CHECKED_SUFFIX).write_bytes(stamp)
    except OSError:
        return


def sqlite_file(url: str) -> Path | None:
    """The file of a plain `sqlite:///path` URL (no query options), else None."""
    if not url.startswith(_SQLITE_PREFIX) or "?" in url or url == "sqlite:///:memory:":
        return None
    return Path(url[len(_SQLITE_PREFIX):])
