"""`ainews send`: the one command that mails people, with every way to be careful about it."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING

import click

from ainews_newsletter.cli.common import (
    AppState,
    confirmed,
    console,
    pass_state,
    print_findings,
    progress_bar,
    window_options,
)
from ainews_newsletter.errors import AinewsError, DeliveryError
from ainews_newsletter.models import DeliveryCounts, Window, counted

if TYPE_CHECKING:
    from ainews_newsletter.pipeline.send import SendPlan


def print_counts(counts: DeliveryCounts) -> None:
    console.print("  ".join(f"{name} {value}" for name, value in counts.as_dict().items()))


@contextmanager
def graceful_stop() -> Iterator[threading.Event]:
    """SIGTERM or Ctrl-C sets the event: the sender finishes and records the message in hand,
    then stops, so nothing is left `sending`. A second Ctrl-C stops at once."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def request_stop(signum: int, frame: FrameType | None) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()
        console.print("stopping after the message in flight…")

    previous = {number: signal.signal(number, request_stop)
                for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@click.command()
@window_options
@click.option("--issue", "issue_key", metavar="KEY",
              help="Send (or resume) the issue with this key, as `ainews status` shows it.")
@click.option("--resume", is_flag=True,
              help="Continue the oldest unfinished issue: queued, deferred and due, and "
                   "messages a stopped run left in flight.")
@click.option("--retry-failed", is_flag=True,
              help="First put the issue's failed recipients back in the queue (not those "
                   "who left).")
@click.option("--to", "test_address", metavar="ADDR",
              help="Send one test copy to ADDR and stop; the ledger is not touched.")
@click.option("--language", "test_language", metavar="TAG",
              help="With --to: the copy in this language, as the issue's readers of it get "
                   "it (de, pt-BR; default: the issue's own).")
@click.option("--dry-run", is_flag=True,
              help="Show the counts and the first message; send nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True,
              help="Send even with fewer posts than min_posts or with lint errors.")
@pass_state
def send(state: AppState, window: Window, issue_key: str | None, resume: bool,
         retry_failed: bool, test_address: str | None, test_language: str | None,
         dry_run: bool, yes: bool, force: bool) -> None:
    """Send the issue of the window to every active subscriber.

    Safe to run again: it resumes where a previous run stopped and never sends the issue
    twice to anyone it already reached. SIGTERM or Ctrl-C finish the message in flight and
    stop; `ainews send --resume` goes on."""
    from ainews_newsletter.pipeline.issue import resolve_period
    from ainews_newsletter.pipeline.send import (
        delivery_status,
        execute_send,
        lint_send,
        make_transport,
        plan_send,
        send_test,
        test_copy_rendering,
        unfinished_issue_key,
    )
    from ainews_newsletter.pipeline.send import retry_failed as requeue_failed
    from ainews_newsletter.render.lint import has_errors

    config = state.config
    if (issue_key or resume) and window != Window():
        raise click.UsageError("--issue/--resume name the issue already; leave out "
                               "--week/--since/--until")
    if test_language is not None and test_address is None:
        raise click.UsageError("--language chooses the test copy's language: give --to ADDR")
    if resume and not issue_key:
        issue_key = unfinished_issue_key(config)
        if issue_key is None:
            raise AinewsError("nothing to resume: every issue's recipients have been handled")
    if retry_failed:
        key = issue_key or resolve_period(config, window).key
        again_queued = counted(requeue_failed(config, key), "failed recipient")
        console.print(f"{key}: {again_queued} queued again")
        issue_key = key
    plan = plan_send(config, window, force, issue_key)
    if test_address is not None:
        language, rendered = test_copy_rendering(config, plan, test_language)
        outcome = send_test(config, rendered, test_address, language)
        console.print(f"test copy of {plan.period_key} ({language}) to {test_address}: "
                      f"{outcome.state.value} ({outcome.code} {outcome.reply})", soft_wrap=True)
        if outcome.state.value != "sent":
            raise SystemExit(1)
        return
    if dry_run:
        _show_dry_run(state, plan)
        return
    if plan.pending == 0:
        counts = delivery_status(config, plan.period_key) if plan.existing else None
        console.print(f"Nothing to send for {plan.period_key}"
                      + (": every recipient has been handled." if counts else
                         ": there are no active subscribers."))
        if counts:
            print_counts(counts)
        return
    if plan.existing is None or plan.existing.snapshot_at is None:
        findings = lint_send(config, plan)
        if findings:
            print_findings(findings)
        if has_errors(findings) and not force:
            raise AinewsError("lint errors block the send (fix them, or --force to send anyway)")
    verb = "Resume" if plan.existing else "Send"
    question = (f"{verb} {plan.period_key} “{plan.subject}” ({counted(plan.post_count, 'post')})"
                f" to {counted(plan.pending, 'subscriber')} via "
                f"{make_transport(config).describe()}?")
    if not confirmed(question, yes):
        console.print("Not sent.")
        raise SystemExit(1)
    again = f"`ainews send --issue {plan.period_key} --yes`"
    try:
        with graceful_stop() as stop, progress_bar(plan.pending) as progress:
            task = progress.add_task("send", total=plan.pending)
            counts = execute_send(config, plan,
                                  on_result=lambda _state: progress.advance(task),
                                  should_stop=stop.is_set)
    except DeliveryError as exc:
        raise AinewsError(f"{exc}; nothing is lost: {again} (or `ainews send --resume "
                          "--yes`) continues") from None
    except KeyboardInterrupt:
        counts = delivery_status(config, plan.period_key)
        console.print(f"Interrupted: {plan.period_key} sent to {counts.sent} of {counts.total}. "
                      f"Run {again} to continue.")
        print_counts(counts)
        raise SystemExit(130) from None
    if stop.is_set():
        console.print(f"Stopped: {plan.period_key} sent to {counts.sent} of {counts.total}. "
                      f"Run {again} (or `ainews send --resume --yes`) to continue.")
        print_counts(counts)
        raise SystemExit(130)
    console.print(f"{plan.period_key}: sent {counts.sent} of {counts.total}")
    print_counts(counts)
    if counts.deferred:
        console.print(f"{counts.deferred} deferred by the server; {again} retries them when "
                      "they are due.")
    if counts.failed:
        console.print(f"{counts.failed} failed; `ainews send --issue {plan.period_key} "
                      "--retry-failed --yes` sends to them again.")
    if counts.sending:
        raise AinewsError(_held_elsewhere(state, plan.period_key, counts.sending))


def _held_elsewhere(state: AppState, period_key: str, count: int) -> str:
    """Why the send is not finished although this run has nothing left to do: rows another
    sender claimed, and when they will be retried if that sender is gone."""
    from ainews_newsletter.pipeline.send import claims_by_lease, claims_retry_at

    rows = f"{counted(count, 'message')} of"
    are = "is" if count == 1 else "are"
    if not claims_by_lease(state.config):  # SQLite: presence, not time, decides
        return (f"{rows} {period_key} {are} still claimed by another `ainews send` that is "
                "running; it finishes them, and if it stops or dies first, the next "
                "`ainews send --resume --yes` sends them again at once")
    retry_at = claims_retry_at(state.config, period_key)
    when = (f"from {retry_at:%Y-%m-%d %H:%M:%S} UTC" if retry_at is not None
            else "once their claims run out")
    return (f"{rows} {period_key} {are} still claimed by another sender; if it died, "
            f"`ainews send --resume --yes` sends them again {when} (the database's clock; "
            f"[delivery] claim_timeout_seconds = "
            f"{state.config.delivery.claim_timeout_seconds})")


def _show_dry_run(state: AppState, plan: SendPlan) -> None:
    import email
    import email.policy

    from ainews_newsletter.pipeline.editions import language_line
    from ainews_newsletter.pipeline.issue import sample_message, sample_recipient
    from ainews_newsletter.pipeline.send import make_transport, readers_by_language

    config = state.config
    console.print(f"dry run: {plan.period_key} “{plan.subject}” "
                  f"({counted(plan.post_count, 'post')}) would go to "
                  f"{counted(plan.pending, 'subscriber')} via "
                  f"{make_transport(config).describe()}; nothing is sent or stored.")
    by_language = readers_by_language(config, plan)
    console.print(f"languages: {language_line(by_language) or 'none'} (readers each; "
                  "one rendering per language)", soft_wrap=True)
    raw = sample_message(config, plan.rendered, sample_recipient(config))
    message = email.message_from_bytes(raw, policy=email.policy.default)
    console.print(f"first message ({len(raw):,} bytes):", highlight=False)
    for name, value in message.items():
        console.print(f"  {name}: {value}", soft_wrap=True, markup=False)
