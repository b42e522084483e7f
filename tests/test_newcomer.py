"""A newcomer's first week, each thing a new user hit: `ainews init`, .test addresses for
staging, the sample's site and address caught before a send, no database made where no
config is, questions that need a terminal, the Date of a resumed send, output for pipes."""

from __future__ import annotations

import email
import email.policy
import os
import pty
import re
import select
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from ainews_newsletter import clock
from ainews_newsletter.config import SAMPLE_BASE_URL, SAMPLE_POSTAL_ADDRESSES, load_config
from ainews_newsletter.models import Window
from ainews_newsletter.pipeline.send import execute_send, freeze_issue, plan_send
from tests.conftest import REPO, Project, SmtpServer, smtp_env

INIT_ANSWERS = ("--from", "digest@news.example.org", "--base-url", "https://news.example.org",
                "--postal-address", "1 Test Road, Testville", "--timezone", "Europe/Berlin")


def _ainews(*args: str, cwd: Path, stdin: int | None = subprocess.DEVNULL,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`ainews` as a real process: stdin is /dev/null unless said otherwise (no terminal)."""
    return subprocess.run([sys.executable, "-m", "ainews_newsletter", *args], cwd=cwd,
                          stdin=stdin, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "AINEWS_LINT__SPAMASSASSIN": "false",
                               **(env or {})}, check=False)


def _on_a_terminal(args: list[str], answers: list[str], cwd: Path,
                   env: dict[str, str] | None = None) -> tuple[int, str]:
    """`ainews` with a pseudo-terminal as stdin/stdout: each answer is typed once the
    output so far ends in a question (": "). Returns (exit code, everything it printed)."""
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "ainews_newsletter", *args], cwd=cwd,
                               stdin=follower, stdout=follower, stderr=follower,
                               env={**os.environ, "AINEWS_LINT__SPAMASSASSIN": "false",
                                    **(env or {})})
    os.close(follower)
    output, pending = b"", list(answers)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the process closed the terminal
                break
            if not chunk:
                break
            output += chunk
            if pending and output.rstrip().endswith((b":", b"]:", b"?")):
                os.write(leader, pending.pop(0).encode() + b"\n")
        elif process.poll() is not None:
            break
    os.close(leader)
    return process.wait(timeout=30), output.decode("utf-8", "replace")


# -- ainews init ---------------------------------------------------------------------------

def test_init_makes_a_folder_that_builds(tmp_path: Path) -> None:
    made = _ainews("init", "mine", "--name", "Test Weekly", *INIT_ANSWERS, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    folder = tmp_path / "mine"
    assert sorted(p.name for p in folder.iterdir()) == ["config.toml", "posts", "templates"]
    assert (folder / "templates" / "digest.mjml.j2").is_file()
    assert (folder / "templates" / "web").is_dir()
    commands = re.findall(r"^  (ainews .+?)   #", made.stdout, re.MULTILINE)
    assert len(commands) == 3, made.stdout
    config = load_config(folder / "config.toml", environ={})
    assert (config.newsletter.name, config.newsletter.from_, config.newsletter.timezone) == (
        "Test Weekly", "digest@news.example.org", "Europe/Berlin")
    text = (folder / "config.toml").read_text(encoding="utf-8")
    assert "# [bounces]" in text and '# host = "localhost"' in text  # the rest: comments
    post_date = re.search(r"^date: (.+)$", (folder / "posts" / "welcome.md").read_text(),
                          re.MULTILINE)
    assert post_date is not None
    week = datetime.fromisoformat(post_date.group(1)).strftime("%G-W%V")
    assert f"--week {week}" in commands[0]
    for command in commands[:2]:  # posts list, build: they work as printed
        ran = _ainews(*command.split()[1:], cwd=folder)
        assert ran.returncode == 0, f"{command}: {ran.stderr}"
    assert (folder / "build" / "issue.eml").is_file()


def test_init_without_a_terminal_names_what_is_missing_and_makes_nothing(
        tmp_path: Path) -> None:
    result = _ainews("init", "mine", "--from", "digest@news.example.org", cwd=tmp_path)
    assert result.returncode == 1
    assert "no terminal to ask, so give --base-url, --postal-address" in result.stderr
    assert not (tmp_path / "mine").exists()
    assert "Traceback" not in result.stderr


def test_init_asks_on_a_terminal(tmp_path: Path) -> None:
    code, output = _on_a_terminal(
        ["init", "asked", "--timezone", "UTC"],
        ["Asked Weekly", "digest@news.example.org", "https://news.example.org",
         "2 Prompt Street, Asktown"], cwd=tmp_path)
    assert code == 0, output
    assert "Sender address (From)" in output and "Postal address" in output
    config = load_config(tmp_path / "asked" / "config.toml", environ={})
    assert config.newsletter.postal_address == "2 Prompt Street, Asktown"


def test_init_never_writes_over_a_folder_in_use(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine, keep", encoding="utf-8")
    result = _ainews("init", "mine", *INIT_ANSWERS, cwd=tmp_path)
    assert result.returncode == 1 and "not an empty folder" in result.stderr
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]
    bad = _ainews("init", "other", *INIT_ANSWERS[:-1], "Mars/Olympus", cwd=tmp_path)
    assert bad.returncode == 1 and "timezone" in bad.stderr
    assert not (tmp_path / "other").exists()  # a bad answer leaves nothing half made


# -- .test addresses -----------------------------------------------------------------------

def test_test_domains_are_refused_naming_the_setting_and_allowed_with_it(
        project: Project) -> None:
    refused = project.run("subscribers", "add", "staging@mail.test")
    assert refused.exit_code == 1
    assert "allow_test_domains = true" in refused.stderr
    project.write_config('[subscribers]\nallow_test_domains = true\n')
    assert project.run("subscribers", "add", "staging@mail.test").exit_code == 0
    assert project.query("SELECT email FROM subscribers") == [("staging@mail.test",)]


def test_a_test_sender_needs_the_setting(project: Project) -> None:
    staging = '[newsletter]\nfrom = "digest@staging.test"\nbase_url = "https://news.example.org"\npostal_address = "1 Test Road"\n'  # noqa: E501
    project.config_path.write_text(staging, encoding="utf-8")
    result = project.run("subscribers", "count")
    assert result.exit_code == 1
    assert "newsletter.from" in result.stderr and "allow_test_domains" in result.stderr
    project.config_path.write_text(staging + "[subscribers]\nallow_test_domains = true\n",
                                   encoding="utf-8")
    assert project.run("subscribers", "count").stdout.strip() == "0"


# -- the sample's settings -----------------------------------------------------------------

@pytest.mark.parametrize("key", ["base_url", "postal_address"])
def test_a_send_with_the_samples_site_or_address_is_refused(
        project: Project, smtp_server: SmtpServer, key: str) -> None:
    sample = {"base_url": SAMPLE_BASE_URL, "postal_address": SAMPLE_POSTAL_ADDRESSES[1]}[key]
    text = project.config_path.read_text(encoding="utf-8")
    text = re.sub(rf"^{key} = .*$", f'{key} = "{sample}"', text, flags=re.MULTILINE)
    project.config_path.write_text(text, encoding="utf-8")
    project.import_readers(1)
    result = project.run("send", "--week", "2026-W47", "--yes", env=smtp_env(smtp_server))
    assert result.exit_code == 1
    assert f"[newsletter] {key} is still the sample's" in result.output
    assert smtp_server.handler.messages == []


def test_the_shipped_config_is_what_the_gate_knows_as_the_sample() -> None:
    shipped = load_config(REPO / "config.toml", environ={})
    assert shipped.newsletter.base_url == SAMPLE_BASE_URL
    assert shipped.newsletter.postal_address in SAMPLE_POSTAL_ADDRESSES


# -- no config, no database ----------------------------------------------------------------

def test_without_a_config_commands_stop_and_create_nothing(tmp_path: Path) -> None:
    env = {"AINEWS_CONFIG": ""}
    for command in (["subscribers", "count"], ["status"], ["bounces", "list"]):
        result = _ainews(*command, cwd=tmp_path, env=env)
        assert result.returncode == 1, command
        assert f"no config.toml in {tmp_path}" in result.stderr
        assert "ainews init" in result.stderr
    assert list(tmp_path.iterdir()) == []  # no data/ainews.db made here


# -- questions without a terminal ----------------------------------------------------------

def test_a_question_without_a_terminal_stops_at_once(project: Project,
                                                     smtp_server: SmtpServer) -> None:
    project.import_readers(2)
    cwd = project.root
    env = smtp_env(smtp_server)
    started = time.monotonic()
    result = _ainews("--config", str(project.config_path), "send", "--week", "2026-W47",
                     cwd=cwd, env=env)
    assert result.returncode == 1
    assert "no terminal to confirm: add --yes" in result.stderr
    assert "Aborted" not in result.stderr and time.monotonic() - started < 60
    assert smtp_server.handler.messages == []
    removed = _ainews("--config", str(project.config_path), "subscribers", "remove",
                      "reader000@example.com", cwd=cwd)
    assert removed.returncode == 1 and "add --yes" in removed.stderr


def test_on_a_terminal_the_question_is_asked(project: Project,
                                            smtp_server: SmtpServer) -> None:
    project.import_readers(1)
    code, output = _on_a_terminal(["--config", str(project.config_path), "send", "--week",
                                   "2026-W47"], ["n"], cwd=project.root,
                                  env=smtp_env(smtp_server))
    assert code == 1 and "Send 2026-W47" in output and "to 1 subscriber via" in output
    assert "Not sent." in output
    assert smtp_server.handler.messages == []


def test_messages_that_say_to_run_send_give_the_yes_form(project: Project,
                                                        unused_port: int) -> None:
    project.import_readers(1)
    down = {"AINEWS_SMTP__HOST": "127.0.0.1", "AINEWS_SMTP__PORT": str(unused_port)}
    result = project.run("send", "--week", "2026-W47", "--yes", env=down)
    assert result.exit_code == 1
    suggested = re.findall(r"`(ainews send[^`]*)`", result.stderr)
    assert suggested and all(command.endswith("--yes") for command in suggested), suggested


# -- Date: when the message left -----------------------------------------------------------

def test_a_resumed_send_is_dated_when_it_leaves(project: Project,
                                               smtp_server: SmtpServer) -> None:
    project.import_readers(2)
    config = load_config(project.config_path, environ={}, overrides={
        "smtp": {"host": "127.0.0.1", "port": smtp_server.port}})
    frozen_at = clock.now().replace(microsecond=0)
    with clock.use_clock(clock.frozen(frozen_at)):
        plan = plan_send(config, Window(week="2026-W47"))
        freeze_issue(config, plan)  # frozen now; the outage keeps it from leaving
    later = frozen_at + timedelta(hours=3, seconds=7)
    with clock.use_clock(clock.frozen(later)):
        plan = plan_send(config, Window(week="2026-W47"))
        assert execute_send(config, plan).sent == 2
    dates = {email.message_from_bytes(m.data, policy=email.policy.default)["Date"].datetime
             for m in smtp_server.handler.messages}
    assert dates == {later}


# -- output for people and pipes ----------------------------------------------------------

def test_piped_output_does_not_wrap_and_counts_read_right(project: Project,
                                                          smtp_server: SmtpServer) -> None:
    long_name = "x" * 60
    (project.root / "list.csv").write_text(
        "email,name\n" + "".join(f"r{i}@example.com,{long_name}\n" for i in range(3))
        + "bad-address,\n", encoding="utf-8")
    result = _ainews("--config", str(project.config_path), "subscribers", "import",
                     str(project.root / "list.csv"), cwd=project.root)
    summary = [line for line in result.stdout.splitlines() if "imported" in line]
    assert len(summary) == 1 and "rejected 1" in summary[0], result.stdout
    listed = _ainews("--config", str(project.config_path), "subscribers", "list",
                     cwd=project.root)
    assert any(long_name in line and "r0@example.com" in line
               for line in listed.stdout.splitlines())
    posts = _ainews("--config", str(project.config_path), "posts", "list", "--week",
                    "2026-W47", cwd=project.root)
    assert "1 post out of window" in posts.stdout, posts.stdout


def test_a_loopback_site_takes_the_list_id_from_the_sender() -> None:
    config = load_config(None, environ={}, overrides={"newsletter": {
        "name": "Loopback Letters", "base_url": "http://127.0.0.1:8080",
        "from": "digest@news.example.org"}})
    assert config.newsletter.list_identifier == "loopback-letters.news.example.org"
    local = load_config(None, environ={}, overrides={"newsletter": {
        "base_url": "http://localhost:8080", "from": "a@letters.example.org"}})
    assert local.newsletter.list_identifier.endswith(".letters.example.org")


# -- the README and CI ---------------------------------------------------------------------

def test_the_own_newsletter_section_starts_with_init_and_ci_tries_it() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Using it for your own newsletter", 1)[1].split("\n## ", 1)[0]
    first_step = section.split("\n2. ", 1)[0]
    assert "ainews init" in first_step
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    order = [ci.find(step) for step in ("ainews init", "ainews posts check", "ainews build")]
    assert -1 not in order and order == sorted(order)


# -- review findings -----------------------------------------------------------------------

def test_init_fills_the_current_folder_and_keeps_its_mode(tmp_path: Path) -> None:
    here = tmp_path / "here"
    here.mkdir(mode=0o770)
    here.chmod(0o770)
    made = _ainews("init", ".", "--name", "AI: Weekly #1", *INIT_ANSWERS, cwd=here)
    assert made.returncode == 0, made.stderr
    assert here.stat().st_mode & 0o777 == 0o770  # the same folder, not a new one
    checked = _ainews("posts", "check", cwd=here)
    assert checked.returncode == 0, checked.stderr
    listed = _ainews("posts", "list", "--all", "--json", cwd=here)
    assert "Welcome to AI: Weekly #1" in listed.stdout  # ": " and " #" kept in the title


def test_init_for_staging_and_its_errors_name_the_real_file(tmp_path: Path) -> None:
    staging = ("--from", "digest@news.test", "--base-url", "https://news.example.org",
               "--postal-address", "1 Test Road")
    refused = _ainews("init", "stage", *staging, cwd=tmp_path)
    assert refused.returncode == 1
    assert "stage/config.toml: newsletter.from" in refused.stderr
    assert "--allow-test-domains" in refused.stderr and not (tmp_path / "stage").exists()
    made = _ainews("init", "stage", *staging, "--allow-test-domains", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    config = load_config(tmp_path / "stage" / "config.toml", environ={})
    assert config.subscribers.allow_test_domains


def test_staging_addresses_left_behind_block_the_send_and_can_be_removed(
        project: Project, smtp_server: SmtpServer) -> None:
    project.write_config('[subscribers]\nallow_test_domains = true\n')
    assert project.run("subscribers", "add", "left@mail.test").exit_code == 0
    project.write_config()  # staging over: the setting is off again
    result = project.run("send", "--week", "2026-W47", "--yes", env=smtp_env(smtp_server))
    assert result.exit_code == 1 and "1 active subscriber under .test" in result.output
    assert smtp_server.handler.messages == []
    assert project.run("subscribers", "remove", "left@mail.test", "--yes").exit_code == 0
    assert project.query("SELECT count(*) FROM subscribers") == [(0,)]


def test_a_storage_url_in_the_environment_is_configuration_enough(tmp_path: Path) -> None:
    database = tmp_path / "elsewhere" / "news.db"
    result = _ainews("subscribers", "count", cwd=tmp_path,
                     env={"AINEWS_CONFIG": "", "AINEWS_STORAGE__URL": f"sqlite:///{database}"})
    assert result.returncode == 0 and result.stdout.strip() == "0", result.stderr
    assert database.exists() and not (tmp_path / "data").exists()


def test_notify_addresses_are_checked_like_the_senders(project: Project) -> None:
    project.write_config('[schedule]\nnotify = ["editor@desk.test"]\n')
    result = project.run("subscribers", "count")
    assert result.exit_code == 1 and "schedule.notify" in result.stderr
    project.write_config('[schedule]\nnotify = ["not an address"]\n')
    bad = project.run("subscribers", "count")
    assert bad.exit_code == 1 and "schedule.notify" in bad.stderr
