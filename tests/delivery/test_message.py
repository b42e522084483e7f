"""The message one subscriber receives: structure, headers, encoding, injection safety."""

from __future__ import annotations

import base64
import email
import email.policy
import quopri
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ainews_newsletter.config import load_config
from ainews_newsletter.delivery.message import (
    IssueMessages,
    PersonalBody,
    build_message,
    message_id,
    quoted_printable_body,
)
from ainews_newsletter.models import Recipient, RenderedIssue, Window
from ainews_newsletter.pipeline.issue import build, resolve_period

REPO = Path(__file__).resolve().parents[2]
# The shipped config, with a throwaway database: tests never write into the repository.
CONFIG = load_config(REPO / "config.toml", environ={},
                     overrides={"storage": {"url": "sqlite:///:memory:"}})
DATE = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def rendered() -> RenderedIssue:
    return build(CONFIG, Window(week="2026-W47"))


def _parse(raw: bytes) -> EmailMessage:
    return cast(EmailMessage, email.message_from_bytes(raw, policy=email.policy.default))


def _roundtrip(rendered: RenderedIssue, recipient: Recipient) -> tuple[bytes, EmailMessage]:
    """The bytes a send puts on the wire (IssueMessages), and how a reader's client parses them."""
    raw = IssueMessages(rendered, CONFIG.newsletter, DATE).bytes_for(recipient)
    return raw, _parse(raw)


def _shape(message: EmailMessage) -> list[tuple[str, str]]:
    """Every header as a client reads it, then each part's headers and decoded content; the
    MIME boundary is random per build, so it is left out."""
    shape = [(name, str(value)) for name, value in message.items() if name != "Content-Type"]
    shape.append(("content-type", message.get_content_type()))
    for part in message.iter_parts():
        shape += [(name, str(value)) for name, value in part.items()]
        shape.append(("content", cast(EmailMessage, part).get_content()))
    return shape


# Names and tokens as they arrive from imports: any text, including the awkward kinds.
NAMES = st.one_of(st.none(), st.text(max_size=80), st.sampled_from(
    ["Ada Lovelace", "O'Brien", "J. R. Smith", 'Zoë "Z" Mitchell', "李雷", "a,b", "x" * 90]))
TOKENS = st.text(alphabet=st.characters(codec="ascii", exclude_categories=("Cc",)),
                 min_size=1, max_size=40)
ADDRESSES = st.sampled_from(["zoe@example.com", "a.b+news@sub.example.org",
                             "o'hara@example.ie", "x_y@example.com"])


@settings(max_examples=150, deadline=None)
@given(name=NAMES, token=TOKENS, address=ADDRESSES, subscriber_id=st.integers(1, 10**9))
def test_the_fast_message_equals_the_stdlib_one(
        rendered: RenderedIssue, name: str | None, token: str, address: str,
        subscriber_id: int) -> None:
    """A send fills a skeleton instead of building each message with the stdlib; a reader's
    client must see exactly what the stdlib would have built."""
    recipient = Recipient(subscriber_id, address, name, token)
    fast = IssueMessages(rendered, CONFIG.newsletter, DATE).bytes_for(recipient)
    reference = build_message(rendered, recipient, CONFIG.newsletter, DATE).as_bytes()
    assert _shape(_parse(fast)) == _shape(_parse(reference))
    assert _parse(fast).defects == []
    assert max(len(line) for line in fast.split(b"\r\n")) <= 998


@given(st.text(max_size=400))
def test_quoted_printable_body_decodes_to_the_text(text: str) -> None:
    encoded = quoted_printable_body(text)
    assert all(len(line) <= 76 for line in encoded.split(b"\r\n"))
    lines = text.encode("utf-8").splitlines()
    assert quopri.decodestring(encoded) == b"\r\n".join(lines) + b"\r\n"


def test_structure_and_headers(rendered: RenderedIssue) -> None:
    recipient = Recipient(7, "zoe@example.com", "Zoë Mitchell", "tok-7")
    raw, message = _roundtrip(rendered, recipient)
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    assert all(part.get_content_charset() == "utf-8" for part in parts)
    assert all(part["Content-Transfer-Encoding"] == "quoted-printable" for part in parts)
    assert str(message["To"]) == "Zoë Mitchell <zoe@example.com>"
    assert str(message["From"]) == "AI News Weekly <digest@ainews.example>"
    assert message["Subject"] == rendered.subject
    assert message["List-Id"] == "AI News Weekly <ai-news-weekly.ainews.example>"
    assert message["List-Unsubscribe"] == (
        "<https://ainews.example/unsubscribe/tok-7>, "
        "<mailto:editors@ainews.example?subject=unsubscribe%20tok-7>")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Date"].datetime == DATE
    html = cast(EmailMessage, parts[1]).get_content()
    assert 'href="https://ainews.example/unsubscribe/tok-7"' in html
    assert "https://ainews.example/unsubscribe/tok-7" in cast(EmailMessage, parts[0]).get_content()
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")


def test_no_line_longer_than_998_octets(rendered: RenderedIssue) -> None:
    raw, _ = _roundtrip(rendered, Recipient(1, "a@example.com", None, "t"))
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998


def test_long_html_lines_are_folded_by_the_encoding() -> None:
    """An HTML line far past SMTP's 998-octet limit still arrives whole."""
    period = resolve_period(CONFIG, Window(week="2026-W47"))
    long_line = "<p>" + "word " * 2000 + "</p>"
    issue = RenderedIssue(period=period, subject="s", preheader="p", html=long_line + "U",
                          text="t U", unsubscribe_placeholder="U", post_count=1)
    raw, message = _roundtrip(issue, Recipient(1, "a@example.com", None, "t"))
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    html = cast(EmailMessage, list(message.iter_parts())[1]).get_content()
    assert long_line in html


def test_message_id_is_stable_per_issue_and_subscriber(rendered: RenderedIssue) -> None:
    first = _roundtrip(rendered, Recipient(1, "a@example.com", None, "t1"))[1]["Message-ID"]
    again = _roundtrip(rendered, Recipient(1, "a@example.com", None, "t1"))[1]["Message-ID"]
    other = _roundtrip(rendered, Recipient(2, "b@example.com", None, "t2"))[1]["Message-ID"]
    assert first == again != other
    assert first.endswith("@ainews.example>")
    assert message_id(CONFIG.newsletter, "2026-W46", 1) != message_id(CONFIG.newsletter,
                                                                       "2026-W47", 1)


ENCODED_CRLF = "=?utf-8?b?" + base64.b64encode(b"Eve\r\nBcc: victim@example.net").decode() + "?="
INJECTIONS = [
    "Eve\r\nBcc: victim@example.net",
    "Eve\nX-Injected: yes",
    "Eve\x00\u2028X-Injected: yes",
    "Eve\u2029\u0085X-Injected: yes",
    ENCODED_CRLF,  # the stdlib would decode this into a raw CR LF
    "=?utf-8?q?Eve=0D=0ABcc=3A_victim=40example.net?=",
]


@pytest.mark.parametrize("name", INJECTIONS)
def test_names_cannot_create_headers(rendered: RenderedIssue, name: str) -> None:
    raw, message = _roundtrip(rendered, Recipient(3, "eve@example.com", name, "t3"))
    assert message["Bcc"] is None and message["X-Injected"] is None
    assert b"\r\nBcc:" not in raw and b"\r\nX-Injected:" not in raw
    assert message["To"].addresses[0].addr_spec == "eve@example.com"


def test_huge_names_keep_every_header_line_short(rendered: RenderedIssue) -> None:
    raw, message = _roundtrip(rendered, Recipient(4, "long@example.com", "B" * 1200, "t4"))
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    assert message["To"].addresses[0].addr_spec == "long@example.com"
    # Python folds a long encoded display name into several encoded words; clients may show
    # a space between them. The name is truncated to MAX_HEADER_TEXT either way.
    shown = message["To"].addresses[0].display_name.replace(" ", "")
    assert shown.startswith("B" * 150) and shown.endswith("…") and len(shown) == 200


@pytest.mark.parametrize("title", INJECTIONS)
def test_titles_cannot_create_headers(rendered: RenderedIssue, title: str) -> None:
    from dataclasses import replace

    evil = replace(rendered, subject=title)
    raw, message = _roundtrip(evil, Recipient(5, "r@example.com", title, "t5"))
    assert message["Bcc"] is None and message["X-Injected"] is None
    assert b"\r\nBcc:" not in raw and b"\r\nX-Injected:" not in raw
    assert "\n" not in message["Subject"] and "\r" not in message["Subject"]
    assert message.defects == [] and all(not part.defects for part in message.iter_parts())


@given(st.lists(st.sampled_from(["plain words ", "PH", "é", "=", " ", "\t", "\n", "\r\n",
                                 "x" * 90, "."]), max_size=60),
       st.text(alphabet="abc/:%&=.-", min_size=1, max_size=120))  # a URL: never empty
def test_personal_body_encodes_like_the_whole_text(pieces: list[str], value: str) -> None:
    """Pre-encoding the lines without the placeholder must give byte-for-byte what encoding
    the whole personalised text gives."""
    text = "".join(pieces)
    assert PersonalBody(text, "PH").encoded(value) == quoted_printable_body(
        text.replace("PH", value))


@pytest.mark.parametrize("address", ["a..b@example.com", ".a@example.com", "a.@example.com",
                                     "a@example..com"])
def test_malformed_stored_addresses_fail_to_build_as_with_the_stdlib(
        rendered: RenderedIssue, address: str) -> None:
    """Rows stored before validation tightened: the fast path must refuse what the stdlib
    refuses (the row is then recorded failed), never send a malformed To header."""
    recipient = Recipient(1, address, None, "t")
    with pytest.raises(Exception) as stdlib:
        build_message(rendered, recipient, CONFIG.newsletter, DATE).as_bytes()
    with pytest.raises(type(stdlib.value)):
        IssueMessages(rendered, CONFIG.newsletter, DATE).bytes_for(recipient)


def test_a_2000_character_url_in_the_text_part_arrives_whole_in_short_lines(
        tmp_path: Path) -> None:
    """The text part never breaks a URL (render/plain.py), so a 2,000-character one is a
    2,000-character line of text: quoted-printable folds it on the wire (soft breaks under
    76 octets) and a reader's client joins it again."""
    from tests.conftest import Project, post_text, write_post

    url = "https://example.org/record?" + "k=v&" * 492 + "end=1"  # 2,000 characters
    assert len(url) == 2000
    project = Project(tmp_path / "p")
    project.root.mkdir()
    project.write_config('text_part = "full"\n')
    write_post(project.posts, "2026-11-18-long.md", post_text(
        "A Very Long Link", "2026-11-18T10:00:00Z", body=f"The [record]({url}) is long.\n"))
    config = load_config(project.config_path, environ={})
    rendered = build(config, Window(week="2026-W47"))
    assert f"\n[1] {url}\n" in rendered.text
    raw = IssueMessages(rendered, config.newsletter, DATE).bytes_for(
        Recipient(1, "a@example.com", None, "t"))
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    text = cast(EmailMessage, next(iter(_parse(raw).iter_parts()))).get_content()
    assert f"[1] {url}" in text.splitlines()
