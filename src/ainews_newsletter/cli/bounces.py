"""`ainews bounces …`: read the mail that comes back (bounces, complaints, auto-replies),
store it as events and let the policy stop mail to dead addresses and complainers."""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from ainews_newsletter.cli.common import (
    AppState,
    console,
    fail,
    json_option,
    one_line_logging,
    pass_state,
    print_json,
    progress_bar,
)
from ainews_newsletter.models import counted

if TYPE_CHECKING:
    from ainews_newsletter.feedback.events import FeedbackEvent
    from ainews_newsletter.feedback.findings import FeedbackReport
    from ainews_newsletter.pipeline.feedback import IngestSummary

# The pipeline is imported inside each command: `ainews --help` should stay quick.

EX_TEMPFAIL = 75  # sysexits.h: what Postfix's pipe(8) takes as "try again later"


@click.group()
def bounces() -> None:
    """Bounces, spam complaints and auto-replies: parse them, ingest them (files, an mbox,
    a Maildir, standard input, or the IMAP mailbox of [bounces]) and list what happened."""


def _report_record(report: FeedbackReport) -> dict[str, Any]:
    return {"source": report.source, "kind": report.kind.value,
            "recipients": [{"email": r.email, "kind": r.kind.value, "status": r.status,
                            "action": r.action, "diagnostic": r.diagnostic}
                           for r in report.recipients],
            "feedback_type": report.feedback_type}


def _event_record(event: FeedbackEvent) -> dict[str, Any]:
    return {"id": event.id, "received_at": event.received_at.isoformat(),
            "kind": event.kind.value, "email": event.email, "status": event.status,
            "action": event.action, "diagnostic": event.diagnostic,
            "feedback_type": event.feedback_type, "source": event.source,
            "matched_by": event.matched_by, "delivery_id": event.delivery_id,
            "issue_id": event.issue_id, "subscriber_id": event.subscriber_id,
            "effect": event.effect, "provider": event.provider,
            "reported_at": event.reported_at}


def _read_mail(paths: tuple[str, ...]) -> Any:
    from ainews_newsletter.feedback.mailfile import read_mail

    one_line_logging()  # a message that breaks the parser is one line, not a traceback
    return read_mail(paths, stdin=sys.stdin.buffer)


def _exit_if_problems(problems: list[Any]) -> None:
    for problem in problems:
        fail(f"{problem.source}: {problem.reason}")
    if problems:
        sys.exit(1)


@bounces.command()
@click.argument("paths", nargs=-1, required=True)
@json_option
def parse(paths: tuple[str, ...], as_json: bool) -> None:
    """Say what each message in PATHS is, changing nothing: kind (hard, soft, complaint,
    autoreply, other), the failed recipients with status and the server's words. PATHS are
    message files, mbox files, Maildir folders, or - for one message on standard input."""
    from ainews_newsletter.feedback.mailfile import Unreadable
    from ainews_newsletter.pipeline.feedback import parse_items

    parsed = parse_items(_read_mail(paths))
    reports = [item for item in parsed if not isinstance(item, Unreadable)]
    problems = [item for item in parsed if isinstance(item, Unreadable)]
    if as_json:  # in the order given; what is not mail says why instead of a kind
        print_json([{"source": item.source, "error": item.reason}
                    if isinstance(item, Unreadable) else _report_record(item)
                    for item in parsed])
    else:
        table = Table()
        for column in ("source", "kind", "recipient", "status", "diagnostic"):
            table.add_column(column, overflow="fold")
        for report in reports:
            rows = report.recipients or ()
            if not rows:
                table.add_row(report.source, report.kind.value, "", "",
                              report.feedback_type or report.subject[:60])
            for recipient in rows:
                table.add_row(report.source, recipient.kind.value, recipient.email,
                              recipient.status, recipient.diagnostic[:200])
        console.print(table)
    _exit_if_problems(problems)


def _summary_record(summary: IngestSummary) -> dict[str, Any]:
    return {"messages": summary.messages, "new_events": summary.new_events,
            "repeated": summary.repeated, "unmatched": summary.unmatched,
            "kinds": dict(summary.kinds), "changed": dict(summary.changed),
            "problems": [{"source": p.source, "reason": p.reason} for p in summary.problems],
            "events": [_event_record(event) for event in summary.events]}


def _print_summary(summary: IngestSummary) -> None:
    kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(summary.kinds.items()))
    console.print(f"read {counted(summary.messages, 'message')}: "
                  f"{counted(summary.new_events, 'new event')}"
                  + (f" ({kinds})" if kinds else "")
                  + f", {summary.repeated} seen before, {summary.unmatched} matched no "
                    "delivery of ours", soft_wrap=True)
    bounced = summary.changed.get("bounced", 0)
    complained = summary.changed.get("complained", 0)
    unsubscribed = summary.changed.get("unsubscribed", 0)
    console.print(f"subscribers now bounced: {bounced}, complained: {complained}"
                  + (f", unsubscribed: {unsubscribed}" if unsubscribed else ""),
                  soft_wrap=True)


@bounces.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--provider", metavar="NAME",
              help="PATHS are saved webhook bodies of this mail provider (ses, sendgrid, "
                   "mailgun, postmark, postal), replayed through the webhook's parser and "
                   "matching without a signature check, marked as a manual import.")
@json_option
@pass_state
def ingest(state: AppState, paths: tuple[str, ...], provider: str | None,
           as_json: bool) -> None:
    """Store what each message in PATHS says and apply the policy: a hard bounce marks the
    subscriber bounced ([bounces] hard_limit), soft bounces on soft_limit issues within
    soft_window_days do too, a complaint stops mail at once. Reading a message twice counts
    it once. PATHS as for `parse`; - reads one message from standard input (for an MTA's
    pipe transport)."""
    from sqlalchemy.exc import SQLAlchemyError

    from ainews_newsletter.pipeline.feedback import ingest as ingest_mail

    if provider is not None:
        from ainews_newsletter.pipeline.event_matching import ingest_provider_files

        if "-" in paths:
            raise click.UsageError("--provider reads saved files, not standard input")
        replayed = ingest_provider_files(state.config, provider.lower(), paths)
        if as_json:
            print_json(_summary_record(replayed))
        else:
            _print_summary(replayed)
        _exit_if_problems(replayed.problems)
        return

    try:
        # A spinner with a count on a terminal: a Maildir of thousands takes a while.
        with progress_bar(1) as progress:
            task = progress.add_task("messages", total=None)
            summary = ingest_mail(state.config, _read_mail(paths),
                                  after_each=lambda item, ok: progress.advance(task))
    except (SQLAlchemyError, OSError) as exc:
        if "-" not in paths:
            raise
        # Piped from an MTA: EX_TEMPFAIL makes it keep the message and try again later,
        # instead of returning a bounce of the bounce.
        from ainews_newsletter.cli.storage_failures import storage_line

        line = (storage_line(click.get_current_context().find_root(), exc)  # disk full?
                or f"database: {str(exc).splitlines()[0]}")
        fail(f"{line} (exit 75: the mail system retries)")
        sys.exit(EX_TEMPFAIL)
    if as_json:
        print_json(_summary_record(summary))
    else:
        _print_summary(summary)
    _exit_if_problems(summary.problems)


@bounces.command()
@click.option("--limit", type=click.IntRange(min=1), default=500, show_default=True,
              help="Read at most this many messages in one go.")
@json_option
@pass_state
def fetch(state: AppState, limit: int, as_json: bool) -> None:
    """Ingest every message in the IMAP mailbox of [bounces] (imap_host, imap_user,
    imap_folder; password from AINEWS_BOUNCES__PASSWORD), then move each to
    processed_folder. Nothing is deleted."""
    from ainews_newsletter.pipeline.feedback import fetch as fetch_mailbox

    one_line_logging()
    fetched = fetch_mailbox(state.config, limit)
    if as_json:
        print_json({**_summary_record(fetched.ingest), "moved": fetched.moved,
                    "mailbox": fetched.mailbox})
    else:
        console.print(f"{fetched.mailbox}: moved {counted(fetched.moved, 'message')} to "
                      f"{state.config.bounces.processed_folder}", soft_wrap=True)
        _print_summary(fetched.ingest)
    _exit_if_problems(fetched.ingest.problems)


@bounces.command("list")
@click.option("--since", metavar="DATE",
              help="Only events received on or after DATE (2026-11-16 or 2026-11-16T08:00, "
                   "newsletter timezone) [default: the last 30 days].")
@click.option("--all", "everything", is_flag=True, help="Every event ever stored.")
@json_option
@pass_state
def list_(state: AppState, since: str | None, everything: bool, as_json: bool) -> None:
    """Stored events, oldest first: when, kind, address, status, what it changed."""
    from ainews_newsletter import clock
    from ainews_newsletter.pipeline.feedback import feedback_events
    from ainews_newsletter.posts.windows import parse_moment

    config = state.config
    start = (None if everything else parse_moment(since, config.newsletter.tz, "--since")
             if since else clock.now() - timedelta(days=30))
    events = feedback_events(config, start)
    if as_json:
        print_json([_event_record(event) for event in events])
        return
    table = Table(title=counted(len(events), "event"))
    for column in ("received", "kind", "via", "address", "status", "effect", "diagnostic"):
        table.add_column(column, overflow="fold")
    for event in events:
        received = event.received_at.astimezone(config.newsletter.tz)
        table.add_row(received.strftime("%Y-%m-%d %H:%M"), event.kind.value,
                      event.provider or "mail", event.email, event.status, event.effect,
                      event.diagnostic[:120])
    console.print(table)
