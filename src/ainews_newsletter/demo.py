"""`ainews demo`: the whole job on embedded defaults, in a folder of its own.

Copies the shipped config, posts and sample subscribers into the folder, starts a capture
SMTP server on a free loopback port, imports the subscribers, builds the latest sample week,
sends it over real SMTP, and leaves every captured message in DIR/outbox. An orchestrator
like pipeline (it wires rooms together); the CLI only prints what it returns."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ainews_newsletter import resources
from ainews_newsletter.config import Config, load_config
from ainews_newsletter.database import dispose_all
from ainews_newsletter.delivery.capture import LOOPBACK, CaptureServer
from ainews_newsletter.errors import AinewsError
from ainews_newsletter.models import DeliveryCounts, DeliveryState, Window
from ainews_newsletter.pipeline.issue import open_subscribers, write_build
from ainews_newsletter.pipeline.send import execute_send, plan_send
from ainews_newsletter.posts.select import latest_week_with_posts
from ainews_newsletter.posts.sources import load_posts
from ainews_newsletter.subscribers.consent_records import Agreement
from ainews_newsletter.subscribers.formats import open_subscriber_file
from ainews_newsletter.subscribers.importer import import_rows

MARKER = ".ainews-demo"  # proves a folder is ours to reset


@dataclass(frozen=True)
class DemoResult:
    folder: Path
    week: str
    subject: str
    posts: int
    recipients: int
    counts: DeliveryCounts
    captured: int
    outbox: Path
    issue_html: Path
    html_bytes: int
    smtp_port: int


def _prepare_folder(folder: Path) -> None:
    """Fresh sample files and an empty database and outbox on every run, so the demo is
    repeatable; refuses to touch a non-empty folder it did not create."""
    if folder.exists() and any(folder.iterdir()) and not (folder / MARKER).exists():
        raise AinewsError(f"{folder} exists and was not made by `ainews demo`; choose another "
                          "folder with --dir")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text("created by `ainews demo`; safe to delete\n", encoding="utf-8")
    for name in ("posts", "outbox", "data"):
        shutil.rmtree(folder / name, ignore_errors=True)
    shutil.copy2(resources.shipped("config.toml"), folder / "config.toml")
    shutil.copytree(resources.shipped("posts"), folder / "posts")
    (folder / "subscribers").mkdir(exist_ok=True)
    shutil.copy2(resources.shipped("subscribers/sample.csv"), folder / "subscribers/sample.csv")


def run_demo(folder: Path, on_result: Callable[[DeliveryState], None] | None = None) -> DemoResult:
    folder = folder.resolve()
    _prepare_folder(folder)
    outbox = folder / "outbox"
    with CaptureServer(outbox) as server:
        config: Config = load_config(folder / "config.toml", overrides={
            "smtp": {"host": LOOPBACK, "port": server.port, "security": "none"},
            "delivery": {"backend": "smtp"},
        })
        try:
            opened = open_subscriber_file(folder / "subscribers/sample.csv")
            summary = import_rows(open_subscribers(config), opened.rows,
                                  source="demo", agreement=Agreement("demo", "sample.csv"))
            if summary.rejects:
                first = summary.rejects[0]
                raise AinewsError(f"sample subscribers: line {first.line}: {first.reason}")
            period = latest_week_with_posts(load_posts(config), config.newsletter.tz)
            if period is None:
                raise AinewsError("the sample posts folder is empty")
            plan = plan_send(config, Window(week=period.key))
            counts = execute_send(config, plan, on_result=on_result)
            issue_html = write_build(config, plan.rendered, folder)["html"]
        finally:
            dispose_all()  # release the SQLite file so the next run can reset it
        return DemoResult(
            folder=folder, week=period.key, subject=plan.subject, posts=plan.post_count,
            recipients=counts.total, counts=counts, captured=server.received, outbox=outbox,
            issue_html=issue_html, html_bytes=plan.rendered.html_bytes, smtp_port=server.port)
