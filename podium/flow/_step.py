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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from podium.flow._workflow import Workflow
    from podium.runtime._limits import Limits
    from podium.runtime._retry import RetryPolicy

__all__ = ["END", "START", "Command", "Goto", "Send", "Step", "StepSpec", "make_step", "step"]

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
    retry: RetryPolicy | None = None
    fallbacks: tuple[Step, ...] = ()
    """Alternatives tried in order when the step fails for good (same ``into``, ``writes``, ``timeout``)."""
    compensate: Callable[..., Any] | None = None
    compensate_arity: int = 1
    limits: Limits | None = None
    """A sub-workflow's limits for each of its invocations (see :class:`~podium.Limits`)."""
    max_repeats: int | None = None
    """Overrides ``Limits.max_repeats`` for this step."""

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


def make_step(
    name: str,
    fn: Callable[..., Any] | Workflow[Any],
    *,
    into: str | None,
    writes: Iterable[str] | None,
    routes: Iterable[str],
    timeout: float | None,
    max_iterations: int | None,
    on_error: Callable[..., Any] | str | None,
    thread: bool | None,
    input: Callable[..., Any] | None,
    output: Callable[..., Any] | None,
    retry: RetryPolicy | None = None,
    compensate: Callable[..., Any] | None = None,
    fallbacks: Sequence[Callable[..., Any]] = (),
    limits: Limits | None = None,
    max_repeats: int | None = None,
) -> Step:
    """Check a step's options against its callable and make the :class:`Step` (see ``Graph.add``).

    Raises:
        ValueError: an option is out of range or cannot work with this callable.
        TypeError: a callable's signature does not fit.
    """
    if fallbacks and compensate is not None:
        raise ValueError(
            "a step with fallbacks cannot declare compensate=: its output may come from a fallback, which that "
            "compensation would not undo; move the side effect into a tool with its own compensation, or give "
            "the step no fallbacks"
        )
    if max_iterations is not None and max_iterations < 1:
        raise ValueError(f"max_iterations must be at least 1, not {max_iterations}")
    handler, routes = _recovery(on_error, into, tuple(routes))
    if timeout is not None and timeout <= 0:
        raise ValueError(f"timeout must be positive, not {timeout}")
    if max_repeats is not None and max_repeats < 0:
        raise ValueError(f"max_repeats must be 0 or more, not {max_repeats}")
    from podium.flow._workflow import Workflow

    if isinstance(fn, Workflow):
        if into is None and output is None and not fn.has_output:
            raise ValueError(
                f"sub-workflow {fn.name!r} has no output, so its final state would be the update; "
                f"add it with into='<field>' or output=fn, or build it with output=..."
            )
        workflow: Workflow[Any] | None = fn
        callable_fn = None
        arity = 2 if input is None else max(arity_of(input), 1)
        is_async = True
    else:
        if limits is not None:
            raise ValueError("limits=... is for a sub-workflow step; a function step runs within its workflow's")
        workflow, callable_fn = None, fn
        arity = arity_of(fn)
        is_async = is_async_callable(fn)
        if timeout is not None and not is_async and thread is False:
            raise ValueError(
                "a timeout cannot interrupt a sync step that runs on the event loop (thread=False); "
                "let it run in a thread or make it async"
            )
    return Step(
        name=name,
        fn=callable_fn,
        workflow=workflow,
        arity=arity,
        is_async=is_async,
        thread=(not is_async) if thread is None else (thread and not is_async),
        into=into,
        writes=frozenset(writes) if writes is not None else (frozenset((into,)) if into else None),
        routes=tuple(routes),
        timeout=timeout,
        max_iterations=max_iterations,
        on_error=handler,
        input=input,
        output=output,
        output_arity=max(arity_of(output, most=3), 1) if output is not None else 1,
        on_error_arity=_on_error_arity(handler),
        retry=retry,
        fallbacks=_alternatives(
            fallbacks,
            takes_item=workflow is None and _requires_item(fn),
            into=into,
            writes=writes,
            timeout=timeout,
            thread=thread,
        )
        if fallbacks
        else (),
        compensate=compensate,
        compensate_arity=_compensate_arity(compensate),
        limits=limits,
        max_repeats=max_repeats,
    )


def _compensate_arity(compensate: Callable[..., Any] | None) -> int:
    if compensate is None:
        return 1
    arity = arity_of(compensate)
    if arity < 1:
        raise TypeError("compensate must take (output) or (output, state)")
    return arity


def _recovery(
    on_error: Callable[..., Any] | str | None, into: str | None, routes: tuple[str, ...]
) -> tuple[Callable[..., Any] | None, tuple[str, ...]]:
    """``on_error`` as a handler: a step's name diverts there (and joins the routes); an escalation learns ``into``."""
    if on_error is None or inspect.isfunction(on_error) or inspect.ismethod(on_error):
        return on_error, routes
    from podium.runtime._divert import Divert
    from podium.runtime._escalate import Escalate

    if isinstance(on_error, str):
        on_error = Divert(on_error)
    if isinstance(on_error, Divert):
        return on_error, routes if on_error.to in routes else (*routes, on_error.to)
    if isinstance(on_error, Escalate):
        return on_error.for_step(into), routes
    if not callable(on_error):
        raise TypeError(f"on_error must be a handler, a step's name, divert(...) or escalate(...), not {on_error!r}")
    return on_error, routes


def _requires_item(fn: Any) -> bool:
    """Whether ``fn`` has a second positional parameter without a default (so every call gives it an item)."""
    positional = [
        p
        for p in inspect.signature(fn).parameters.values()
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    return len(positional) >= 2 and positional[1].default is inspect.Parameter.empty


def _alternatives(fallbacks: Sequence[Any], *, takes_item: bool, **options: Any) -> tuple[Step, ...]:
    """The step's fallbacks as steps of their own (the same options), checked against the step's signature."""
    from podium.flow._workflow import Workflow

    made = []
    for fallback in fallbacks:
        label = getattr(fallback, "__name__", None) or type(fallback).__name__
        if isinstance(fallback, Workflow) or not callable(fallback):
            raise TypeError(f"fallback {fallback!r} must be a callable or an agent, with the step's signature")
        try:
            alternative = make_step(
                label, fallback, routes=(), max_iterations=None, on_error=None, input=None, output=None, **options
            )
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"fallback {label!r}: {exc}") from exc
        if takes_item and not alternative.takes_item:
            raise TypeError(
                f"fallback {label!r} takes no item, but the step takes (state, item); give it that signature"
            )
        made.append(alternative)
    return tuple(made)


def _on_error_arity(on_error: Callable[..., Any] | None) -> int:
    if on_error is None:
        return 2
    arity = arity_of(on_error, most=3)
    if arity < 2:
        raise TypeError("on_error must take (state, error) or (state, error, item)")
    return arity


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
