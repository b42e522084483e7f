"""The archive's Atom feed, now written with ElementTree: for fixed issues it says what the
f-strings it replaced said (the same elements, attributes and text), and markup in a title
stays text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import quote
from xml.etree import ElementTree
from xml.sax.saxutils import escape as xml_escape

from ainews_newsletter.delivery.ledger import IssueRecord
from ainews_newsletter.models import Period, RenderedIssue
from ainews_newsletter.web.atom_feed import ATOM, archive_feed

BASE = "https://news.example.org"
BERLIN = timezone(timedelta(hours=1))
NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def _issue(key: str, subject: str, preheader: str, sent: datetime | None) -> IssueRecord:
    start = datetime(2026, 11, 16, tzinfo=BERLIN)
    rendered = RenderedIssue(period=Period(key, start, start + timedelta(days=7)),
                             subject=subject, preheader=preheader, html="", text="",
                             unsubscribe_placeholder="", post_count=1)
    return IssueRecord(id=1, list_id="main", rendered=rendered,
                       created_at=datetime(2026, 11, 23, 7, tzinfo=BERLIN), snapshot_at=sent)


ISSUES = [_issue("2026-W47", "Chips & <Tricks> | Digest", 'He said "hi" & left',
                 datetime(2026, 11, 23, 8, 15, 30, 123456, tzinfo=BERLIN)),
          _issue("since-2026-11-18T10:33", "Second", "Less", None)]


def _old_feed(name: str, issues: list[IssueRecord]) -> bytes:
    """The feed as public.py built it with f-strings (copied before it was replaced), plus
    the language the feed says since issue 30 (xml:lang on <feed>)."""
    base = BASE
    updated = (issues[0].snapshot_at or issues[0].created_at) if issues else NOW
    entries = "".join(
        f"<entry><title>{xml_escape(i.rendered.subject)}</title>"
        f"<id>{base}/issues/{quote(i.rendered.period.key)}</id>"
        f'<link href="{base}/issues/{quote(i.rendered.period.key)}"/>'
        f"<updated>{(i.snapshot_at or i.created_at).astimezone(UTC).isoformat()}</updated>"
        f"<summary>{xml_escape(i.rendered.preheader)}</summary></entry>"
        for i in issues)
    body = ('<?xml version="1.0" encoding="utf-8"?>\n'
            '<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en">'
            f"<title>{xml_escape(name)}</title>"
            f"<id>{base}/feed.xml</id>"
            f'<link rel="self" href="{base}/feed.xml"/><link href="{base}/issues/"/>'
            f"<updated>{updated.astimezone(UTC).isoformat()}</updated>{entries}</feed>")
    return body.encode()


def _canonical(document: bytes) -> str:
    declaration, body = document.decode().split("\n", 1)
    assert declaration == '<?xml version="1.0" encoding="utf-8"?>'
    return ElementTree.canonicalize(body)


def test_the_feed_says_what_the_f_strings_said() -> None:
    for name, issues in (("Tom & Jerry's <News>", ISSUES), ("Digest", [])):
        new = archive_feed(name, BASE, issues, NOW)
        assert _canonical(new) == _canonical(_old_feed(name, issues))


def test_the_feed_is_atom_with_escaped_text() -> None:
    root = ElementTree.fromstring(archive_feed("A <b>", BASE, ISSUES, NOW))
    atom = f"{{{ATOM}}}"
    assert root.tag == f"{atom}feed" and root.findtext(f"{atom}title") == "A <b>"
    assert root.findtext(f"{atom}updated") == "2026-11-23T07:15:30.123456+00:00"
    [first, second] = root.findall(f"{atom}entry")
    assert first.findtext(f"{atom}title") == "Chips & <Tricks> | Digest"
    assert first.findtext(f"{atom}summary") == 'He said "hi" & left'
    assert second.findtext(f"{atom}id") == f"{BASE}/issues/since-2026-11-18T10%3A33"
    assert second.findtext(f"{atom}updated") == "2026-11-23T06:00:00+00:00"  # never frozen
    empty = ElementTree.fromstring(archive_feed("A", BASE, [], NOW))
    assert empty.findtext(f"{atom}updated") == NOW.isoformat()


def test_the_feed_says_its_language_with_xml_lang() -> None:
    """RFC 4287 states a feed's language with xml:lang, inherited by every entry."""
    root = ElementTree.fromstring(archive_feed("A", BASE, ISSUES, NOW, "pt-BR"))
    assert root.get("{http://www.w3.org/XML/1998/namespace}lang") == "pt-BR"
    assert b'xml:lang="pt-BR"' in archive_feed("A", BASE, [], NOW, "pt-BR")
