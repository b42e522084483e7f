"""Loading the configuration, once.

Precedence, highest first: CLI flags (passed as `overrides`) > environment (`AINEWS_` prefix,
`__` for nesting, e.g. `AINEWS_SMTP__PORT=2526`; environment.py) > the TOML file > defaults:
the three are merged key by key, and the models validate the result once. Unknown keys and
bad values raise ConfigError naming the key. Secrets (SMTP password, web secret key) are read
from the environment only, so a config file can be committed without leaking them.
"""

from __future__ import annotations

import os
import threading
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from ainews_newsletter.config.base import is_test_domain
from ainews_newsletter.config.environment import NotJson, deep_update, environment_values
from ainews_newsletter.config.locate import CONFIG_ENV_VAR, ENV_PREFIX, config_path_from
from ainews_newsletter.config.root import SECRET_KEYS, Config
from ainews_newsletter.errors import ConfigError


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    for key in SECRET_KEYS:
        node: Any = data
        for part in key:
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            dotted = ".".join(key)
            env = ENV_PREFIX + "__".join(part.upper() for part in key)
            raise ConfigError(f"{path}: {dotted}: secrets are read from the environment only; "
                              f"remove it from the file and set {env}")
    return data


def _where(loc: tuple[str | int, ...], path: Path | None, environ: Mapping[str, str]) -> str:
    # The key itself, or a section of it set whole (AINEWS_SMTP__RELAYS='[...]', JSON).
    for end in range(len(loc), 1, -1):
        env_name = ENV_PREFIX + "__".join(str(part).upper() for part in loc[:end])
        if any(name.upper() == env_name for name in environ):
            return f"environment {env_name}"
    return str(path) if path is not None else "command line"


def _dotted(loc: tuple[str | int, ...]) -> str:
    """('posts', 'sources', 0, 'feed', 'url') → 'posts.sources[0].url' (the union tag that
    pydantic adds after a list index is noise to a user)."""
    text = ""
    previous: str | int | None = None
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif isinstance(previous, int) and part in ("markdown", "feed"):
            pass
        else:
            text += f".{part}" if text else part
        previous = part
    return text


def _describe(exc: PydanticValidationError, path: Path | None, environ: Mapping[str, str]) -> str:
    problems = []
    for error in exc.errors():
        loc = tuple(part for part in error["loc"] if not isinstance(part, int)) or ("config",)
        dotted = _dotted(tuple(error["loc"]))
        where = _where(loc, path, environ)
        if error["type"] == "extra_forbidden":
            problems.append(f"{where}: unknown key {dotted!r}")
        else:
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{where}: {dotted}: {message} (got {error.get('input')!r})")
    return "; ".join(problems)


def _refuse_unknown_environment(environ: Mapping[str, str]) -> None:
    """An AINEWS_ variable whose section the config does not know would otherwise do nothing
    (a typo like AINEWS_SMPT__PORT); refuse it like an unknown file key."""
    for name in environ:
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper == CONFIG_ENV_VAR:
            continue
        section = upper[len(ENV_PREFIX):].split("__", 1)[0].lower()
        if section not in Config.model_fields:
            raise ConfigError(f"environment {name}: unknown key {section!r} (known: "
                              f"{', '.join(sorted(Config.model_fields))})")


def load_config(
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Load the configuration; raise ConfigError with the offending key on any problem."""
    environ = os.environ if environ is None else environ
    _refuse_unknown_environment(environ)
    config_path = config_path_from(path, environ)
    from_file = _read_toml(config_path) if config_path is not None else {}
    try:
        from_environment = environment_values(Config, environ)
    except NotJson as exc:
        raise ConfigError(f"environment: {exc}; set single keys instead, e.g. "
                          "AINEWS_SMTP__PORT=2526") from None
    try:
        _build_validators()
        config = Config.model_validate(deep_update(from_file, from_environment,
                                                   dict(overrides or {})))
    except PydanticValidationError as exc:
        raise ConfigError(_describe(exc, config_path, environ)) from None
    _refuse_test_addresses(config, config_path, environ)
    _read_relay_passwords(config, environ)
    if config_path is not None:
        config.located_at(config_path)
    return config


def _refuse_test_addresses(config: Config, path: Path | None,
                           environ: Mapping[str, str]) -> None:
    """Our own addresses under .test only for staging ([subscribers] allow_test_domains):
    mail from a .test sender cannot be answered, bounced or trusted anywhere real."""
    if config.subscribers.allow_test_domains:
        return
    ours: list[tuple[tuple[str, str], str | None]] = [
        (("newsletter", "from"), config.newsletter.from_),
        (("newsletter", "reply_to"), config.newsletter.reply_to),
        (("newsletter", "unsubscribe_email"), config.newsletter.unsubscribe_email),
        (("bounces", "address"), config.bounces.address),
        *((("schedule", "notify"), address) for address in config.schedule.notify)]
    for loc, address in ours:
        if address and is_test_domain(address.rpartition("@")[2]):
            raise ConfigError(f"{_where(loc, path, environ)}: {'.'.join(loc)}: {address!r} is "
                              "under .test, a name reserved for testing; set [subscribers] "
                              "allow_test_domains = true to use it for staging")


def _read_relay_passwords(config: Config, environ: Mapping[str, str]) -> None:
    """Each relay's password from the variable its password_env names: a relay whose
    variable is unset would fail at its first login, mid-send, so it is refused now."""
    for relay in config.smtp.relays:
        if relay.password_env is None:
            continue
        password = environ.get(relay.password_env)
        if password is None:
            raise ConfigError(f"relay {relay.label!r}: its password_env "
                              f"{relay.password_env} is not set in the environment")
        relay.with_password(password)


PLUGINS_VARIABLE = "PYDANTIC_DISABLE_PLUGINS"


_BUILD_LOCK = threading.Lock()


def _build_validators() -> None:
    """The config's validators, built on the first load without pydantic's plugins
    (observers of validation that nobody points at a config: to find them pydantic reads
    the entry points of every installed distribution, a large part of every command's
    start: BENCHMARKS.md, "Start-up"). Its documented switch is an environment variable,
    so it is set for that one build, under a lock, and never again: later loads (the
    preview reloads from request threads) leave the environment alone, which other threads
    read (urllib's proxy scan, a subprocess's copy). Validation itself is unchanged."""
    if Config.__pydantic_complete__:
        return
    with _BUILD_LOCK:
        if Config.__pydantic_complete__:
            return
        before = os.environ.get(PLUGINS_VARIABLE)
        os.environ[PLUGINS_VARIABLE] = "__all__"
        try:
            Config.model_rebuild()
        finally:
            if before is None:
                del os.environ[PLUGINS_VARIABLE]
            else:
                os.environ[PLUGINS_VARIABLE] = before
