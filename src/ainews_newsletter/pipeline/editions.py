"""An issue in its readers' languages: rendered once per language of its audience, never per
reader. The issue itself is rendered in [newsletter] language; each further language a
reader has chosen (and catalogs exist for) is rendered once more from the same posts, with
the same number and links, stored with the issue (delivery/renderings.py) once the audience
is snapshotted, checked by the lint gate like the issue's own rendering."""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field

from ainews_newsletter import clock, translations
from ainews_newsletter.config import Config
from ainews_newsletter.delivery.ledger import IssueRecord, rendering_language
from ainews_newsletter.delivery.renderings import Renderings
from ainews_newsletter.errors import AinewsError
from ainews_newsletter.models import Issue, Period, Post, RenderedIssue
from ainews_newsletter.pipeline.issue import (
    audience_list,
    open_ledger,
    open_subscribers,
    sample_message,
    sample_recipient,
)
from ainews_newsletter.posts.select import post_ref
from ainews_newsletter.posts.sources import load_sources

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
        others = other_languages(config, language)
        rows = open_subscribers(config).count_recipients_by_language()
        for chosen, count in rows.items():
            counts[rendering_language(chosen, others) or language] += count
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def language_line(by_language: dict[str, int]) -> str:
    """ "de 2, en 1, ja 1": how many readers get each language, for a summary line."""
    return ", ".join(f"{language} {count}" for language, count in by_language.items())


@dataclass
class Editions:
    """The issue's renderings in further languages, each rendered at most once here. Holds
    the composed issue when the plan built it; an issue frozen earlier is composed again
    from its carried posts, read from the sources (only if a language is not stored)."""

    language: str  # the issue's own
    composed: Issue | None = None
    rendered: dict[str, RenderedIssue] = field(default_factory=dict)

    def render(self, config: Config, language: str, period: Period,
               issue_id: int | None) -> RenderedIssue:
        if language not in self.rendered:
            if self.composed is None:
                self.composed = _compose_again(config, period, issue_id, self.language)
            key = period.key
            options = digest.RenderOptions(
                number=open_ledger(config).issue_number(audience_list(config), key),
                utm=config.render.utm_for(key), language=language,
                locale_dir=config.locale_dir)
            self.rendered[language] = digest.render_issue(
                self.composed, config.newsletter, config.templates_dir, options)
        return self.rendered[language]


def _compose_again(config: Config, period: Period, issue_id: int | None,
                   language: str) -> Issue:
    """A frozen issue's posts, found again in the sources by what it carried (guid, else
    canonical link), in the order it carried them."""
    if issue_id is None:
        raise AinewsError(f"{period.key}: no issue to render again")
    carried = Renderings(open_ledger(config).engine).carried(issue_id)
    ledger_issue = open_ledger(config).find_issue(audience_list(config), period.key)
    assert ledger_issue is not None, "an issue with renderings to make is in the ledger"
    by_guid: dict[str, Post] = {}
    by_url: dict[str, Post] = {}
    for post in load_sources(config).posts:
        ref = post_ref(post)
        if ref.guid:
            by_guid.setdefault(ref.guid, post)
        by_url.setdefault(ref.url, post)
    posts: list[Post] = []
    for ref in carried:
        found = (by_guid.get(ref.guid) if ref.guid else None) or by_url.get(ref.url)
        if found is None:
            raise AinewsError(
                f"{period.key}: cannot render the issue in its readers' other languages: "
                f"the post “{ref.title}” ({ref.url}) is no longer in the sources; put it "
                "back, or clear those readers' language (`ainews subscribers add "
                "--language`)")
        posts.append(found)
    shown = ledger_issue.rendered.post_count
    return digest.compose_issue(period, posts[:shown], config.newsletter.name,
                                more=posts[shown:],
                                group_by_category=config.posts.group_by == "category",
                                language=language, locale_dir=config.locale_dir)


def send_editions(config: Config, editions: Editions,
                  issue: IssueRecord) -> dict[str, RenderedIssue]:
    """After the audience snapshot: the rendering of every further language its rows name,
    stored ones as stored (a resumed send renders nothing), the rest rendered and stored."""
    store = Renderings(open_ledger(config).engine)
    wanted = {language for language in store.audience_languages(issue.id) if language}
    stored = store.stored(issue)
    missing = wanted - set(stored)
    if missing:
        made = {language: editions.render(config, language, issue.rendered.period, issue.id)
                for language in sorted(missing)}
        stored = store.store(issue, made, clock.now())
    return {language: stored[language] for language in wanted if language in stored}


def lint_editions(config: Config, editions: Editions, period: Period,
                  issue_id: int | None, languages: list[str]) -> list[Finding]:
    """The lint gate's checks (size, spam score, links, unsubscribe) on each further
    language's rendering; every finding names its language."""
    findings: list[Finding] = []
    for language in languages:
        if language == editions.language:
            continue
        rendered = editions.render(config, language, period, issue_id)
        recipient = dataclasses.replace(sample_recipient(config), language=language)
        message = sample_message(config, rendered, recipient, language)
        findings += [dataclasses.replace(found, message=f"[{language}] {found.message}")
                     for found in lint_issue(rendered, config.newsletter.postal_address,
                                             message, spamassassin=config.lint.spamassassin)]
    return findings
