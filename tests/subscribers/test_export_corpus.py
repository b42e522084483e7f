"""Every subscriber export in ../shared/corpora/csv (real fixtures of Ghost's migration tools,
Ghost itself and listmonk; see its SOURCE.md) imports as its expected.tsv says, by one rule:
a row that says the person does not or cannot receive mail is never imported mailable.

Where another importer chose differently, our rule wins: Ghost's tools import Mailchimp's
`cleaned` (bounced) members as subscribed; here they are bounced."""

from __future__ import annotations

import csv
from collections import Counter

import pytest

from ainews_newsletter.errors import SubscriberError
from ainews_newsletter.models import SubscriberStatus
from ainews_newsletter.subscribers.formats import open_subscriber_file
from ainews_newsletter.subscribers.importer import ImportRow, Rejected
from tests.conftest import Project, corpus

ACTIVE, PENDING = SubscriberStatus.ACTIVE, SubscriberStatus.PENDING
LEFT, BOUNCED = SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED

# file → (format detected, {address: status} for the rows that say something (None: the file
# does not say, so a new row becomes active), addresses rejected, and why)
EXPECTED: dict[str, tuple[str, dict[str, SubscriberStatus | None], dict[str, str]]] = {
    "ghost-migrate/mailchimp/subscribed.csv": ("mailchimp", {
        f"s{i}@example.com": ACTIVE for i in range(1, 6)}, {}),
    "ghost-migrate/mailchimp/unsubscribed.csv": ("mailchimp", {
        f"u{i}@example.com": LEFT for i in range(1, 6)}, {}),
    # Ghost imports these as subscribed; Mailchimp cleaned them after hard bounces.
    "ghost-migrate/mailchimp/cleaned.csv": ("mailchimp", {
        f"c{i}@example.com": BOUNCED for i in range(1, 6)}, {}),
    "ghost-migrate/beehiiv/members.csv": ("beehiiv", {
        "lorem@example.com": ACTIVE, "ipsum@example.com": ACTIVE,
        "dolor@example.com": LEFT, "simet@example.com": LEFT,  # status inactive
        "amett@example.com": PENDING, "elit@example.com": ACTIVE,
        "nullfirst@example.com": ACTIVE,
        "unsublit@example.com": LEFT,  # status active, but unsubscribed_at is set
        "fromsubstack@example.com": ACTIVE}, {}),
    "ghost-migrate/tinynews/subs-v1.csv": ("tinynews", {
        "lorem@example.com": ACTIVE, "dolor@example.com": LEFT,  # Status 4
        "nosub@example.com": LEFT}, {}),  # Status 0
    "ghost-migrate/tinynews/subs-v2.csv": ("tinynews", {
        "lorem@example.com": LEFT, "dolor@example.com": ACTIVE}, {}),
    "ghost-core/valid-members-import.csv": ("ghost", {
        "jbloggs@example.com": ACTIVE,
        "test@example.com": LEFT}, {}),  # subscribed_to_emails=false
    "ghost-core/members-headers-only.csv": ("csv", {}, {}),
    "ghost-core/members-ragged-row.csv": ("csv", {
        "ragged-first@example.com": None, "ragged-full@example.com": None}, {}),
    "ghost-core/valid-members-defaults.csv": ("csv", {
        "member+defaults_1@example.com": None, "member+defaults_2@example.com": None}, {}),
    "ghost-migrate/medium/members.txt": ("lines", {
        f"{n}@example.com": None for n in ("lorem", "ipsum", "dolor", "simet", "amett")}, {}),
}


def _read(name: str) -> tuple[str, list[ImportRow], list[Rejected]]:
    opened = open_subscriber_file(corpus("csv", *name.split("/")))
    rows = list(opened.rows)
    return (opened.format, [r for r in rows if isinstance(r, ImportRow)],
            [r for r in rows if isinstance(r, Rejected)])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_export_imports_as_expected(name: str) -> None:
    detected, statuses, rejected = EXPECTED[name]
    found, good, bad = _read(name)
    assert found == detected
    assert {row.email: row.status for row in good} == statuses
    assert {row.email: row.reason for row in bad} == rejected


def test_the_expected_tsv_row_counts_hold() -> None:
    """Data rows per file as expected.tsv counts them = imported + rejected here (Medium's
    blank line is not a row; Ghost's duplicate is two rows)."""
    with corpus("csv", "expected.tsv").open(encoding="utf-8") as handle:
        expected = {row["file"]: int(row["data_rows"])
                    for row in csv.DictReader(handle, delimiter="\t")}
    assert len(expected) == 20
    for name, rows in expected.items():
        if name == "ghost-migrate/substack/invalid.csv":
            continue  # not a Substack export: see the test below
        _, good, bad = _read(name)
        assert len(good) + len(bad) == rows, name


def test_substack_both_exports_and_mail_turned_off() -> None:
    found, good, bad = _read("ghost-migrate/substack/fixtures_signup_emails.csv")
    assert found == "substack" and len(good) + len(bad) == 21
    status = {row.email: row.status for row in good}
    # email_disabled=true: the reader turned mail off; never mailable (was stored active).
    assert status["maguirec086@comm.ca"] is LEFT and status["nottimferris@gmail.com"] is LEFT
    assert Counter(status.values()) == Counter({ACTIVE: len(status) - 2, LEFT: 2})
    assert status["ömil@gmail.com"] is ACTIVE and bad == []  # RFC 6531 rows accepted
    paid = _read("ghost-migrate/substack/fixtures_subscriber_emails.csv")
    assert paid[0] == "substack" and len(paid[1]) + len(paid[2]) == 17
    plans = {row.email: (row.attributes or {}).get("type") for row in paid[1]}
    assert plans["maguirec086@comm.ca"] == "comp" and plans["herroooo@substack.com"] == "paid"
    assert {row.email: row.status for row in paid[1]}["maguirec086@comm.ca"] is LEFT


def test_a_file_that_is_not_a_substack_export_is_refused_as_one() -> None:
    with pytest.raises(SubscriberError, match=r"invalid\.csv:1: not a substack export"):
        open_subscriber_file(corpus("csv", "ghost-migrate", "substack", "invalid.csv"),
                             "substack")


def test_names_from_first_and_last_name_columns() -> None:
    names = {row.email: row.name for row in _read("ghost-migrate/beehiiv/members.csv")[1]}
    assert names["lorem@example.com"] == "Lorem Name"
    assert names["ipsum@example.com"] == "Ipsum Name"
    assert names["nullfirst@example.com"] == "Last Only"
    assert names["simet@example.com"] is None
    tiny = {row.email: row.name for row in _read("ghost-migrate/tinynews/subs-v2.csv")[1]}
    assert tiny["dolor@example.com"] == "Dolor Simet"
    assert {row.email: row.name for row in _read("ghost-migrate/mailchimp/subscribed.csv")[1]
            }["s5@example.com"] == "Dolor Simet"
    revue = {row.email: row.name for row in _read("ghost-migrate/revue/api-response.json")[1]}
    assert revue["Bob.Something@advisers.co.uk"] == "Bob Something"


def test_curated_and_listmonk_and_revue_counts() -> None:
    curated = _read("ghost-migrate/curated/subscribers.csv")
    assert curated[0] == "curated" and len(curated[1]) + len(curated[2]) == 20
    assert {row.status for row in curated[1]} == {ACTIVE}
    # Curated's own importer does not validate; these two are not addresses at all.
    assert {row.email for row in curated[2]} == {"Bob.Something@adv", "albert.a.dum"}
    assert "ömil@gmail.com" in {row.email for row in curated[1]}
    listmonk = _read("listmonk/subs.csv")
    assert (listmonk[0], len(listmonk[1]), listmonk[2]) == ("csv", 100, [])
    revue = _read("ghost-migrate/revue/api-response.json")
    assert revue[0] == "revue" and len(revue[1]) + len(revue[2]) == 21


def test_nobody_who_left_is_stored_active_through_the_cli(project: Project) -> None:
    for name in ("ghost-migrate/beehiiv/members.csv", "ghost-core/valid-members-import.csv",
                 "ghost-migrate/substack/fixtures_signup_emails.csv",
                 "ghost-migrate/mailchimp/cleaned.csv"):
        result = project.run("subscribers", "import", str(corpus("csv", *name.split("/"))))
        assert result.exit_code == 0, result.output
    stored = dict(project.query("SELECT email, status FROM subscribers"))
    for address in ("unsublit@example.com", "test@example.com", "maguirec086@comm.ca",
                    "c1@example.com", "dolor@example.com"):
        assert stored[address] != "active", address
