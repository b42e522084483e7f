"""The AINEWS_ variables as nested values for the config models: `AINEWS_SMTP__PORT=2526` is
{"smtp": {"port": "2526"}}. Read as pydantic-settings read them (2.14: names in any case,
`__` between levels, a section, list or model given whole as JSON), which this replaces:
every command loads the config, and importing pydantic-settings cost more than the rest of
`ainews subscribers count` (BENCHMARKS.md, "Start-up"). tests/test_config_environment.py
holds the rules."""

from __future__ import annotations

import json
import types
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import is_dataclass
from typing import Annotated, Any, TypeGuard, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from ainews_newsletter.config.locate import ENV_PREFIX

DELIMITER = "__"


class NotJson(ValueError):
    """A variable that sets a section, a list or a model whole, whose value is not JSON."""

    def __init__(self, field_name: str, variable: str) -> None:
        super().__init__(f'error parsing value for field "{field_name}" from {variable} '
                         "(a section, list or model set whole is read as JSON)")


def environment_values(model: type[BaseModel], environ: Mapping[str, str]) -> dict[str, Any]:
    """The values `environ` gives `model`'s fields, nested as the file's are; NotJson for a
    whole section, list or model that is not JSON."""
    # One name per variable whatever its case; of two spellings the later one counts.
    variables = {name.lower(): (name, value) for name, value in environ.items()}
    prefix = ENV_PREFIX.lower()
    values: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        variable = prefix + name
        given = variables.get(variable)
        complex_, may_be_text = _complex(field.annotation)
        found: Any = None
        if not complex_:
            found = None if given is None else given[1]
        elif given is None:
            found = _nested(name, field, variable + DELIMITER, variables) or None
        else:
            try:
                found = json.loads(given[1])
            except ValueError:
                if not may_be_text:
                    raise NotJson(name, given[0]) from None
                found = given[1]
            if isinstance(found, dict):
                found = deep_update(found, _nested(name, field, variable + DELIMITER,
                                                   variables))
        if found is not None:
            values[name] = _field_names(field, found) if isinstance(found, dict) else found
    return values


def _nested(top: str, field: FieldInfo, prefix: str,
            variables: Mapping[str, tuple[str, str]]) -> dict[str, Any]:
    """The variables below one field (prefix `ainews_smtp__`) as a nested dict."""
    result: dict[str, Any] = {}
    for lowered, (original, value) in variables.items():
        if not lowered.startswith(prefix):
            continue
        *keys, last = lowered[len(prefix):].split(DELIMITER)
        node: Any = result
        target: Any = field
        for key in keys:
            target = _next_field(target, key)
            if isinstance(node, dict):
                node = node.setdefault(key, {})
        target = _next_field(target, last)
        parsed: Any = value
        if target is not None and value:
            if isinstance(target, FieldInfo):
                complex_, may_be_text = _complex(target.annotation)
            else:  # a dict's value type
                complex_, may_be_text = _complex_type(target), True
            if complex_:
                try:
                    parsed = json.loads(value)
                except ValueError:
                    if not may_be_text:
                        raise NotJson(top, original) from None
        if isinstance(node, dict):
            node[last] = parsed
    return result


def _next_field(field: Any, key: str) -> Any:
    """The field (or a dict's value type) that `key` names below `field`, else None."""
    if field is None:
        return None
    annotation = field.annotation if isinstance(field, FieldInfo) else field
    for argument in get_args(annotation):
        found = _next_field(argument, key)
        if found is not None:
            return found
    origin = get_origin(annotation)
    if _subclass(origin, dict):
        return get_args(annotation)[-1]
    if _is_model(annotation):
        for name, sub in annotation.model_fields.items():
            if key in (name.lower(), (ENV_PREFIX + name).lower(),
                       *(alias.lower() for alias in _aliases(sub))):
                return sub
    return None


def _complex(annotation: Any) -> tuple[bool, bool]:
    """Whether a value for `annotation` is read as JSON, and whether text that is not JSON
    may stand as it is (a union with a plain type)."""
    if _complex_type(annotation):
        return True, False
    if get_origin(annotation) in (Union, types.UnionType) and any(
            _complex_type(argument) for argument in get_args(annotation)):
        return True, True
    return False, False


def _complex_type(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _complex_type(get_args(annotation)[0])
    return any(not _subclass(candidate, (str, bytes))
               and (_subclass(candidate, (BaseModel, Mapping, Sequence, tuple, set, frozenset,
                                          deque)) or is_dataclass(candidate))
               for candidate in (annotation, origin))


def _subclass(candidate: Any, classes: type | tuple[type, ...]) -> bool:
    return isinstance(candidate, type) and issubclass(candidate, classes)


def _is_model(candidate: Any) -> TypeGuard[type[BaseModel]]:
    return _subclass(candidate, BaseModel)


def _aliases(field: FieldInfo) -> list[str]:
    return [alias for alias in (field.alias, field.validation_alias) if isinstance(alias, str)]


def _field_names(field: FieldInfo, values: dict[str, Any]) -> dict[str, Any]:
    """Keys in any case (AINEWS_SMTP__PORT gives "port", a JSON section may say "Port")
    renamed to the model's own names or aliases, all the way down its sections."""
    annotation = field.annotation
    if get_origin(annotation) in (Union, types.UnionType):
        arguments = get_args(annotation)
        annotation = arguments[0] if len(arguments) == 2 and type(None) in arguments else None
    if not _is_model(annotation):
        return values
    renamed: dict[str, Any] = {}
    for key, value in values.items():
        for name, sub in annotation.model_fields.items():
            names = _aliases(sub) or [name]
            spelled = next((alias for alias in names if alias.lower() == key.lower()), None)
            if spelled is not None:
                nested = _is_model(sub.annotation) and isinstance(value, dict)
                renamed[spelled] = _field_names(sub, value) if nested else value
                break
        else:
            renamed[key] = value
    return renamed


def deep_update(base: dict[str, Any], *updates: dict[str, Any]) -> dict[str, Any]:
    """`base` with `updates` laid over it, dicts merged key by key, anything else replaced."""
    merged = dict(base)
    for update in updates:
        for key, value in update.items():
            if isinstance(merged.get(key), dict) and isinstance(value, dict):
                merged[key] = deep_update(merged[key], value)
            else:
                merged[key] = value
    return merged
