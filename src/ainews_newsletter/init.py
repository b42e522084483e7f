"""`ainews init DIR`: a newsletter folder of one's own. A commented config.toml where only
the keys a person must decide are filled in, one example post dated today, and the templates
(email and web) copied for editing. Everything else keeps its default, written out as a
comment so it can be found and changed."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ainews_newsletter import clock, resources
from ainews_newsletter.config import load_config
from ainews_newsletter.errors import ConfigError

CONFIG_TEMPLATE = """\
# {name}: made by `ainews init` on {today}. Every section and key is described in the
# documentation's configuration reference (docs/reference/configuration.md); the shipped
# sample config.toml shows them all with comments.

[newsletter]
name = {name_toml}
# The sender readers see, and where their replies go unless reply_to says otherwise.
from = {from_toml}
# reply_to = "editor@your.domain"
# Your public site: `ainews serve` runs there (behind your proxy) and every unsubscribe
# link points at it.
base_url = {base_url_toml}
# Shown in every issue's footer: the law in most countries requires a real one.
postal_address = {postal_toml}
# Weeks and dates are computed here (an IANA name such as "Europe/Berlin").
timezone = {timezone_toml}

[posts]
# Markdown posts in posts/ (see posts/{example_post}); feeds can be added too:
# sources = [{{ type = "markdown", path = "posts" }}, {{ type = "feed", url = "https://…" }}]
sources = [{{ type = "markdown", path = "posts" }}]
# window = "week"        # the last complete ISO week; or "since-last" issue
# min_posts = 1
# max_posts = 20

[storage]
# url = "sqlite:///data/ainews.db"        # or postgresql+psycopg://user@host/db

[subscribers]
# A welcome mail to each reader who confirms, once (templates/welcome.*; `ainews serve`
# sends it, see docs/signup-forms.md).
welcome = true
# Staging against a local mail server with addresses under .test only:
{test_domains}allow_test_domains = true

[smtp]
# A local mail server (Postfix) is the usual relay; a provider's relay works too.
# host = "localhost"
# port = 25
# security = "none"                        # none | starttls | tls
# username = "…"                           # password: AINEWS_SMTP__PASSWORD

# [bounces]
# address = "bounces@your.domain"          # see docs/bounces.md

[schedule]
# cron = "0 8 * * MON"                     # Mondays at 08:00 in the timezone above
# mode = "auto"                            # or "draft": build, mail you a copy, wait

# [web]
# tagline = "One email a week with the AI news that mattered."
# allowed_origins = ["https://your.site"]  # its sign-up forms: `ainews web snippet`
"""

EXAMPLE_POST = """\
---
title: {title}
date: {date}
category: Notes
summary: {summary}
---

This is an example post. Replace it with your own: a Markdown file in this folder with
the title and date at the top, as here.

## How posts become an issue

Each week's issue carries the posts dated in that week, newest first, grouped by the
category above. `ainews posts list` shows what the next issue holds.

## What to do next

Write a post or two, add yourself as a subscriber, and send yourself a test copy.
"""


@dataclass(frozen=True)
class NewNewsletter:
    name: str
    from_address: str
    base_url: str
    postal_address: str
    timezone: str
    allow_test_domains: bool = False  # staging against a local mail server with .test


def _toml(value: str) -> str:
    """A TOML basic string (what json.dumps writes is one, for the characters it escapes)."""
    import json

    return json.dumps(value, ensure_ascii=False)


def _check_config_loads(config_text: str, folder: Path) -> datetime:
    """The config as any command would read it, before anything is written: an error names
    the file it will be (FOLDER/config.toml). Returns now in the newsletter's timezone."""
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        trial = Path(scratch) / "config.toml"
        trial.write_text(config_text, encoding="utf-8")
        try:
            config = load_config(trial, environ={})
        except ConfigError as exc:
            message = str(exc).replace(str(trial), str(folder / "config.toml"))
            if "allow_test_domains" in message:
                message += " (with `ainews init`: --allow-test-domains)"
            raise ConfigError(message) from None
    return clock.now().astimezone(config.newsletter.tz).replace(microsecond=0)


def create(folder: Path, answers: NewNewsletter) -> datetime:
    """Fill FOLDER (made if missing; an existing empty one keeps its owner and mode, as
    the deploy layout's /srv/ainews needs). A folder that holds anything already is
    refused: nothing of someone's is overwritten. Returns the example post's date."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ConfigError(f"{folder}: exists and is not an empty folder; `ainews init` makes "
                          "a new one (pick another name)")
    now = clock.now()
    config_text = CONFIG_TEMPLATE.format(
        name=answers.name.replace("\n", " "), today=f"{now:%Y-%m-%d}",
        name_toml=_toml(answers.name), from_toml=_toml(answers.from_address),
        base_url_toml=_toml(answers.base_url), postal_toml=_toml(answers.postal_address),
        timezone_toml=_toml(answers.timezone), example_post="welcome.md",
        test_domains="" if answers.allow_test_domains else "# ")
    posted = _check_config_loads(config_text, folder)
    # JSON strings are YAML strings: a name with ": " or " #" stays one title.
    post = EXAMPLE_POST.format(title=_toml(f"Welcome to {answers.name}"),
                               summary=_toml(f"The first post of {answers.name}, written by "
                                             "`ainews init` so the first build has a post."),
                               date=posted.isoformat())
    made_folder = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        (folder / "config.toml").write_text(config_text, encoding="utf-8")
        (folder / "posts").mkdir()
        (folder / "posts" / "welcome.md").write_text(post, encoding="utf-8")
        shutil.copytree(resources.shipped("templates"), folder / "templates")
    except BaseException:  # leave the folder as it was found
        for made in ("config.toml", "posts", "templates"):
            target = folder / made
            if target.is_dir():
                shutil.rmtree(target, ignore_errors=True)
            else:
                target.unlink(missing_ok=True)
        if made_folder:
            folder.rmdir()
        raise
    return posted
