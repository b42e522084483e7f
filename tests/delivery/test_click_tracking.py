"""Click counts ([tracking] clicks): off, the mail is what it always was; on, every post link
of each sent copy is that reader's own signed click link, in both parts, and nothing else
is rewritten. Sends go through `ainews send` to a real aiosmtpd server."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from html import unescape
from pathlib import Path
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ainews_newsletter.config import load_config
from ainews_newsletter.database import engine_for
from ainews_newsletter.delivery.clicklinks import (
    ClickLinks,
    mark_links,
    post_links,
    with_click_links,
)
from ainews_newsletter.delivery.clickstats import (
    ClickCounts,
    LinkClicks,
    click_counts,
    click_target,
    record_click,
)
from ainews_newsletter.delivery.clicktokens import TOKEN_LENGTH, ClickRef, ClickTokens
from ainews_newsletter.delivery.ledger import Ledger
from ainews_newsletter.delivery.message import (
    IssueMessages,
    build_message,
    quoted_printable_body,
)
from ainews_newsletter.models import Recipient, RenderedIssue, Window
from ainews_newsletter.pipeline.issue import build
from tests.conftest import Project, SmtpServer, smtp_env
from tests.delivery.test_message import NAMES, TOKENS, _parse, _shape

REPO = Path(__file__).resolve().parents[2]
CONFIG = load_config(REPO / "config.toml", environ={},
                     overrides={"storage": {"url": "sqlite:///:memory:"}})
DATE = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
SECRET = "click-secret-key-of-enough-length"
SITE = "https://news.example.org"
CLICK = re.compile(re.escape(SITE) + r"/c/([A-Za-z0-9_-]+)")


@pytest.fixture(scope="module")
def rendered() -> RenderedIssue:
    return build(CONFIG, Window(week="2026-W47"))


def _clicks(rendered: RenderedIssue) -> ClickLinks:
    base = CONFIG.newsletter.base_url
    return ClickLinks(base, ClickTokens(SECRET), tuple(post_links(rendered, base)))


def _send(project: Project, server: SmtpServer, env: dict[str, str] | None = None,
          readers: int = 2) -> list[EmailMessage]:
    project.import_readers(readers)
    result = project.run("send", "--week", "2026-W47", "--yes",
                         env={**smtp_env(server), **(env or {})})
    assert result.exit_code == 0, result.output
    return [received.message for received in server.handler.messages]


def _parts(message: EmailMessage) -> tuple[str, str]:
    text, html = (cast(EmailMessage, part).get_content() for part in message.iter_parts())
    return text, html


def _hrefs(html: str) -> list[str]:
    return [unescape(value) for value in re.findall(r'href="([^"]*)"', html)]


POSTS = {f"{SITE}/posts/{slug}" for slug in ("monday", "wednesday", "friday")}


def _pages(urls: list[str]) -> set[str]:
    """The posts the URLs lead to ([render] adds utm_* parameters to post links)."""
    return {url.split("?", 1)[0] for url in urls}


def test_off_by_default_the_sent_mail_carries_the_real_links_unchanged(
        project: Project, smtp_server: SmtpServer) -> None:
    messages = _send(project, smtp_server)
    [(issue_id, html, text, placeholder)] = project.query(
        "SELECT id, html, text, unsubscribe_placeholder FROM issues")
    tokens = dict(project.query("SELECT email, token FROM subscribers"))
    for message in messages:
        link = f"{SITE}/unsubscribe/{tokens[message['To'].addresses[0].addr_spec]}"
        got_text, got_html = _parts(message)
        # Exactly the frozen issue with the unsubscribe link filled in: nothing rewritten.
        assert got_text.replace("\r\n", "\n") == text.replace(placeholder, link)
        assert got_html.replace("\r\n", "\n") == html.replace(placeholder, link)
        assert "/c/" not in got_text + got_html
        assert _pages(_hrefs(got_html)) >= POSTS
    assert project.query("SELECT count(*) FROM issue_links") == [(0,)]
    assert click_counts(engine_for(f"sqlite:///{project.database}"), issue_id) is None


def test_on_every_post_link_in_both_parts_is_the_readers_click_link(
        project: Project, smtp_server: SmtpServer) -> None:
    project.write_config("[tracking]\nclicks = true\n")
    messages = _send(project, smtp_server, {"AINEWS_SECRET_KEY": SECRET})
    links = [url for (url,) in project.query(
        "SELECT url FROM issue_links ORDER BY position")]
    assert len(links) == 3 and _pages(links) == POSTS  # each post once, no page of the site
    deliveries = dict(project.query("SELECT email, id FROM deliveries"))
    tokens = dict(project.query("SELECT email, token FROM subscribers"))
    tokens_seen: set[str] = set()
    signer = ClickTokens(SECRET)
    for message in messages:
        address = message["To"].addresses[0].addr_spec
        text, html = _parts(message)
        unsubscribe = f"{SITE}/unsubscribe/{tokens[address]}"
        hrefs = _hrefs(html)
        # Every post link went: no href and no text line still points at a post.
        assert not [href for href in hrefs if "/posts/" in href]
        assert "/posts/" not in text
        clicked = [href for href in hrefs if CLICK.fullmatch(href)]
        assert len(clicked) == 3 * len(links)  # each post's headline, image and "Read more"
        assert unsubscribe in hrefs and f"{SITE}/issues/2026-W47" in hrefs
        assert f"Unsubscribe: {unsubscribe}" in text
        assert f"View in your browser: {SITE}/issues/2026-W47" in text
        text_clicks = CLICK.findall(text)
        assert len(text_clicks) == len(links)  # one "Read more" per post
        for token in [CLICK.fullmatch(href).group(1) for href in clicked] + text_clicks:  # type: ignore[union-attr]
            ref = signer.read(token)
            assert ref is not None and ref.delivery_id == deliveries[address]
            assert 1 <= ref.position <= len(links)
            tokens_seen.add(token)
        # The links of one post carry that post's number, in both parts.
        read_more = re.findall(r"Read more: " + CLICK.pattern, text)
        assert [signer.read(t).position for t in read_more] == [1, 2, 3]  # type: ignore[union-attr]
    assert len(tokens_seen) == 2 * len(links)  # per reader and link: never shared


def test_on_without_a_secret_key_the_send_stops_before_anything_goes(
        project: Project, smtp_server: SmtpServer) -> None:
    project.write_config("[tracking]\nclicks = true\n")
    project.import_readers(2)
    result = project.run("send", "--week", "2026-W47", "--yes", env=smtp_env(smtp_server))
    assert result.exit_code == 1
    assert "AINEWS_SECRET_KEY" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert smtp_server.handler.messages == []
    assert project.query("SELECT count(*) FROM issues") == [(0,)]


@settings(max_examples=60, deadline=None)
@given(name=NAMES, token=TOKENS, delivery_id=st.integers(1, 2**48 - 1))
def test_the_fast_tracked_message_equals_the_stdlib_one(
        rendered: RenderedIssue, name: str | None, token: str, delivery_id: int) -> None:
    """With click links too, each reader's bytes from the skeleton read exactly as the
    stdlib's message built from that reader's copy of the issue."""
    clicks = _clicks(rendered)
    recipient = Recipient(7, "zoe@example.com", name, token)
    fast = IssueMessages(rendered, CONFIG.newsletter, DATE, clicks).bytes_for(
        recipient, None, delivery_id)
    copy = with_click_links(rendered, clicks, delivery_id)
    reference = build_message(copy, recipient, CONFIG.newsletter, DATE).as_bytes()
    assert _shape(_parse(fast)) == _shape(_parse(reference))
    assert _parse(fast).defects == []
    assert max(len(line) for line in fast.split(b"\r\n")) <= 998
    assert copy.html.count(f"{CONFIG.newsletter.base_url}/c/") == 3 * rendered.post_count


def test_tracking_off_leaves_both_bodies_exactly_the_rendered_issue(
        rendered: RenderedIssue) -> None:
    recipient = Recipient(7, "zoe@example.com", None, "tok")
    raw = IssueMessages(rendered, CONFIG.newsletter, DATE).bytes_for(recipient, None, 5)
    html, text = rendered.personalize(f"{CONFIG.newsletter.base_url}/unsubscribe/tok")
    assert quoted_printable_body(text) in raw and quoted_printable_body(html) in raw
    assert b"/c/" not in raw


def test_a_tracked_message_needs_its_delivery(rendered: RenderedIssue) -> None:
    messages = IssueMessages(rendered, CONFIG.newsletter, DATE, _clicks(rendered))
    with pytest.raises(ValueError, match="delivery id"):
        messages.bytes_for(Recipient(7, "zoe@example.com", None, "tok"))


def _issue(html: str, text: str = "") -> RenderedIssue:
    period = build(CONFIG, Window(week="2026-W47")).period
    return RenderedIssue(period, "s", "p", html, text, "https://unsubscribe.invalid/x", 1)


def test_which_links_are_counted() -> None:
    base = "https://ainews.example"
    html = " ".join(f'<a href="{href}">x</a>' for href in (
        "https://unsubscribe.invalid/x", f"{base}", f"{base}/", f"{base}/issues/2026-W47",
        f"{base}/unsubscribe", f"{base}/subscribe", f"{base}/preferences/t",
        "mailto:editor@ainews.example", "/relative", "#top",
        f"{base}/posts/a?utm_source=newsletter&amp;utm_medium=email",
        "https://other.example/story", f"{base}/posts/a?utm_source=newsletter&amp;"
        "utm_medium=email", f"{base}/issuesque/not-the-archive", "HTTP://CAPS.example/x"))
    assert post_links(_issue(html), base) == [
        f"{base}/posts/a?utm_source=newsletter&utm_medium=email",
        "https://other.example/story", f"{base}/issuesque/not-the-archive",
        "HTTP://CAPS.example/x"]


def test_marking_replaces_whole_urls_only() -> None:
    """A link that is the start of another (…/posts/a and …/posts/a-b) must not eat it,
    and a full stop after a URL in the text is not part of it."""
    a, ab = "https://x.example/posts/a", "https://x.example/posts/a-b"
    issue = _issue(f'<a href="{a}">A</a><a href="{ab}">AB</a>',
                   f"Read: {a}\nRead: {ab}\nSee {a}. Or ({ab})\nhttps://x.example/posts/abc\n")
    marked = mark_links(issue, [a, ab])
    assert marked.html == ('<a href="ainews-click-1-7f3c">A</a>'
                           '<a href="ainews-click-2-7f3c">AB</a>')
    assert marked.text == ("Read: ainews-click-1-7f3c\nRead: ainews-click-2-7f3c\n"
                           "See ainews-click-1-7f3c. Or (ainews-click-2-7f3c)\n"
                           "https://x.example/posts/abc\n")
    with pytest.raises(ValueError, match="slot"):  # a post quoting a slot cannot hijack it
        mark_links(_issue("ainews-click-1-7f3c"), [a])


def test_tokens_are_signed_and_every_changed_character_is_refused() -> None:
    signer = ClickTokens(SECRET)
    token = signer.make(123456, 7)
    assert len(token) == TOKEN_LENGTH and signer.read(token) == ClickRef(123456, 7)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for index, char in enumerate(token):
        for other in (alphabet[(alphabet.index(char) + 1) % 64], "=", "%", "."):
            assert signer.read(token[:index] + other + token[index + 1:]) is None
    assert ClickTokens("another-secret-of-enough-length").read(token) is None
    for bad in ("", token[:-1], token + "A", token + "==", "x" * 200, "é" * TOKEN_LENGTH):
        assert signer.read(bad) is None
    with pytest.raises(ValueError):
        signer.make(0, 1)
    with pytest.raises(ValueError):
        signer.make(1, 2**16)


def test_links_frozen_clicks_recorded_and_counted_on_both_databases(database_url: str) -> None:
    """The ledger keeps the links numbered with the issue; people's clicks are counted per
    link (total, distinct readers), most clicked first, scanners' apart."""
    ledger = Ledger(engine_for(database_url))
    issue = _issue("<p>U</p>", "U")
    a, b, c = (f"https://x.example/{name}" for name in "abc")
    record = ledger.try_create_issue("newsletter", issue, (), DATE, [a, b, c])
    assert record is not None and ledger.issue_links(record.id) == [a, b, c]
    ledger.snapshot(record.id, (Recipient(i, f"r{i}@example.com", None, f"t{i}")
                                for i in (1, 2, 3)), DATE)
    first, second, third = (row.id for row in ledger.due(record.id, DATE, 10))
    later = DATE + timedelta(hours=1)

    def click(delivery: int, position: int, seconds: int, head: bool = False) -> bool:
        target = click_target(ledger.engine, delivery, position)
        assert target is not None and target.url == [a, b, c][position - 1]
        return record_click(ledger.engine, target, later + timedelta(seconds=seconds), head)

    assert not click(first, 2, 0) and not click(first, 2, 30) and not click(second, 2, 5)
    assert not click(second, 3, 100)
    assert click(third, 1, 0, head=True)
    assert click_target(ledger.engine, first, 4) is None
    assert click_target(ledger.engine, 999_999, 1) is None
    counts = click_counts(ledger.engine, record.id)
    assert counts == ClickCounts(total=4, unique=2, scanner=1, links=(
        LinkClicks(b, 3, 2), LinkClicks(c, 1, 1), LinkClicks(a, 0, 0)))
    assert counts.as_json()["links"][0] == {"url": b, "total": 3, "unique": 2}
    plain = ledger.try_create_issue("newsletter", dataclasses.replace(
        issue, period=dataclasses.replace(issue.period, key="other")), (), DATE)
    assert plain is not None and click_counts(ledger.engine, plain.id) is None
