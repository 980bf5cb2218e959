"""``Graph``: the builder that declares steps and edges, validates them, and builds a :class:`Workflow`.

::

    g = Graph(State, name="content")
    g.add(research, into="notes")
    g.add(write, into="draft")
    g.edge(START, "research").edge("research", "write").edge("write", END)
    workflow = g.build()

Every mistake that can be seen without running is raised by :meth:`Graph.build` as a
:class:`~podium.errors.WorkflowDefinitionError` that says what is wrong and where.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

from podium.errors import WorkflowDefinitionError
from podium.flow._state import StateSchema
from podium.flow._step import END, START, Step, StepSpec, make_step
from podium.flow._validate import validate
from podium.flow._workflow import Workflow
from podium.runtime._limits import Limits
from podium.runtime._retry import RetryPolicy

__all__ = ["Graph", "Route"]

S = TypeVar("S")
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Route:
    """A conditional edge: after ``source`` runs, ``fn(state)`` names the next step(s) among ``targets``.

    ``fn`` may return a name, a list of names, :class:`~podium.Send` tasks, or ``END``. When ``targets`` is a
    mapping, ``fn`` returns one of its keys and the run goes to the mapped step.
    """

    source: str
    fn: Callable[[Any], Any]
    targets: tuple[str, ...]
    mapping: Mapping[Any, str] | None


class Graph(Generic[S]):
    """Builds a workflow over the state type ``S`` (a pydantic model or a dataclass).

    Args:
        state: the state type.
        name: the workflow's name, used in errors, hooks and run listings.
    """

    def __init__(self, state: type[S], *, name: str = "workflow") -> None:
        self.name = name
        self._state_type = state
        self._steps: dict[str, Step] = {}
        self._edges: list[tuple[str, str]] = []
        self._routes: dict[str, Route] = {}
        self._joins: list[tuple[tuple[str, ...], str]] = []
        self._subscriptions: list[tuple[type[Any], str]] = []

    # -- steps ------------------------------------------------------------------------------------------

    def add(
        self,
        fn: Callable[..., Any] | Workflow[Any] | StepSpec,
        *,
        name: str | None = None,
        into: str | None = None,
        writes: Iterable[str] | None = None,
        routes: Iterable[str] = (),
        timeout: float | None = None,
        max_iterations: int | None = None,
        on_error: Callable[..., Any] | str | None = None,
        thread: bool | None = None,
        input: Callable[..., Any] | None = None,
        output: Callable[..., Any] | None = None,
        retry: RetryPolicy | None = None,
        compensate: Callable[..., Any] | None = None,
        limits: Limits | None = None,
        max_repeats: int | None = None,
        fallbacks: Sequence[Callable[..., Any]] = (),
    ) -> Graph[S]:
        """Add a step.

        Args:
            fn: ``fn()``, ``fn(state)`` or ``fn(state, item)``, sync or async; a :class:`Workflow` to run
                as a sub-workflow; or a :func:`~podium.step` spec (options given here override its own).
            name: defaults to the function's (or workflow's) name.
            into: store the step's return value in this field instead of reading it as a dict of updates.
            writes: the fields the step may write; lets ``build()`` catch parallel writes without a merge rule.
            routes: the steps this step may choose itself with :class:`~podium.Command` or
                :class:`~podium.Send`.
            timeout: seconds before the step is cancelled and fails.
            max_iterations: how many supersteps this step may run in, per run (loops).
            on_error: what a failure becomes when retries and fallbacks did not help, instead of failing the
                run. ``on_error(state, error)`` or ``on_error(state, error, item)`` returns an update (read like
                the step's own return value); one that returns ``Command(goto=...)`` or ``Send`` (to a declared
                route) takes another path: the step's own edges, route and joins are not followed. A step's name
                (or :func:`~podium.divert`) runs that step instead, with the :class:`~podium.Failure` as its item;
                :func:`~podium.escalate` asks a person for the step's output. A handler may ask a person itself.
            thread: run a sync ``fn`` in a worker thread so it cannot block other branches. Defaults to True
                for sync callables; pass False for cheap pure functions.
            input: for a sub-workflow, ``input(state)`` or ``input(state, item)`` gives the child's input.
                Defaults to the item when there is one, else the parent's fields that the child also has.
            output: for a sub-workflow, ``output(child_state)``, ``output(child_state, state)`` or
                ``output(child_state, state, item)`` gives this step's return value. Defaults to the child's
                output (see ``Graph.build(output=...)``).
            retry: try the step again when it fails transiently (a timeout, a connection, a model's 429/5xx):
                see :class:`~podium.RetryPolicy`. Every attempt is journaled.
            compensate: ``compensate(output)`` or ``compensate(output, state)`` undoes the step's side effects if
                the run fails or is cancelled after it finished (saga compensation: finished steps are undone in
                reverse order, journaled and retried). ``output`` is what the step returned (its ``into`` value,
                or its update). It may run again after a crash, so make it idempotent.
            limits: for a sub-workflow, the limits of each of its invocations, counted inside it and applied
                with the run's (instead of the child's own ``build(limits=...)``): see :class:`~podium.Limits`.
            max_repeats: how many times this step may run again on a state it already ran on (overrides
                ``Limits.max_repeats``; see there what counts as the same state).
            fallbacks: callables or agents with the step's signature, tried in order with the same state and
                item when the step fails for good (its retries spent; each alternative is retried by the same
                policy). The first to succeed gives the step's outcome; every failed attempt and every switch is
                journaled (``step_failed``, ``fallback_taken``). Cancellation and limits are not failures.
        """
        if isinstance(fn, StepSpec):
            options = dict(fn.options)
            options.update(
                {
                    k: v
                    for k, v in {
                        "into": into,
                        "writes": writes,
                        "routes": tuple(routes) or None,
                        "timeout": timeout,
                        "max_iterations": max_iterations,
                        "on_error": on_error,
                        "thread": thread,
                        "input": input,
                        "output": output,
                        "retry": retry,
                        "compensate": compensate,
                        "limits": limits,
                        "max_repeats": max_repeats,
                        "fallbacks": tuple(fallbacks) or None,
                    }.items()
                    if v is not None
                }
            )
            return self.add(fn.fn, name=name or fn.name, **options)
        workflow = fn if isinstance(fn, Workflow) else None
        step_name = name or (workflow.name if workflow else getattr(fn, "__name__", None))
        if not step_name or step_name in (START, END) or "/" in step_name:
            raise WorkflowDefinitionError(
                f"cannot name a step {step_name!r}; pass name=... (no '/', not START or END)",
                workflow=self.name,
            )
        if step_name in self._steps:
            raise WorkflowDefinitionError(
                "a step with this name was already added", workflow=self.name, where=f"step {step_name!r}"
            )
        try:
            self._steps[step_name] = make_step(
                step_name,
                fn,
                into=into,
                writes=writes,
                routes=routes,
                timeout=timeout,
                max_iterations=max_iterations,
                on_error=on_error,
                thread=thread,
                input=input,
                output=output,
                retry=retry,
                compensate=compensate,
                limits=limits,
                max_repeats=max_repeats,
                fallbacks=fallbacks,
            )
        except (TypeError, ValueError) as exc:
            raise WorkflowDefinitionError(str(exc), workflow=self.name, where=f"step {step_name!r}") from exc
        return self

    @overload
    def step(self, fn: F, /) -> F: ...
    @overload
    def step(self, /, **options: Any) -> Callable[[F], F]: ...

    def step(self, fn: F | None = None, /, **options: Any) -> F | Callable[[F], F]:
        """Decorator form of :meth:`add`: ``@graph.step`` or ``@graph.step(into="draft")``."""

        def register(f: F) -> F:
            self.add(f, **options)
            return f

        return register(fn) if fn is not None else register

    # -- edges ------------------------------------------------------------------------------------------

    def edge(self, source: str, target: str) -> Graph[S]:
        """After ``source`` runs, run ``target``. ``source`` may be START; ``target`` may be END."""
        self._edges.append((source, target))
        return self

    def chain(self, *names: str) -> Graph[S]:
        """Edges between consecutive names: ``chain(START, "a", "b", END)``."""
        for source, target in itertools.pairwise(names):
            self.edge(source, target)
        return self

    def route(self, source: str, fn: Callable[[Any], Any], targets: Sequence[str] | Mapping[Any, str]) -> Graph[S]:
        """After ``source`` runs, ``fn(state)`` chooses the next step(s) among ``targets``."""
        if source in self._routes:
            raise WorkflowDefinitionError(
                "already has a route; combine the two functions into one",
                workflow=self.name,
                where=f"step {source!r}",
            )
        if isinstance(targets, Mapping):
            self._routes[source] = Route(source, fn, tuple(dict.fromkeys(targets.values())), dict(targets))
        else:
            self._routes[source] = Route(source, fn, tuple(targets), None)
        return self

    def join(self, sources: Sequence[str], target: str) -> Graph[S]:
        """Run ``target`` once every one of ``sources`` has run (since ``target`` last ran)."""
        self._joins.append((tuple(sources), target))
        return self

    def on(self, event_type: type[Any], step: str) -> Graph[S]:
        """Run ``step(state, event)`` in the next superstep whenever a step emits an event of ``event_type``."""
        self._subscriptions.append((event_type, step))
        return self

    # -- build ------------------------------------------------------------------------------------------

    def build(
        self,
        *,
        output: str | Callable[[Any], Any] | None = None,
        input: str | Callable[[Any], Any] | None = None,
        limits: Limits | None = None,
        on_branch_failure: str = "cancel",
        compensation_retry: RetryPolicy | None = None,
    ) -> Workflow[S]:
        """Validate the graph and return the runnable :class:`Workflow`.

        Args:
            output: a field name or ``fn(state)`` that gives ``RunResult.output``; defaults to the final state.
            input: how a run's input becomes the state when it is neither a state nor a mapping: the name of
                the field to put it in, or ``fn(input) -> state or mapping``. E.g. ``input="task"`` lets
                ``workflow.run("Write about tides")`` work.
            limits: the default limits of this workflow's runs; when it runs as a sub-workflow, the limits of each
                invocation, with the run's (unless ``Graph.add(child, limits=...)`` gives others).
            on_branch_failure: when one parallel task fails, ``"cancel"`` the others at once, or ``"finish"``
                them first (their results are kept) and then fail.
            compensation_retry: how a failing compensation is tried again (see ``add(compensate=...)``); by
                default 5 attempts, 0.5 s apart and doubling, for any exception.

        Raises:
            WorkflowDefinitionError: what is wrong and where.
        """
        schema = StateSchema(self._state_type, workflow=self.name)
        if on_branch_failure not in ("cancel", "finish"):
            raise WorkflowDefinitionError(
                f"on_branch_failure must be 'cancel' or 'finish', not {on_branch_failure!r}",
                workflow=self.name,
            )
        if isinstance(input, str) and input not in schema.fields:
            raise WorkflowDefinitionError(
                f"input field {input!r} is not a field of {schema.name}",
                workflow=self.name,
                where="build(input=...)",
            )
        topology = validate(
            name=self.name,
            schema=schema,
            steps=self._steps,
            edges=self._edges,
            routes=self._routes,
            joins=self._joins,
            subscriptions=self._subscriptions,
            output=output,
        )
        _check_diverts(self.name, self._steps, schema, {source for sources, _ in self._joins for source in sources})
        return Workflow(
            name=self.name,
            schema=schema,
            steps=dict(self._steps),
            topology=topology,
            output=output,
            input=input,
            limits=limits,
            cancel_siblings=on_branch_failure == "cancel",
            compensation_retry=compensation_retry,
        )


def _check_diverts(workflow: str, steps: Mapping[str, Step], schema: StateSchema, join_sources: set[str]) -> None:
    """A step that diverts its failures must hand the target the :class:`~podium.Failure`: as the target's item, or
    in a field the state has (one with a merge rule, if several tasks of the step may fail at once). It must not
    feed a join, which would then wait for it forever. (That the target exists is checked with the step's
    routes.)"""
    from podium.runtime._divert import Divert

    for step in steps.values():
        handler = step.on_error
        if not isinstance(handler, Divert):
            continue
        where = f"step {step.name!r}"
        if step.name in join_sources:
            raise WorkflowDefinitionError(
                f"on_error diverts to {handler.to!r}, but the step feeds a join, which would wait for it forever; "
                f"recover with an update instead (on_error returning a dict), or join after the divert target",
                workflow=workflow,
                where=where,
            )
        if handler.into is not None:
            field = schema.fields.get(handler.into)
            if field is None:
                raise WorkflowDefinitionError(
                    f"on_error puts the failure into field {handler.into!r}, which {schema.name} does not have; "
                    f"it has {sorted(schema.fields)}",
                    workflow=workflow,
                    where=where,
                )
            if step.takes_item and field.reducer is None:
                raise WorkflowDefinitionError(
                    f"on_error puts the failure into field {handler.into!r}, but several tasks of this step may "
                    f"fail in one superstep and the field has no merge rule; give it one (reducers.append) or "
                    f"divert with the failure as the target's item",
                    workflow=workflow,
                    where=where,
                )
        elif handler.to != END and not steps[handler.to].takes_item:
            raise WorkflowDefinitionError(
                f"on_error diverts to {handler.to!r}, which takes no item to receive the Failure; give it a "
                f"(state, failure) signature, or use divert({handler.to!r}, into='<field>')",
                workflow=workflow,
                where=where,
            )
