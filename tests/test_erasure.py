"""Erasing a reader (issue 29): from the CLI, idempotent, reports keep their counts, nothing
of the person is left in the database's bytes (SQLite file and WAL; a pg_dump), an erased
address is refused on import and `add` unless forced, and a send never reaches a reader
erased after its snapshot."""

from __future__ import annotations

import dataclasses
import json
import re
import threading
from datetime import timedelta
from typing import Any

from sqlalchemy import event, insert, update

from ainews_newsletter import clock
from ainews_newsletter.config import Config, load_config
from ainews_newsletter.database import engine_for
from ainews_newsletter.delivery import redaction
from ainews_newsletter.delivery.tables import clicks, deliveries, welcomes
from ainews_newsletter.feedback.events import FeedbackEvent
from ainews_newsletter.feedback.findings import FeedbackKind
from ainews_newsletter.models import SubscriberStatus, Window
from ainews_newsletter.pipeline.erasure import (
    Erased,
    erase,
    scrubbed,
    unnamer,
)
from ainews_newsletter.pipeline.reports import issue_numbers
from ainews_newsletter.pipeline.retention import apply_retention
from ainews_newsletter.pipeline.send import execute_send, plan_send
from ainews_newsletter.reports.numbers import issue_json
from ainews_newsletter.subscribers.erased import PREFIX, erased_mark
from ainews_newsletter.subscribers.signups import SignUps
from ainews_newsletter.subscribers.store import SubscriberStore
from tests.conftest import Project, SmtpServer
from tests.erase_data import (
    ADDRESS,
    KEY,
    NAME,
    OTHER,
    OTHER_NAME,
    a_delivery,
    an_issue,
    database_bytes,
    hits,
    seed,
)
from tests.feedback.returns import dsn

ENV = {"AINEWS_SECRET_KEY": KEY}


def _config(p: Project, **overrides: Any) -> Config:
    return load_config(p.config_path, environ=dict(ENV),
                       overrides={"storage": {"url": p.storage_url}, **overrides})


def test_the_placeholder_keeps_the_smtp_code_and_nothing_else() -> None:
    assert scrubbed(f"550 5.1.1 <{ADDRESS}>: unknown") == "550 5.1.1 (erased on request)"
    assert scrubbed(f"552-5.2.2 {ADDRESS} full") == "552-5.2.2 (erased on request)"
    assert scrubbed(f"smtp; 550 {ADDRESS}") == "(erased on request)"
    assert scrubbed(None) is None
    assert erased_mark(KEY, "a@example.com").startswith("erased:")
    assert erased_mark(KEY, "a@example.com") != erased_mark(KEY + "x", "a@example.com")


def test_erase_from_the_cli_leaves_no_trace_of_the_person(any_project: Project) -> None:
    """The proof of item 5: the address (and its local part) and the name are nowhere in
    the database's bytes, in any case, UTF-8 or UTF-16; the other reader is untouched."""
    p = any_project
    config = _config(p)
    seeded = seed(engine_for(config.database_url))
    before = database_bytes(config)
    assert hits(before, ADDRESS, NAME)  # the search finds what is there
    numbers_before = issue_json(issue_numbers(config, None))

    result = p.run("subscribers", "erase", ADDRESS.upper(), "--yes", env=ENV)
    assert result.exit_code == 0, result.output
    assert f"erased {ADDRESS.upper()}" in result.output

    after = database_bytes(config)
    local = ADDRESS.split("@")[0]
    assert hits(after, ADDRESS, local, NAME, NAME.split()[1]) == []
    assert hits(after, OTHER, OTHER_NAME)  # the other reader is all there
    # History stays (growth counts from it), under the id alone.
    kinds = [row[0] for row in p.query(
        "SELECT kind FROM subscriber_events WHERE subscriber_id = ? ORDER BY id", seeded.person)]
    assert kinds == ["joined", "unsubscribed", "erased"]
    mark = erased_mark(KEY, ADDRESS.lower())
    assert p.query("SELECT reason FROM suppressions WHERE email_normalized = ?", mark) == [
        ("erased",)]
    assert p.query("SELECT email, name, last_reply FROM deliveries WHERE subscriber_id = ?",
                   seeded.person) == [(mark, None, "250 2.0.0 (erased on request)")]
    assert p.query("SELECT email, diagnostic FROM feedback_events WHERE subscriber_id = ?",
                   seeded.person) == [(mark, "(erased on request)")]
    for table in ("welcomes", "consents", "memberships"):
        assert p.query(f"SELECT count(*) FROM {table} WHERE subscriber_id = ?",
                       seeded.person) == [(0,)], table
    assert p.query("SELECT count(*) FROM clicks") == [(1,)]  # the other reader's
    # The reports keep their counts (the erased reader's clicks are gone with them).
    numbers_after = issue_json(issue_numbers(config, None))
    numbers_before.pop("clicks"), numbers_after.pop("clicks")
    numbers_before.pop("rates"), numbers_after.pop("rates")
    assert numbers_after == numbers_before
    assert numbers_after["bounces"]["soft"] == 2


def test_erase_is_idempotent_and_says_what_it_did_not_find(any_project: Project) -> None:
    p = any_project
    config = _config(p)
    seed(engine_for(config.database_url), unsubscribe=False)
    addresses = p.root / "erase.txt"
    addresses.write_text(f"# requests of this week\n{ADDRESS}\n\nnobody@example.com\n")
    first = p.run("subscribers", "erase", "--file", str(addresses), "--yes", "--json", env=ENV)
    assert first.exit_code == 0, first.output
    records = json.loads(first.stdout)
    assert [(r["address"], r["found"], r["deliveries"]) for r in records] == [
        (ADDRESS, True, 1), ("nobody@example.com", False, 0)]
    snapshot = [p.query(f"SELECT * FROM {table} ORDER BY 1") for table in
                ("deliveries", "feedback_events", "suppressions", "subscriber_events")]
    again = p.run("subscribers", "erase", ADDRESS, "--yes", env=ENV)
    assert again.exit_code == 0, again.output
    assert f"not found: {ADDRESS}" in again.output
    assert [p.query(f"SELECT * FROM {table} ORDER BY 1") for table in
            ("deliveries", "feedback_events", "suppressions", "subscriber_events")] == snapshot
    assert p.query("SELECT count(*) FROM subscribers") == [(1,)]


def test_erase_refuses_without_the_secret_key(project: Project) -> None:
    project.run("subscribers", "add", ADDRESS)
    result = project.run("subscribers", "erase", ADDRESS, "--yes")
    assert result.exit_code == 1
    assert "AINEWS_SECRET_KEY" in result.output and "Traceback" not in result.output
    assert project.query("SELECT count(*) FROM subscribers") == [(1,)]
    nothing = project.run("subscribers", "erase", "--yes", env=ENV)
    assert nothing.exit_code != 0 and "at least one EMAIL" in nothing.output


def test_an_erased_address_repeated_in_a_file_is_refused_at_every_line(
        any_project: Project) -> None:
    """Both databases alike: each line of an erased address is a reject of its own, none
    of them a duplicate (on SQLite the repeats are folded when a batch is staged, and
    still refused one by one)."""
    p = any_project
    p.run("subscribers", "add", ADDRESS)
    assert p.run("subscribers", "erase", ADDRESS, "--yes", env=ENV).exit_code == 0
    csv_file = p.root / "list.csv"
    csv_file.write_text(f"email\n{ADDRESS.lower()}\n{OTHER}\n{ADDRESS.upper()}\n"
                        f"{OTHER.upper()}\n", encoding="utf-8")
    result = p.run("subscribers", "import", str(csv_file), "--json", env=ENV)
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert (summary["imported"], summary["duplicates"], summary["rejected"]) == (1, 1, 2)
    refused = [line for line in result.stderr.splitlines() if "erased on request" in line]
    assert [re.search(r"list\.csv:(\d+): ", line).group(1)  # type: ignore[union-attr]
            for line in refused] == ["2", "4"]


def test_an_erased_address_is_refused_on_import_and_add_unless_forced(
        any_project: Project) -> None:
    p = any_project
    p.run("subscribers", "add", ADDRESS, "--name", NAME)
    assert p.run("subscribers", "erase", ADDRESS, "--yes", env=ENV).exit_code == 0
    csv_file = p.root / "list.csv"
    csv_file.write_text(f"email\n{ADDRESS.lower()}\n{OTHER}\n", encoding="utf-8")
    refused = p.run("subscribers", "import", str(csv_file), env=ENV)
    assert refused.exit_code == 1
    assert "erased on request" in refused.output
    assert p.query("SELECT email FROM subscribers") == [(OTHER,)]
    added = p.run("subscribers", "add", ADDRESS, env=ENV)
    assert added.exit_code == 1 and "erased on request" in added.output
    forced = p.run("subscribers", "import", str(csv_file), "--force-erased", env=ENV)
    assert forced.exit_code == 0, forced.output
    assert sorted(p.query("SELECT email_normalized FROM subscribers")) == sorted([
        (ADDRESS.lower(),), (OTHER,)])
    mark = erased_mark(KEY, ADDRESS.lower())
    assert p.query("SELECT count(*) FROM suppressions WHERE email_normalized = ?", mark) == [
        (0,)]


def test_add_with_force_erased(project: Project) -> None:
    project.run("subscribers", "add", ADDRESS)
    assert project.run("subscribers", "erase", ADDRESS, "--yes", env=ENV).exit_code == 0
    added = project.run("subscribers", "add", ADDRESS, "--force-erased", env=ENV)
    assert added.exit_code == 0, added.output
    assert project.query("SELECT status FROM subscribers") == [("active",)]


def test_a_reader_erased_during_a_send_is_not_sent_to(any_project: Project,
                                                      smtp_server: SmtpServer) -> None:
    """The audience is copied when the send starts; the erase commits (another connection)
    while the first message is on its way: the erased reader's row is never sent."""
    p = any_project
    for address in (OTHER, ADDRESS):
        p.run("subscribers", "add", address)
    p.write_config("[delivery]\nbatch_size = 1\n")
    config = _config(p, smtp={"host": "127.0.0.1", "port": smtp_server.port})
    erased: list[Erased] = []

    def erase_the_second(address: str) -> None:
        if address == OTHER:
            worker = threading.Thread(target=lambda: erased.extend(erase(config, [ADDRESS])))
            worker.start()
            worker.join()

    smtp_server.handler.on_rcpt = erase_the_second
    counts = execute_send(config, plan_send(config, Window(week="2026-W47")))
    assert [(done.deliveries, done.not_sent) for done in erased] == [(1, 1)]
    assert smtp_server.recipients() == [OTHER]
    assert (counts.sent, counts.failed) == (1, 1)
    mark = erased_mark(KEY, ADDRESS.lower())
    assert p.query("SELECT state, last_reply FROM deliveries WHERE email = ?", mark) == [
        ("failed", "not sent: erased on request")]
    assert SubscriberStore.open(config).get(ADDRESS) is None


def test_a_bounce_arriving_after_the_erase_does_not_name_the_reader(
        any_project: Project) -> None:
    """A late bounce (unmatched: the ledger no longer knows the address) is stored with the
    mark and no free text, like the events the erase rewrote."""
    p = any_project
    config = _config(p)
    seed(engine_for(config.database_url), unsubscribe=False)
    assert p.run("subscribers", "erase", ADDRESS, "--yes", env=ENV).exit_code == 0
    report = dsn("bounces@news.example.org", ADDRESS.lower(),
                 diagnostic="550 5.1.1 <{r}>: no such user " + NAME)
    result = p.run("bounces", "ingest", "-", input=report.decode(), env=ENV)
    assert result.exit_code == 0, result.output
    mark = erased_mark(KEY, ADDRESS.lower())
    assert p.query("SELECT diagnostic, source FROM feedback_events WHERE email = ? "
                   "AND dedup_key <> 'event-person'", mark) == [
        ("550 5.1.1 (erased on request)", "(erased on request)")]
    assert hits(database_bytes(config), ADDRESS, NAME) == []


def test_no_trace_even_where_sqlite_keeps_deleted_bytes(project: Project) -> None:
    """Many SQLite builds leave deleted bytes in the file (secure_delete off by default):
    with every other connection like that, the erase still leaves nothing behind."""
    project.storage_url = f"sqlite:///{project.root / 'db' / 'plain.db'}"
    config = _config(project)
    engine = engine_for(config.database_url)
    event.listen(engine, "connect", lambda connection, _record: connection.execute(
        "PRAGMA secure_delete = OFF"))
    engine.dispose()
    seed(engine)  # unsubscribing rewrites the reader's row: the old one stays as free space
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA secure_delete").scalar() == 0
    erase(config, [ADDRESS])
    engine.dispose()
    assert hits(database_bytes(config), ADDRESS, NAME) == []


def test_erasing_a_removed_reader_leaves_whoever_got_their_id_alone(
        any_project: Project) -> None:
    """SQLite hands a deleted highest id to the next reader: the erase matches ledger rows by
    their own address, never by the id alone."""
    p = any_project
    config = _config(p)
    engine = engine_for(config.database_url)
    store = SubscriberStore(engine)
    issue = an_issue(engine)
    alice = store.add(ADDRESS)
    a_delivery(engine, issue, alice.id, ADDRESS, "sent", f"250 ok <{ADDRESS}>")
    store.remove(ADDRESS)
    bob = store.add(OTHER, name=OTHER_NAME)
    bobs = a_delivery(engine, an_issue(engine, "2026-W49"), bob.id, OTHER, "queued")
    now = clock.now()
    with engine.begin() as connection:
        connection.execute(insert(welcomes).values(
            subscriber_id=bob.id, email=OTHER, name=OTHER_NAME, state="sent", attempts=1,
            created_at=now, updated_at=now))
        connection.execute(insert(clicks).values(issue_id=issue, delivery_id=bobs,
                                                 position=1, at=now, scanner=False))
    [done] = erase(config, [ADDRESS])
    assert (done.deliveries, done.not_sent, done.welcomes, done.clicks) == (1, 0, 0, 0)
    assert p.query("SELECT email, state FROM deliveries WHERE id = ?", bobs) == [
        (OTHER, "queued")]
    assert p.query("SELECT email, name FROM welcomes") == [(OTHER, OTHER_NAME)]
    assert p.query("SELECT delivery_id FROM clicks") == [(bobs,)]
    assert p.query("SELECT email FROM deliveries WHERE id <> ?", bobs) == [
        (erased_mark(KEY, ADDRESS.lower()),)]


def test_a_refusal_of_a_message_on_its_way_during_the_erase_does_not_name_the_reader(
        any_project: Project, smtp_server: SmtpServer) -> None:
    """The row is `sending` when the erase hashes it; the server's 550 quoting the address,
    recorded after, is stored as the erase stores replies (code kept, words gone)."""
    p = any_project
    p.run("subscribers", "add", ADDRESS)
    config = _config(p, smtp={"host": "127.0.0.1", "port": smtp_server.port})
    erased: list[Erased] = []
    refusal = f"550 5.1.1 <{ADDRESS}>: no such user"
    smtp_server.handler.replies = {ADDRESS: refusal, ADDRESS.lower(): refusal}
    smtp_server.handler.on_rcpt = lambda _address: erased.extend(erase(config, [ADDRESS]))
    execute_send(config, plan_send(config, Window(week="2026-W47")))
    assert [(done.deliveries, done.not_sent) for done in erased] == [(1, 0)]
    mark = erased_mark(KEY, ADDRESS.lower())
    assert p.query("SELECT state, last_reply FROM deliveries") == [
        ("failed", "5.1.1 (erased on request)")]  # the code sits in last_code
    assert p.query("SELECT email FROM deliveries") == [(mark,)]
    assert redaction.ERASED_PREFIX == PREFIX


def test_an_erased_complainer_may_not_be_sent_a_confirmation(any_project: Project) -> None:
    """The mark keeps why the address was suppressed: a stranger's sign-up must not make us
    mail someone who complained, erased or not; someone who unsubscribed may come back."""
    p = any_project
    config = _config(p)
    store = SubscriberStore.open(config)
    complainer = store.add(ADDRESS)
    store.set_status(complainer, SubscriberStatus.COMPLAINED)
    store.unsubscribe(store.add(OTHER).email)
    erase(config, [ADDRESS, OTHER])
    assert sorted(p.query("SELECT reason FROM suppressions WHERE reason <> 'key-check'")) == [
        ("erased",), ("erased:complained",)]
    signups = SignUps(SubscriberStore.open(config))
    assert signups.may_be_sent_a_confirmation(ADDRESS) is False
    assert signups.may_be_sent_a_confirmation(OTHER) is True


def test_a_late_report_tied_to_an_erased_delivery_is_unnamed_whatever_it_names(
        any_project: Project) -> None:
    """Matched by its VERP tag, with no recipient or a forwarding one: its diagnostic may
    still quote the erased address."""
    p = any_project
    config = _config(p)
    seeded = seed(engine_for(config.database_url), unsubscribe=False)
    erase(config, [ADDRESS])
    [mine] = p.query("SELECT id FROM deliveries WHERE subscriber_id = ?", seeded.person)
    [theirs] = p.query("SELECT id FROM deliveries WHERE subscriber_id = ?", seeded.other)
    late = FeedbackEvent(
        dedup_key="late", received_at=clock.now(), kind=FeedbackKind.HARD, email="",
        status="5.1.1", action="failed", diagnostic=f"550 5.1.1 <{ADDRESS}> gone",
        feedback_type=None, source=f"/var/mail/{ADDRESS}.eml", matched_by="tag",
        delivery_id=mine[0], issue_id=seeded.issue, subscriber_id=seeded.person)
    forwarded = dataclasses.replace(late, email="forward@example.net")
    other = dataclasses.replace(late, email=OTHER, delivery_id=theirs[0],
                                diagnostic=f"550 {OTHER}")
    mark = erased_mark(KEY, ADDRESS.lower())
    prepare = unnamer(config)
    assert prepare is not None
    with engine_for(config.database_url).connect() as connection:
        done = prepare(connection, [late, forwarded, other])
    assert [(e.email, e.diagnostic, e.source) for e in done[:2]] == [
        (mark, "550 5.1.1 (erased on request)", "(erased on request)")] * 2
    assert done[2] == other


def test_only_the_cli_erase_rebuilds_the_file(project: Project) -> None:
    """The file scan and VACUUM read and rewrite the whole database: never inside the web
    request (source "web"); the CLI erase does them and says so."""
    project.storage_url = f"sqlite:///{project.root / 'db' / 'plain.db'}"
    config = _config(project)
    engine = engine_for(config.database_url)
    event.listen(engine, "connect", lambda connection, _record: connection.execute(
        "PRAGMA secure_delete = OFF"))
    engine.dispose()
    seed(engine)
    [web] = erase(config, [ADDRESS], "web")
    assert web.found and web.file == ""
    engine.dispose()
    assert hits(database_bytes(config), ADDRESS)  # old free space, untouched
    [cli] = erase(config, [ADDRESS])
    assert cli.file == "vacuumed"
    engine.dispose()
    assert hits(database_bytes(config), ADDRESS, NAME) == []


def test_retention_leaves_the_erase_mark_alone(any_project: Project) -> None:
    p = any_project
    config = _config(p)
    engine = engine_for(config.database_url)
    seed(engine, unsubscribe=False)
    erase(config, [ADDRESS])
    long_ago = clock.now() - timedelta(days=3000)
    with engine.begin() as connection:
        connection.execute(update(deliveries).values(updated_at=long_ago, sent_at=long_ago))
    apply_retention(config, with_mailbox=False)
    emails = sorted(row[0] for row in p.query("SELECT email FROM deliveries"))
    assert emails[0] == erased_mark(KEY, ADDRESS.lower())
    assert emails[1].startswith("hashed:")  # the other reader's, as retention does


def test_an_address_with_capital_letters_beyond_ascii_is_found_on_sqlite_too(
        any_project: Project) -> None:
    """SQLite's lower() folds only A-Z: a ledger row of a removed reader, typed with an
    "Ü", is still found by the erase (the address as the operator types it)."""
    config = _config(any_project)
    engine = engine_for(config.database_url)
    typed = "ÜLRIKE.Zweigstelle@example.com"
    a_delivery(engine, an_issue(engine), 7, typed, "sent", reply=f"250 ok <{typed}>")
    done = erase(config, [typed.lower()])  # the operator types it in lower case
    assert [(item.subscriber, item.deliveries) for item in done] == [(False, 1)]
    assert hits(database_bytes(config), typed, "Zweigstelle") == []
