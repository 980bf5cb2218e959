"""Steps, and the values a step can return to steer the run.

A step is a callable ``fn()``, ``fn(state)`` or ``fn(state, item)``, sync or async, or a whole workflow. It
returns an update for the state:

- a ``dict`` of field values (each goes through the field's merge rule, if it has one);
- any value, when the step was added with ``into="field"``;
- ``None`` for no update;
- a :class:`Command`, to update *and* choose where the run goes next;
- a :class:`Send` or a list of them, to fan out dynamically: each becomes a task of its own with its own item.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from podium.flow._workflow import Workflow

__all__ = ["END", "START", "Command", "Goto", "Send", "Step", "StepSpec", "step"]

START = "__start__"
"""The virtual step every run begins from: ``graph.edge(START, "first")``."""
END = "__end__"
"""The virtual step that ends a path: routing to it schedules nothing."""


@dataclass(frozen=True, slots=True)
class Send:
    """Run step ``to`` as a task of its own, with ``item`` as its second argument (dynamic fan-out)."""

    to: str
    item: Any = None


Goto: TypeAlias = "str | Send | Sequence[str | Send]"


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """A step's update together with its own routing decision.

    Attributes:
        update: what the step would otherwise return (a dict, or the value for an ``into`` step).
        goto: the next step(s) or :class:`Send` tasks; they must be among the step's declared ``routes``.
    """

    update: Any = None
    goto: Goto = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One node of a workflow, as ``Graph.add`` made it. Built once; read-only during runs."""

    name: str
    fn: Callable[..., Any] | None
    workflow: Workflow[Any] | None
    arity: int
    is_async: bool
    thread: bool
    into: str | None
    writes: frozenset[str] | None
    routes: tuple[str, ...]
    timeout: float | None
    max_iterations: int | None
    on_error: Callable[..., Any] | None
    input: Callable[..., Any] | None
    output: Callable[..., Any] | None
    output_arity: int = 1
    on_error_arity: int = 2

    @property
    def takes_item(self) -> bool:
        return self.arity >= 2


@dataclass(frozen=True, slots=True)
class StepSpec:
    """A callable or workflow with the options to add it with; what :func:`step` makes for pattern builders."""

    fn: Callable[..., Any] | Workflow[Any]
    name: str | None
    options: dict[str, Any]


def step(fn: Callable[..., Any] | Workflow[Any], *, name: str | None = None, **options: Any) -> StepSpec:
    """Give a step a name and options (``into``, ``timeout``, ``on_error``, ...: see ``Graph.add``).

    Pattern builders take plain callables too; wrap one in ``step()`` when it needs a name or options::

        sequential(step(fetch, timeout=10), step(summarize, into="summary"), state=Doc)
    """
    return StepSpec(fn, name, options)


def arity_of(fn: Callable[..., Any], most: int = 2) -> int:
    """How many of ``state, item`` (or, with ``most=3``, a third argument) the callable takes.

    Raises:
        TypeError: the callable needs more than two positional arguments.
    """
    sig = inspect.signature(fn)
    count = 0
    for param in sig.parameters.values():
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            return most
        if param.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            if param.default is inspect.Parameter.empty or count < most:
                count += 1
        elif param.kind is inspect.Parameter.KEYWORD_ONLY and param.default is inspect.Parameter.empty:
            raise TypeError(f"keyword-only parameter {param.name!r} has no default")
    if count > most:
        raise TypeError(f"takes {count} positional arguments, more than the {most} it would be given")
    return count


def is_async_callable(fn: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - a callable object's method, not a callable() check
    return call is not None and inspect.iscoroutinefunction(call)
