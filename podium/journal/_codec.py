"""Values in the journal: JSON that keeps its Python types, so a resumed run sees what the first one saw.

A step's update, a ``Send`` item or an emitted event may be a pydantic model, a dataclass, a tuple, a set, a
datetime... Plain JSON would hand them back as dicts and lists after a resume, and ``isinstance`` checks, reducers
and attribute access would break. So values are encoded as JSON with small tags for what JSON lacks::

    {"$model": "myapp.models:Draft", "v": {"title": "..."}}     pydantic model (rebuilt as it was: no validators)
    {"$dc": "myapp.models:Point", "v": {"x": 1}}                dataclass
    {"$enum": "myapp:Color", "v": "red"}    {"$tuple": [...]}   {"$set": [...]}   {"$frozenset": [...]}
    {"$dt": "2026-11-21T14:00:00+00:00"}    {"$date": ...}      {"$time": ...}    {"$td": 1.5}
    {"$uuid": "..."}   {"$dec": "1.10"}     {"$bytes": "base64"}   {"$path": "/tmp/x"}   {"$float": "nan"}
    {"$dict": [[key, value], ...]}          a dict whose keys are not all strings, or use a "$" prefix

Classes are found again by ``module:qualname``, so they must be importable: defined at a module's top level.
Anything else (an open file, a lock, a lambda) is refused with an :class:`~podium.errors.EncodingError`.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import decimal
import enum
import importlib
import math
import pathlib
import uuid
from typing import Any

import pydantic
from pydantic_core import from_json, to_json

from podium.errors import EncodingError

__all__ = ["decode", "dumps", "encode", "loads", "resolve_class"]

_SCALARS = (str, int, float, bool, type(None))
_classes: dict[str, type[Any]] = {}
_paths: dict[type[Any], str] = {}


def encode(value: Any) -> Any:
    """The JSON-ready form of ``value``.

    Raises:
        EncodingError: ``value`` holds something that cannot be journaled; the message says what and where.
    """
    return _encode(value, "value")


def decode(data: Any) -> Any:
    """The value that :func:`encode` was given.

    Raises:
        EncodingError: a tag names a class that cannot be imported here.
    """
    if isinstance(data, _SCALARS):
        return data
    if isinstance(data, list):
        return [decode(item) for item in data]
    if isinstance(data, dict):
        if len(data) <= 2:
            for tag in data:
                if tag.startswith("$"):
                    return _decode_tagged(tag, data)
                break
        return {key: decode(item) for key, item in data.items()}
    raise EncodingError(f"journal holds an unexpected {type(data).__name__}")


def dumps(value: Any) -> str:
    """``value`` encoded, as JSON text."""
    return to_json(encode(value)).decode()


def loads(text: str | bytes) -> Any:
    """The value behind JSON text made by :func:`dumps`."""
    return decode(from_json(text))


def _encode(value: Any, where: str) -> Any:
    if isinstance(value, _SCALARS) and not isinstance(value, enum.Enum):
        if isinstance(value, float) and not math.isfinite(value):
            return {"$float": repr(value)}  # JSON has no NaN or infinity
        return value
    if isinstance(value, list):
        return [_encode(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: _encode(v, f"{where}.{k}") for k, v in value.items()}
        return {"$dict": [[_encode(k, where), _encode(v, f"{where}[{k!r}]")] for k, v in value.items()]}
    if isinstance(value, pydantic.BaseModel):
        fields = {name: _encode(getattr(value, name), f"{where}.{name}") for name in type(value).model_fields}
        return {"$model": _path_of(type(value), where), "v": fields}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _encode(getattr(value, f.name), f"{where}.{f.name}") for f in dataclasses.fields(value)}
        return {"$dc": _path_of(type(value), where), "v": fields}
    if isinstance(value, enum.Enum):
        return {"$enum": _path_of(type(value), where), "v": _encode(value.value, where)}
    if isinstance(value, tuple):
        return {"$tuple": [_encode(item, f"{where}[{i}]") for i, item in enumerate(value)]}
    if isinstance(value, set | frozenset):
        tag = "$set" if isinstance(value, set) else "$frozenset"
        return {tag: [_encode(item, where) for item in value]}
    if isinstance(value, dt.datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, dt.time):
        return {"$time": value.isoformat()}
    if isinstance(value, dt.timedelta):
        return {"$td": value.total_seconds()}
    if isinstance(value, uuid.UUID):
        return {"$uuid": str(value)}
    if isinstance(value, decimal.Decimal):
        return {"$dec": str(value)}
    if isinstance(value, bytes | bytearray):
        return {"$bytes": base64.b64encode(value).decode()}
    if isinstance(value, pathlib.PurePath):
        return {"$path": str(value)}
    raise EncodingError(
        f"cannot journal {where}: a {type(value).__module__}.{type(value).__qualname__}; use JSON values, "
        f"pydantic models, dataclasses, enums, tuples, sets, dates, UUIDs, decimals, bytes or paths"
    )


def _decode_tagged(tag: str, data: dict[str, Any]) -> Any:
    body = data[tag]
    if tag == "$model":
        return _rebuild_model(resolve_class(body), {k: decode(v) for k, v in data["v"].items()})
    if tag == "$dc":
        cls = resolve_class(body)
        obj = object.__new__(cls)
        for name, item in data["v"].items():
            object.__setattr__(obj, name, decode(item))
        return obj
    if tag == "$enum":
        return resolve_class(body)(decode(data["v"]))
    simple = _SIMPLE.get(tag)
    if simple is not None:
        return simple(body)
    return {key: decode(item) for key, item in data.items()}  # an ordinary dict whose key looks like a tag


def _rebuild_model(cls: Any, fields: dict[str, Any]) -> Any:
    """The model as it was: no validators or ``model_post_init`` run again (they ran when it was made)."""
    for name, info in cls.model_fields.items():
        if name not in fields and not info.is_required():  # a field added since the value was journaled
            fields[name] = info.get_default(call_default_factory=True)
    model = cls.__new__(cls)
    object.__setattr__(model, "__dict__", fields)
    object.__setattr__(model, "__pydantic_fields_set__", set(fields))
    object.__setattr__(model, "__pydantic_extra__", None)
    private = {name: attr.get_default() for name, attr in cls.__private_attributes__.items()}
    object.__setattr__(model, "__pydantic_private__", private or None)
    return model


_SIMPLE: dict[str, Any] = {
    "$float": float,
    "$dict": lambda pairs: {decode(k): decode(v) for k, v in pairs},
    "$tuple": lambda items: tuple(decode(i) for i in items),
    "$set": lambda items: {decode(i) for i in items},
    "$frozenset": lambda items: frozenset(decode(i) for i in items),
    "$dt": dt.datetime.fromisoformat,
    "$date": dt.date.fromisoformat,
    "$time": dt.time.fromisoformat,
    "$td": lambda seconds: dt.timedelta(seconds=seconds),
    "$uuid": uuid.UUID,
    "$dec": decimal.Decimal,
    "$bytes": base64.b64decode,
    "$path": pathlib.Path,
}


def _path_of(cls: type[Any], where: str) -> str:
    path = _paths.get(cls)
    if path is not None:
        return path
    path = f"{cls.__module__}:{cls.__qualname__}"
    if "<locals>" in cls.__qualname__:
        raise EncodingError(
            f"cannot journal {where}: {cls.__qualname__} is defined inside a function, so a resumed run could not "
            f"rebuild it; define it at the top level of a module"
        )
    _paths[cls] = path
    _classes[path] = cls
    return path


def resolve_class(path: str) -> Any:
    """The class at ``module:qualname``. Raises EncodingError when it cannot be imported."""
    cls = _classes.get(path)
    if cls is not None:
        return cls
    module_name, _, qualname = path.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise EncodingError(f"the journal holds a {path}, which cannot be imported here: {exc}") from exc
    _classes[path] = found
    return found
