"""Retention on a larger ledger (issue 29 review): the pass goes by chunks of ids, each its
own transaction, and the daily pass does not read again what it already cut or hashed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, insert, select

from ainews_newsletter import clock
from ainews_newsletter.config import load_config
from ainews_newsletter.database import engine_for, ensure_schema
from ainews_newsletter.feedback.events import feedback_events
from ainews_newsletter.pipeline import retention
from tests.conftest import Project

SECRET = "retention-secret-of-enough-length"


@pytest.mark.clock
def test_retention_goes_by_chunks_and_skips_what_is_done(
        project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retention, "_CHUNK", 3)
    url = f"sqlite:///{project.database}"
    engine = engine_for(url)
    ensure_schema(engine)
    with engine.begin() as connection:
        connection.execute(insert(feedback_events), [
            {"dedup_key": f"b-{n}", "received_at": clock.now(), "kind": "hard",
             "email": f"reader{n}@example.com", "status": "5.1.1", "action": "failed",
             "diagnostic": f"550 5.1.1 <reader{n}@example.com> Ann Quill",
             "source": f"imap:INBOX/{n}", "matched_by": "tag", "sent_at": clock.now(),
             "effect": "counted"} for n in range(8)]
            + [{"dedup_key": "done", "received_at": clock.now(), "kind": "hard",
                "email": "erased:" + "0" * 64, "status": "5.1.1", "action": "failed",
                "diagnostic": "5.1.1", "source": "imap", "matched_by": "tag",
                "sent_at": clock.now(), "effect": "counted"}])
    transactions: list[int] = []
    event.listen(engine, "begin", lambda connection: transactions.append(1))
    monkeypatch.setattr(retention, "engine_for", lambda _url: engine)
    config = load_config(project.config_path, environ={"AINEWS_SECRET_KEY": SECRET})
    with clock.use_clock(clock.frozen(clock.now() + timedelta(days=500))):
        first = retention.apply_retention(config, with_mailbox=False)
        assert (first.feedback_cut, first.feedback_hashed) == (8, 8)
        # 8 rows in chunks of 3: three chunks and the empty read that ends each rule
        assert len(transactions) >= 8
        again = retention.apply_retention(config, with_mailbox=False)
    assert (again.feedback_cut, again.feedback_hashed) == (0, 0)
    rows = project.query("SELECT email, diagnostic, source FROM feedback_events ORDER BY id")
    assert all(email.startswith(("hashed:", "erased:")) for email, _, _ in rows)
    assert {(diagnostic, source) for _, diagnostic, source in rows} == {("5.1.1", "imap")}
    assert rows[-1][0] == "erased:" + "0" * 64  # an erased mark is left as it is
    # What is done is not read again: the daily pass's selects find nothing to go through.
    with engine.connect() as connection:
        left = connection.execute(select(feedback_events.c.id).where(
            retention._maybe_uncut())).all()
    assert left == []
