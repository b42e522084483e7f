"""The welcome mail's text (pipeline/welcome.py sends it): rendered once per language,
kind (readers with a name, without) and latest issue, and kept: never once per reader.
A reader's language is theirs or its nearest with catalogs, as for the issues
(language_tags.closest); else the newsletter's. The latest issue it names is the one that
reader got: the rendering frozen with it in their language."""

from __future__ import annotations

import threading

from ainews_newsletter import language_tags, translations
from ainews_newsletter.config import Config
from ainews_newsletter.delivery.ledger import IssueRecord
from ainews_newsletter.models import RenderedIssue, RenderedWelcome
from ainews_newsletter.pipeline.editions import frozen_renderings
from ainews_newsletter.pipeline.issue import audience_list, open_ledger

# Called through the module, not imported by name: tests count the renders by wrapping it.
from ainews_newsletter.render import welcome as welcome_render
from ainews_newsletter.render.environment import make_environment


class WelcomeTexts:
    """The welcome's renderings for one config. Thread-safe: `serve`'s background tasks
    and its loop share one."""

    def __init__(self, config: Config, check: bool = False) -> None:
        self.config = config
        self.language = config.newsletter.language
        self.environment = make_environment(config.templates_dir, self.language,
                                            config.locale_dir)
        self._environments = {self.language: self.environment}
        self._languages = set(translations.available_languages(config.locale_dir, "mail"))
        if check:
            welcome_render.compile_welcome(self.environment)
        self._rendered: dict[tuple[str, bool, int | None], RenderedWelcome] = {}
        self._lock = threading.Lock()

    def for_reader(self, named: bool, reader_language: str | None) -> RenderedWelcome:
        language = language_tags.closest(reader_language, self._languages) or self.language
        latest = None
        if self.config.subscribers.welcome_with_latest_issue:
            sent = open_ledger(self.config).sent_issues(audience_list(self.config), limit=1)
            latest = sent[0] if sent else None
        key = (language, named, None if latest is None else latest.id)
        with self._lock:
            if key not in self._rendered:
                if language not in self._environments:
                    self._environments[language] = make_environment(
                        self.config.templates_dir, language, self.config.locale_dir)
                environment = self._environments[language]
                welcome_render.compile_welcome(environment)  # an import with welcome off
                self._rendered[key] = welcome_render.render_welcome(
                    environment, self.config.newsletter, self.config.web.tagline, named,
                    None if latest is None else self._latest_in(latest, language))
            return self._rendered[key]

    def _latest_in(self, latest: IssueRecord, language: str) -> RenderedIssue:
        renderings = frozen_renderings(self.config, latest)
        chosen = language_tags.edition_for(language, latest.language, renderings)
        return latest.rendered if chosen is None else renderings[chosen]
