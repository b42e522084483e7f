"""`ainews doctor`: what mailbox providers check, checked here, with the fix to paste."""

from __future__ import annotations

import sys

import click
from rich.text import Text

from ainews_newsletter.cli.common import AppState, console, json_option, pass_state, print_json


@click.command()
@json_option
@pass_state
def doctor(state: AppState, as_json: bool) -> None:
    """Check SPF, DKIM, DMARC, the bounce domain's MX, the relay (TLS, login) and the
    sample issue, the way Gmail and Yahoo will. Each check passes, warns or fails, with
    exactly what to publish or change. Exit 1 when any fails. Nothing is sent."""
    from ainews_newsletter.doctor.checks import Status
    from ainews_newsletter.pipeline.doctor import run_doctor

    checks = run_doctor(state.config)
    failed = any(check.status is Status.FAIL for check in checks)
    if as_json:
        print_json({"ok": not failed, "checks": [check.as_json() for check in checks]})
    else:
        # One block per check, the fix on its own line: it is meant to be copied.
        colours = {Status.PASS: "green", Status.WARN: "yellow", Status.FAIL: "red"}
        for check in checks:
            line = Text(f"{check.status.value:<5}", style=colours[check.status])
            line.append(f" {check.name:<10} {check.detail}")
            console.print(line)
            if check.fix:  # never wrapped: a record broken over lines pastes broken
                console.print(f"{'':<5} {'fix:':<10} {check.fix}", soft_wrap=True)
        console.print("ok: every check passed or only warned" if not failed else
                      "not ready: fix what failed, then run `ainews doctor` again")
    if failed:
        sys.exit(1)
