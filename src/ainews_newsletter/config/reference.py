"""The configuration reference, made from the section models themselves: every key with its
type, default, environment variable and the description written once, in its model. The
documentation's reference page is generated from it (docs/hooks/config_reference.py), and the
tests use the same walk to check that no key lacks a description and that the shipped
config.toml names every key that may live in a file."""

from __future__ import annotations

import re
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from ainews_newsletter.config.content import POST_SOURCE_MODELS
from ainews_newsletter.config.locate import ENV_PREFIX
from ainews_newsletter.config.mail import RelayConfig
from ainews_newsletter.config.root import SECRET_KEYS, Config

# Lists of models whose keys are documented in a table of their own.
_NESTED_LISTS: dict[tuple[str, str], tuple[type[BaseModel], ...]] = {
    ("posts", "sources"): POST_SOURCE_MODELS,
    ("smtp", "relays"): (RelayConfig,),
}


@dataclass(frozen=True, slots=True)
class Key:
    """One documented key, e.g. section "smtp", name "port"."""

    section: str  # "" for a top-level key such as secret_key
    name: str
    type: str
    default: str
    description: str
    secret: bool

    @property
    def dotted(self) -> str:
        return f"{self.section}.{self.name}" if self.section else self.name

    @property
    def environment_variable(self) -> str:
        parts = [self.section, self.name] if self.section else [self.name]
        return ENV_PREFIX + "__".join(part.upper() for part in parts)


def config_keys(root: type[BaseModel] = Config) -> list[Key]:
    """Every key of the configuration, section by section in the model's order."""
    found: list[Key] = []
    for section, field in root.model_fields.items():
        model = _model_of(field.annotation)
        if model is None:
            found.append(_key("", section, field))
            continue
        found.extend(_key(section, name, sub) for name, sub in model.model_fields.items())
    return found


def nested_keys() -> Iterator[tuple[str, type[BaseModel], list[Key]]]:
    """The keys of list entries (posts.sources), per kind of entry."""
    for (section, name), models in _NESTED_LISTS.items():
        for model in models:
            entry = f"{section}.{name}[]"
            yield entry, model, [_key(entry, key, field)
                                 for key, field in model.model_fields.items()]


def undescribed(root: type[BaseModel] = Config) -> list[str]:
    """Dotted names of keys whose model gives no description."""
    every = config_keys(root) + (
        [key for _, _, entries in nested_keys() for key in entries] if root is Config else [])
    sections = [f"[{name}]" for name, field in root.model_fields.items()
                if _model_of(field.annotation) is not None and not field.description]
    return sections + [key.dotted for key in every if not key.description.strip()]


_SECTION_LINE = re.compile(r"^\s*#?\s*\[([a-z_.]+)\]\s*$")
_KEY_LINE = re.compile(r"^\s*#?\s*([a-z_]+)\s*=")


def named_in_toml(text: str) -> set[str]:
    """Dotted keys a config file names, set or commented out (`# key = …` counts)."""
    named: set[str] = set()
    section = ""
    for line in text.splitlines():
        if header := _SECTION_LINE.match(line):
            section = header.group(1)
        elif key := _KEY_LINE.match(line):
            named.add(f"{section}.{key.group(1)}" if section else key.group(1))
    return named


def missing_from_toml(text: str, root: type[BaseModel] = Config) -> list[str]:
    """Non-secret keys a config file does not name (a sample must show every one)."""
    named = named_in_toml(text)
    return [key.dotted for key in config_keys(root) if not key.secret and key.dotted not in named]


def markdown() -> str:
    """The reference as Markdown: a table per section, then the list entries' keys."""
    lines: list[str] = []
    by_section: dict[str, list[Key]] = {}
    for key in config_keys():
        by_section.setdefault(key.section, []).append(key)
    for section, section_keys in by_section.items():
        lines += [f"## `[{section}]`" if section else "## Top level (environment only)", ""]
        doc = _section_doc(section)
        if doc:
            lines += [doc, ""]
        lines += _table(section_keys)
        for entry, model, entry_keys in nested_keys():
            if not entry.startswith(f"{section}."):
                continue
            title = (model.__doc__ or "").strip().splitlines()[0]
            heading = (f"### `{entry}` with `type = \"{_literal_of(model)}\"`"
                       if "type" in model.model_fields else f"### `{entry}`")
            lines += [heading, "", title, "", *_table(entry_keys, environment=False)]
    return "\n".join(lines)


def _table(section_keys: list[Key], environment: bool = True) -> list[str]:
    head = "| Key | Type | Default | Environment | Description |" if environment else \
        "| Key | Type | Default | Description |"
    rows = [head, "|---|---|---|---|---|" if environment else "|---|---|---|---|"]
    for key in section_keys:
        description = _escape_html(key.description).replace("|", "\\|")
        if key.secret:
            description += " **Environment only**: never read from config.toml."
        cells = [f"`{key.name}`", key.type, key.default]
        if environment:
            cells.append(f"`{key.environment_variable}`")
        rows.append("| " + " | ".join([*cells, description]) + " |")
    return [*rows, ""]


def _escape_html(text: str) -> str:
    """`<token>` outside code spans would be read as an HTML tag and vanish."""
    parts = text.split("`")
    for index in range(0, len(parts), 2):
        parts[index] = parts[index].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def _section_doc(section: str) -> str:
    return (Config.model_fields[section].description or "") if section else ""


def _key(section: str, name: str, field: FieldInfo) -> Key:
    path = (section, field.alias or name) if section else (field.alias or name,)
    secret = path in SECRET_KEYS or _is_secret(field.annotation)
    return Key(section=section, name=field.alias or name, type=_type_text(field),
               default=_default_text(field), description=field.description or "",
               secret=secret)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _is_secret(annotation: Any) -> bool:
    return annotation is SecretStr or SecretStr in get_args(annotation)


def _literal_of(model: type[BaseModel]) -> str:
    args = get_args(model.model_fields["type"].annotation)
    return str(args[0]) if args else ""


def _type_text(field: FieldInfo) -> str:
    text = _annotation_text(field.annotation)
    bounds = []
    for item in field.metadata:
        for kind, sign in ((annotated_types.Ge, "≥"), (annotated_types.Gt, ">"),
                           (annotated_types.Le, "≤"), (annotated_types.Lt, "<")):
            if isinstance(item, kind):
                bounds.append(f"{sign} {_number(getattr(item, kind.__name__.lower()))}")
    return text + (f" ({', '.join(bounds)})" if bounds else "")


def _annotation_text(annotation: Any) -> str:
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Literal:
        return " \\| ".join(f'`"{arg}"`' for arg in args)
    if origin in (Union, types.UnionType):
        present = [arg for arg in args if arg is not type(None)]
        if all(_model_of(arg) is not None for arg in present):
            return "table"
        inner = " or ".join(_annotation_text(arg) for arg in present)
        return inner + (", optional" if len(present) < len(args) else "")
    if origin is list:
        return f"list of {_annotation_text(args[0])}" if args else "list"
    if origin is not None and args:  # Annotated[…]: the discriminated post sources
        return _annotation_text(args[0])
    names = {str: "string", int: "integer", float: "number", bool: "boolean",
             SecretStr: "secret string"}
    if annotation in names:
        return names[annotation]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "table"
    return str(annotation)


def _default_text(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    return f"`{_toml(value)}`"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _number(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    if isinstance(value, BaseModel):
        fields = value.model_dump(by_alias=True, exclude_none=True)
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in fields.items()) + " }"
    return str(value)


def _number(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
