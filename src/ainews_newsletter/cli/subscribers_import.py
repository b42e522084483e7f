"""`ainews subscribers import`: a file of addresses (ours, or another service's export)
merged into the list. Apart from subscribers.py so that the other subscriber commands do not
load the importer and its file formats."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ainews_newsletter.cli.common import (
    AppState,
    console,
    fail,
    json_option,
    pass_state,
    print_json,
    real_console,
)
from ainews_newsletter.cli.subscribers import STATUS_CHOICE, list_option, open_store, status_filter
from ainews_newsletter.errors import AinewsError, SubscriberError
from ainews_newsletter.subscribers import importer
from ainews_newsletter.subscribers.consent_records import Agreement
from ainews_newsletter.subscribers.export import spreadsheet_safe
from ainews_newsletter.subscribers.formats import FORMATS, open_subscriber_file
from ainews_newsletter.subscribers.importer import ImportRow, Rejected, Staged, import_rows
from ainews_newsletter.subscribers.read_ahead import (
    READ_AHEAD_BYTES,
    ReadAhead,
    Staging,
    can_read_ahead,
)

if TYPE_CHECKING:
    from ainews_newsletter.pipeline.welcome import Welcomes

SHOWN_REJECTS = 20


@click.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--format", "file_format", default="auto", show_default=True,
              help=f"The export the file comes from: {', '.join(FORMATS)} (auto: by its "
                   "header).")
@list_option
@click.option("--status", type=STATUS_CHOICE,
              help="Give new subscribers this status (never re-activates anyone who left).")
@click.option("--dry-run", is_flag=True, help="Report what would change; store nothing.")
@click.option("--rejects", "rejects_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write every rejected row (line, email, reason) to this CSV file.")
@click.option("--check-dns", is_flag=True, help="Also check that each domain takes mail (DNS).")
@click.option("--welcome", is_flag=True,
              help="Send the welcome mail (templates/welcome.*) to each active reader this "
                   "import adds, once per reader ever, whatever [subscribers] welcome says: "
                   "without this flag an import welcomes nobody. Each batch's welcomes are "
                   "queued once it has committed: if the process dies in between, that "
                   "batch's readers are not welcomed (no catch-up for imports).")
@click.option("--force-erased", is_flag=True,
              help="Import addresses erased on request too (refused otherwise; only if their "
                   "owners asked you to); lifts their erased marks.")
@json_option
@pass_state
def import_(state: AppState, file: Path, file_format: str, list_name: str | None,
            status: str | None, dry_run: bool, rejects_path: Path | None, check_dns: bool,
            welcome: bool, force_erased: bool, as_json: bool) -> None:
    """Import FILE: our CSV (email, name, status, …) or an export from Mailchimp, Substack,
    listmonk or Buttondown. Known addresses are merged, not doubled; an unsubscribe is never
    undone; suppressed addresses are rejected. Exit code 1 if any row was rejected.

    A `language` or `locale` column (any format) gives each reader their language, a BCP 47
    tag (de, pt-BR; pt_br is read as pt-BR; empty: none): it fills a known reader's missing
    language, never replaces one; an unknown tag rejects the row."""

    welcomes = None
    if welcome and not dry_run:
        from ainews_newsletter.pipeline.welcome import Welcomes

        welcomes = Welcomes(state.config, check_templates=True)  # before the import
    # The welcomes of the active readers each batch adds, queued as soon as it commits:
    # this import's own readers, and a crash loses at most one batch's.
    queued: list[int] = []
    store = open_store(state)
    with store.engine.begin() as connection:
        store.list_id(connection, list_name)  # a missing list fails before reading the file
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    if rejects_path is not None and rejects_path.exists() and file.exists() \
            and rejects_path.samefile(file):
        raise SubscriberError(f"--rejects: {rejects_path} is the file being imported; name "
                              "another file for the rejected rows")
    opened = open_subscriber_file(file, file_format, check_dns,
                                  state.config.subscribers.allow_test_domains)
    size = max(file.stat().st_size, 1)
    # Every rejected row goes to --rejects as it is found (the summary keeps the first
    # hundred only); opened first, so a bad path fails before anything is stored.
    with ExitStack() as stack:
        writer = stack.enter_context(_rejects_file(rejects_path))
        # A big file is read and checked by a child process while this one writes
        # (read_ahead.py); forked before the progress bar starts its thread.
        rows: Iterator[ImportRow | Rejected] | Staged = opened.rows
        bytes_read = opened.bytes_read
        if size >= READ_AHEAD_BYTES and can_read_ahead():
            # No pooled database connection crosses the fork (SQLite's rule; the child never
            # touches one, but nothing of it should be there to close or checkpoint).
            store.engine.dispose()
            # On SQLite the child stages each batch too (staging.py): the rows cross as
            # SQLite files, which this process copies with one statement a batch.
            staging = Staging(importer.BATCH_SIZE, status_filter(status)) \
                if store.engine.dialect.name == "sqlite" else None
            reader = stack.enter_context(ReadAhead(opened, staging))
            rows = reader.rows if staging is None else Staged(reader.batches)
            bytes_read = reader.bytes_read
        progress = stack.enter_context(Progress(
            TextColumn("importing"), BarColumn(), TaskProgressColumn(), TimeRemainingColumn(),
            console=real_console(), transient=True, disable=not console.is_terminal))
        task = progress.add_task("import", total=size)
        summary = import_rows(store, rows, list_name, status_filter(status),
                              source=f"import:{file.name}", dry_run=dry_run,
                              on_batch=lambda _rows: progress.update(
                                  task, completed=bytes_read()),
                              on_reject=None if writer is None else lambda reject:
                              writer.writerow([reject.line, spreadsheet_safe(reject.email),
                                               reject.reason]),  # starts with text or '…
                              on_added=None if welcomes is None else lambda added:
                              queued.append(welcomes.queue_imported(added)),
                              agreement=Agreement(
                                  "import", f"{file.name} ({opened.format})"),
                              force_erased=force_erased)
    for reject in summary.rejects[:SHOWN_REJECTS]:
        fail(f"{file}:{reject.line}: {reject.reason}")
    if summary.rejected > SHOWN_REJECTS:
        fail(f"… and {summary.rejected - SHOWN_REJECTS} more rejected rows"
             + (f" (all in {rejects_path})" if rejects_path else " (--rejects FILE lists all)"))
    result = summary.as_dict()
    # Sent after the import's own line on a terminal; inside its JSON with --json.
    welcomed: dict[str, Any] = {}
    if as_json:
        if welcomes is not None:
            welcomed = _send_welcomes(welcomes, sum(queued))
        print_json({**result, "format": opened.format, "dry_run": dry_run,
                    **({"welcomes": welcomed} if welcomed else {})})
    else:
        console.print(f"{opened.format} file{' (dry run: nothing stored)' if dry_run else ''}: "
                      + ", ".join(f"{key} {value}" for key, value in result.items()))
        if welcomes is not None:
            welcomed = _send_welcomes(welcomes, sum(queued))
            console.print("welcomes: " + ", ".join(
                f"{key.replace('_', ' ')} {value}" for key, value in welcomed.items()
                if key != "error"))
    if summary.rejected or any(welcomed.get(key) for key in ("to_retry", "failed", "error")):
        raise SystemExit(1)


def _send_welcomes(welcomes: Welcomes, queued: int) -> dict[str, Any]:
    """Send the `queued` welcomes of the readers the import added (a bar on a
    terminal). What is not sent now (the server is down, a 4xx) stays queued for
    `ainews serve` or the scheduler; the error is said on stderr."""
    from ainews_newsletter.cli.common import progress_bar
    from ainews_newsletter.pipeline.welcome import WelcomeRun

    with progress_bar(queued) as progress:
        task = progress.add_task("welcomes", total=queued)
        error, run = None, None
        try:
            run = welcomes.send_due(on_result=lambda _state: progress.advance(task))
        except AinewsError as exc:
            error = str(exc)
            fail(f"welcomes: {exc}; the rest stay queued for `ainews serve` or the scheduler")
    run = run or WelcomeRun()
    return {"queued": queued, "sent": run.sent, "to_retry": run.retrying,
            "failed": run.failed, "error": error}


@contextmanager
def _rejects_file(path: Path | None) -> Iterator[Any]:
    """A csv writer on `path` with its header written (None without a path); a path that
    cannot be written is one SubscriberError."""
    if path is None:
        yield None
        return
    try:
        handle = path.open("w", encoding="utf-8", newline="")
    except OSError as exc:
        raise SubscriberError(f"--rejects: cannot write {path}: {exc.strerror}") from None
    with handle:
        writer = csv.writer(handle)
        writer.writerow(["line", "email", "reason"])
        yield writer
