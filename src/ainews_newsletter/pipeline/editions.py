"""An issue in its readers' languages: rendered once per language of its audience, never per
reader. The issue itself is rendered in [newsletter] language; each further language its
readers have chosen (and catalogs exist for) is rendered once more from the same composed
issue, with the same number and links, checked by the lint gate like the issue's own, and
frozen with the issue in the same transaction (delivery/renderings.py): a send that resumes,
a second sender, or a draft sent days later mails exactly those renderings, whatever the
posts and templates have become. A reader whose language appears only after the issue was
frozen gets the issue's own rendering."""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field

from ainews_newsletter import language_tags, translations
from ainews_newsletter.config import Config
from ainews_newsletter.delivery.ledger import IssueRecord
from ainews_newsletter.delivery.renderings import Renderings
from ainews_newsletter.errors import AinewsError
from ainews_newsletter.models import Issue, Period, RenderedIssue
from ainews_newsletter.pipeline.issue import (
    audience_list,
    open_ledger,
    open_subscribers,
    sample_message,
    sample_recipient,
)

# Called through the module, not imported by name: tests count the renders by wrapping it.
from ainews_newsletter.render import digest
from ainews_newsletter.render.lint import Finding, lint_issue


def other_languages(config: Config, issue_language: str) -> frozenset[str]:
    """The languages besides the issue's that a reader can get: those with catalogs, shipped
    or the operator's. Any other language a reader has gets the issue's own rendering."""
    return frozenset(translations.available_languages(config.locale_dir, "mail")) - {issue_language}


def audience_by_language(config: Config, issue: IssueRecord | None = None) -> dict[str, int]:
    """How many readers get each language, most first: from the issue's delivery rows once
    its audience is snapshotted, else from the subscribers a send would snapshot now."""
    language = issue.language if issue is not None else config.newsletter.language
    counts: Counter[str] = Counter()
    if issue is not None and issue.snapshot_at is not None:
        rows = Renderings(open_ledger(config).engine).audience_languages(issue.id)
        for chosen, count in rows.items():
            counts[chosen or language] += count
    else:
        others = (other_languages(config, language) if issue is None else
                  frozenset(Renderings(open_ledger(config).engine).stored(issue)))
        rows = open_subscribers(config).count_recipients_by_language()
        for chosen, count in rows.items():
            counts[language_tags.edition_for(chosen, language, others) or language] += count
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def language_line(by_language: dict[str, int]) -> str:
    """ "de 2, en 1, ja 1": how many readers get each language, for a summary line."""
    return ", ".join(f"{language} {count}" for language, count in by_language.items())


@dataclass
class Editions:
    """A new issue's renderings in further languages, each rendered at most once, from the
    issue the plan composed (an issue frozen earlier has its renderings stored instead)."""

    language: str  # the issue's own
    composed: Issue | None = None
    rendered: dict[str, RenderedIssue] = field(default_factory=dict)
    # The audience's languages, counted once per plan: the lint gate and the freeze a moment
    # later ask the same (a full pass over a big list each time). A reader who joins in
    # between with a language not counted gets the issue's own rendering, as any reader of
    # a language without one does.
    audience: tuple[str, ...] | None = None

    def render(self, config: Config, language: str, period: Period) -> RenderedIssue:
        if language not in self.rendered:
            if self.composed is None:
                raise AinewsError(f"{period.key}: the issue is frozen; its renderings are "
                                  "the stored ones")
            key = period.key
            options = digest.RenderOptions(
                number=open_ledger(config).issue_number(audience_list(config), key),
                utm=config.render.utm_for(key), language=language,
                locale_dir=config.locale_dir)
            self.rendered[language] = digest.render_issue(
                self.composed, config.newsletter, config.templates_dir, options)
        return self.rendered[language]

    def for_audience(self, config: Config, period: Period) -> dict[str, RenderedIssue]:
        """Every further language the list's readers get now, rendered: what a new issue is
        frozen with."""
        if self.audience is None:
            self.audience = tuple(audience_by_language(config))
        return {language: self.render(config, language, period)
                for language in self.audience if language != self.language}


def frozen_renderings(config: Config, issue: IssueRecord) -> dict[str, RenderedIssue]:
    """The renderings the issue was frozen with, by language (none for an issue frozen
    before languages, or with a single-language audience)."""
    return Renderings(open_ledger(config).engine).stored(issue)


def lint_editions(config: Config, editions: Editions, period: Period,
                  existing: IssueRecord | None) -> list[Finding]:
    """The lint gate's checks (size, spam score, links, unsubscribe) on each further
    language's rendering (a new issue's, rendered here once and kept for the freeze; a
    frozen issue's, as stored); every finding names its language."""
    renderings = (editions.for_audience(config, period) if existing is None
                  else frozen_renderings(config, existing))
    findings: list[Finding] = []
    for language, rendered in sorted(renderings.items()):
        recipient = dataclasses.replace(sample_recipient(config), language=language)
        message = sample_message(config, rendered, recipient, language)
        findings += [dataclasses.replace(found, message=f"[{language}] {found.message}")
                     for found in lint_issue(rendered, config.newsletter.postal_address,
                                             message, spamassassin=config.lint.spamassassin)]
    return findings
