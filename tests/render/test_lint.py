"""render/lint: each finding on a crafted issue, the real sample through SpamAssassin, and
`ainews send` refusing on an error unless --force."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from ainews_newsletter.config import load_config
from ainews_newsletter.models import RenderedIssue, Window
from ainews_newsletter.pipeline.issue import SAMPLE_RECIPIENT, build, resolve_period, sample_message
from ainews_newsletter.render.lint import (
    HTML_ERROR_BYTES,
    HTML_WARN_BYTES,
    Severity,
    has_errors,
    lint_issue,
    spamassassin_score,
)
from tests.conftest import Project, SmtpServer, smtp_env

REPO = Path(__file__).resolve().parents[2]
ADDRESS = "1 Test Road, Testville"
CONFIG = load_config(REPO / "config.toml", environ={},
                     overrides={"storage": {"url": "sqlite:///:memory:"}})


@pytest.fixture(scope="module")
def sample() -> RenderedIssue:
    return build(CONFIG, Window(week="2026-W47"))


UNSUB = "https://unsubscribe.invalid/U"


def _issue(html: str, text: str = f"{UNSUB} {ADDRESS}", subject: str = "Subject",
           ) -> RenderedIssue:
    period = resolve_period(CONFIG, Window(week="2026-W47"))
    return RenderedIssue(period=period, subject=subject, preheader="p", html=html, text=text,
                         unsubscribe_placeholder=UNSUB, post_count=1)


def _codes(issue: RenderedIssue, message: bytes = b"ok\r\n") -> dict[str, Severity]:
    return {f.code: f.severity for f in lint_issue(issue, ADDRESS, message, spamassassin=False)}


GOOD = f'<p>Hi <a href="https://x.example">x</a> <a href="{UNSUB}">unsubscribe</a> {ADDRESS}</p>'


def test_a_clean_issue_has_no_findings() -> None:
    assert _codes(_issue(GOOD)) == {}


def test_sample_issue_is_clean_and_small(sample: RenderedIssue) -> None:
    message = sample_message(CONFIG, sample, SAMPLE_RECIPIENT)
    findings = lint_issue(sample, CONFIG.newsletter.postal_address, message, spamassassin=False)
    assert findings == []
    assert sample.html_bytes <= 60_000


@pytest.mark.parametrize(("padding", "expected"), [
    (HTML_WARN_BYTES, Severity.WARNING), (HTML_ERROR_BYTES, Severity.ERROR)])
def test_html_size(padding: int, expected: Severity) -> None:
    assert _codes(_issue(GOOD + "x" * padding))["html-size"] is expected


def test_images_without_alt() -> None:
    codes = _codes(_issue(GOOD + '<img src="a.png">'))
    assert codes["img-alt"] is Severity.ERROR
    assert _codes(_issue(GOOD + '<img src="a.png" alt="">'))["img-alt"] is Severity.WARNING


@pytest.mark.parametrize("href", ["javascript:alert(1)", "/relative", "ftp://x.example/f",
                                  "data:text/html,x"])
def test_links_must_be_http_or_mailto(href: str) -> None:
    assert _codes(_issue(GOOD + f'<a href="{href}">x</a>'))["link-scheme"] is Severity.ERROR
    assert "link-scheme" not in _codes(_issue(GOOD + '<a href="mailto:a@b.example">m</a>'))


def test_empty_subject_missing_unsubscribe_and_address() -> None:
    assert _codes(_issue(GOOD, subject="  "))["subject"] is Severity.ERROR
    assert _codes(_issue(GOOD.replace(UNSUB, "https://y.example")))[
        "unsubscribe"] is Severity.ERROR
    assert _codes(_issue(GOOD, text=f"{UNSUB} only"))["postal-address"] is Severity.ERROR


def test_long_message_lines() -> None:
    codes = _codes(_issue(GOOD), message=b"Subject: x\r\n" + b"a" * 999 + b"\r\n")
    assert codes["line-length"] is Severity.ERROR


def test_has_errors() -> None:
    findings = lint_issue(_issue(GOOD + '<img src="a" alt="">'), ADDRESS, b"", False)
    assert findings and not has_errors(findings)


# -- SpamAssassin (installed by ./scripts/test) --------------------------------------------------

@pytest.fixture(scope="module")
def spamassassin() -> None:
    if shutil.which("spamassassin") is None:
        pytest.fail("spamassassin is missing: ./scripts/test installs Debian's spamassassin")


def test_sample_issue_scores_zero_or_less(sample: RenderedIssue, spamassassin: None) -> None:
    message = sample_message(CONFIG, sample, SAMPLE_RECIPIENT)
    scored = spamassassin_score(message)
    assert scored is not None
    score, rules = scored
    assert score <= 0.0, rules


def test_spammy_issue_is_an_error(sample: RenderedIssue, spamassassin: None) -> None:
    shouting = ("<p style='color:#fefefe;background:#ffffff'>FREE MONEY!!! CLICK HERE NOW!!! "
                "100% GUARANTEED!!! Viagra cheap meds, act now, limited time, risk free, "
                "no credit check, you have been selected as a winner!!!</p>") * 20
    spammy = replace(sample, subject="FREE MONEY!!! ACT NOW!!! 100% GUARANTEED WINNER",
                     html=sample.html.replace("<body", "<body><p>" + shouting + "</p><body", 1))
    message = sample_message(CONFIG, spammy, SAMPLE_RECIPIENT)
    findings = lint_issue(spammy, CONFIG.newsletter.postal_address, message, spamassassin=True)
    spam = [f for f in findings if f.code == "spam-score"]
    assert spam and spam[0].severity is Severity.ERROR, findings


# -- through the CLI -------------------------------------------------------------------------

def test_send_refuses_on_lint_errors_unless_forced(project: Project,
                                                   smtp_server: SmtpServer) -> None:
    project.config_path.write_text(project.config_path.read_text().replace(
        'postal_address = "1 Test Road, Testville"', 'postal_address = ""'))
    project.run("subscribers", "add", "reader@example.com")
    env = smtp_env(smtp_server)
    refused = project.run("send", "--week", "2026-W47", "--yes", env=env)
    assert refused.exit_code == 1
    assert "error: postal-address" in refused.output
    assert "lint errors block the send" in refused.stderr
    assert smtp_server.handler.messages == []
    forced = project.run("send", "--week", "2026-W47", "--yes", "--force", env=env)
    assert forced.exit_code == 0 and len(smtp_server.handler.messages) == 1


def test_build_prints_findings(project: Project) -> None:
    result = project.run("build", "--week", "2026-W47", "--out", str(project.root / "o"),
                         env={"AINEWS_LINT__SPAMASSASSIN": "true"})
    assert result.exit_code == 0
    assert "lint: no findings" in result.output
