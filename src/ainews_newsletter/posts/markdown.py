"""Markdown post files: YAML front matter, then a Markdown body with `##` sections. A bad
file is an error naming the file and the field; a post is never skipped silently, because a
missing story is worse than a failed build."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import frontmatter
import yaml
from frontmatter.default_handlers import YAMLHandler
from markdown_it import MarkdownIt

from ainews_newsletter.errors import PostError
from ainews_newsletter.models import Post
from ainews_newsletter.posts.text import (
    PostDefaults,
    TooMuchHtml,
    check_web_url,
    cut_at_word,
    cut_html,
    html_to_plain,
    reading_minutes,
    sanitize_html,
    sanitized_to_plain,
    shown,
    text_as_html,
)

_DATE_PREFIX = re.compile(r"^\d{4}-\d{2}-\d{2}-")
_markdown = MarkdownIt("commonmark")
# A post file larger than this is refused before it is read. markdown-it is linear but slow
# on some shapes (100,000 "[" take 1.6 s), so this bounds one file's cost (to about 4 s);
# 256 KiB is some 40,000 words.
MAX_POST_BYTES = 256 * 1024
# A front-matter number longer than this is refused before it is built: int() refuses
# decimal text of more than 4,300 digits, and a hexadecimal one of thousands of digits
# becomes a number that str() cannot turn back into text.
MAX_NUMBER_CHARS = 100
_INT_TAG = "tag:yaml.org,2002:int"


class _PostLoader(yaml.SafeLoader):
    """SafeLoader without aliases and without overlong numbers.

    An alias (*name) is refused where it is composed, before anything expands it: a 455-byte
    "billion laughs" of nested aliases in `tags` or `date` grew past 2 GB while the tag list
    or the error message was built. Front matter has no use for them."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases (*name) are not allowed in front matter",
                event.start_mark)
        return super().compose_node(parent, index)

    def construct_document(self, node: yaml.Node) -> Any:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                _check_numbers(key_node, value_node)
        return super().construct_document(node)


def _check_numbers(key_node: yaml.Node, value_node: yaml.Node) -> None:
    """No integer longer than MAX_NUMBER_CHARS under this key (a tree: no aliases)."""
    stack = [value_node]
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _INT_TAG and len(node.value) > MAX_NUMBER_CHARS:
                raise yaml.constructor.ConstructorError(
                    None, None, f"field {shown(str(key_node.value), 40)}: a number of "
                    f"{len(node.value):,} characters (at most {MAX_NUMBER_CHARS})",
                    node.start_mark)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            stack.extend(item for pair in node.value for item in pair)


class _PostYAML(YAMLHandler):
    """python-frontmatter's YAML handler, loading with _PostLoader (frontmatter.loads
    hands its keyword arguments to the metadata, not to the loader)."""

    def load(self, fm: str, **kwargs: object) -> Any:
        return yaml.load(fm, Loader=_PostLoader)  # a SafeLoader subclass


def _first_paragraph(body: str) -> str:
    """The body's first paragraph as HTML (not sanitized yet), or ""."""
    tokens = _markdown.parse(body)
    for index, token in enumerate(tokens):
        if token.type == "paragraph_open" and index + 1 < len(tokens):
            inline = tokens[index + 1]
            return str(_markdown.renderer.render([inline], _markdown.options, {}))
    return ""


def _published(value: Any, tz: ZoneInfo, where: str) -> datetime:
    """Aware UTC time from a front-matter date; a bare date means 00:00 in the newsletter tz."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise PostError(f"{where}: field 'date': cannot parse {shown(value)} as an ISO "
                            "8601 date or time (e.g. 2026-11-18T09:30:00Z)") from None
    try:
        if isinstance(value, datetime):
            aware = value if value.tzinfo is not None else value.replace(tzinfo=tz)
            return aware.astimezone(UTC)
        if isinstance(value, date):
            return datetime.combine(value, time(0), tzinfo=tz).astimezone(UTC)
    except OverflowError:
        raise PostError(f"{where}: field 'date': {value} is out of range") from None
    # The type, not the value: a list's repr could be anything in size.
    raise PostError(f"{where}: field 'date': expected an ISO 8601 date, got "
                    f"{type(value).__name__}")


def _scalar_text(value: Any, where: str, field: str) -> str:
    """Text of a front-matter scalar, its type checked before it is turned into text. YAML
    reads an unquoted 2026-01-05 as a date: as a tag or a title it is meant as that text."""
    if isinstance(value, date):  # datetime too
        return value.isoformat()
    if not isinstance(value, str | int | float):
        raise PostError(f"{where}: field {field}: expected text, got {type(value).__name__}")
    return str(value).strip()


def _optional_text(meta: dict[str, Any], key: str, where: str) -> str | None:
    value = meta.get(key)
    if value is None:
        return None
    return _scalar_text(value, where, repr(key)) or None


def _web_url(meta: dict[str, Any], key: str, where: str) -> str | None:
    value = _optional_text(meta, key, where)
    return None if value is None else check_web_url(value, where, key)


def _tags(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list):
        raise PostError(f"{where}: field 'tags': expected a list such as [cloud, policy]")
    texts = (_scalar_text(tag, where, f"'tags' item {number}")
             for number, tag in enumerate(value, start=1) if tag is not None)
    return tuple(text for text in texts if text)


def _read(path: Path) -> frontmatter.Post:
    with path.open("rb") as handle:
        data = handle.read(MAX_POST_BYTES + 1)
    if len(data) > MAX_POST_BYTES:
        raise PostError(f"{path}: larger than {MAX_POST_BYTES // 1024} KiB; a post is an "
                        "article (split it, or link to the long part)")
    try:
        text = data.decode("utf-8-sig")  # a BOM from a Windows editor is fine
    except UnicodeDecodeError as exc:
        raise PostError(f"{path}: not valid UTF-8 (byte {exc.start})") from None
    if not text.lstrip().startswith("---"):
        raise PostError(f"{path}: missing front matter: the file must start with a '---' line "
                        "followed by 'title:' and 'date:'")
    try:
        return frontmatter.loads(text, handler=_PostYAML())
    except RecursionError:  # PyYAML composes recursively: [[[[… thousands deep
        raise PostError(f"{path}: broken YAML front matter: nested too deeply (a post's "
                        "fields are text, dates and lists of text)") from None
    except ValueError as exc:  # YAML of the right shape but impossible, e.g. 2026-02-30
        raise PostError(f"{path}: front matter: {exc} (a date must exist, e.g. "
                        "2026-11-18T09:30:00Z)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PostError(f"{path}:{line}: broken YAML front matter: {problem}") from None


def load_post(path: Path, defaults: PostDefaults) -> Post:
    where = str(path)
    document = _read(path)
    meta: dict[str, Any] = dict(document.metadata)
    title = _optional_text(meta, "title", where)
    if title is None:
        raise PostError(f"{where}: field 'title' is required")
    if "date" not in meta or meta["date"] is None:
        raise PostError(f"{where}: field 'date' is required")
    published = _published(meta["date"], defaults.tz, where)
    slug = _DATE_PREFIX.sub("", path.stem)
    image = _web_url(meta, "image", where)
    image_alt = _optional_text(meta, "image_alt", where)
    if image is not None and image_alt is None:
        raise PostError(f"{where}: field 'image_alt' is required when 'image' is set "
                        "(describe the picture for readers who cannot see it)")
    body = document.content
    try:
        given = _optional_text(meta, "summary", where)
        if given:
            summary = cut_at_word(given, defaults.summary_chars)
            summary_html = text_as_html(summary)
        else:
            paragraph = _first_paragraph(body)
            summary = cut_at_word(html_to_plain(paragraph), defaults.summary_chars)
            summary_html = cut_html(sanitize_html(f"<p>{paragraph}</p>" if paragraph else ""),
                                    defaults.summary_chars)
        body_html = sanitize_html(_markdown.render(body))
    except TooMuchHtml as exc:
        raise PostError(f"{where}: body: {exc}") from None
    return Post(
        title=title,
        published=published,
        url=_web_url(meta, "url", where) or f"{defaults.base_url}/posts/{quote(slug)}",
        slug=slug,
        summary=summary,
        summary_html=summary_html,
        body_html=body_html,
        category=_optional_text(meta, "category", where),
        image=image,
        image_alt=image_alt,
        author=_optional_text(meta, "author", where),
        tags=_tags(meta.get("tags"), where),
        source=where,
        reading_minutes=reading_minutes(sanitized_to_plain(body_html)),
    )


def read_markdown_folder(folder: Path, defaults: PostDefaults,
                         ) -> tuple[list[Post], list[PostError]]:
    """Every post of the folder, and a problem per bad file (all of them, not the first)."""
    if not folder.is_dir():
        return [], [PostError(f"posts folder not found: {folder} (set [posts] sources in the "
                              "config)")]
    posts: list[Post] = []
    problems: list[PostError] = []
    for path in sorted(folder.glob("*.md")):
        try:
            posts.append(load_post(path, defaults))
        except PostError as problem:
            problems.append(problem)
        except OSError as exc:
            problems.append(PostError(f"{path}: cannot read: {exc.strerror}"))
    return posts, problems
