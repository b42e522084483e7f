"""Reading returned mail from files: a single message, an mbox (including a "mini-mbox" saved
with a .eml name), a Maildir folder, or standard input. Each message comes out as bytes with
LF line ends; anything that is not mail comes out as `Unreadable` with a reason a user can act
on. Nothing here raises for bad input: an operator feeding a folder of odd files must get one
line per bad file, not a traceback that stops the other thousand."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

# A bounce is rarely over a few hundred KB (servers truncate what they return); a file past
# this is a mistake (a backup, a video) and reading it whole would only waste memory.
MAX_BYTES = 20 * 1024 * 1024

# An mbox separator is "From <sender> <ctime date>". Requiring the time of day keeps a quoted
# "From here on…" line inside a body (which mbox writers should escape but often don't) from
# splitting a message in two.
# The white space is possessive (".*" would otherwise retry every split of a long run of it,
# quadratic in a "From " line of spaces); ".*" can take no run the white space gave up.
_MBOX_SEPARATOR = re.compile(rb"^From \S*\s++.*\d{1,2}:\d\d", re.MULTILINE)
# A header line ("Name: value") or a folded continuation; RFC 5322 field names are printable
# ASCII without a colon.
_HEADER_LINE = re.compile(rb"^[!-9;-~]+[ \t]*:")
_MBOXRD_ESCAPE = re.compile(rb"^>(>*From )", re.MULTILINE)


@dataclass(frozen=True)
class MailItem:
    source: str  # the path, "path:N" for the N-th message of a multi-message file, "-" or a
    raw: bytes   # Maildir file path; raw has LF line ends


@dataclass(frozen=True)
class Unreadable:
    source: str
    reason: str


def normalise_line_ends(raw: bytes) -> bytes:
    """CRLF and bare CR (old Mac mail) become LF, so every copy of a message parses alike."""
    return raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def read_mail(paths: Sequence[str], stdin: BinaryIO | None = None,
              max_bytes: int = MAX_BYTES) -> Iterator[MailItem | Unreadable]:
    """Every message in `paths`, in order; "-" reads one message from `stdin`."""
    for path in paths:
        if path == "-":
            yield from _read_stream(stdin, max_bytes)
        else:
            yield from _read_path(path, max_bytes)


def _read_stream(stdin: BinaryIO | None, max_bytes: int) -> Iterator[MailItem | Unreadable]:
    if stdin is None:
        yield Unreadable("-", "no standard input to read")
        return
    try:
        data = stdin.read(max_bytes + 1)
    except OSError as exc:
        yield Unreadable("-", f"cannot read standard input: {exc.strerror or exc}")
        return
    yield from _split_mbox("-", data, max_bytes)


def _read_path(path: str, max_bytes: int) -> Iterator[MailItem | Unreadable]:
    target = Path(path)
    try:
        if target.is_dir():
            yield from _read_maildir(target, max_bytes)
            return
        if not target.exists():
            yield Unreadable(path, "no such file or folder")
            return
        size = target.stat().st_size
        if size > max_bytes:
            yield Unreadable(path, _too_big(size, max_bytes))
            return
        data = target.read_bytes()
    except OSError as exc:
        yield Unreadable(path, f"cannot read: {exc.strerror or exc}")
        return
    yield from _split_mbox(path, data, max_bytes)


def _read_maildir(folder: Path, max_bytes: int) -> Iterator[MailItem | Unreadable]:
    subfolders = [folder / "cur", folder / "new"]
    if not any(sub.is_dir() for sub in subfolders):
        # A plain folder of saved messages (a mail client's export): each file in it, in
        # name order, not its subfolders.
        files = sorted((entry for entry in folder.iterdir()
                        if entry.is_file() and not entry.name.startswith(".")),
                       key=lambda entry: entry.name)
        if not files:
            yield Unreadable(str(folder), "an empty folder (neither a Maildir nor any files)")
        for entry in files:
            yield from _read_path(os.fspath(entry), max_bytes)
        return
    for sub in subfolders:
        if not sub.is_dir():
            continue
        # Maildir names start with the delivery time, so name order is arrival order.
        for entry in sorted(sub.iterdir(), key=lambda p: p.name):
            if entry.name.startswith(".") or not entry.is_file():
                continue
            yield from _read_path(os.fspath(entry), max_bytes)


def _too_big(size: int, max_bytes: int) -> str:
    return (f"larger than {max_bytes // (1024 * 1024)} MB ({size:,} bytes): not a returned "
            "message; split an mbox this big into smaller files")


def _split_mbox(source: str, data: bytes, max_bytes: int) -> Iterator[MailItem | Unreadable]:
    if len(data) > max_bytes:
        yield Unreadable(source, _too_big(len(data), max_bytes))
        return
    data = normalise_line_ends(data)
    if not data.strip():
        yield Unreadable(source, "empty file: no message in it")
        return
    if data.startswith(b"From "):
        starts = [m.start() for m in _MBOX_SEPARATOR.finditer(data)]
        if not starts or starts[0] != 0:
            starts = [0, *starts]
        chunks = [data[a:b] for a, b in zip(starts, [*starts[1:], len(data)], strict=True)]
        many = len(chunks) > 1
        for number, chunk in enumerate(chunks, start=1):
            name = f"{source}:{number}" if many else source
            body = _MBOXRD_ESCAPE.sub(rb"\1", chunk.split(b"\n", 1)[1] if b"\n" in chunk else b"")
            yield _mail_or_unreadable(name, body)
        return
    yield _mail_or_unreadable(source, data)


def _mail_or_unreadable(source: str, raw: bytes) -> MailItem | Unreadable:
    """A message must start with header lines; binary junk and prose are named as such."""
    stripped = raw.lstrip(b"\n")
    if not stripped.strip():
        return Unreadable(source, "empty message: nothing after the mbox separator")
    head = stripped[:8192]
    first_line = stripped.split(b"\n", 1)[0]
    header_shaped = bool(_HEADER_LINE.match(first_line))
    # One stray NUL in a header happens in real mail (a Japanese carrier's bounce in Sisimai's
    # mbox has one); many of them, or any before the first header, mean a binary file.
    if b"\0" in head and (not header_shaped or head.count(b"\0") > len(head) // 100):
        return Unreadable(source, "binary data (NUL bytes), not a mail message")
    if not header_shaped:
        return Unreadable(source, "not a mail message: it does not start with header lines "
                                  "such as 'From:' or 'Received:'")
    return MailItem(source, stripped)
