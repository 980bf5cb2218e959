"""Merge rules: how a state field combines a new value with the one it holds.

A field without a merge rule is *replaced* by a write, and only one step per superstep may write it. A field
annotated with a :class:`Reducer` folds every write into its current value, in task order, so parallel branches
can all contribute::

    class Report(BaseModel):
        findings: Annotated[list[str], reducers.append] = []
        cost: Annotated[float, reducers.add] = 0.0
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Reducer", "add", "append", "last", "maximum", "merge", "minimum", "reducer"]


@dataclass(frozen=True, slots=True)
class Reducer:
    """A merge rule for one state field.

    Attributes:
        name: shown in errors and graphs.
        fn: ``fn(current, update) -> new``; must not mutate ``current``.
    """

    name: str
    fn: Callable[[Any, Any], Any]

    def __call__(self, current: Any, update: Any) -> Any:
        return self.fn(current, update)


def reducer(fn: Callable[[Any, Any], Any], name: str | None = None) -> Reducer:
    """Make a merge rule from any ``fn(current, update) -> new``, e.g. ``reducer(operator.or_)``."""
    return Reducer(name or str(getattr(fn, "__name__", "custom")), fn)


def _append(current: Any, update: Any) -> list[Any]:
    base = list(current) if current is not None else []
    if isinstance(update, list | tuple):
        base.extend(update)
    else:
        base.append(update)
    return base


def _merge(current: Any, update: Any) -> Any:
    if current is None:
        return update
    if isinstance(current, Mapping):
        return {**current, **update}
    return current | update  # sets, and anything else that defines union


def _add(current: Any, update: Any) -> Any:
    return update if current is None else current + update


def _max(current: Any, update: Any) -> Any:
    return update if current is None else max(current, update)


def _min(current: Any, update: Any) -> Any:
    return update if current is None else min(current, update)


append = Reducer("append", _append)
"""Lists: a list or tuple update is concatenated, any other value is appended as one item."""
merge = Reducer("merge", _merge)
"""Dicts (later keys win) and sets (union)."""
add = Reducer("add", _add)
"""Numbers (sum), or anything else with ``+``."""
last = Reducer("last", lambda _current, update: update)
"""Several writers allowed; the last write in task order wins (deterministic, unlike completion order)."""
maximum = Reducer("maximum", _max)
minimum = Reducer("minimum", _min)
