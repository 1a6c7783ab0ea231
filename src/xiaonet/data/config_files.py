"""Typed JSON files: the strict loader every config file of the project goes through (training
configs, study configs). Unknown keys are refused with the valid ones, missing required keys
are named, values are checked against the dataclass's field types.

>>> from dataclasses import dataclass
>>> @dataclass
... class Example:
...     name: str
...     size: int = 1
>>> dataclass_from_dict(Example, {"name": "a", "size": 2})
Example(name='a', size=2)
>>> dataclass_from_dict(Example, {"name": "a", "sise": 2})
Traceback (most recent call last):
...
xiaonet.data.config_files.ConfigError: config: unknown key(s) 'sise'. Valid keys: name, size.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A config file or override is wrong; the message says where and what is expected."""


def _convert(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected an object with keys {_field_names(annotation)}, got {value!r}")
        return dataclass_from_dict(annotation, value, where)
    if origin is typing.Union or str(origin) == "types.UnionType":
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0], where)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_convert(v, args[0], f"{where}.{i}") for i, v in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{where}: expected a list of {len(args)} values, got {value!r}")
        return tuple(_convert(v, a, f"{where}.{i}") for i, (v, a) in enumerate(zip(value, args)))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected an object, got {value!r}")
        return dict(value)
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def _field_names(cls) -> str:
    return ", ".join(f.name for f in dataclasses.fields(cls))


def dataclass_from_dict(cls, data: dict, where: str = "config"):
    """A dataclass from a JSON object, strictly: unknown keys are refused with the valid ones,
    missing required keys are named, values are checked against the field types (nested
    dataclasses, lists, tuples, optionals). The one loader of every typed file of the project
    (training configs, study configs)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected an object with keys {_field_names(cls)}, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(repr(k) for k in unknown)}. "
            f"Valid keys: {_field_names(cls)}."
        )
    required = [f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [name for name in required if name not in data]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {', '.join(missing)}")
    kwargs = {
        name: _convert(value, hints[name], f"{where}.{name}" if where != "config" else name)
        for name, value in data.items()
    }
    return cls(**kwargs)


def read_json_object(path: str | Path, what: str = "config file") -> dict:
    """The JSON object in ``path``; a missing file, bad JSON or another type is a ConfigError."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found") from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object at the top level")
    return data
