"""Reading subscriber files: each export format detected from its header, BOM, delimiters,
quoted newlines, CRLF; every bad row with its line number; unusable files refused whole."""

from __future__ import annotations

from pathlib import Path

import pytest

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
    (["Email Address", "First Name", "Last Name"], "mailchimp"),
    (["email", "active_subscription", "expiry"], "substack"),
    (["uuid", "email", "name", "attributes", "status"], "listmonk"),
    (["email", "subscriber_type", "creation_date"], "buttondown"),
    (["email", "name"], "csv"),
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
