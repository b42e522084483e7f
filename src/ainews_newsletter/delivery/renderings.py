"""An issue's renderings in its readers' other languages (issue_renderings), frozen with the
issue in its transaction (Ledger.try_create_issue): a resumed send, a second sender on the
same issue, or a draft sent later takes the stored one and never renders again. The issue
row keeps the rendering in its own language; a delivery row's `language` names which
rendering its reader gets."""

from __future__ import annotations

import dataclasses

from sqlalchemy import Engine, func, select

from ainews_newsletter.delivery.ledger import IssueRecord
from ainews_newsletter.delivery.tables import deliveries, issue_renderings
from ainews_newsletter.models import RenderedIssue


class Renderings:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def audience_languages(self, issue_id: int) -> dict[str | None, int]:
        """How many delivery rows of the issue name each language (None: the issue's own)."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(deliveries.c.language, func.count())
                .where(deliveries.c.issue_id == issue_id)
                .group_by(deliveries.c.language)).all()
        return {language: int(count) for language, count in rows}

    def stored(self, issue: IssueRecord) -> dict[str, RenderedIssue]:
        """The issue's stored renderings by language (its own language's is the issue row)."""
        with self.engine.connect() as connection:
            rows = connection.execute(select(issue_renderings).where(
                issue_renderings.c.issue_id == issue.id)).all()
        return {row.language: dataclasses.replace(
            issue.rendered, subject=row.subject, preheader=row.preheader, html=row.html,
            text=row.text, unsubscribe_placeholder=row.unsubscribe_placeholder)
            for row in rows}
