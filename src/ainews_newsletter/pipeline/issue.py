"""Select and render: the posts of a window become a frozen-ready RenderedIssue, its sample
files and its lint findings; and an issue frozen in the ledger, found by the key the user
wrote (what send, feedback and reports all look up)."""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path

from ainews_newsletter import clock, translations
from ainews_newsletter.config import Config
from ainews_newsletter.database import engine_for
from ainews_newsletter.delivery.dkim import Signer, make_signer
from ainews_newsletter.delivery.ledger import IssueRecord, Ledger
from ainews_newsletter.delivery.message import IssueMessages, unsubscribe_url
from ainews_newsletter.errors import AinewsError, SelectionError
from ainews_newsletter.models import (
    Issue,
    Period,
    PostRef,
    Recipient,
    RenderedIssue,
    Window,
    counted,
)
from ainews_newsletter.posts.select import Carried, Selection, post_ref, select
from ainews_newsletter.posts.sources import load_sources
from ainews_newsletter.posts.windows import (
    between,
    last_complete_week,
    parse_moment,
    parse_week,
    since_last_issue,
)
from ainews_newsletter.render.digest import RenderOptions, compose_issue, render_issue
from ainews_newsletter.render.lint import Finding, Severity, lint_issue, sample_settings
from ainews_newsletter.subscribers.store import (
    SubscriberStore,
)

# Who issue.eml is addressed to when the list is still empty.
SAMPLE_RECIPIENT = Recipient(subscriber_id=0, email="reader@example.com", name="Sample Reader",
                             token="sample-token")


def audience_list(config: Config) -> str:
    """The subscriber list issues go to ([subscribers] default_list). It keys the issue in
    the ledger and is deliberately not the List-Id header, which follows the newsletter's
    name: a renamed newsletter must not send an already-sent week again."""
    return config.subscribers.default_list


def resolve_period(config: Config, window: Window) -> Period:
    tz = config.newsletter.tz
    if window.week and (window.since or window.until):
        raise SelectionError("use either --week or --since/--until, not both")
    if window.week:
        return parse_week(window.week, tz)
    if window.since or window.until:
        if not (window.since and window.until):
            raise SelectionError("--since and --until go together: the window is "
                                 "[since, until)")
        return between(parse_moment(window.since, tz, "--since"),
                       parse_moment(window.until, tz, "--until"), tz)
    if config.posts.window == "since-last-issue":
        last_end = open_ledger(config).last_sent_period_end(audience_list(config))
        return since_last_issue(last_end, clock.now(), tz)
    return last_complete_week(clock.now(), tz)


def select_posts(config: Config, window: Window) -> Selection:
    """The posts the issue would carry, and every other post with the reason it is left out.
    Posts carried by an earlier sent issue (of another period) are never carried again."""
    period = resolve_period(config, window)
    refs = open_ledger(config).carried_posts(audience_list(config), except_period=period.key)
    loaded = load_sources(config)
    return select(loaded.posts, period, config.posts.max_posts, Carried.from_refs(refs),
                  loaded.unplaced)


def compose_selection(config: Config, selection: Selection, force: bool = False) -> Issue:
    """The issue the selection makes (in [newsletter] language), or SelectionError when it
    has too few posts."""
    count, minimum = selection.in_window, config.posts.min_posts
    if count < max(minimum, 1) and not (force and count):
        raise SelectionError(f"only {counted(count, 'post')} in window, min_posts is {minimum} "
                             f"({selection.period.key}"
                             + ("; --force builds anyway)" if count else ")"))
    return compose_issue(selection.period, selection.posts, config.newsletter.name,
                         more=selection.more,
                         group_by_category=config.posts.group_by == "category",
                         language=config.newsletter.language, locale_dir=config.locale_dir)


def render_selection(config: Config, selection: Selection, force: bool = False,
                     timings: dict[str, float] | None = None) -> RenderedIssue:
    # A language without a catalog, or a broken override .po, stops here: before a render.
    translations.check_catalogs(config.newsletter.language, config.locale_dir)
    return render_composed(config, compose_selection(config, selection, force), timings)


def render_composed(config: Config, issue: Issue,
                    timings: dict[str, float] | None = None) -> RenderedIssue:
    """A composed issue rendered in [newsletter] language, numbered in its list."""
    key = issue.period.key
    options = RenderOptions(number=open_ledger(config).issue_number(audience_list(config), key),
                            utm=config.render.utm_for(key), locale_dir=config.locale_dir)
    return render_issue(issue, config.newsletter, config.templates_dir, options, timings)


def carried_refs(selection: Selection) -> tuple[PostRef, ...]:
    """Every post the issue shows, in full or as a "More this week" link."""
    return tuple(post_ref(post) for post in [*selection.posts, *selection.more])


def build(config: Config, window: Window, force: bool = False) -> RenderedIssue:
    return render_selection(config, select_posts(config, window), force)


def open_subscribers(config: Config) -> SubscriberStore:
    return SubscriberStore.open(config)


def open_ledger(config: Config) -> Ledger:
    return Ledger(engine_for(config.database_url), config.storage.reconnect_seconds)


def message_signer(config: Config) -> Signer | None:
    dkim = config.dkim
    if not (dkim.selector and dkim.domain and dkim.private_key_path):
        return None
    return make_signer(dkim.selector, dkim.domain, config.resolve(dkim.private_key_path))


def sample_recipient(config: Config) -> Recipient:
    """The first active subscriber, or a stand-in when the list is empty."""
    return next(open_subscribers(config).iter_recipients(batch_size=1), SAMPLE_RECIPIENT)


def sample_message(config: Config, rendered: RenderedIssue, recipient: Recipient,
                   language: str | None = None) -> bytes:
    """The exact bytes `recipient` would receive (signed when DKIM is configured);
    `language`: the rendering's [default: [newsletter] language]."""
    raw = IssueMessages(rendered, config.newsletter, clock.now(),
                        language=language or config.newsletter.language).bytes_for(recipient)
    signer = message_signer(config)
    return signer(raw) if signer else raw


def lint(config: Config, rendered: RenderedIssue) -> list[Finding]:
    message = sample_message(config, rendered, sample_recipient(config))
    staged: list[Finding] = []
    if not config.subscribers.allow_test_domains:
        left = open_subscribers(config).count_test_addresses()
        if left:
            staged.append(Finding(Severity.ERROR, "test-addresses", (
                f"{counted(left, 'active subscriber')} under .test (from staging) and "
                "[subscribers] allow_test_domains is off: remove them (`ainews subscribers "
                "list --search .test`)")))
    return staged + sample_settings(config.newsletter) + lint_issue(
        rendered, config.newsletter.postal_address, message,
        spamassassin=config.lint.spamassassin)


def write_build(config: Config, rendered: RenderedIssue, out_dir: Path) -> dict[str, Path]:
    """issue.html and issue.txt (as rendered, placeholder filled for a sample reader) and
    issue.eml, the full message the first active subscriber would receive."""
    recipient = sample_recipient(config)
    html_part, text_part = rendered.personalize(
        unsubscribe_url(config.newsletter, recipient.token))
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"html": out_dir / "issue.html", "text": out_dir / "issue.txt",
             "eml": out_dir / "issue.eml"}
    files["html"].write_text(html_part, encoding="utf-8")
    files["text"].write_text(text_part, encoding="utf-8")
    files["eml"].write_bytes(sample_message(config, rendered, recipient))
    return files


def find_issue_by_key(config: Config, ledger: Ledger, key: str) -> IssueRecord | None:
    """The frozen issue of `key` as the user wrote it (2026-W47 or 2026w47, a since-key);
    None when the ledger has none."""
    found = ledger.find_issue(audience_list(config), key)
    if found is None:  # "2026w47" for "2026-W47"
        with suppress(SelectionError):
            found = ledger.find_issue(audience_list(config),
                                      parse_week(key, config.newsletter.tz).key)
    return found


def issue_for(config: Config, ledger: Ledger, issue_key: str | None) -> IssueRecord:
    """ISSUE as the user wrote it (2026-W47, 2026w47, a since-key), else the latest."""
    if issue_key is None:
        issue = ledger.latest_issue()
        if issue is None:
            raise AinewsError("no issue has been sent yet (run `ainews send`, or `ainews "
                              "send --yes` where there is no terminal)")
    else:
        issue = find_issue_by_key(config, ledger, issue_key)
        if issue is None:
            raise AinewsError(f"no issue {issue_key!r} in the ledger (`ainews status` shows "
                              "the latest)")
    return issue
