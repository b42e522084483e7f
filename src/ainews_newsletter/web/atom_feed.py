"""The archive's Atom feed (/feed.xml, RFC 4287): one entry per sent issue, newest first,
written by an XML writer so every value is escaped where it lands."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import quote
from xml.etree import ElementTree

from ainews_newsletter.delivery.ledger import IssueRecord

ATOM = "http://www.w3.org/2005/Atom"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"  # written as xml:lang
MEDIA_TYPE = "application/atom+xml"


def _child(parent: ElementTree.Element, tag: str, text: str | None = None,
           **attributes: str) -> ElementTree.Element:
    element = ElementTree.SubElement(parent, tag, attributes)
    element.text = text
    return element


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def archive_feed(title: str, base_url: str, issues: Sequence[IssueRecord],
                 now: datetime, language: str = "en") -> bytes:
    """The feed of `issues` (sent, newest first); it was updated with the newest issue, or
    `now` when there is none. `language` is the newsletter's, the archive's issues' (RFC
    4287 says it with xml:lang, which every element inherits)."""
    updated = (issues[0].snapshot_at or issues[0].created_at) if issues else now
    # The Atom namespace as the document's default, declared once on <feed> (ElementTree's
    # default_namespace option refuses the unqualified attributes Atom uses).
    feed = ElementTree.Element("feed", {"xmlns": ATOM, XML_LANG: language})
    _child(feed, "title", title)
    _child(feed, "id", f"{base_url}/feed.xml")
    _child(feed, "link", rel="self", href=f"{base_url}/feed.xml")
    _child(feed, "link", href=f"{base_url}/issues/")
    _child(feed, "updated", _timestamp(updated))
    for issue in issues:
        url = f"{base_url}/issues/{quote(issue.rendered.period.key)}"
        entry = _child(feed, "entry")
        _child(entry, "title", issue.rendered.subject)
        _child(entry, "id", url)
        _child(entry, "link", href=url)
        _child(entry, "updated", _timestamp(issue.snapshot_at or issue.created_at))
        _child(entry, "summary", issue.rendered.preheader)
    body = ElementTree.tostring(feed, encoding="unicode")
    return ('<?xml version="1.0" encoding="utf-8"?>\n' + body).encode()
