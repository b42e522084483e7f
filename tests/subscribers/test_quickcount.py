"""The standard-library count (`ainews subscribers count` on SQLite) answers exactly what the
store answers, and steps aside whenever it cannot be sure."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ainews_newsletter.database import engine_for
from ainews_newsletter.models import SubscriberStatus
from ainews_newsletter.subscribers.quickcount import quick_count
from ainews_newsletter.subscribers.store import SubscriberStore
from tests.conftest import Project


@pytest.fixture
def filled(tmp_path: Path) -> tuple[Path, SubscriberStore]:
    """Readers in every status, on the default list, a second list, both, or none."""
    database = tmp_path / "list.db"
    store = SubscriberStore(engine_for(f"sqlite:///{database}"), default_list="newsletter")
    store.add_list("research", "papers only")
    for index in range(40):
        address = f"reader{index}@example.com"
        store.add(address)
        subscriber = store.set_lists(
            address, [("newsletter",), ("research",), ("newsletter", "research"), ()][index % 4])
        status = list(SubscriberStatus)[index % len(SubscriberStatus)]
        if status is not SubscriberStatus.ACTIVE:
            store.set_status(subscriber, status)
    return database, store


@pytest.mark.parametrize("list_name", [None, "newsletter", "research"])
@pytest.mark.parametrize("status", [None, *SubscriberStatus])
def test_the_same_answer_as_the_store(filled: tuple[Path, SubscriberStore],
                                      status: SubscriberStatus | None,
                                      list_name: str | None) -> None:
    database, store = filled
    expected = store.count(status, list_name)
    assert quick_count(database, None if status is None else status.value,
                       list_name) == expected


def test_the_filters_are_real(filled: tuple[Path, SubscriberStore]) -> None:
    database, _ = filled
    everyone = quick_count(database, None, None)
    research = quick_count(database, None, "research")
    active = quick_count(database, "active", None)
    assert everyone == 40
    assert research is not None and 0 < research < 40
    assert active is not None and 0 < active < 40


def test_it_steps_aside_when_it_cannot_be_sure(filled: tuple[Path, SubscriberStore],
                                              tmp_path: Path) -> None:
    database, _ = filled
    assert quick_count(database, None, "no-such-list") is None  # the store says so
    assert quick_count(tmp_path / "missing.db", None, None) is None  # the store creates it
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0005'")
    assert quick_count(database, None, None) is None  # the store migrates first
    (tmp_path / "junk.db").write_bytes(b"not a database " * 100)
    assert quick_count(tmp_path / "junk.db", None, None) is None


def _count(project: Project, **environ: str) -> str:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AINEWS_")}
    done = subprocess.run([sys.executable, "-m", "ainews_newsletter", "--config",
                           str(project.config_path), "subscribers", "count", "--status",
                           "active"], capture_output=True, text=True, check=True,
                          env={**env, **environ})
    return done.stdout.strip()


def test_the_command_counts_what_the_store_counts_and_writes_nothing(project: Project) -> None:
    """The sqlite3 count answers as the store does, writes nothing into the database, and
    leaves nothing beside it (no note of an accepted config: every count checks it)."""
    readers = project.import_readers(7)
    assert project.run("subscribers", "unsubscribe", readers[0]).exit_code == 0
    before = project.database.stat().st_mtime_ns
    beside = sorted(path.name for path in project.database.parent.iterdir())
    assert _count(project) == "6"
    assert _count(project, AINEWS_SMTP__PORT="2526") == "6"
    assert project.database.stat().st_mtime_ns == before
    assert sorted(path.name for path in project.database.parent.iterdir()) == beside
    assert SubscriberStore(engine_for(f"sqlite:///{project.database}")).count(
        SubscriberStatus.ACTIVE) == 6


def _count_run(project: Project, **environ: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items()
           if not key.upper().startswith("AINEWS_")}
    return subprocess.run([sys.executable, "-m", "ainews_newsletter", "--config",
                           str(project.config_path), "subscribers", "count"],
                          capture_output=True, text=True, env={**env, **environ})


def test_a_storage_url_in_lower_case_is_read_as_the_full_config_reads_it(
        project: Project, tmp_path: Path) -> None:
    project.import_readers(2)
    other = tmp_path / "other.db"
    SubscriberStore(engine_for(f"sqlite:///{other}")).add("only@example.com")
    done = _count_run(project, ainews_storage__url=f"sqlite:///{other}")
    assert (done.returncode, done.stdout.strip()) == (0, "1")


@pytest.mark.parametrize(("config", "says"), [
    ('storage = "sqlite:///x.db"\n', "storage"),  # lands in the last table: unknown key
    ("[storge]\nurl = 'sqlite:///x.db'\n", "storge"),
    ("[storage]\nurll = 'sqlite:///x.db'\n", "urll"),
    ("# caf\xe9\n", "UTF-8"),
])
def test_a_config_the_full_path_refuses_is_refused_with_one_line(
        project: Project, config: str, says: str) -> None:
    """A count never answers for a config that is refused."""
    project.import_readers(2)
    project.config_path.write_bytes(project.config_path.read_bytes()
                                    + b"\n" + config.encode("latin-1"))
    done = _count_run(project)
    assert done.returncode == 1, done.stdout
    assert len(done.stderr.strip().splitlines()) == 1 and says in done.stderr


def test_an_empty_storage_url_in_the_environment_is_an_error(project: Project) -> None:
    project.import_readers(2)
    done = _count_run(project, AINEWS_STORAGE__URL="")
    assert done.returncode == 1 and "storage.url" in done.stderr


def test_a_file_is_accepted_only_while_the_environment_puts_it_right(
        project: Project) -> None:
    """A `from` the file gets wrong, set right in the environment: accepted there, refused
    as soon as the environment no longer puts it right."""
    project.import_readers(2)
    text = project.config_path.read_text()
    project.config_path.write_text(text.replace('from = "', 'from = "not an address ', 1))
    helped = _count_run(project, AINEWS_NEWSLETTER__FROM="news@example.org")
    assert (helped.returncode, helped.stdout.strip()) == (0, "2")
    plain = _count_run(project)
    assert plain.returncode == 1 and "from" in plain.stderr
