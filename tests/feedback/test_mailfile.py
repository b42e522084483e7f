"""Reading returned mail from files, folders and stdin: one item per message, bad input named
with a reason and never raised."""

from __future__ import annotations

import io
from pathlib import Path

from ainews_newsletter.feedback.mailfile import MailItem, Unreadable, read_mail

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "bounces"


def _items(*paths: str | Path) -> list[MailItem | Unreadable]:
    return list(read_mail([str(p) for p in paths]))


def test_a_single_message_file_is_one_item_named_by_its_path() -> None:
    path = FIXTURES / "exim-prose.eml"
    [item] = _items(path)
    assert isinstance(item, MailItem)
    assert item.source == str(path)
    assert item.raw.startswith(b"Return-path: <>\n")


def test_crlf_and_bare_cr_copies_read_as_the_lf_message() -> None:
    lf, crlf, cr = (_items(FIXTURES / name)[0] for name in (
        "postfix-two-recipients.eml", "postfix-two-recipients-crlf.eml",
        "postfix-two-recipients-cr.eml"))
    assert isinstance(lf, MailItem) and isinstance(crlf, MailItem) and isinstance(cr, MailItem)
    assert crlf.raw == lf.raw and cr.raw == lf.raw
    assert b"\r" not in cr.raw


def test_an_mbox_gives_one_numbered_item_per_message_and_unescapes_from() -> None:
    path = FIXTURES / "two-messages.mbox"
    items = _items(path)
    assert [i.source for i in items] == [f"{path}:1", f"{path}:2"]
    first, second = items
    assert isinstance(first, MailItem) and isinstance(second, MailItem)
    assert first.raw.startswith(b"Return-path: <>") and not first.raw.startswith(b"From ")
    assert second.raw.startswith(b"Return-Path: <away@readers.example>")
    assert b"\nFrom time to time I am" in second.raw  # ">From " escape removed


def test_a_maildir_is_read_cur_then_new_sorted_by_name(tmp_path: Path) -> None:
    maildir = tmp_path / "Bounces"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    message = (FIXTURES / "delivered-dsn.eml").read_bytes()
    (maildir / "new" / "1700000002.M2.host").write_bytes(message)
    (maildir / "cur" / "1700000003.M3.host:2,S").write_bytes(message)
    (maildir / "cur" / "1700000001.M1.host:2,S").write_bytes(message)
    (maildir / "tmp" / "1700000009.M9.host").write_bytes(b"half-written")
    items = _items(maildir)
    assert [Path(i.source).name for i in items] == [
        "1700000001.M1.host:2,S", "1700000003.M3.host:2,S", "1700000002.M2.host"]
    assert all(isinstance(i, MailItem) and i.raw == message for i in items)


def test_stdin_is_one_message() -> None:
    raw = (FIXTURES / "out-of-office.eml").read_bytes().replace(b"\n", b"\r\n")
    [item] = list(read_mail(["-"], stdin=io.BytesIO(raw)))
    assert item == MailItem("-", raw.replace(b"\r\n", b"\n"))


def test_bad_inputs_are_named_with_a_reason_and_do_not_stop_the_rest(tmp_path: Path) -> None:
    no_headers = tmp_path / "notes.txt"
    no_headers.write_text("Just some prose, no headers at all.\n")
    plain_dir = tmp_path / "photos"
    plain_dir.mkdir()
    items = _items(FIXTURES / "empty.eml", FIXTURES / "binary.eml", tmp_path / "missing.eml",
                   plain_dir, no_headers, FIXTURES / "exim-prose.eml")
    reasons = [i.reason for i in items if isinstance(i, Unreadable)]
    assert len(reasons) == 5
    assert "empty" in reasons[0]
    assert "binary" in reasons[1]
    assert "no such file" in reasons[2]
    assert "empty folder" in reasons[3]
    assert "header" in reasons[4]
    assert isinstance(items[-1], MailItem)


def test_a_plain_folder_gives_its_files_in_name_order(tmp_path: Path) -> None:
    saved = tmp_path / "saved"
    (saved / "sub").mkdir(parents=True)
    (saved / "b.eml").write_bytes((FIXTURES / "exim-prose.eml").read_bytes())
    (saved / "a.eml").write_bytes((FIXTURES / "out-of-office.eml").read_bytes())
    (saved / "sub" / "c.eml").write_bytes((FIXTURES / "exim-prose.eml").read_bytes())
    items = _items(saved)
    assert [item.source for item in items] == [str(saved / "a.eml"), str(saved / "b.eml")]
    assert all(isinstance(item, MailItem) for item in items)


def test_a_file_over_the_cap_is_refused_with_the_size(tmp_path: Path) -> None:
    big = tmp_path / "huge.eml"
    big.write_bytes(b"Subject: x\n\n" + b"a" * 3000)
    [item] = list(read_mail([str(big)], max_bytes=1024 * 1024 // 1024))
    assert isinstance(item, Unreadable)
    assert "larger than" in item.reason and "3,012 bytes" in item.reason
