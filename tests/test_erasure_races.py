"""An erase that commits between a writer reading readers and writing their queued rows
(issue 29, "found nowhere"): the send's audience snapshot and the welcome queue read in one
transaction and write in another, so without the check in delivery/unlisted.py the row
written after the erase would keep the erased address and name. Here the erase runs, on its
own connection, exactly in that gap."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from ainews_newsletter.config import Config, load_config
from ainews_newsletter.models import Recipient, Window
from ainews_newsletter.pipeline.erasure import erase
from ainews_newsletter.pipeline.send import execute_send, plan_send
from ainews_newsletter.pipeline.welcome import Welcomes
from ainews_newsletter.subscribers.newcomers import Newcomers
from ainews_newsletter.subscribers.store import SubscriberStore
from tests.conftest import Project, SmtpServer
from tests.erase_data import ADDRESS, KEY, NAME, OTHER, OTHER_NAME, database_bytes, hits

ENV = {"AINEWS_SECRET_KEY": KEY}


def _config(p: Project, **overrides: Any) -> Config:
    return load_config(p.config_path, environ=dict(ENV),
                       overrides={"storage": {"url": p.storage_url}, **overrides})


def _erase_on_another_connection(config: Config, address: str) -> None:
    """The erase as the CLI or the page runs it: its own thread, engine use and commit."""
    failures: list[BaseException] = []

    def run() -> None:
        try:
            erase(config, [address])
        except BaseException as error:  # re-raised below, in the test's thread
            failures.append(error)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "the erase did not finish"
    assert not failures, failures


def test_a_reader_erased_after_the_audience_was_read_gets_no_ledger_row(
        any_project: Project, smtp_server: SmtpServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    p = any_project
    p.run("subscribers", "add", OTHER, "--name", OTHER_NAME)
    p.run("subscribers", "add", ADDRESS, "--name", NAME)
    config = _config(p, smtp={"host": "127.0.0.1", "port": smtp_server.port},
                     delivery={"batch_size": 1})
    read = SubscriberStore.iter_recipients
    handed: list[str] = []

    def read_then_erase(self: SubscriberStore, *args: Any, **kwargs: Any
                        ) -> Iterator[Recipient]:
        # Each reader is read from the database here, and the erase commits after the
        # reading and before the snapshot writes the row.
        for recipient in read(self, *args, **kwargs):
            if recipient.email == ADDRESS:
                _erase_on_another_connection(config, ADDRESS)
            handed.append(recipient.email)
            yield recipient

    monkeypatch.setattr(SubscriberStore, "iter_recipients", read_then_erase)
    counts = execute_send(config, plan_send(config, Window(week="2026-W47")))
    assert handed == [OTHER, ADDRESS]  # the erased reader was read before the erase
    assert (counts.total, counts.sent) == (1, 1)
    assert smtp_server.recipients() == [OTHER]
    assert p.query("SELECT email FROM deliveries") == [(OTHER,)]
    found = database_bytes(config)
    assert hits(found, ADDRESS, NAME) == []
    assert hits(found, OTHER, OTHER_NAME)  # the search sees what is there


def test_a_reader_erased_after_being_read_gets_no_welcome_row(any_project: Project,
                                                              smtp_server: SmtpServer) -> None:
    p = any_project
    p.run("subscribers", "add", OTHER, "--name", OTHER_NAME)
    p.run("subscribers", "add", ADDRESS, "--name", NAME)
    config = _config(p, smtp={"host": "127.0.0.1", "port": smtp_server.port},
                     subscribers={"welcome": True})
    newcomers = Newcomers(SubscriberStore.open(config).engine)
    readers = [newcomers.by_address(address.lower()) for address in (OTHER, ADDRESS)]
    assert all(reader is not None for reader in readers)
    _erase_on_another_connection(config, ADDRESS)
    queued = Welcomes(config).queue([reader for reader in readers if reader is not None])
    assert [reader.email for reader in queued] == [OTHER]
    assert p.query("SELECT email, name FROM welcomes") == [(OTHER, OTHER_NAME)]
    assert hits(database_bytes(config), ADDRESS, NAME) == []
