"""The documentation cannot drift from the code: every config key is described once, in its
model, and named in the shipped config.toml; every command has help for the generated command
reference; every link inside the documentation lands on a page and heading that exist; the
README stays short. Each check is also shown catching a deliberately broken case, so a checker
that passes everything cannot hide here. (The site itself is built strictly by .ci/run.)"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import click
import pytest
from pydantic import Field

from ainews_newsletter.config import reference
from ainews_newsletter.config.base import Section

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"


# --- configuration reference -----------------------------------------------------------


def test_every_config_key_has_a_description() -> None:
    assert reference.undescribed() == []
    keys = {key.dotted for key in reference.config_keys()}
    assert {"smtp.port", "newsletter.from", "bounces.imap_ca_file", "secret_key"} <= keys


def test_an_undescribed_key_is_caught() -> None:
    class Broken(Section):
        described: int = Field(default=1, description="Has words.")
        silent: int = 2

    class Root(Section):
        broken: Broken = Field(default_factory=Broken, description="A section.")
        bare: Broken = Field(default_factory=Broken)

    assert reference.undescribed(Root) == ["[bare]", "broken.silent", "bare.silent"]


def test_the_shipped_config_names_every_non_secret_key() -> None:
    shipped = (REPO / "config.toml").read_text(encoding="utf-8")
    assert reference.missing_from_toml(shipped) == []
    # Secrets must never be suggested in a file, not even commented out.
    named = reference.named_in_toml(shipped)
    assert not {key.dotted for key in reference.config_keys() if key.secret} & named


def test_a_config_file_that_leaves_a_key_out_is_caught() -> None:
    shipped = (REPO / "config.toml").read_text(encoding="utf-8")
    without = re.sub(r"^# imap_ca_file = .*\n", "", shipped, flags=re.MULTILINE)
    assert without != shipped
    assert reference.missing_from_toml(without) == ["bounces.imap_ca_file"]
    # A commented-out line counts as naming the key; a key under another section does not.
    assert reference.named_in_toml("[smtp]\n# port = 25\n[web]\nhost = 'x'\n") == {
        "smtp.port", "web.host"}


def test_the_reference_shows_type_default_and_environment_variable() -> None:
    text = reference.markdown()
    row = next(line for line in text.splitlines() if line.startswith("| `port` | integer"))
    assert "`25`" in row and "`AINEWS_SMTP__PORT`" in row and "≤ 65535" in row
    assert "`AINEWS_SMTP__PASSWORD`" in text and "**Environment only**" in text
    # Every section model shows up with its own heading.
    for section in ("newsletter", "posts", "smtp", "bounces", "web", "tracking"):
        assert f"## `[{section}]`" in text
    assert "`posts.sources[]` with `type = \"feed\"`" in text


def test_the_reference_page_has_the_marker_the_hook_fills() -> None:
    page = (DOCS / "reference" / "configuration.md").read_text(encoding="utf-8")
    hook = (DOCS / "hooks" / "config_reference.py").read_text(encoding="utf-8")
    marker = re.search(r'MARKER = "(.+)"', hook)
    assert marker and marker.group(1) in page
    mkdocs = (REPO / "mkdocs.yml").read_text(encoding="utf-8")
    assert "docs/hooks/config_reference.py" in mkdocs


# --- command reference ---------------------------------------------------------------------


def _commands(group: click.Command, path: str = "ainews") -> list[tuple[str, click.Command]]:
    found = [(path, group)]
    if isinstance(group, click.Group):
        ctx = click.Context(group)
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            assert command is not None, f"{path} {name} does not load"
            found += _commands(command, f"{path} {name}")
    return found


def _undocumented(group: click.Command) -> list[str]:
    return [path for path, command in _commands(group) if not (command.help or "").strip()]


def test_every_command_has_help_for_the_generated_reference() -> None:
    from ainews_newsletter.cli.app import cli

    commands = _commands(cli)
    assert len(commands) > 30 and "ainews subscribers import" in dict(commands)
    assert _undocumented(cli) == []


def test_a_command_without_help_is_caught() -> None:
    @click.group(help="Root.")
    def root() -> None: ...

    @root.command()
    def silent() -> None: ...

    @root.command(help="Says what it does.")
    def talks() -> None: ...

    assert _undocumented(root) == ["ainews silent"]


def test_the_command_reference_page_names_the_real_group() -> None:
    from ainews_newsletter.cli import app

    page = (DOCS / "reference" / "commands.md").read_text(encoding="utf-8")
    assert "::: mkdocs-click" in page
    module = re.search(r":module: (\S+)", page)
    command = re.search(r":command: (\S+)", page)
    assert module and command and module.group(1) == app.__name__
    assert isinstance(getattr(app, command.group(1)), click.Group)


# --- links inside the documentation --------------------------------------------------------

_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def _slug(heading: str) -> str:
    """Python-Markdown's toc slug (MkDocs' default): text without markup, ASCII, lower case,
    punctuation dropped, spaces to hyphens."""
    if explicit := re.search(r"\{\s*#([\w-]+)\s*\}\s*$", heading):
        return explicit.group(1)
    text = re.sub(r"`([^`]*)`", r"\1", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text).replace("*", "")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def _markdown_of(page: Path) -> str:
    """The page as the site shows it: the generated references expanded."""
    text = page.read_text(encoding="utf-8")
    if page.name == "configuration.md" and page.parent.name == "reference":
        text = text.replace("<!-- config-reference -->", reference.markdown())
    if "::: mkdocs-click" in text:
        from ainews_newsletter.cli.app import cli

        text += "\n" + "\n".join(f"## {path}" for path, _ in _commands(cli))
    return text


def _anchors(page: Path) -> set[str]:
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in _markdown_of(page).splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and (heading := _HEADING.match(line)):
            slug = _slug(heading.group(2))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            anchors.add(slug if count == 0 else f"{slug}_{count}")
    anchors.update(re.findall(r'<a (?:name|id)="([^"]+)"', page.read_text(encoding="utf-8")))
    return anchors


def broken_links(pages: list[Path], root: Path) -> list[str]:
    """Every internal link (and #anchor) of these Markdown pages that points nowhere."""
    problems = []
    for page in pages:
        fenced = False
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            if _FENCE.match(line):
                fenced = not fenced
                continue
            if fenced:
                continue
            line = re.sub(r"`[^`]*`", "", line)  # code spans show links, they are not links
            for target in _LINK.findall(line):
                if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, mailto: — not fetched
                    continue
                path_part, _, anchor = target.partition("#")
                goal = (page.parent / path_part).resolve() if path_part else page
                where = f"{page.relative_to(root)}:{number}: {target}"
                if not goal.exists() or not goal.resolve().is_relative_to(root.resolve()):
                    problems.append(f"{where} (no such file)")
                elif anchor and goal.suffix == ".md" and anchor not in _anchors(goal):
                    problems.append(f"{where} (no heading #{anchor})")
    return problems


def _documentation_pages() -> list[Path]:
    return [*sorted(DOCS.rglob("*.md")), REPO / "README.md"]


def test_every_link_inside_the_documentation_lands() -> None:
    pages = _documentation_pages()
    assert len(pages) >= 15, "the documentation site has a page per capability"
    assert broken_links(pages, REPO) == []


def test_a_broken_link_or_anchor_is_caught(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text(
        "# Sending mail\n\n## The `[smtp]` section\n\n"
        "[fine](b.md#other-heading) [also fine](#the-smtp-section) [web](https://x.example)\n"
        "[gone](missing.md) [no anchor](b.md#nowhere) ![img](pic.png)\n"
        "```\n[in a fence](nowhere.md)\n```\n", encoding="utf-8")
    (tmp_path / "b.md").write_text("# Title\n\n## Other heading\n", encoding="utf-8")
    (tmp_path / "pic.png").write_bytes(b"\x89PNG")
    assert broken_links([tmp_path / "a.md", tmp_path / "b.md"], tmp_path) == [
        "a.md:6: missing.md (no such file)", "a.md:6: b.md#nowhere (no heading #nowhere)"]


@pytest.mark.parametrize(("heading", "slug"), [
    ("Sending and the delivery guarantee", "sending-and-the-delivery-guarantee"),
    ("`[smtp]`", "smtp"), ("ainews subscribers import", "ainews-subscribers-import"),
    ("What's sent, when?", "whats-sent-when"), ("Custom {#mine}", "mine")])
def test_slugs_follow_mkdocs(heading: str, slug: str) -> None:
    assert _slug(heading) == slug


# --- the README ------------------------------------------------------------------------------


def test_the_readme_is_short_with_the_two_commands_near_the_top() -> None:
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 150
    quickstart = lines.index("## Quickstart")
    assert quickstart < 30
    block = lines[quickstart:quickstart + 8]
    assert "pip install -e . && ainews demo" in block and "./scripts/test" in block


# --- the sample issue's text part ----------------------------------------------------------


def _text_blocks(page: str) -> list[str]:
    return re.findall(r"^```text\n(.*?)\n```$", page, flags=re.MULTILINE | re.DOTALL)


def _text_part_drift(page: str) -> list[str]:
    """What of `page`'s text blocks differs from the reviewed snapshots: the summary block
    not the whole sample-week.txt, or a line of the full excerpt not in sample-week.full.txt."""
    snapshots = REPO / "tests" / "snapshots"
    blocks = _text_blocks(page)
    if len(blocks) != 2:
        return [f"{len(blocks)} text blocks, not 2"]
    summary, full = blocks
    problems = []
    if summary + "\n" != (snapshots / "sample-week.txt").read_text(encoding="utf-8"):
        problems.append("the summary text part is not sample-week.txt")
    reviewed = set((snapshots / "sample-week.full.txt").read_text(encoding="utf-8")
                   .splitlines())
    problems += [f"not in sample-week.full.txt: {line}" for line in full.splitlines()
                 if line not in ("", "…") and line not in reviewed]
    return problems


def test_the_issue_page_shows_the_sample_issues_text_part_as_reviewed() -> None:
    """docs/issue.md shows the sample issue's plain-text part: the reviewed snapshot, whole
    (tests/render/test_snapshots.py keeps that equal to what the sample renders), and an
    excerpt of the text_part = "full" one, every line of it from that snapshot."""
    page = (DOCS / "issue.md").read_text(encoding="utf-8")
    assert _text_part_drift(page) == []
    full = _text_blocks(page)[1]
    shown = [line for line in full.splitlines() if line not in ("", "…")]
    assert len(shown) > 10 and "[1] https://example.org/fernhill/gauge/docs" in shown


@pytest.mark.parametrize(("before", "after"), [("5 stories", "6 stories"),
                                               ("[1] https://example.org/fernhill/gauge/docs",
                                                "[1] https://example.org/fernhill/gauge")])
def test_a_page_whose_text_part_drifted_is_caught(before: str, after: str) -> None:
    """The checker above, fed a drifted copy of the page (the summary, then the excerpt)."""
    page = (DOCS / "issue.md").read_text(encoding="utf-8")
    assert before in page
    assert _text_part_drift(page.replace(before, after)) != []
