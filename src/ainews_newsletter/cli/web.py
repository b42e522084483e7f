"""`ainews preview` (the writer's local preview), `ainews serve` (the public pages) and
`ainews web snippet` (the sign-up form for the operator's own site)."""

from __future__ import annotations

import click

from ainews_newsletter.cli.common import AppState, console, pass_state, window_options
from ainews_newsletter.models import Window


@click.command()
@window_options
@click.option("--port", default=8025, show_default=True, type=click.IntRange(1, 65535),
              help="Port on 127.0.0.1 (the preview never listens on another address).")
@pass_state
def preview(state: AppState, window: Window, port: int) -> None:
    """Preview the issue in a browser: desktop and mobile side by side, plain text,
    headers, lint findings, why each post is in or out, and a test send. Saving a post,
    a template or the config reloads the page."""
    from ainews_newsletter.web.preview import run_preview

    console.print(f"Preview on http://127.0.0.1:{port}/ (Ctrl-C to stop)")
    run_preview(state.config, window, port)


@click.command()
@click.option("--host", default=None, help="Address to listen on [default: [web] host].")
@click.option("--port", default=None, type=click.IntRange(1, 65535),
              help="Port [default: [web] port].")
@pass_state
def serve(state: AppState, host: str | None, port: int | None) -> None:
    """Serve the public pages: subscribe (double opt-in), confirm, one-click unsubscribe,
    preferences, the archive of sent issues and its Atom feed. Needs AINEWS_SECRET_KEY."""
    from ainews_newsletter.translations import check_catalogs
    from ainews_newsletter.web.public import create_public_app
    from ainews_newsletter.web.server import run_public_server

    config = state.config
    # A language without a catalog, or a broken override .po: said now, not to a reader.
    check_catalogs(config.newsletter.language, config.locale_dir)
    app = create_public_app(config)  # a missing secret key fails here, before listening
    host, port = host or config.web.host, port or config.web.port
    console.print(f"Serving {config.newsletter.name} on http://{host}:{port}/ "
                  f"(public URL: {config.newsletter.base_url})")
    run_public_server(app, config, host, port)


@click.group(name="web")
def web() -> None:
    """The sign-up form for your own site: `ainews web snippet` prints it to paste there."""


@web.command()
@click.option("--iframe", is_flag=True,
              help="Print an <iframe> of our /embed page instead of a plain form: it carries "
                   "a signed form time (and the puzzle of [web] proof_of_work), which a "
                   "pasted form cannot.")
@pass_state
def snippet(state: AppState, iframe: bool) -> None:
    """Print a copy-paste HTML sign-up form for another site, posting to [newsletter]
    base_url/subscribe: a plain form that works without JavaScript, with a hidden honeypot
    field and an optional script that signs up without leaving the page. The site's origin
    must be in [web] allowed_origins."""
    from ainews_newsletter.errors import ConfigError
    from ainews_newsletter.web.snippet import form_snippet, iframe_snippet

    config = state.config
    if config.web.proof_of_work and not iframe:
        raise ConfigError("[web] proof_of_work is on: a pasted form cannot solve its puzzle "
                          "and every sign-up from it would be dropped; use `ainews web "
                          "snippet --iframe`")
    if not config.web.allowed_origins:
        click.echo("warning: [web] allowed_origins is empty: add your site's origin (e.g. "
                   '"https://blog.example"), or `ainews serve` refuses this form', err=True)
    click.echo(iframe_snippet(config) if iframe else form_snippet(config), nl=False)
