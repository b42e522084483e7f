"""Config precedence (flag > environment > file > default) and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from ainews_newsletter.config import load_config
from ainews_newsletter.errors import ConfigError
from tests.conftest import Project

REPO = Path(__file__).resolve().parent.parent


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file() -> None:
    config = load_config(environ={})
    assert config.smtp.port == 25
    assert config.storage.url == "sqlite:///data/ainews.db"
    assert config.database_url == f"sqlite:///{Path.cwd() / 'data/ainews.db'}"


def test_file_overrides_defaults_and_paths_are_relative_to_it(tmp_path: Path) -> None:
    path = _file(tmp_path, '[smtp]\nport = 2525\n[storage]\nurl = "sqlite:///db/x.db"\n')
    config = load_config(path, environ={})
    assert config.smtp.port == 2525
    assert config.smtp.host == "localhost"  # untouched keys keep their defaults
    assert config.database_url == f"sqlite:///{tmp_path / 'db/x.db'}"
    assert config.resolve("posts") == tmp_path / "posts"


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _file(tmp_path, '[smtp]\nport = 2525\nhost = "mail.example.org"\n')
    monkeypatch.setenv("AINEWS_SMTP__PORT", "2526")
    config = load_config(path)
    assert config.smtp.port == 2526
    assert config.smtp.host == "mail.example.org"  # nested merge, not replacement


def test_flags_override_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _file(tmp_path, "[smtp]\nport = 2525\n")
    monkeypatch.setenv("AINEWS_SMTP__PORT", "2526")
    config = load_config(path, overrides={"smtp": {"port": 2527}})
    assert config.smtp.port == 2527


def test_ainews_config_names_the_file(tmp_path: Path) -> None:
    path = _file(tmp_path, '[newsletter]\nname = "From Env Var"\n')
    assert load_config(environ={"AINEWS_CONFIG": str(path)}).newsletter.name == "From Env Var"


def test_config_toml_in_the_working_folder_is_found(tmp_path: Path) -> None:
    _file(Path.cwd(), '[newsletter]\nname = "Found Here"\n')
    assert load_config(environ={}).newsletter.name == "Found Here"


def test_unknown_key_in_file_is_named(tmp_path: Path) -> None:
    path = _file(tmp_path, "[smtp]\nprot = 25\n")
    with pytest.raises(ConfigError, match=r"unknown key 'smtp\.prot'") as caught:
        load_config(path, environ={})
    assert str(path) in str(caught.value)


def test_unknown_section_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'smpt'"):
        load_config(_file(tmp_path, "[smpt]\nport = 25\n"), environ={})


def test_bad_value_from_environment_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AINEWS_SMTP__PORT", "twenty-five")
    with pytest.raises(ConfigError, match=r"environment AINEWS_SMTP__PORT: smtp\.port"):
        load_config()


@pytest.mark.parametrize(("text", "key"), [
    ('[newsletter]\ntimezone = "Mars/Olympus"\n', "newsletter.timezone"),
    ('[newsletter]\nfrom = "not-an-address"\n', "newsletter.from"),
    ('[newsletter]\nbase_url = "ftp://x"\n', "newsletter.base_url"),
    ('[smtp]\nsecurity = "ssl3"\n', "smtp.security"),
    ("[posts]\nmax_posts = 0\n", "posts.max_posts"),
])
def test_bad_values_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(_file(tmp_path, text), environ={})


def test_secrets_are_refused_in_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="AINEWS_SMTP__PASSWORD"):
        load_config(_file(tmp_path, '[smtp]\npassword = "hunter2"\n'), environ={})


def test_secret_from_environment_is_hidden_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AINEWS_SMTP__PASSWORD", "hunter2")
    config = load_config(environ={"AINEWS_SMTP__PASSWORD": "hunter2"})
    assert config.smtp.password is not None
    assert config.smtp.password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(config)


def test_broken_toml_names_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config\.toml: invalid TOML: .*line 2"):
        load_config(_file(tmp_path, '[smtp]\nport = = 2\n'), environ={})


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml", environ={})


def test_shipped_config_is_valid_and_complete() -> None:
    config = load_config(REPO / "config.toml", environ={})
    assert config.newsletter.timezone == "Europe/Berlin"
    assert config.resolve(config.posts.sources[0].path) == REPO / "posts"


def test_cli_bad_key_exits_1_with_one_line(project: Project) -> None:
    project.write_config("[smtp]\nprot = 25\n")
    result = project.run("posts", "list")
    assert result.exit_code == 1
    assert result.stderr.strip().count("\n") == 0
    assert "unknown key 'smtp.prot'" in result.stderr
    assert "Traceback" not in result.output


def test_cli_bad_env_value_exits_1(project: Project) -> None:
    result = project.run("posts", "list", env={"AINEWS_SMTP__PORT": "99999"})
    assert result.exit_code == 1
    assert "AINEWS_SMTP__PORT" in result.stderr and "smtp.port" in result.stderr


def test_unknown_section_in_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AINEWS_SMPT__PORT", "2526")
    with pytest.raises(ConfigError, match=r"environment AINEWS_SMPT__PORT: unknown key 'smpt'"):
        load_config()


def test_section_from_environment_that_is_not_json_names_the_fix(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AINEWS_POSTS__SOURCES", "posts")
    with pytest.raises(ConfigError, match=r"environment: .*posts.*AINEWS_SMTP__PORT=2526"):
        load_config()


def test_config_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin.toml"
    path.write_bytes(b'[newsletter]\nname = "Caf\xe9"\n')
    with pytest.raises(ConfigError, match=r"latin\.toml: not UTF-8"):
        load_config(path, environ={})


@pytest.mark.parametrize("value", ["x\nBcc: a@b.example", "has space", "-leading", "a" * 201])
def test_list_id_syntax(tmp_path: Path, value: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[newsletter]\nlist_id = """' + value + '"""\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"newsletter\.list_id"):
        load_config(path, environ={})


def test_addresses_in_config_are_ascii(tmp_path: Path) -> None:
    config = load_config(_file(tmp_path, '[newsletter]\nfrom = "digest@bücher.example"\n'),
                         environ={})
    assert config.newsletter.from_ == "digest@xn--bcher-kva.example"
    with pytest.raises(ConfigError, match=r"newsletter\.from"):
        load_config(_file(tmp_path, '[newsletter]\nfrom = "jürgen@example.com"\n'), environ={})

