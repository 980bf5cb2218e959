"""The graph patterns over the user's own state: sequential, parallel fan-out + merge, iterative loop, events."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from podium.errors import ConfigError
from podium.flow._graph import Graph
from podium.flow._step import END, START, Command
from podium.flow._workflow import Workflow
from podium.flow.patterns._common import StepLike, name_of
from podium.runtime._context import context
from podium.runtime._limits import Limits

__all__ = ["event_driven", "loop", "parallel", "sequential"]

S = TypeVar("S")


def sequential(
    *steps: StepLike,
    state: type[S],
    name: str = "sequential",
    output: str | Callable[[S], Any] | None = None,
    input: str | Callable[[Any], Any] | None = None,
    limits: Limits | None = None,
) -> Workflow[S]:
    """A → B → C: each step runs after the previous one, over ``state``. A failing step ends the run.

    Example:
        ``sequential(research, step(write, into="draft"), publish, state=Post)``
    """
    graph: Graph[S] = Graph(state, name=name)
    names = [_add(graph, s) for s in steps]
    graph.chain(START, *names, END)
    return graph.build(output=output, input=input, limits=limits)


def parallel(
    *branches: StepLike,
    merge: StepLike | None = None,
    state: type[S],
    name: str = "parallel",
    output: str | Callable[[S], Any] | None = None,
    input: str | Callable[[Any], Any] | None = None,
    on_branch_failure: str = "cancel",
    limits: Limits | None = None,
) -> Workflow[S]:
    """Fan out to every branch at once, then run ``merge`` when all have finished.

    Branches see the same state and write to it through merge rules: two branches that replace one field without
    a merge rule are refused at build time. A branch of several steps is a workflow (e.g. ``sequential(...)``)
    so it runs at its own pace. When a branch fails, the others are cancelled (``on_branch_failure="cancel"``)
    or allowed to finish first (``"finish"``, their writes are kept in the partial state); either way the run
    fails, unless the branch was given ``on_error`` (``step(fn, on_error=...)``), which turns its failure into
    an update and lets the merge run.
    """
    if not branches:
        raise ConfigError("parallel() needs at least one branch")
    graph: Graph[S] = Graph(state, name=name)
    names = [_add(graph, b) for b in branches]
    for branch in names:
        graph.edge(START, branch)
    if merge is not None:
        graph.join(names, _add(graph, merge))
    return graph.build(output=output, input=input, limits=limits, on_branch_failure=on_branch_failure)


def loop(
    *body: StepLike,
    until: Callable[[S], bool],
    max_iterations: int,
    state: type[S],
    name: str = "loop",
    output: str | Callable[[S], Any] | None = None,
    input: str | Callable[[Any], Any] | None = None,
    on_max: str = "stop",
    limits: Limits | None = None,
) -> Workflow[S]:
    """Run ``body`` (e.g. draft → critique) again and again until ``until(state)`` or ``max_iterations`` rounds.

    Args:
        body: the steps of one round, in order.
        until: checked after each round; True ends the loop.
        max_iterations: the most rounds.
        on_max: what reaching ``max_iterations`` means: ``"stop"`` ends the run as completed with the last
            round's state (a bounded refinement), ``"limit"`` ends it as ``limited`` (the loop was expected to
            converge and did not).
    """
    if on_max not in ("stop", "limit"):
        raise ConfigError(f"on_max must be 'stop' or 'limit', not {on_max!r}")
    if max_iterations < 1:
        raise ConfigError("max_iterations must be at least 1")
    graph: Graph[S] = Graph(state, name=name)
    if not body:
        raise ConfigError("loop() needs at least one step in its body")
    names = [_add(graph, b, max_iterations=max_iterations) for b in body]
    first = names[0]

    def check(state: S) -> Command:
        if until(state):
            return Command(goto=END)
        if context().iteration >= max_iterations and on_max == "stop":
            return Command(goto=END)
        return Command(goto=first)

    graph.add(check, name=f"{name}_until", routes=(first, END), thread=False, max_iterations=max_iterations)
    graph.chain(START, *names, f"{name}_until")
    return graph.build(output=output, input=input, limits=limits)


def event_driven(
    handlers: Mapping[type[Any], StepLike | Sequence[StepLike]],
    *,
    source: Callable[[S], Sequence[Any]],
    state: type[S],
    name: str = "events",
    output: str | Callable[[S], Any] | None = None,
    input: str | Callable[[Any], Any] | None = None,
    limits: Limits | None = None,
) -> Workflow[S]:
    """Steps subscribe to event types and react; what they emit wakes the next subscribers.

    The run starts by emitting ``source(state)`` (the initial events, e.g. ``lambda s: s.inbox``). Each handler
    is a ``(state, event)`` step; it may emit further events with ``podium.context().emit(event)``. Events are
    matched by type (subclasses included), and every subscriber of an event runs in the next superstep.
    The run ends when no event is left unhandled; ``Limits`` bound chains of events that never settle.
    """
    graph: Graph[S] = Graph(state, name=name)

    def dispatch(state: S) -> None:
        ctx = context()
        for event in source(state):
            ctx.emit(event)

    graph.add(dispatch, name=f"{name}_source", thread=False)
    graph.edge(START, f"{name}_source")
    added: set[str] = set()
    for event_type, subscribed in handlers.items():
        members = list(subscribed) if isinstance(subscribed, Sequence) else [subscribed]
        for member in members:
            member_name = name_of(member)
            if member_name not in added:
                _add(graph, member)
                added.add(member_name)
            graph.on(event_type, member_name)
    return graph.build(output=output, input=input, limits=limits)


def _add(graph: Graph[Any], step: StepLike, **options: Any) -> str:
    name = name_of(step)
    graph.add(step, name=name, **options)
    return name
