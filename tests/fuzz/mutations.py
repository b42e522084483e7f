"""Seeded mutations of real files into hostile inputs (issue 27).

A mutation takes a `random.Random` and the bytes of a real file and returns the hostile bytes
with a short note of what it did ("odd charset 'punycode' in Content-Type"). The same seed and
the same file always give the same bytes, so a failure is replayed from (way in, seed).

Generic mutations (byte flips, truncations, a line repeated 50,000 times, long lines, noise)
apply to every kind of file; the others know the format they attack: mail (odd charsets,
nested multiparts, long headers, 70,000 encoded words), subscriber exports (integers past
Python's 4,300-digit limit, fields past the csv module's limit), JSON (huge integers, deep
nesting, NaN, type swaps, also inside SNS's JSON-in-a-string `Message`), feeds (odd XML
encodings, surrogate and huge character references, billion laughs, external entities, deep
nesting, 100,000 unclosed tags) and post files (YAML alias bombs, huge integers, odd types,
100,000 unclosed tags in the body)."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from typing import Any

Mutation = Callable[[random.Random, bytes], tuple[bytes, str]]

# Growth of one mutation is kept under this (the bounce and import caps are 20 MB).
MAX_GROWTH = 8_000_000
HUGE_DIGITS = 5_000  # past CPython's int <-> str limit of 4,300 digits
ODD_CHARSETS = ("undefined", "punycode", "x\x00y", "utf-7", "idna", "rot13", "base64", "hex",
                "zlib", "bz2", "uu", "quopri", "unicode-escape", "utf-32", "mbcs", "", "\u00e9",
                "a" * 5_000)


def _latin(text: str) -> bytes:
    return text.encode("latin-1", "replace")


def _newline(data: bytes) -> bytes:
    return b"\r\n" if b"\r\n" in data[:4096] else b"\n"


def _insert_at_line(rng: random.Random, data: bytes, chunk: bytes) -> bytes:
    """`chunk` (given its own line ending) at the start of a random line of `data`."""
    starts = [0] + [m.end() for m in re.finditer(rb"\n", data)]
    at = rng.choice(starts)
    return data[:at] + chunk + _newline(data) + data[at:]


# -- generic ---------------------------------------------------------------------------------

def byte_flips(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    buffer = bytearray(data or b"\0")
    count = rng.randint(1, 32)
    for _ in range(count):
        buffer[rng.randrange(len(buffer))] = rng.randrange(256)
    return bytes(buffer), f"{count} random bytes"


def truncation(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    at = rng.randrange(len(data) + 1)
    return data[:at], f"cut at byte {at} of {len(data)}"


def repeated_line(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    lines = data.splitlines(keepends=True) or [b"x\n"]
    index = rng.randrange(len(lines))
    line = lines[index] if lines[index].endswith(b"\n") else lines[index] + _newline(data)
    times = min(50_000, MAX_GROWTH // len(line))
    lines[index] = line * times
    return b"".join(lines), f"line {index + 1} x {times:,}"


def long_line(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    char = rng.choice([b"A", b"-", b"=", b" ", b"<", b"&", b"@", b"%", b"\xc3\xa9", b"\t"])
    length = rng.choice([12_000, 100_000, 1_000_000])
    return _insert_at_line(rng, data, char * length), f"a line of {length:,} x {char!r}"


def noise(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    chunk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4096)))
    at = rng.randrange(len(data) + 1)
    return data[:at] + chunk + data[at:], f"{len(chunk)} random bytes at {at}"


def control_bytes(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    char = rng.choice([b"\0", b"\r", b"\x1b", b"\x0c", b"\xff\xfe", b"\xef\xbb\xbf"])
    buffer = data
    count = rng.randint(1, 50)
    for _ in range(count):
        at = rng.randrange(len(buffer) + 1)
        buffer = buffer[:at] + char + buffer[at:]
    return buffer, f"{count} x {char!r}"


GENERIC: tuple[Mutation, ...] = (byte_flips, truncation, repeated_line, long_line, noise,
                                 control_bytes)


# -- mail ------------------------------------------------------------------------------------

def _split_message(data: bytes) -> tuple[bytes, bytes]:
    match = re.search(rb"\r?\n\r?\n", data)
    if not match:
        return data, b""
    return data[:match.start()], data[match.end():]


def _with_header(data: bytes, header: bytes) -> bytes:
    return header + _newline(data) + data


def mail_odd_charset(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    charset = rng.choice(ODD_CHARSETS)
    name = _latin(charset)
    where = rng.choice(["content-type", "encoded-word", "new part"])
    found = list(re.finditer(rb'(?i)charset="?[^";\s]*"?', data))
    if where == "content-type" and found:
        match = rng.choice(found)
        mutated = data[:match.start()] + b'charset="' + name + b'"' + data[match.end():]
    elif where == "encoded-word":
        mutated = _with_header(data, b"Subject: =?" + name + b"?q?caf=E9?= =?" + name
                               + b"?b?aGVsbG8=?=")
    else:
        mutated = _with_header(data, b'Content-Type: text/plain; charset="' + name + b'"')
    return mutated, f"charset {charset[:20]!r} ({where})"


def mail_deep_multipart(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    nl = _newline(data)
    depth = rng.choice([200, 1_000, 5_000])
    kind = rng.choice(["multipart", "message/rfc822"])
    head, body = _split_message(data)
    kept = re.sub(rb"(?im)^content-(type|transfer-encoding):.*(\r?\n[ \t].*)*(\r?\n|$)", b"",
                  head).rstrip(b"\r\n")
    if kind == "multipart":
        parts = [kept + nl + b'Content-Type: multipart/mixed; boundary="b0"' + nl + nl]
        parts += [b"--b%d" % i + nl + b'Content-Type: multipart/mixed; boundary="b%d"' % (i + 1)
                  + nl + nl for i in range(depth)]
        parts.append(b"--b%d" % depth + nl + b"Content-Type: text/plain" + nl + nl + body + nl)
        parts += [b"--b%d--" % i + nl for i in reversed(range(depth + 1))]
    else:
        parts = [kept + nl] + [b"Content-Type: message/rfc822" + nl + nl] * depth
        parts.append(b"Subject: inner" + nl + nl + body)
    return b"".join(parts), f"{depth:,} nested {kind}"


def mail_long_header(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    name = rng.choice([b"To", b"From", b"Subject", b"Received", b"X-Failed-Recipients",
                       b"Message-ID", b"Content-Type", b"Return-Path"])
    filler = rng.choice([b"a", b"a@", b"<", b"a.", b"a,", b" a"])
    length = rng.choice([12_000, 100_000])
    return _with_header(data, name + b": " + filler * length), \
        f"{name.decode()}: {filler!r} x {length:,}"


def mail_encoded_words(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    charset = rng.choice([b"utf-8", b"iso-8859-1", b"us-ascii"])
    count = rng.choice([20_000, 70_000])
    word = b"=?" + charset + rb"?q?a=E9?= "
    return _with_header(data, b"Subject: " + word * count), f"Subject of {count:,} encoded words"


def mail_separator_line(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    char = rng.choice([b"-", b"=", b"_", b"*", b"- "])
    length = rng.choice([12_000, 100_000])
    head, body = _split_message(data)
    nl = _newline(data)
    return head + nl + nl + _insert_at_line(rng, body, char * length), \
        f"body line of {length:,} x {char!r}"


def mail_many_fields(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    nl = _newline(data)
    line = rng.choice([b"Received: from x by y", b"Final-Recipient: rfc822; a@example.com",
                       b"Status: 5.1.1", b"X-H: v"])
    count = rng.choice([20_000, 50_000])
    head, body = _split_message(data)
    where = rng.choice(["head", "body"])
    block = (line + nl) * count
    if where == "head":
        return head + nl + block + nl + body, f"{count:,} header lines {line[:20]!r}"
    return head + nl + nl + block + body, f"{count:,} body lines {line[:20]!r}"


MAIL: tuple[Mutation, ...] = (mail_odd_charset, mail_deep_multipart, mail_long_header,
                              mail_encoded_words, mail_separator_line, mail_many_fields)


# -- JSON ------------------------------------------------------------------------------------

_SLOT = "\x00fuzz-slot\x00"


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*path, index))
    return found


def _json_replace(rng: random.Random, text: str, raw: str) -> str:
    """`text` (JSON) with one random value, possibly inside a JSON document held in a string
    (SNS's `Message`), replaced by the raw JSON text `raw`."""
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        at = rng.randrange(len(text) + 1)
        return text[:at] + raw + text[at:]
    path = rng.choice(_paths(document))
    if not path:
        return raw
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    current = parent[path[-1]]
    if isinstance(current, str) and current.lstrip()[:1] in ("{", "[") and rng.random() < 0.8:
        parent[path[-1]] = _json_replace(rng, current, raw)
        return json.dumps(document)
    parent[path[-1]] = _SLOT
    return json.dumps(document).replace(json.dumps(_SLOT), raw, 1)


def _json_raw(rng: random.Random) -> tuple[str, str]:
    kind = rng.choice(["huge int", "huge negative", "huge float", "deep list", "deep object",
                       "long string", "surrogates", "NaN", "Infinity", "swap"])
    if kind == "huge int":
        return "9" * HUGE_DIGITS, kind
    if kind == "huge negative":
        return "-" + "9" * HUGE_DIGITS, kind
    if kind == "huge float":
        return "1" + "0" * HUGE_DIGITS + ".5e99999", kind
    if kind == "deep list":
        depth = rng.choice([1_000, 100_000])
        return "[" * depth + "]" * depth, f"list nested {depth:,} deep"
    if kind == "deep object":
        depth = rng.choice([1_000, 50_000])
        return '{"a":' * depth + "1" + "}" * depth, f"object nested {depth:,} deep"
    if kind == "long string":
        return json.dumps("A" * 1_000_000), kind
    if kind == "surrogates":
        return '"\\ud800\\udfff\\ud800 \\u0000"', kind
    if kind in ("NaN", "Infinity"):
        return kind, kind
    swap = rng.choice(["null", "true", "0", "-1", "1.5", '""', "[]", "{}", '"x"', '[{"a":[]}]'])
    return swap, f"value -> {swap}"


def json_value(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    raw, what = _json_raw(rng)
    text = data.decode("utf-8", "surrogateescape")
    return _json_replace(rng, text, raw).encode("utf-8", "surrogateescape"), what


JSON: tuple[Mutation, ...] = (json_value, json_value, json_value)


# -- subscriber exports ----------------------------------------------------------------------

def _rows(data: bytes) -> list[bytes]:
    return data.splitlines() or [b"email"]


def csv_huge_integer(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    rows = _rows(data)
    nl = _newline(data)
    huge = b"9" * HUGE_DIGITS
    if rng.random() < 0.5:
        cell = b'"{""n"": ' + huge + b'}"'
        rows = [rows[0] + b",attributes"] + [row + b"," + cell for row in rows[1:]]
        return nl.join(rows) + nl, "attributes cell {\"n\": 9 x 5,000}"
    index = rng.randrange(len(rows))
    cells = rows[index].split(b",")
    column = rng.randrange(len(cells))
    cells[column] = huge
    rows[index] = b",".join(cells)
    return nl.join(rows) + nl, f"row {index + 1} cell {column + 1} = 9 x 5,000"


def csv_long_field(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    rows = _rows(data)
    nl = _newline(data)
    index = rng.choice([0, rng.randrange(len(rows))])
    length = rng.choice([140_000, 1_000_000])
    quoted = rng.random() < 0.5
    cell = (b'"' + b"a\n" * (length // 2) + b'"') if quoted else b"a" * length
    rows[index] = rows[index] + b"," + cell
    return nl.join(rows) + nl, f"row {index + 1}: a field of {length:,}" + (
        " (quoted, with newlines)" if quoted else "")


def csv_many_columns(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    rows = _rows(data)
    nl = _newline(data)
    index = rng.randrange(len(rows))
    separator = rng.choice([b",", b";", b"\t", b'"'])
    count = rng.choice([10_000, 100_000])
    rows[index] = rows[index] + separator * count
    return nl.join(rows) + nl, f"row {index + 1} + {count:,} x {separator!r}"


def csv_encoding(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    codec = rng.choice(["utf-16", "utf-32", "utf-16-be", "utf-7"])
    text = data.decode("utf-8", "replace")
    return text.encode(codec), f"re-encoded as {codec}"


EXPORTS: tuple[Mutation, ...] = (csv_huge_integer, csv_long_field, csv_many_columns,
                                 csv_encoding)


def export_mutations(suffix: str) -> tuple[Mutation, ...]:
    return JSON if suffix == ".json" else EXPORTS


# -- feeds -----------------------------------------------------------------------------------

_TEXT_SLOT = re.compile(rb"<(title|description|summary|content|content:encoded|subtitle)\b[^>]*>")
_DECLARATION = re.compile(rb"^\s*<\?xml[^>]*\?>")


def _into_text(rng: random.Random, data: bytes, chunk: bytes) -> bytes:
    """`chunk` just after a random opening title/description/summary/content tag."""
    slots = list(_TEXT_SLOT.finditer(data))
    if not slots:
        return _insert_at_line(rng, data, chunk)
    at = rng.choice(slots).end()
    return data[:at] + chunk + data[at:]


def _prolog(data: bytes, doctype: bytes) -> bytes:
    """`doctype` after the XML declaration (or first, when there is none)."""
    match = _DECLARATION.match(data)
    at = match.end() if match else 0
    return data[:at] + doctype + data[at:]


def xml_odd_encoding(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    encoding = rng.choice(ODD_CHARSETS)
    declaration = b'<?xml version="1.0" encoding="' + _latin(encoding) + b'"?>'
    match = _DECLARATION.match(data)
    mutated = declaration + (data[match.end():] if match else b"\n" + data)
    return mutated, f"XML declaration encoding {encoding[:20]!r}"


def xml_char_reference(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    reference = rng.choice(["&#xD800;", "&#55296;", "&#xDFFF;&#xD800;", "&#x110000;", "&#0;",
                            "&#" + "9" * HUGE_DIGITS + ";", "&#x" + "F" * HUGE_DIGITS + ";",
                            "&#" + "0" * HUGE_DIGITS + "65;"])
    escaped = rng.random() < 0.5  # escaped: reaches the HTML sanitizer as a reference
    text = reference.replace("&", "&amp;") if escaped else reference
    return _into_text(rng, data, text.encode()), \
        f"character reference {reference[:14]}{'...' if len(reference) > 14 else ''}" + (
            " (escaped)" if escaped else "")


def xml_entities(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    kind = rng.choice(["billion laughs", "external file", "external URL", "parameter"])
    if kind == "billion laughs":
        levels = [b'<!ENTITY l0 "lol">'] + [
            b"<!ENTITY l%d \"%s\">" % (i, b"&l%d;" % (i - 1) * 10) for i in range(1, 10)]
        doctype, use = b"<!DOCTYPE rss [" + b"".join(levels) + b"]>", b"&l9;"
    elif kind == "external file":
        doctype, use = b'<!DOCTYPE rss [<!ENTITY x SYSTEM "file:///etc/passwd">]>', b"&x;"
    elif kind == "external URL":
        doctype, use = b'<!DOCTYPE rss [<!ENTITY x SYSTEM "http://127.0.0.1:9/x">]>', b"&x;"
    else:
        doctype = b'<!DOCTYPE rss [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>'
        use = b""
    return _into_text(rng, _prolog(data, doctype), use), kind


def xml_deep_nesting(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    depth = rng.choice([10_000, 100_000])
    tag = rng.choice([b"a", b"div", b"item"])
    return _into_text(rng, data, b"<%s>" % tag * depth + b"</%s>" % tag * depth), \
        f"<{tag.decode()}> nested {depth:,} deep"


def xml_unclosed_tags(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    tag = rng.choice([b"div", b"a", b"table", b"b", b"p"])
    count = rng.choice([10_000, 100_000])
    how = rng.choice(["escaped", "CDATA"])
    opening = b"<" + tag + b">"
    chunk = (b"&lt;" + tag + b"&gt;") * count if how == "escaped" else \
        b"<![CDATA[" + opening * count + b"]]>"
    return _into_text(rng, data, chunk), f"{count:,} unclosed <{tag.decode()}> ({how})"


def xml_odd_date(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    value = rng.choice([b"9" * HUGE_DIGITS, b"Mon, 99 Foo 99999999999 99:99:99 +9999",
                        b"2026-13-45T25:61:61Z", b"-0001-01-01", b"\x00", b"1" * 40])
    dates = list(re.finditer(
        rb"<(pubDate|updated|published|dc:date|lastBuildDate|modified|issued)>([^<]*)<", data))
    if not dates:
        return _into_text(rng, data, b"<pubDate>" + value + b"</pubDate>"), "a date element"
    match = rng.choice(dates)
    return data[:match.start(2)] + value + data[match.end(2):], \
        f"<{match.group(1).decode()}> = {value[:16]!r}"


def xml_repeated_items(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    match = re.search(rb"(?s)<(item|entry)\b.*?</\1>", data)
    if not match:
        return repeated_line(rng, data)
    block = match.group(0)
    times = min(rng.choice([5_000, 50_000]), MAX_GROWTH // len(block))
    return data[:match.start()] + block * times + data[match.end():], \
        f"first <{match.group(1).decode()}> x {times:,}"


FEEDS: tuple[Mutation, ...] = (xml_odd_encoding, xml_char_reference, xml_entities,
                               xml_deep_nesting, xml_unclosed_tags, xml_odd_date,
                               xml_repeated_items)


# -- post files (Markdown with YAML front matter) --------------------------------------------

POST_FIELDS = ("title", "date", "tags", "category", "summary", "author", "image", "image_alt",
               "url")
_ANCHORS = b"".join(
    [b'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n']
    + [b"a%d: &a%d [%s]\n" % (i, i, b",".join([b"*a%d" % (i - 1)] * 9)) for i in range(1, 9)])


def _set_field(data: bytes, field: str, value: bytes, before: bytes = b"") -> bytes:
    """Front matter with `field: value` (replacing its line, or added before the closing
    ---), and `before` added above it."""
    line = re.compile(rb"(?m)^" + field.encode() + rb":.*$")
    head = re.match(rb"(?s)\A(---\r?\n)(.*?\r?\n)(---\r?\n?)", data)
    if not head:
        return b"---\n" + before + field.encode() + b": " + value + b"\n---\n" + data
    matter = head.group(2)
    new_line = before + field.encode() + b": " + value
    matter = line.sub(lambda _: new_line, matter, count=1) if line.search(matter) else \
        matter + new_line + b"\n"
    return head.group(1) + matter + head.group(3) + data[head.end():]


def post_alias_bomb(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    field = rng.choice(("tags", "date", *POST_FIELDS))  # the lists and dates turned to text
    return _set_field(data, field, b"*a8", before=_ANCHORS), f"YAML alias bomb in {field}"


def post_odd_value(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    field = rng.choice(POST_FIELDS)
    value = rng.choice([b"9" * HUGE_DIGITS, b"[" + b"9" * HUGE_DIGITS + b"]",
                        b"-" + b"9" * HUGE_DIGITS, b"0x" + b"f" * HUGE_DIGITS, b"1e999", b".nan",
                        b"[1, 2]", b"{a: b}", b"null", b"true", b"!!binary aGVsbG8=",
                        b"2026-13-45", b"&r [*r]", b"!!python/object/apply:os.system [true]",
                        b"[" * 10_000 + b"]" * 10_000, b"{a: " * 5_000 + b"1" + b"}" * 5_000,
                        b'"' + b"A" * 1_000_000 + b'"', b'"\\ud800\\x00"', b"*undefined"])
    shown = value[:24] + (b"..." if len(value) > 24 else b"")
    return _set_field(data, field, value), f"{field}: {shown.decode('latin-1')}"


def post_unclosed_html(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    tag = rng.choice([b"div", b"div", b"a", b"table", b"b", b"p", b"span"])
    count = rng.choice([10_000, 100_000])
    return data + b"\n" + (b"<" + tag + b">") * count + b"\n", \
        f"body + {count:,} unclosed <{tag.decode()}>"


def post_front_matter(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    kind = rng.choice(["no closing", "not a mapping", "tabs", "duplicate keys", "empty"])
    if kind == "no closing":
        match = re.match(rb"(?s)\A(---\r?\n.*?\r?\n)---\r?\n?", data)
        return (match.group(1) + data[match.end():] if match else b"---\n" + data), kind
    if kind == "not a mapping":
        return _prolog_post(data, b"- a\n- b\n"), kind
    if kind == "tabs":
        return data.replace(b": ", b":\t", 3), kind
    if kind == "duplicate keys":
        return _set_field(data, "title", b"x", before=b"title: y\n" * 1_000), kind
    return b"---\n---\n" + data, kind


def _prolog_post(data: bytes, matter: bytes) -> bytes:
    body = re.sub(rb"(?s)\A---\r?\n.*?\r?\n---\r?\n?", b"", data, count=1)
    return b"---\n" + matter + b"---\n" + body


POSTS: tuple[Mutation, ...] = (post_alias_bomb, post_odd_value, post_odd_value,
                               post_unclosed_html, post_front_matter)


def rendered_nesting(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """Closed nesting just under the sanitizer's guard (2,000 deep): html2text indents or
    quotes every line by its depth, so this is where a text part could grow with depth x
    length (render/plain.py flattens it)."""
    depth = rng.choice([500, 1_999])
    shape = rng.choice(["blockquote", "ul", "ol", "mixed"])
    if shape == "mixed":
        opening, closing = b"<blockquote><ul><li>", b"</li></ul></blockquote>"
        depth //= 2
    elif shape == "blockquote":
        opening, closing = b"<blockquote>", b"</blockquote>"
    else:
        opening, closing = b"<%s><li>x" % shape.encode(), b"</li></%s>" % shape.encode()
    lines = b"<p>line</p><br>" * rng.choice([1_000, 10_000])
    return data + b"\n\n" + opening * depth + lines + closing * depth + b"\n", \
        f"{shape} nested {depth:,} deep around many lines"


def rendered_links(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """Many links (html2text's own reference numbering scans every earlier link per link)
    or one very long one (never folded)."""
    if rng.random() < 0.5:
        count = rng.choice([5_000, 20_000])
        links = b" ".join(b"[l%d](https://x.example/%d)" % (n, n) for n in range(count))
        return data + b"\n\n" + links + b"\n", f"{count:,} links"
    url = b"https://x.example/" + b"a" * rng.choice([2_000, 200_000])
    return data + b"\n\n[long](" + url + b") " + url + b"\n", f"a {len(url):,}-byte URL"


def rendered_blocks(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """Tables, code and text without spaces, large: what the folding walks."""
    kind = rng.choice(["table", "code", "cjk", "word"])
    size = rng.choice([2_000, 20_000])
    chunk = {"table": b"<table>" + b"<tr><td>a</td><td>b</td></tr>" * size + b"</table>",
             "code": b"<pre>" + (b"x " * 200 + b"\n") * size + b"</pre>",
             "cjk": "日本語の文".encode() * size * 5,
             "word": b"x" * size * 20}[kind]
    return data + b"\n\n" + chunk + b"\n", f"{kind} x {size:,}"


def rendered_long_code(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """One line of code of 250,000 bytes, as long as a post may be (posts over 256 KiB are
    refused): the fold of code once measured the whole rest of the line at each of its
    72-column cuts (quadratic: about 80 s for this line), ASCII or accented."""
    char = rng.choice([b"x", "\u00e9".encode(), b"x "])
    line = char * (250_000 // len(char))
    return data + b"\n\n<pre><code>" + line + b"</code></pre>\n", \
        f"a {len(line.decode()):,}-character line of code ({char.decode()!r})"


def rendered_marks(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """Where render/plain.py's private-use marks could leak (a heading in a list item or a
    table cell, code in a list item, an empty heading, the input's own), and `<ol start>`
    of thousands of digits: all of them, once or 20 times (a post stays under 256 KiB)."""
    chunk = {"heading in item": b"- ## Listed heading\n- two\n",
             "heading in cell": b"<table><tr><td>a</td><td><h3>cell heading</h3></td></tr>"
                                b"</table>\n",
             "code in item": b"- item\n\n    ```\n    x = 1\n    ```\n",
             "empty heading": b"<h2></h2>\n",
             "ol start": b'<ol start="' + b"9" * 4_000 + b'"><li>' + b"word " * 200 +
                         b"</li></ol>\n",
             "private use": "\ue001\ue002[\ue000] \uf8ff\n".encode()}
    times = rng.choice([1, 20])
    return data + b"\n\n" + b"\n".join(chunk.values()) * times + b"\n", \
        f"{', '.join(chunk)} x {times}"


RENDERED: tuple[Mutation, ...] = (rendered_nesting, rendered_links, rendered_blocks,
                                  rendered_nesting, post_unclosed_html, rendered_long_code,
                                  rendered_marks, rendered_marks)


# -- gettext catalogs (an operator's locale/<lang>/LC_MESSAGES/*.po, issue 30) ------------

_PLURAL_FORMS = re.compile(rb'"Plural-Forms:[^"]*"')
_CHARSET = re.compile(rb"charset=[A-Za-z0-9_-]+")


def _plural_forms(data: bytes, header: bytes) -> bytes:
    return _PLURAL_FORMS.sub(lambda _: header, data, count=1)


def po_plural_nested(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """A Plural-Forms expression (gettext compiles it into Python) nested deep."""
    depth = rng.choice([50, 1_000, 100_000])
    expression = b"(" * depth + b"n%10==1" + b")" * depth
    return _plural_forms(data, b'"Plural-Forms: nplurals=2; plural=' + expression
                         + b';\\n"'), f"plural expression nested {depth:,} deep"


def po_plural_count(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    count = rng.choice([0, 100_000, 10**30])
    return _plural_forms(data, f'"Plural-Forms: nplurals={count}; plural=n;\\n"'.encode()), \
        f"nplurals={count}"


def po_plural_code(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """Code where the plural expression goes: gettext must refuse it, we must say so."""
    code = rng.choice([b"__import__('os').system('id')", b"n if n else 1/0", b"n ? : 1"])
    return _plural_forms(data, b'"Plural-Forms: nplurals=2; plural=' + code + b';\\n"'), \
        f"plural={code.decode()}"


def po_charset(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    charset = rng.choice(ODD_CHARSETS)
    return _CHARSET.sub(b"charset=" + charset.encode("latin-1"), data, count=1), \
        f"charset {charset!r}"


def po_many_forms(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """An entry with a huge index or thousands of forms."""
    count = rng.choice([1_000, 50_000])
    forms = b"".join(b'msgstr[%d] "x"\n' % index for index in range(count))
    entry = b'\nmsgid "one"\nmsgid_plural "many"\n' + forms
    return data + entry, f"an entry with {count:,} plural forms"


PO: tuple[Mutation, ...] = (po_plural_nested, po_plural_count, po_plural_code, po_charset,
                           po_many_forms)


def mutate(rng: random.Random, data: bytes, special: tuple[Mutation, ...],
           turn: int | None = None) -> tuple[bytes, str]:
    """One mutation: format-aware two times in three, else a generic one; with `turn`, the
    turn-th of the format-aware ones then the generic ones (so a handful of cases tries each
    kind once). The note names the mutation and what it did."""
    if turn is not None:
        every = list(dict.fromkeys(special + GENERIC))
        mutation = every[turn % len(every)]
    else:
        mutation = rng.choice(special if special and rng.random() < 0.67 else GENERIC)
    mutated, note = mutation(rng, data)
    return mutated, f"{mutation.__name__}: {note}"
