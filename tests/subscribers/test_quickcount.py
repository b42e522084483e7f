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


def test_the_command_counts_the_same_either_way(project: Project) -> None:
    """Quick (a plain config) and full (a setting in the environment the full config must
    judge) give one answer; the quick one writes nothing."""
    readers = project.import_readers(7)
    assert project.run("subscribers", "unsubscribe", readers[0]).exit_code == 0
    before = project.database.stat().st_mtime_ns
    assert _count(project) == "6"
    assert project.database.stat().st_mtime_ns == before
    assert _count(project, AINEWS_SMTP__PORT="2526") == "6"
