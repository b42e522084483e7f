"""A full disk or a database that cannot be used, as the one line the CLI prints (see
storage_faults.py): which database, and what the command that failed leaves behind.
Imported only when a command failed."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ainews_newsletter.storage_faults import ROLLED_BACK, storage_failure

if TYPE_CHECKING:
    from ainews_newsletter.config import Config

# What a command leaves behind when its storage fails, by the command that was run: each
# writes in transactions, and says here which (see storage_faults.storage_failure).
_STAYED = {
    "send": "every answer recorded stays; a message whose answer could not be recorded "
            "stays `sending` and may go once more; `ainews send --resume` goes on",
    "subscribers": "each change is one transaction, an import one per {batch} rows: those "
                   "committed stay, the one that failed left nothing, and the same command "
                   "run again reaches the same end state",
    "bounces": "the events stored stay (one whose effect was not applied yet is applied by "
               "the next ingest), and ingesting the same mail again stores each event once",
}


def storage_line(ctx: click.Context, exc: BaseException) -> str | None:
    """The one line for a full disk or a database that cannot be used, or None for any
    other error. Names the database of the loaded config (no config loaded: the folder of
    the file that could not be written, or the working folder)."""
    # The AppState of common.py, which imports this module: read by name, not by type.
    config: Config | None = getattr(ctx.obj, "loaded_config", None)
    stayed = _STAYED.get(ctx.invoked_subcommand or "", ROLLED_BACK)
    if "{batch}" in stayed:
        from ainews_newsletter.subscribers.importer import BATCH_SIZE

        stayed = stayed.format(batch=f"{BATCH_SIZE:,}")
    return storage_failure(exc, config.database_url if config is not None else None, stayed)
