"""Build-time validation: everything about a graph that can be known to be wrong before it runs.

Checks, each raising :class:`~podium.errors.WorkflowDefinitionError` with what and where:
unknown step names (with a did-you-mean), a graph with no way in, steps nothing can reach, joins that can never
fire, ``into``/``writes`` fields the state does not have, event subscribers that cannot take the event, and two
parallel branches of a static fan-out that replace the same field without a merge rule.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, is_typeddict

from podium.errors import WorkflowDefinitionError
from podium.flow._state import StateSchema
from podium.flow._step import END, START, Step

if TYPE_CHECKING:
    from podium.flow._graph import Route

__all__ = ["Join", "Topology", "validate"]


@dataclass(frozen=True, slots=True)
class Join:
    sources: frozenset[str]
    target: str


@dataclass(frozen=True, slots=True)
class Topology:
    """The validated edges of a workflow, in the shape the runtime reads them."""

    edges: Mapping[str, tuple[str, ...]]
    routes: Mapping[str, Route]
    joins: tuple[Join, ...]
    joins_of: Mapping[str, tuple[int, ...]]
    subscriptions: tuple[tuple[type[Any], str], ...]
    to_end: frozenset[str] = frozenset()
    """Steps with an explicit edge to END (drawn by ``mermaid()``; END itself schedules nothing)."""


def validate(
    *,
    name: str,
    schema: StateSchema,
    steps: dict[str, Step],
    edges: Sequence[tuple[str, str]],
    routes: Mapping[str, Route],
    joins: Sequence[tuple[tuple[str, ...], str]],
    subscriptions: Sequence[tuple[type[Any], str]],
    output: str | Callable[[Any], Any] | None,
) -> Topology:
    def fail(message: str, where: str | None = None) -> typing.NoReturn:
        raise WorkflowDefinitionError(message, workflow=name, where=where)

    def known(step: str, where: str, *, allow_start: bool = False, allow_end: bool = False) -> None:
        if step in steps or (allow_start and step == START) or (allow_end and step == END):
            return
        hint = difflib.get_close_matches(step, list(steps), n=1)
        did_you_mean = f"; did you mean {hint[0]!r}?" if hint else f"; the steps are {sorted(steps)}"
        fail(f"unknown step {step!r}{did_you_mean}", where)

    if not steps:
        fail("has no steps; add one with graph.add(fn)")
    for source, target in edges:
        where = f"edge {source!r} -> {target!r}"
        known(source, where, allow_start=True)
        known(target, where, allow_end=True)
        if source == START and target == END:
            fail("goes straight from START to END", where)
    for route in routes.values():
        where = f"route from {route.source!r}"
        known(route.source, where, allow_start=True)
        if not route.targets:
            fail("has no targets", where)
        for target in route.targets:
            known(target, where, allow_end=True)
    _infer_writes(steps)
    for step in steps.values():
        for target in step.routes:
            known(target, f"routes of step {step.name!r}", allow_end=True)
        for field in sorted(step.writes or ()):
            if field not in schema.fields:
                fail(
                    f"writes field {field!r}, which {schema.name} does not have; it has {sorted(schema.fields)}",
                    f"step {step.name!r}",
                )
    for sources, target in joins:
        where = f"join {list(sources)} -> {target!r}"
        known(target, where)
        if not sources:
            fail("has no sources", where)
        if len(set(sources)) != len(sources):
            fail("names a source twice", where)
        for source in sources:
            known(source, where)
    for event_type, subscriber in subscriptions:
        where = f"subscription of {subscriber!r} to {event_type.__name__}"
        known(subscriber, where)
        if not steps[subscriber].takes_item:
            fail("the step must take (state, event) to receive the event", where)
    if isinstance(output, str) and output not in schema.fields:
        fail(f"output field {output!r} is not a field of {schema.name}", "build(output=...)")

    static: dict[str, list[str]] = {}
    for source, target in edges:
        if target != END and target not in static.setdefault(source, []):
            static[source].append(target)
    topology = Topology(
        edges={source: tuple(targets) for source, targets in static.items()},
        routes=dict(routes),
        joins=tuple(Join(frozenset(sources), target) for sources, target in joins),
        joins_of=_joins_by_source(joins),
        subscriptions=tuple(subscriptions),
        to_end=frozenset(source for source, target in edges if target == END),
    )
    if not topology.edges.get(START) and START not in topology.routes:
        fail("has no entry; add graph.edge(START, <first step>)")
    _check_reachable(topology, steps, fail)
    _check_parallel_writes(topology, steps, schema, fail)
    return topology


def _joins_by_source(joins: Sequence[tuple[tuple[str, ...], str]]) -> dict[str, tuple[int, ...]]:
    by_source: dict[str, list[int]] = {}
    for index, (sources, _target) in enumerate(joins):
        for source in sources:
            by_source.setdefault(source, []).append(index)
    return {source: tuple(indexes) for source, indexes in by_source.items()}


def _infer_writes(steps: dict[str, Step]) -> None:
    """A step whose return annotation is a TypedDict writes exactly that TypedDict's keys."""
    for name, step in steps.items():
        if step.writes is not None or step.fn is None:
            continue
        try:
            hints = typing.get_type_hints(step.fn)
        except Exception:
            continue
        returned = hints.get("return")
        if returned is not None and is_typeddict(returned):
            steps[name] = _replace_writes(step, frozenset(returned.__annotations__))


def _replace_writes(step: Step, writes: frozenset[str]) -> Step:
    from dataclasses import replace

    return replace(step, writes=writes)


def _successors(topology: Topology, steps: Mapping[str, Step], node: str) -> Iterable[str]:
    yield from topology.edges.get(node, ())
    route = topology.routes.get(node)
    if route is not None:
        yield from (t for t in route.targets if t != END)
    step = steps.get(node)
    if step is not None:
        yield from (t for t in step.routes if t != END)


def _reach(topology: Topology, steps: Mapping[str, Step], roots: Iterable[str], *, avoid: str = "") -> set[str]:
    """Steps reachable from ``roots``; a join target counts once all its sources are reached."""
    seen: set[str] = set()
    frontier = [r for r in roots if r != avoid]
    while True:
        while frontier:
            node = frontier.pop()
            if node in seen:
                continue
            seen.add(node)
            frontier.extend(t for t in _successors(topology, steps, node) if t != avoid and t not in seen)
        fired = [j.target for j in topology.joins if j.target not in seen and j.target != avoid and j.sources <= seen]
        if topology.subscriptions and seen - {START}:
            fired += [s for _t, s in topology.subscriptions if s not in seen and s != avoid]
        if not fired:
            return seen
        frontier.extend(fired)


def _check_reachable(topology: Topology, steps: Mapping[str, Step], fail: Callable[..., typing.NoReturn]) -> None:
    reached = _reach(topology, steps, [START])
    for join in topology.joins:
        before = _reach(topology, steps, [START], avoid=join.target)
        missing = sorted(join.sources - before)
        if missing:
            fail(
                f"can never fire: no path from START reaches {missing} without passing through {join.target!r} itself",
                f"join {sorted(join.sources)} -> {join.target!r}",
            )
    unreachable = sorted(set(steps) - reached)
    if unreachable:
        fail(f"no path from START reaches {unreachable}; connect them with edge(), route() or join()")


def _check_parallel_writes(
    topology: Topology, steps: Mapping[str, Step], schema: StateSchema, fail: Callable[..., typing.NoReturn]
) -> None:
    """Branches of a static fan-out that both *replace* one field are a race: the result would depend on timing."""
    for source, targets in topology.edges.items():
        if len(targets) < 2:
            continue
        reaches = [_reach(topology, steps, [t]) for t in targets]
        regions = [r - set().union(*(o for j, o in enumerate(reaches) if j != i)) for i, r in enumerate(reaches)]
        owner: dict[str, str] = {}
        for region in regions:
            local: dict[str, str] = {}
            for step_name in sorted(region):
                for field in sorted(steps[step_name].writes or ()):
                    if schema.fields[field].reducer is not None:
                        continue
                    if field in owner:
                        fail(
                            f"parallel branches from {source!r} both write field {field!r} "
                            f"(steps {owner[field]!r} and {step_name!r}) and it has no merge rule; annotate it, "
                            f"e.g. Annotated[..., reducers.append], or write different fields",
                            f"field {schema.name}.{field}",
                        )
                    local.setdefault(field, step_name)
            owner.update(local)
