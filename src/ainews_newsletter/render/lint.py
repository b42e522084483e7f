"""Checks on a rendered issue before anyone receives it. Errors block `ainews send` (unless
--force); warnings are printed. Thresholds: Gmail clips HTML past about 102 KB, SMTP forbids
lines over 998 octets, SpamAssassin's default spam threshold is 5 (we stop at 3)."""

from __future__ import annotations

import enum
import html as html_module
import re
import shutil
import subprocess
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urlsplit

from ainews_newsletter.config import (
    SAMPLE_BASE_URL,
    SAMPLE_POSTAL_ADDRESSES,
    NewsletterConfig,
)
from ainews_newsletter.models import RenderedIssue

KB = 1024
HTML_WARN_BYTES = 90 * KB
HTML_ERROR_BYTES = 102 * KB
MAX_LINE_OCTETS = 998
SPAM_WARN_ABOVE = 0.0
SPAM_ERROR_FROM = 3.0
SPAMASSASSIN_TIMEOUT = 120


class Severity(enum.StrEnum):
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True)
class Finding:
    severity: Severity
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity.value}: {self.code}: {self.message}"


class _Elements(HTMLParser):
    """Collects <img> alt attributes and <a href> values."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.images: list[tuple[str, str | None]] = []  # (src, alt)
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img":
            self.images.append((values.get("src") or "?", values.get("alt")))
        elif tag == "a" and "href" in values:
            self.links.append(values["href"] or "")


def _missing_links(rendered: RenderedIssue, html_links: list[str]) -> list[Finding]:
    """A link of the posts that the HTML part shows and the text part does not: a reader
    of the text part (a terminal mail app, a watch) cannot follow it."""
    shown = set(html_links)
    missing = [link for link in rendered.post_links if link in shown and link not in
               rendered.text]
    if not missing:
        return []
    more = f" and {len(missing) - 1:,} more" if len(missing) > 1 else ""
    return [Finding(Severity.WARNING, "text-links",
                    f"the text part lacks {len(missing):,} link(s) the HTML part's posts "
                    f"carry: {missing[0][:120]}{more} (show post.content_text in "
                    "digest.txt.j2, or delete it to have the text made from the HTML)")]


def _html_findings(html: str) -> tuple[list[Finding], list[str]]:
    findings: list[Finding] = []
    size = len(html.encode("utf-8"))
    if size >= HTML_ERROR_BYTES:
        findings.append(Finding(Severity.ERROR, "html-size", f"HTML is {size:,} bytes; Gmail "
                                f"clips messages past {HTML_ERROR_BYTES // KB} KB"))
    elif size >= HTML_WARN_BYTES:
        findings.append(Finding(Severity.WARNING, "html-size", f"HTML is {size:,} bytes, close "
                                f"to Gmail's {HTML_ERROR_BYTES // KB} KB clipping limit"))
    elements = _Elements()
    elements.feed(html)
    for src, alt in elements.images:
        if alt is None:
            findings.append(Finding(Severity.ERROR, "img-alt", f"image without alt text: {src}"))
        elif not alt.strip():
            findings.append(Finding(Severity.WARNING, "img-alt",
                                    f"image with empty alt text (decorative?): {src}"))
    for href in elements.links:
        if urlsplit(href.strip()).scheme.lower() not in ("http", "https", "mailto"):
            findings.append(Finding(Severity.ERROR, "link-scheme",
                                    f"link is not http(s) or mailto: {href[:120]!r}"))
    return findings, elements.links


_SA_SCORE = re.compile(r"^Content analysis details:\s+\((-?[\d.]+) points", re.MULTILINE)
_SA_RULE = re.compile(r"^\s*(-?\d+\.\d+)\s+([A-Z0-9_]+)\s", re.MULTILINE)


def spamassassin_score(message: bytes) -> tuple[float, list[str]] | None:
    """(score, rules that scored) from `spamassassin -L -t` (local tests only, no network),
    or None when SpamAssassin is not installed."""
    executable = shutil.which("spamassassin")
    if executable is None:
        return None
    try:
        result = subprocess.run([executable, "-L", "-t"], input=message, capture_output=True,
                                timeout=SPAMASSASSIN_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return None
    report = result.stdout.decode("utf-8", "replace")
    # The report comes after the message, whose own text could contain a line that looks
    # like one: the last match is SpamAssassin's.
    matches = list(_SA_SCORE.finditer(report))
    if not matches:
        return None
    match = matches[-1]
    details = report[match.start():]
    rules = [f"{name} {points}" for points, name in _SA_RULE.findall(details)
             if float(points) != 0.0]
    return float(match.group(1)), rules


def sample_settings(newsletter: NewsletterConfig) -> list[Finding]:
    """The sample's site or postal address still in place: every List-Unsubscribe link and
    the footer would point at a place that does not exist."""
    findings: list[Finding] = []
    host = (urlsplit(newsletter.base_url).hostname or "").lower()
    if host == urlsplit(SAMPLE_BASE_URL).hostname or host.endswith(".ainews.example"):
        findings.append(Finding(Severity.ERROR, "sample-setting",
                                f"[newsletter] base_url is still the sample's "
                                f"({newsletter.base_url}); set your site's address"))
    if _flat(newsletter.postal_address).lower() in {_flat(a).lower()
                                                    for a in SAMPLE_POSTAL_ADDRESSES}:
        findings.append(Finding(Severity.ERROR, "sample-setting",
                                "[newsletter] postal_address is still the sample's; set "
                                "yours (the law in most places requires a real one)"))
    if newsletter.from_.lower().endswith("@" + (urlsplit(SAMPLE_BASE_URL).hostname or "")):
        findings.append(Finding(Severity.ERROR, "sample-setting",
                                f"[newsletter] from is still the sample's ({newsletter.from_}):"
                                " replies and bounces would go nowhere"))
    return findings


def lint_issue(rendered: RenderedIssue, postal_address: str, sample_message: bytes,
               spamassassin: bool = True) -> list[Finding]:
    """Every finding for the issue and one recipient's message built from it."""
    findings, html_links = _html_findings(rendered.html)
    findings += _missing_links(rendered, html_links)
    if not rendered.subject.strip():
        findings.append(Finding(Severity.ERROR, "subject", "the subject is empty"))
    for part, body in (("HTML", rendered.html), ("text", rendered.text)):
        if rendered.unsubscribe_placeholder not in body:
            findings.append(Finding(Severity.ERROR, "unsubscribe",
                                    f"the {part} part has no unsubscribe link"))
        if postal_address.strip() and _flat(postal_address) not in _flat(html_module.unescape(
                body)):
            findings.append(Finding(Severity.ERROR, "postal-address",
                                    f"the {part} part does not show the postal address"))
    if not postal_address.strip():
        findings.append(Finding(Severity.ERROR, "postal-address",
                                "[newsletter] postal_address is empty"))
    longest = max((len(line) for line in sample_message.split(b"\r\n")), default=0)
    if longest > MAX_LINE_OCTETS:
        findings.append(Finding(Severity.ERROR, "line-length", f"a message line is {longest} "
                                f"octets; SMTP allows {MAX_LINE_OCTETS}"))
    if spamassassin:
        scored = spamassassin_score(sample_message)
        if scored is not None:
            score, rules = scored
            hits = f" ({', '.join(rules)})" if rules else ""
            if score >= SPAM_ERROR_FROM:
                findings.append(Finding(Severity.ERROR, "spam-score",
                                        f"SpamAssassin scores {score}{hits}"))
            elif score > SPAM_WARN_ABOVE:
                findings.append(Finding(Severity.WARNING, "spam-score",
                                        f"SpamAssassin scores {score}{hits}"))
    return findings


def _flat(text: str) -> str:
    """Whitespace collapsed: the text part wraps long lines, TOML allows multi-line values."""
    return " ".join(text.split())


def has_errors(findings: list[Finding]) -> bool:
    return any(finding.severity is Severity.ERROR for finding in findings)
