"""Erased addresses need the key they were erased with to be recognised (issue 29 review):
without AINEWS_SECRET_KEY, or with another one, `subscribers import` and `subscribers add`
refuse in one line instead of letting every erased address back in; --force-erased goes on.
The key's fingerprint sits on the suppression list, where nothing else counts it."""

from __future__ import annotations

from tests.conftest import Project
from tests.erase_data import ADDRESS, KEY, NAME, OTHER

ENV = {"AINEWS_SECRET_KEY": KEY}
OTHER_KEY = {"AINEWS_SECRET_KEY": "another-secret-key-of-enough-length"}


def test_import_and_add_refuse_without_the_key_or_with_another(any_project: Project) -> None:
    p = any_project
    p.run("subscribers", "add", ADDRESS, "--name", NAME)
    assert p.run("subscribers", "erase", ADDRESS, "--yes", env=ENV).exit_code == 0
    assert p.query("SELECT count(*) FROM suppressions WHERE reason = 'key-check'") == [(1,)]
    csv_file = p.root / "list.csv"
    csv_file.write_text(f"email\n{ADDRESS.lower()}\n{OTHER}\n", encoding="utf-8")
    for env, said in (({}, "1 address was erased on request; set AINEWS_SECRET_KEY"),
                      (OTHER_KEY, "AINEWS_SECRET_KEY is not the one used to erase")):
        imported = p.run("subscribers", "import", str(csv_file), env=env)
        assert imported.exit_code == 1
        assert said in imported.output and "--force-erased" in imported.output
        assert "Traceback" not in imported.output
        added = p.run("subscribers", "add", ADDRESS, env=env)
        assert added.exit_code == 1 and said in added.output
    assert p.query("SELECT email FROM subscribers") == []
    # The right key: the erased one is refused, the other comes in.
    assert p.run("subscribers", "import", str(csv_file), env=ENV).exit_code == 1
    assert p.query("SELECT email FROM subscribers") == [(OTHER,)]
    # A second erase keeps one fingerprint; forcing needs no key.
    assert p.run("subscribers", "erase", OTHER, "--yes", env=ENV).exit_code == 0
    assert p.query("SELECT count(*) FROM suppressions WHERE reason = 'key-check'") == [(1,)]
    forced = p.run("subscribers", "add", ADDRESS, "--force-erased")
    assert forced.exit_code == 0, forced.output


def test_no_erased_address_no_key_needed(any_project: Project) -> None:
    assert any_project.run("subscribers", "add", OTHER).exit_code == 0
    assert any_project.query("SELECT count(*) FROM suppressions") == [(0,)]


def test_erase_refuses_another_key_unless_told_the_key_changed(any_project: Project) -> None:
    """An erase with another key would leave marks the earlier ones cannot match: refused
    before anything changes; --new-key moves the fingerprint to the new key, after which
    the old key is the one refused."""
    p = any_project
    p.run("subscribers", "add", ADDRESS, "--name", NAME)
    p.run("subscribers", "add", OTHER)
    assert p.run("subscribers", "erase", ADDRESS, "--yes", env=ENV).exit_code == 0
    before = p.query("SELECT email_normalized, reason FROM suppressions ORDER BY reason")
    refused = p.run("subscribers", "erase", OTHER, "--yes", env=OTHER_KEY)
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert "AINEWS_SECRET_KEY is not the one earlier erases used" in refused.output
    assert "--new-key" in refused.output
    assert p.query("SELECT email FROM subscribers") == [(OTHER,)]
    assert p.query("SELECT email_normalized, reason FROM suppressions ORDER BY reason") == before
    moved = p.run("subscribers", "erase", OTHER, "--yes", "--new-key", env=OTHER_KEY)
    assert moved.exit_code == 0, moved.output
    assert p.query("SELECT email FROM subscribers") == []
    assert p.query("SELECT count(*) FROM suppressions WHERE reason = 'key-check'") == [(1,)]
    assert p.run("subscribers", "erase", OTHER, "--yes", env=ENV).exit_code == 1
    assert p.run("subscribers", "add", "new.reader@example.com", env=OTHER_KEY).exit_code == 0


def test_a_key_problem_is_said_before_the_question(project: Project) -> None:
    """The operator is not asked "Erase … for good?" only to learn the key is wrong."""
    project.run("subscribers", "add", ADDRESS)
    project.run("subscribers", "add", OTHER)
    assert project.run("subscribers", "erase", ADDRESS, "--yes", env=ENV).exit_code == 0
    asked = project.run("subscribers", "erase", OTHER, env=OTHER_KEY, input="y\n")
    assert asked.exit_code == 1
    assert "for good?" not in asked.output
    assert "not the one earlier erases used" in asked.output
    assert project.query("SELECT email FROM subscribers") == [(OTHER,)]
