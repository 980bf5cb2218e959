"""Tools: typed Python functions an agent may call. Their JSON Schema comes from type hints and docstrings.

::

    @tool(idempotent=True)
    def search_notes(query: str, limit: int = 5) -> list[str]:
        \"\"\"Search the team's notes.

        Args:
            query: words to look for.
            limit: at most this many notes.
        \"\"\"

The schema a model sees has ``query`` (string, required, "words to look for") and ``limit`` (integer, default 5).
A call's arguments are validated against the same types before the function runs; a bad call becomes an error
message to the model, not an exception in the run.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, overload

from pydantic import ConfigDict, TypeAdapter, ValidationError, create_model
from pydantic.fields import FieldInfo

from podium.errors import ConfigError
from podium.flow._state import every_error
from podium.models._types import ToolSpec

__all__ = ["Tool", "ToolResult", "tool"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolResult:
    """What a tool call gave back: the value, or the error message the model will read."""

    value: Any = None
    error: str | None = None

    @property
    def text(self) -> str:
        """The result as the model reads it."""
        if self.error is not None:
            return f"error: {self.error}"
        if isinstance(self.value, str):
            return self.value
        return TypeAdapter(Any).dump_json(self.value).decode()


class Tool:
    """A function an agent may call, with the JSON Schema of its arguments.

    Attributes:
        name: what the model calls it.
        description: what it does (the docstring's first paragraph).
        idempotent: calling it twice with the same arguments has the effect of calling it once.
        spec: the :class:`~podium.models.ToolSpec` a model sees.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        idempotent: bool = False,
    ) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]{0,63}", self.name):
            raise ConfigError(f"tool name {self.name!r} must be letters, digits, '_' or '-' (at most 64)")
        summary, arg_docs = _parse_docstring(inspect.getdoc(fn) or "")
        self.description = description or summary or self.name
        self.idempotent = idempotent
        self._is_async = inspect.iscoroutinefunction(fn)
        self._arguments = _arguments_model(fn, arg_docs)
        schema = self._arguments.model_json_schema()
        schema.pop("title", None)
        self.spec = ToolSpec(name=self.name, description=self.description, parameters=schema)

    def __repr__(self) -> str:
        return f"<Tool {self.name}>"

    async def __call__(self, arguments: Mapping[str, Any]) -> ToolResult:
        """Validate ``arguments`` and call the function (sync ones in a thread). Never raises for the tool's own
        errors: they come back as ``ToolResult.error`` for the model to read."""
        try:
            parsed = self._arguments.model_validate(dict(arguments))
        except ValidationError as exc:
            return ToolResult(error=f"invalid arguments for {self.name}: {every_error(exc, 'arguments')}")
        kwargs = {name: getattr(parsed, name) for name in type(parsed).model_fields}
        try:
            if self._is_async:
                value = await self.fn(**kwargs)
            else:
                value = await asyncio.to_thread(self.fn, **kwargs)
        except Exception as exc:
            return ToolResult(error=f"{type(exc).__name__}: {exc}")
        return ToolResult(value=value)


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...
@overload
def tool(
    *, name: str | None = None, description: str | None = None, idempotent: bool = False
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    idempotent: bool = False,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a function a :class:`Tool`: ``@tool`` or ``@tool(idempotent=True)``."""

    def make(f: Callable[..., Any]) -> Tool:
        return Tool(f, name=name, description=description, idempotent=idempotent)

    return make(fn) if fn is not None else make


def _arguments_model(fn: Callable[..., Any], docs: Mapping[str, str]) -> Any:
    try:
        hints = inspect.get_annotations(fn, eval_str=True)
    except Exception as exc:
        raise ConfigError(f"cannot read the type hints of tool {fn.__name__!r}: {exc}") from exc
    fields: dict[str, Any] = {}
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ConfigError(f"tool {fn.__name__!r} cannot take *{param.name}: a model needs named arguments")
        annotation = hints.get(param.name)
        if annotation is None:
            raise ConfigError(f"tool {fn.__name__!r}: parameter {param.name!r} needs a type hint")
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (annotation, FieldInfo(default=default, description=docs.get(param.name)))
    return create_model(f"{fn.__name__}_arguments", __config__=ConfigDict(extra="forbid"), **fields)


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The first paragraph, and Google-style ``Args:`` descriptions by parameter name."""
    summary = doc.split("\n\n", 1)[0].strip()
    args: dict[str, str] = {}
    match = re.search(r"^Args:\n((?:[ \t]+.+\n?)+)", doc, flags=re.MULTILINE)
    if match:
        current = None
        for line in match.group(1).splitlines():
            entry = re.match(r"\s+(\w+)(?:\s*\([^)]*\))?:\s*(.*)", line)
            if entry and (current is None or len(line) - len(line.lstrip()) <= 8):
                current = entry.group(1)
                args[current] = entry.group(2).strip()
            elif current is not None:
                args[current] = f"{args[current]} {line.strip()}".strip()
    return summary, args
