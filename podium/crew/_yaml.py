"""Reading a crew file: YAML with the position of every key, and errors that point into the file.

``yaml.compose`` keeps a mark (line, column) on every node. :func:`read_yaml` walks the composed tree once,
building the plain data and a :class:`Locator` that maps each path (``("agents", "writer", "output")``,
``("flow", "supervisor", "workers", 2)``) to where it is written: a mapping entry is located at its key, a list
item at the item. Every error the loader raises goes through the locator, so it names the file, the line, the
column and the field.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import yaml
from pydantic import ValidationError

from podium.errors import CrewFileError

__all__ = ["Locator", "Path_", "did_you_mean", "field_name", "read_yaml"]

Path_: TypeAlias = tuple[str | int, ...]
"""Where a value is in the file: keys and list indexes from the top."""


def field_name(path: Path_) -> str:
    """``("flow", "supervisor", "workers", 2)`` → ``flow.supervisor.workers[2]``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a choice is close to ``word``, else an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Locator:
    """Where each key and item of a crew file is, to make errors that point at them.

    Attributes:
        file: the file's path, as errors show it.
        data: the file's contents as plain Python values.
    """

    def __init__(self, file: str, data: Any, marks: dict[Path_, tuple[int, int]]) -> None:
        self.file = file
        self.data = data
        self._marks = marks

    def mark(self, path: Path_) -> tuple[int | None, int | None]:
        """The line and column (from 1) of ``path``, or of the nearest enclosing value that has one."""
        for end in range(len(path), -1, -1):
            found = self._marks.get(path[:end])
            if found is not None:
                return found
        return None, None

    def error(self, path: Path_, message: str) -> CrewFileError:
        """A :class:`CrewFileError` at ``path``."""
        line, column = self.mark(path)
        return CrewFileError(message, path=self.file, line=line, column=column, field=field_name(path) or None)

    def clean(self, loc: Sequence[str | int]) -> Path_:
        """A pydantic error location as a path into the data: union tags and other parts that name no key or
        index of the data are dropped."""
        path: list[str | int] = []
        node = self.data
        for part in loc:
            if isinstance(node, dict):
                if part not in node:
                    continue
            elif not (isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)):
                continue
            node = node[part]
            path.append(part)
        return tuple(path)

    def data_at(self, path: Path_) -> Any:
        """The value at ``path`` (which must exist)."""
        node = self.data
        for part in path:
            node = node[part]
        return node

    def from_validation(self, exc: ValidationError, describe: Any = None) -> CrewFileError:
        """The first problem of a validation error, located.

        Args:
            describe: ``describe(error, path) -> (path, message) | None``: a better message (and place) for some
                errors.
        """
        error = exc.errors(include_url=False)[0]
        loc = error["loc"]
        path = self.clean(loc)
        ctx = error.get("ctx") or {}
        if error["type"] == "unknown_field":
            path = (*path, ctx["key"])
        elif error["type"] == "missing" and loc:
            path = (*self.clean(loc[:-1]), loc[-1])
        better = describe(error, path) if describe is not None else None
        if better is not None:
            path, message = better
        else:
            message = _message(error)
        return self.error(path, message)


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "missing":
        return "is required"
    message = str(error["msg"])
    if kind in ("unknown_field", "union_tag_invalid") or "input" not in error:
        return message
    shown = repr(error["input"])
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return f"{message[0].lower()}{message[1:]} (got {shown})"


def read_yaml(file: Path) -> Locator:
    """Parse a crew file into plain data with the position of every key and item.

    Raises:
        CrewFileError: the file cannot be read, is not valid YAML (with the line and column), has a key twice,
            or is not a mapping.
    """
    shown = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise CrewFileError(f"cannot read it: {exc.strerror or exc}", path=shown) from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
        raise CrewFileError(f"is not valid YAML: {exc.problem or exc}", path=shown, line=line, column=column) from exc
    if not isinstance(node, yaml.MappingNode):
        line = node.start_mark.line + 1 if node is not None else 1
        raise CrewFileError("a crew file must be a mapping (name, agents, flow...)", path=shown, line=line, column=1)
    walker = _Walker(shown)
    walker.marks[()] = (node.start_mark.line + 1, node.start_mark.column + 1)
    try:
        data = walker.walk(node, ())
    finally:
        walker.loader.dispose()
    return Locator(shown, data, walker.marks)


class _Walker:
    """Builds plain data from a composed node tree, recording the marks of its keys and items."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.marks: dict[Path_, tuple[int, int]] = {}
        self.loader = yaml.SafeLoader("")

    def walk(self, node: yaml.Node, path: Path_) -> Any:
        if isinstance(node, yaml.MappingNode):
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                where = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                if not isinstance(key_node, yaml.ScalarNode):
                    raise CrewFileError("a key must be a plain word", path=self.file, line=where[0], column=where[1])
                key = str(key_node.value)  # as written: 'on' stays 'on', '1' stays '1'
                if key in result:
                    first = self.marks[(*path, key)][0]
                    raise CrewFileError(
                        f"is given twice (first on line {first})",
                        path=self.file,
                        line=where[0],
                        column=where[1],
                        field=field_name((*path, key)),
                    )
                self.marks[(*path, key)] = where
                result[key] = self.walk(value_node, (*path, key))
            return result
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                self.marks[(*path, index)] = (item.start_mark.line + 1, item.start_mark.column + 1)
                items.append(self.walk(item, (*path, index)))
            return items
        return self.loader.construct_object(node)
