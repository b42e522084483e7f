"""The AINEWS_ variables, read without pydantic-settings (config/environment.py) the way it
read them: every key of the reference from its variable, any case, nested merges, whole
sections and lists as JSON, the precedence flag > environment > file > default, and errors
that name the variable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ainews_newsletter.config import Config, load_config
from ainews_newsletter.config.environment import NotJson, environment_values
from ainews_newsletter.config.reference import config_keys
from ainews_newsletter.errors import ConfigError

SRC = Path(__file__).resolve().parents[1] / "src"

NEWSLETTER = ('[newsletter]\nname = "File"\nfrom = "digest@news.example.org"\n'
              '[smtp]\nhost = "mail.example.org"\nport = 2525\n')


def _file(tmp_path: Path, text: str = NEWSLETTER) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("key", config_keys(), ids=lambda key: key.dotted)
def test_every_key_is_read_from_its_variable(key: Any) -> None:
    """Each key of the reference (docs/reference/configuration.md) from the variable the
    reference names, in any case, under the name the reference gives it (an alias such as
    newsletter.from); a list from JSON."""
    given, read = (('["one", "two"]', ["one", "two"]) if key.type.startswith("list")
                   else ("a value", "a value"))
    for variable in (key.environment_variable, key.environment_variable.lower()):
        found = environment_values(Config, {variable: given, "OTHER": "x"})
        assert found == ({key.section: {key.name: read}} if key.section else {key.name: read})


def test_a_list_that_is_not_json_names_its_variable() -> None:
    with pytest.raises(NotJson, match="AINEWS_SCHEDULE__NOTIFY"):
        environment_values(Config, {"AINEWS_SCHEDULE__NOTIFY": "a@example.org"})
    with pytest.raises(ConfigError, match=r"^environment: .*schedule.*AINEWS_SCHEDULE__NOTIFY"
                                          r".*set single keys instead"):
        load_config(environ={"AINEWS_SCHEDULE__NOTIFY": "a@example.org"})


def test_a_section_as_json_is_merged_with_its_single_keys(tmp_path: Path) -> None:
    """AINEWS_SMTP as a JSON object (its keys in any case), AINEWS_SMTP__HOST beside it: both
    count, over the file's [smtp], whose other keys stay."""
    environ = {"AINEWS_SMTP": '{"Port": 2600, "username": "u"}', "AINEWS_SMTP__HOST": "env"}
    config = load_config(_file(tmp_path, NEWSLETTER + 'security = "tls"\n'), environ=environ)
    assert (config.smtp.port, config.smtp.username, config.smtp.host,
            config.smtp.security) == (2600, "u", "env", "tls")


def test_a_section_that_is_not_json_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"environment: .*AINEWS_SMTP .*"
                                          r"AINEWS_SMTP__PORT=2526"):
        load_config(_file(tmp_path), environ={"AINEWS_SMTP": "smtp.example.org"})


def test_relays_as_json(tmp_path: Path) -> None:
    relays = [{"host": "a.example.org", "port": 2526}, {"host": "b.example.org"}]
    config = load_config(_file(tmp_path), environ={"AINEWS_SMTP__RELAYS": json.dumps(relays)})
    assert [(relay.host, relay.port) for relay in config.smtp.relays] == [
        ("a.example.org", 2526), ("b.example.org", 25)]


def test_of_two_spellings_the_later_counts(tmp_path: Path) -> None:
    environ = {"AINEWS_SMTP__PORT": "2601", "ainews_smtp__Port": "2602"}
    assert load_config(_file(tmp_path), environ=environ).smtp.port == 2602


def test_precedence_flag_environment_file_default(tmp_path: Path) -> None:
    path = _file(tmp_path, NEWSLETTER + 'username = "file"\n')
    environ = {"AINEWS_SMTP__PORT": "2700", "AINEWS_SMTP__USERNAME": "env",
               "AINEWS_NEWSLETTER__NAME": "Env"}
    config = load_config(path, overrides={"smtp": {"port": 2800}}, environ=environ)
    assert config.smtp.port == 2800  # the flag over the environment
    assert (config.smtp.username, config.newsletter.name) == ("env", "Env")  # over the file
    assert config.smtp.host == "mail.example.org"  # the file over the default
    assert config.smtp.timeout == 30  # the default


def test_every_setting_from_the_environment_alone(tmp_path: Path) -> None:
    """A container configured by its environment: no file, the values validated as a
    file's would be (numbers, booleans and addresses from text)."""
    environ = {"AINEWS_STORAGE__URL": f"sqlite:///{tmp_path / 'x.db'}",
               "AINEWS_NEWSLETTER__FROM": "Digest@News.Example.ORG",
               "AINEWS_NEWSLETTER__BASE_URL": "https://news.example.org",
               "AINEWS_SUBSCRIBERS__DOUBLE_OPT_IN": "false", "AINEWS_WEB__PORT": "8081",
               "AINEWS_SECRET_KEY": "s" * 20, "AINEWS_SMTP__PASSWORD": "pw"}
    config = load_config(environ=environ)
    assert config.source is None and config.database_url == f"sqlite:///{tmp_path / 'x.db'}"
    assert config.newsletter.from_ == "Digest@news.example.org"
    assert (config.subscribers.double_opt_in, config.web.port) == (False, 8081)
    assert config.secret_key is not None and config.secret_key.get_secret_value() == "s" * 20
    assert config.smtp.password is not None and config.smtp.password.get_secret_value() == "pw"


@pytest.mark.parametrize(("variable", "value", "says"), [
    ("AINEWS_WEB__PORT", "eighty", "environment AINEWS_WEB__PORT: web.port"),
    ("AINEWS_SUBSCRIBERS__DOUBLE_OPT_IN", "perhaps",
     "environment AINEWS_SUBSCRIBERS__DOUBLE_OPT_IN: subscribers.double_opt_in"),
    ("AINEWS_NEWSLETTER__FROM", "nobody", "environment AINEWS_NEWSLETTER__FROM: newsletter.from"),
    ("AINEWS_SMTP__PROT", "25", "environment AINEWS_SMTP__PROT: unknown key 'smtp.prot'"),
    ("AINEWS_STORAGE__RECONNECT_SECONDS", "0",
     "environment AINEWS_STORAGE__RECONNECT_SECONDS: storage.reconnect_seconds"),
])
def test_a_bad_value_names_its_variable_and_key(tmp_path: Path, variable: str, value: str,
                                                says: str) -> None:
    with pytest.raises(ConfigError, match="^" + says.replace(".", r"\.")):
        load_config(_file(tmp_path), environ={variable: value})


def test_the_environment_given_is_the_one_read(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """load_config(environ=...) reads that mapping, not os.environ; without it, os.environ."""
    monkeypatch.setenv("AINEWS_SMTP__PORT", "2900")
    assert load_config(_file(tmp_path), environ={}).smtp.port == 2525
    assert load_config(_file(tmp_path)).smtp.port == 2900


def test_the_plugin_switch_is_set_for_the_first_build_alone(tmp_path: Path) -> None:
    """The first load builds the validators without pydantic's plugins (its switch is an
    environment variable) and puts the environment back; later loads (the preview reloads
    from request threads) never write the environment, which other threads read. Watched
    in a fresh interpreter through the os.putenv / os.unsetenv audit events."""
    script = f"""
import os, sys
events = []
sys.addaudithook(lambda name, args: events.append((name, args[0])) if name in (
    "os.putenv", "os.unsetenv") else None)
from pathlib import Path
from ainews_newsletter.config import load_config
config = Path({str(_file(tmp_path))!r})
os.environ.pop("PYDANTIC_DISABLE_PLUGINS", None)
events.clear()
load_config(config, environ={{}})
first = [(name, key) for name, key in events]
events.clear()
load_config(config, environ={{}})
load_config(config, environ={{}})
print(first, events, "PYDANTIC_DISABLE_PLUGINS" in os.environ)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True, env={**os.environ, "PYTHONPATH": str(SRC)})
    key = b"PYDANTIC_DISABLE_PLUGINS"
    first = [("os.putenv", key), ("os.unsetenv", key)]
    assert result.stdout.strip() == f"{first} [] False"
