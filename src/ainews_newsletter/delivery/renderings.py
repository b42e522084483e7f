"""An issue's renderings in its readers' other languages (issue_renderings), stored with the
issue once its audience is snapshotted: a resumed send, or a second sender on the same
issue, takes the stored one and never renders again. The issue row keeps the rendering in
its own language; a delivery row's `language` names which rendering its reader gets."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from sqlalchemy import Engine, func, select

from ainews_newsletter.database import insert_ignoring_conflicts
from ainews_newsletter.delivery.ledger import IssueRecord
from ainews_newsletter.delivery.tables import deliveries, issue_posts, issue_renderings
from ainews_newsletter.models import PostRef, RenderedIssue


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

    def carried(self, issue_id: int) -> list[PostRef]:
        """The posts the issue carried, in the order it carried them (full posts first)."""
        with self.engine.connect() as connection:
            rows = connection.execute(select(issue_posts).where(
                issue_posts.c.issue_id == issue_id).order_by(issue_posts.c.id)).all()
        return [PostRef(guid=row.guid, url=row.url, title=row.title) for row in rows]

    def stored(self, issue: IssueRecord) -> dict[str, RenderedIssue]:
        """The issue's stored renderings by language (its own language's is the issue row)."""
        with self.engine.connect() as connection:
            rows = connection.execute(select(issue_renderings).where(
                issue_renderings.c.issue_id == issue.id)).all()
        return {row.language: dataclasses.replace(
            issue.rendered, subject=row.subject, preheader=row.preheader, html=row.html,
            text=row.text, unsubscribe_placeholder=row.unsubscribe_placeholder)
            for row in rows}

    def store(self, issue: IssueRecord, renderings: dict[str, RenderedIssue],
              now: datetime) -> dict[str, RenderedIssue]:
        """Keep `renderings` unless one of their languages is stored already (another sender
        was first: its rendering wins, so every message of a language is the same); returns
        every stored rendering."""
        if renderings:
            with self.engine.begin() as connection:
                insert_ignoring_conflicts(connection, issue_renderings, [
                    {"issue_id": issue.id, "language": language, "subject": r.subject,
                     "preheader": r.preheader, "html": r.html, "text": r.text,
                     "unsubscribe_placeholder": r.unsubscribe_placeholder, "created_at": now}
                    for language, r in renderings.items()])
        return self.stored(issue)
