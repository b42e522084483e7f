"""Reading subscriber files: each export format detected from its header, BOM, delimiters,
quoted newlines, CRLF; every bad row with its line number; unusable files refused whole."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ainews_newsletter.errors import SubscriberError
from ainews_newsletter.models import SubscriberStatus
from ainews_newsletter.subscribers.formats import detect, open_subscriber_file
from ainews_newsletter.subscribers.importer import ImportRow, Rejected

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "subscribers"


def _read(name: str, file_format: str = "auto") -> tuple[str, list[ImportRow], list[Rejected]]:
    opened = open_subscriber_file(FIXTURES / name, file_format)
    rows = list(opened.rows)
    good = [row for row in rows if isinstance(row, ImportRow)]
    bad = [row for row in rows if isinstance(row, Rejected)]
    return opened.format, good, bad


def test_mailchimp_with_bom_crlf_quotes_and_bad_rows() -> None:
    file_format, good, bad = _read("mailchimp-subscribed.csv")
    assert file_format == "mailchimp"
    assert [(r.line, r.email, r.name, r.status) for r in good] == [
        (2, "freya.nilsson@example.com", "Freya Nilsson", SubscriberStatus.ACTIVE),
        (3, "FREYA.NILSSON@EXAMPLE.COM", "Freya N.", SubscriberStatus.ACTIVE),
        (4, "gideon.mensah@example.org", "Gideon Mensah", SubscriberStatus.ACTIVE),
        (7, "harriet.osei@example.com", 'Harriet "Hattie" Osei', SubscriberStatus.ACTIVE),
    ]
    assert good[0].normalized == good[1].normalized  # duplicates differing in case
    assert good[0].attributes == {"tags": "ai,weekly"}
    assert [(r.line, r.email) for r in bad] == [
        (5, "not-an-address"), (6, '=HYPERLINK("https://evil.example")')]


def test_mailchimp_unsubscribed_export() -> None:
    _, good, _ = _read("mailchimp-unsubscribed.csv")
    assert [(r.email, r.status) for r in good] == [
        ("gideon.mensah@example.org", SubscriberStatus.UNSUBSCRIBED)]


def test_substack_semicolons() -> None:
    file_format, good, bad = _read("substack.csv")
    assert file_format == "substack" and bad == []
    assert [(r.email, r.status, r.attributes) for r in good] == [
        ("ivo.petrovic@example.com", SubscriberStatus.ACTIVE, {"paid": True}),
        ("juno.park@example.org", SubscriberStatus.UNSUBSCRIBED, None),
        ("kai.mueller@example.com", SubscriberStatus.ACTIVE, None)]


def test_listmonk_attributes_statuses_and_multiline_names() -> None:
    file_format, good, _ = _read("listmonk.csv")
    assert file_format == "listmonk"
    assert [(r.line, r.email, r.status) for r in good] == [
        (2, "lena.vogel@example.com", SubscriberStatus.ACTIVE),
        (3, "mo.farah@example.org", SubscriberStatus.UNSUBSCRIBED),
        (4, "nina.ross@example.com", SubscriberStatus.ACTIVE)]
    assert good[0].attributes == {"city": "Graz", "plan": "pro"}
    assert good[2].name == "Nina Ross"  # a line break in a name becomes a space


def test_buttondown_tabs_and_a_smuggled_display_name() -> None:
    file_format, good, bad = _read("buttondown.tsv")
    assert file_format == "buttondown"
    assert [(r.email, r.status) for r in good] == [
        ("omar.haddad@example.com", SubscriberStatus.ACTIVE),
        ("pia.lund@example.org", SubscriberStatus.PENDING),
        ("quentin.roy@example.com", SubscriberStatus.UNSUBSCRIBED)]
    assert len(bad) == 1 and bad[0].line == 5 and "looks like a name and an address" in \
        bad[0].reason


@pytest.mark.parametrize(("header", "expected"), [
    (["Email Address", "First Name", "Last Name", "MEMBER_RATING"], "mailchimp"),
    (["Email Address", "First Name", "Last Name", "Status"], "csv"),  # anyone's columns
    (["email", "active_subscription", "expiry"], "substack"),
    (["uuid", "email", "name", "attributes", "status"], "listmonk"),
    (["email", "subscriber_type", "creation_date"], "buttondown"),
    (["email", "name"], "csv"),
    (["email", "name", "note", "subscribed_to_emails", "labels"], "ghost"),
    (["email", "First Name", "Last Name", "status", "tier", "unsubscribed_at"], "beehiiv"),
    (["email", "expiry", "email_disabled", "type"], "substack"),
    (["id", "email_address", "first_name", "state", "tags", "created_at"], "kit"),
    (["Channel id", "Status", "Tier", "Email", "Name", "Surname", "Engagement OptIn"],
     "tinynews"),
    (["email", "First name", "Last name", "Date added", "Last modified", "status", "opens"],
     "tinynews"),
    (["Email Address", "Subscribed at", "UTM Source"], "curated"),
])
def test_detect(header: list[str], expected: str) -> None:
    assert detect(header) == expected


@pytest.mark.parametrize(("content", "message"), [
    (b"", "the file is empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file"),
    (b"name,phone\nA,1\n", "no email column; the columns found are: 'name', 'phone'"),
    (b"email\n\xff\xfe@example.com\n", "not UTF-8"),
])
def test_unusable_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(content)
    with pytest.raises(SubscriberError, match=message) as caught:
        list(open_subscriber_file(path).rows)
    assert str(path) in str(caught.value)


def test_unknown_format_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SubscriberError, match="unknown format 'excel'"):
        open_subscriber_file(FIXTURES / "substack.csv", "excel")
    with pytest.raises(SubscriberError, match="subscriber file not found"):
        open_subscriber_file(tmp_path / "nope.csv")


def test_crlf_inside_an_address_field_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(b'email,name\r\n"evil@example.com\r\nBcc: x@example.org",E\r\n'
                     b"fine@example.com,F\r\n")
    rows = list(open_subscriber_file(path).rows)
    assert isinstance(rows[0], Rejected) and "line break" in rows[0].reason
    assert isinstance(rows[1], ImportRow) and rows[1].line == 4


def test_kit_states_and_an_unknown_state_named(tmp_path: Path) -> None:
    export = tmp_path / "kit.csv"
    export.write_text("id,email_address,first_name,state,tags,created_at\n"
                      "1,a@example.com,Ann,active,,2024-01-15T10:30:00Z\n"
                      "2,b@example.com,Bo,cancelled,,2024-01-15T10:30:00Z\n"
                      "3,c@example.com,Cy,bounced,,2024-01-15T10:30:00Z\n"
                      "4,d@example.com,Di,complained,,2024-01-15T10:30:00Z\n"
                      "5,e@example.com,Ed,frozen,,2024-01-15T10:30:00Z\n", encoding="utf-8")
    opened = open_subscriber_file(export)
    rows = list(opened.rows)
    assert opened.format == "kit"
    assert [(r.email, r.status) for r in rows if isinstance(r, ImportRow)] == [
        ("a@example.com", SubscriberStatus.ACTIVE),
        ("b@example.com", SubscriberStatus.UNSUBSCRIBED),
        ("c@example.com", SubscriberStatus.BOUNCED),
        ("d@example.com", SubscriberStatus.COMPLAINED)]
    [rejected] = [r for r in rows if isinstance(r, Rejected)]
    assert rejected.line == 6 and rejected.reason == "unknown state 'frozen'"


def test_every_format_can_be_asked_for_and_checks_its_columns(tmp_path: Path) -> None:
    plain = tmp_path / "plain.csv"
    plain.write_text("email,name\na@example.com,Ann\n", encoding="utf-8")
    for name in ("mailchimp", "substack", "ghost", "beehiiv", "kit", "buttondown",
                 "listmonk", "tinynews", "curated"):
        with pytest.raises(SubscriberError, match=rf"plain\.csv:1: not a {name} export"):
            open_subscriber_file(plain, name)
    assert open_subscriber_file(plain, "csv").format == "csv"


@pytest.mark.parametrize(("header", "detected"), [
    ("Email Address,First Name,Last Name,Status", "csv"),
    ("email,name,subscribed_to_emails,status", "ghost"),
    ("email,active_subscription,status", "substack"),
    ("Email Address,Subscribed at,Status", "curated"),
    ("email_address,id,first_name,last_name,state", "kit"),
])
def test_a_status_column_is_read_in_every_format(tmp_path: Path, header: str,
                                                 detected: str) -> None:
    export = tmp_path / "export.csv"
    cells = len(header.split(","))
    export.write_text(f"{header}\n" + ",".join(["a@example.com", *[""] * (cells - 2),
                                                 "unsubscribed"]) + "\n"
                      + ",".join(["b@example.com", *[""] * (cells - 2), "frozen"]) + "\n",
                      encoding="utf-8")
    opened = open_subscriber_file(export)
    rows = list(opened.rows)
    assert opened.format == detected
    assert [(r.email, r.status) for r in rows if isinstance(r, ImportRow)] == [
        ("a@example.com", SubscriberStatus.UNSUBSCRIBED)]
    [rejected] = [r for r in rows if isinstance(r, Rejected)]
    assert rejected.email == "b@example.com" and "'frozen'" in rejected.reason


def test_json_lists_of_objects_or_addresses(tmp_path: Path) -> None:
    objects = tmp_path / "a.json"
    objects.write_text('\n[{"email": "a@example.com", "status": "unsubscribed"},'
                       ' {"email": "b@example.com"}]', encoding="utf-8")
    rows = list(open_subscriber_file(objects).rows)
    assert [(r.email, r.status) for r in rows if isinstance(r, ImportRow)] == [
        ("a@example.com", SubscriberStatus.UNSUBSCRIBED), ("b@example.com", None)]
    bare = tmp_path / "b.json"
    bare.write_text('["c@example.com", 7]', encoding="utf-8")
    rows = list(open_subscriber_file(bare).rows)
    assert [r.email for r in rows if isinstance(r, ImportRow)] == ["c@example.com"]
    assert [(r.line, r.email) for r in rows if isinstance(r, Rejected)] == [(2, "7")]
    deep = tmp_path / "c.json"
    deep.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    with pytest.raises(SubscriberError, match="nested too deeply"):
        open_subscriber_file(deep)


def test_nulls_are_empty_and_more_opt_out_columns(tmp_path: Path) -> None:
    export = tmp_path / "generic.csv"
    export.write_text("email,unsubscribed_at,is_subscribed,email_opt_out,unsubscribed\n"
                      "a@example.com,NULL,,,\n"
                      "b@example.com,0000-00-00,,,\n"
                      "c@example.com,,false,,\n"
                      "d@example.com,,,true,\n"
                      "e@example.com,,,,2024-03-01\n", encoding="utf-8")
    rows = [r for r in open_subscriber_file(export).rows if isinstance(r, ImportRow)]
    assert [r.status for r in rows] == [None, None] + [SubscriberStatus.UNSUBSCRIBED] * 3


def test_the_opt_out_rule_beats_any_status(tmp_path: Path) -> None:
    """"active" and yet unsubscribed_at, deleted_at, email_disabled or subscribed…=false:
    never imported mailable, in any format."""
    export = tmp_path / "mixed.csv"
    export.write_text("email,status,unsubscribed_at,deleted_at,email_disabled,subscribed\n"
                      "a@example.com,active,2024-01-01,,,\n"
                      "b@example.com,active,,2024-02-02,,\n"
                      "c@example.com,active,,,true,\n"
                      "d@example.com,active,,,,false\n"
                      "e@example.com,active,,,false,true\n", encoding="utf-8")
    rows = [r for r in open_subscriber_file(export).rows if isinstance(r, ImportRow)]
    assert [r.status for r in rows] == [SubscriberStatus.UNSUBSCRIBED] * 4 + [
        SubscriberStatus.ACTIVE]


# -- the plain-list fast path ------------------------------------------------------------

def _general(path: Path) -> list[ImportRow | Rejected]:
    """What the general path (dict per row, `ours` mapper, opt-out rule) reads from a CSV."""
    import csv

    from ainews_newsletter.subscribers.foreign_formats import MAPPERS, column_key
    from ainews_newsletter.subscribers.formats import _csv_records, _rows

    handle = path.open(encoding="utf-8-sig", newline="")  # _csv_records closes it
    reader = csv.reader(handle)
    keys = [column_key(column) for column in next(reader)]
    return list(_rows(_csv_records(handle, reader, keys, path), MAPPERS["csv"], False, False,
                      lists=True))


CELL = st.one_of(
    st.sampled_from(["ada@example.com", " Ada@Example.COM ", "'=x@example.com", "'", "",
                     "  ", "not-an-address", "a@b.test", "jürgen@example.de", "Ada Lovelace",
                     "'+Ada", "Ada\tLovelace", "Ada\nLovelace", "Ada\u202eevil", "  Ada  B  ",
                     "x" * 210, "a@xn--bcher-kva.example", "Ada <ada@example.com>"]),
    st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
            max_size=12))  # UTF-8 text (a NUL makes it a binary file)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.sampled_from([["email", "name"], ["Name", "E-mail"], ["Email Address"],
                               ["email"]]),
       records=st.lists(st.lists(CELL, max_size=3), max_size=12))
def test_a_plain_list_reads_exactly_as_the_general_path(tmp_path: Path, header: list[str],
                                                        records: list[list[str]]) -> None:
    import csv

    path = tmp_path / "plain.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(records)
    opened = open_subscriber_file(path, "csv")
    assert list(opened.rows) == _general(path)


def test_plain_list_line_numbers_count_quoted_line_breaks(tmp_path: Path) -> None:
    path = tmp_path / "plain.csv"
    path.write_text('email,name\na@example.com,"Ada\nLovelace"\n\nbroken,B\n'
                    '"c@example.com\n",C\nd@example.com,"D\n\nD"\ne@example.com,E\n',
                    encoding="utf-8")
    rows = list(open_subscriber_file(path).rows)
    assert [(type(r).__name__, r.line, r.email) for r in rows] == [
        ("ImportRow", 2, "a@example.com"), ("Rejected", 5, "broken"),
        ("ImportRow", 6, "c@example.com"), ("ImportRow", 8, "d@example.com"),
        ("ImportRow", 11, "e@example.com")]
    assert [r.name for r in rows if isinstance(r, ImportRow)] == [
        "Ada Lovelace", "C", "D D", "E"]
