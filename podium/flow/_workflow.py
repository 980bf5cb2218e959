"""``Workflow``: a validated, immutable graph of steps over typed state, ready to run."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeAlias, TypeVar

from podium.errors import ConfigError
from podium.flow._step import END, START

if TYPE_CHECKING:
    from podium.flow._state import StateSchema
    from podium.flow._step import Step
    from podium.flow._validate import Topology
    from podium.journal._events import Event
    from podium.journal._store import Store
    from podium.observe._hooks import Hooks
    from podium.runtime._handle import RunHandle
    from podium.runtime._limits import Limits
    from podium.runtime._result import RunResult
    from podium.runtime._retry import RetryPolicy
    from podium.runtime._runner import Checkpoint, JournalOptions

__all__ = ["StoreArg", "Workflow", "resolve_store"]

S = TypeVar("S")

StoreArg: TypeAlias = "Store | str | Literal[False] | None"
"""Where a run is journaled: a :class:`~podium.journal.Store`, a store URL, None for the default store
(``$PODIUM_STORE`` or ``.podium/podium.db``), or False for no journal at all (nothing survives the process)."""


def resolve_store(store: StoreArg) -> Store | None:
    from podium.journal import default_store, open_store

    if store is False:
        return None
    if store is None:
        return default_store()
    if isinstance(store, str):
        return open_store(store)
    return store


class Workflow(Generic[S]):
    """A graph of steps over state ``S``, made by ``Graph.build()`` or a pattern builder.

    Run it with ``await workflow.run(input)``, ``workflow.run_sync(input)``, or ``workflow.start(input)`` for a
    handle that can cancel it. A workflow is also a step: add it to another graph to run it as a sub-workflow.
    """

    def __init__(
        self,
        *,
        name: str,
        schema: StateSchema,
        steps: Mapping[str, Step],
        topology: Topology,
        output: str | Callable[[Any], Any] | None,
        input: str | Callable[[Any], Any] | None = None,
        limits: Limits | None,
        cancel_siblings: bool,
        compensation_retry: RetryPolicy | None = None,
    ) -> None:
        self.name = name
        self.schema = schema
        self.steps = dict(steps)
        self.topology = topology
        self.limits = limits
        self.cancel_siblings = cancel_siblings
        self.compensation_retry = compensation_retry
        self._output = output
        self._input = input

    def __repr__(self) -> str:
        return f"<Workflow {self.name!r}: {len(self.steps)} steps over {self.schema.name}>"

    @property
    def fingerprint(self) -> str:
        """A hash of the workflow's structure (steps, their options, edges, routes, joins, subscriptions, the
        state type), not of the code inside its steps. A resume refuses a journal begun by another structure."""
        cached: str | None = self.__dict__.get("_fingerprint")
        if cached is None:
            parts = [self.name, self.schema.type.__qualname__]  # not its module: __main__ when run with -m
            for step in self.steps.values():
                child = step.workflow.fingerprint if step.workflow is not None else ""
                parts.append(f"step {step.name} {step.into} {sorted(step.writes or ())} {step.routes} {child}")
            parts += [f"edge {source} {targets}" for source, targets in sorted(self.topology.edges.items())]
            parts += [f"route {source} {route.targets}" for source, route in sorted(self.topology.routes.items())]
            parts += [f"join {sorted(join.sources)} {join.target}" for join in self.topology.joins]
            parts += [f"on {kind.__qualname__} {step}" for kind, step in self.topology.subscriptions]
            cached = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
            self.__dict__["_fingerprint"] = cached
        return cached

    def step_paths(self) -> list[str]:
        """Every step's path, sub-workflows' steps included (``team/write``)."""
        paths = []
        for step in self.steps.values():
            paths.append(step.name)
            if step.workflow is not None:
                paths += [f"{step.name}/{inner}" for inner in step.workflow.step_paths()]
        return paths

    @property
    def state_type(self) -> type[S]:
        return self.schema.type

    @property
    def has_output(self) -> bool:
        """Whether ``build(output=...)`` chose an output (otherwise the output is the final state)."""
        return self._output is not None

    def input_state(self, value: Any) -> S:
        """The initial state for ``value`` taken as *the input itself*, even when it is a mapping.

        ``state_of`` reads a mapping as the state's fields; a parent that hands a sub-workflow a task (which may
        be a dict) uses this instead, so the task lands in the input field whole.
        """
        if isinstance(value, self.schema.type):
            return value  # type: ignore[no-any-return]
        if isinstance(self._input, str):
            value = {self._input: value}
        elif self._input is not None:
            value = self._input(value)
        state: S = self.schema.initial(value)
        return state

    def state_of(self, value: Any) -> S:
        """The initial state for a run's input (see ``Graph.build(input=...)``).

        Raises:
            pydantic.ValidationError: the input does not fit the state type.
        """
        if self._input is not None and not isinstance(value, Mapping | self.schema.type) and value is not None:
            value = {self._input: value} if isinstance(self._input, str) else self._input(value)
        return self.schema.initial(value)  # type: ignore[no-any-return]

    def output_of(self, state: S) -> Any:
        """The workflow's output for a final state."""
        if self._output is None:
            return state
        if isinstance(self._output, str):
            return getattr(state, self._output)
        return self._output(state)

    async def run(
        self,
        input: S | Mapping[str, Any] | Any = None,
        *,
        run_id: str | None = None,
        limits: Limits | None = None,
        hooks: Sequence[Hooks] = (),
        store: StoreArg = None,
        journal: JournalOptions | None = None,
    ) -> RunResult[S]:
        """Run to the end and return the result; a failing step gives ``status="failed"``, not an exception.

        The run is journaled (before its first step) in ``store``, so it can be resumed after a crash, paused for
        a person, inspected and forked.

        Args:
            input: the initial state, a mapping validated into it, None for the state's defaults, or any other
                value that ``Graph.build(input=...)`` turns into the state (e.g. a task for the team patterns).
            run_id: defaults to a new UUID.
            limits: override the workflow's limits for this run.
            hooks: observers of the run's lifecycle.
            store: where to journal the run (see :data:`StoreArg`); the default store unless given.
            journal: lease and snapshot settings.

        Raises:
            pydantic.ValidationError: ``input`` does not fit the state type (nothing has run or been journaled).
            JournalError: the store cannot be used, or the run id exists already.
        """
        from podium.runtime._runner import execute

        return await execute(
            self,
            input,
            run_id=run_id or str(uuid.uuid4()),
            limits=limits,
            hooks=hooks,
            store=resolve_store(store),
            options=journal,
        )

    def run_sync(
        self,
        input: S | Mapping[str, Any] | Any = None,
        *,
        run_id: str | None = None,
        limits: Limits | None = None,
        hooks: Sequence[Hooks] = (),
        store: StoreArg = None,
        journal: JournalOptions | None = None,
    ) -> RunResult[S]:
        """:meth:`run` for code that is not async. Refuses to run inside a running event loop."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.run(input, run_id=run_id, limits=limits, hooks=hooks, store=store, journal=journal))
        raise ConfigError("run_sync() cannot be called from a running event loop; use 'await workflow.run(...)'")

    def start(
        self,
        input: S | Mapping[str, Any] | Any = None,
        *,
        run_id: str | None = None,
        limits: Limits | None = None,
        hooks: Sequence[Hooks] = (),
        store: StoreArg = None,
        journal: JournalOptions | None = None,
    ) -> RunHandle[S]:
        """Start the run as a task and return its handle (``await handle``, ``handle.cancel()``)."""
        from podium.runtime._handle import RunHandle

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise ConfigError(
                "start() needs a running event loop; use run_sync() from code that is not async"
            ) from None
        return RunHandle.start(
            self,
            input,
            run_id=run_id or str(uuid.uuid4()),
            limits=limits,
            hooks=hooks,
            store=resolve_store(store),
            options=journal,
        )

    async def submit(
        self,
        input: S | Mapping[str, Any] | Any = None,
        *,
        run_id: str | None = None,
        store: StoreArg = None,
        records: Sequence[Event] = (),
    ) -> str:
        """Journal a run without running it, for a :class:`~podium.Worker` (in any process) to pick up.

        Args:
            records: journal records written after its acceptance, in the same transaction (a trigger's
                ``trigger_fired``).

        Returns:
            The run's id.

        Raises:
            pydantic.ValidationError: ``input`` does not fit the state type (nothing was journaled).
            RunStateError: a run with this id exists already (nothing was journaled).
        """
        import time

        from podium.journal._codec import encode
        from podium.journal._events import RunAccepted

        resolved = resolve_store(store)
        if resolved is None:
            raise ConfigError("submit() needs a store for workers to find the run in")
        await resolved.open()
        state = self.state_of(input)
        new_id = run_id or str(uuid.uuid4())
        accepted = RunAccepted(
            workflow=self.name, state=encode(state), fingerprint=self.fingerprint, steps=self.step_paths()
        )
        await resolved.create_run(
            new_id, self.name, [accepted, *records], owner=None, lease_seconds=0.0, at=time.time()
        )
        return new_id

    async def resume(
        self,
        run_id: str,
        *,
        store: StoreArg = None,
        limits: Limits | None = None,
        hooks: Sequence[Hooks] = (),
        journal: JournalOptions | None = None,
    ) -> RunResult[S]:
        """Continue a run from its journal: after a crash, after its questions were answered, or after it failed
        or reached a limit (with new ``limits``). Steps whose results are journaled are not run again.

        Raises:
            RunNotFoundError: no such run in the store.
            RunStateError: it completed, another process owns it, or it is a run of another workflow.
            JournalMismatchError: this workflow's code no longer matches what the journal recorded.
        """
        from podium.runtime._runner import execute

        resolved = resolve_store(store)
        if resolved is None:
            raise ConfigError("resume() needs the store the run was journaled in")
        return await execute(
            self, None, run_id=run_id, limits=limits, hooks=hooks, store=resolved, resume=True, options=journal
        )

    async def history(self, run_id: str, *, store: StoreArg = None) -> list[Checkpoint]:
        """The run's state after each top-level superstep, read from its journal (nothing runs)."""
        from podium.runtime._runner import history

        resolved = resolve_store(store)
        if resolved is None:
            raise ConfigError("history() needs the store the run was journaled in")
        return await history(self, resolved, run_id)

    async def fork(
        self,
        run_id: str,
        *,
        at: int | str,
        update: Mapping[str, Any] | None = None,
        store: StoreArg = None,
        new_run_id: str | None = None,
    ) -> str:
        """Make a new run that continues from a point of an old one, optionally with edited state.

        The old run is not touched. Resume the new one (``await workflow.resume(new_id)``) to run it.

        Args:
            run_id: the run to fork.
            at: a superstep number, a task id (``"3.0"``), or a step name (its latest run).
            update: fields to set in the state at that point (validated; merge rules are not applied).
            new_run_id: defaults to a new UUID.

        Returns:
            The new run's id.
        """
        from podium.runtime._fork import fork

        resolved = resolve_store(store)
        if resolved is None:
            raise ConfigError("fork() needs the store the run was journaled in")
        return await fork(self, resolved, run_id, at=at, update=update, new_run_id=new_run_id or str(uuid.uuid4()))

    def mermaid(self) -> str:
        """The graph as a Mermaid flowchart: solid edges are static, dotted ones conditional."""
        lines = ["flowchart TD", f"  {START}([start])", f"  {END}([end])"]
        lines += [f"  {name}[{name}]" for name in self.steps]
        ends = set(self.steps)
        for source, targets in self.topology.edges.items():
            ends.discard(source)
            lines += [f"  {source} --> {target}" for target in targets]
        for source, route in self.topology.routes.items():
            ends.discard(source)
            lines += [f"  {source} -.-> {target}" for target in route.targets]
        for step in self.steps.values():
            if step.routes:
                ends.discard(step.name)
            lines += [f"  {step.name} -.-> {target}" for target in step.routes]
        for join in self.topology.joins:
            for source in sorted(join.sources):
                ends.discard(source)
                lines.append(f"  {source} ==> {join.target}")
        lines += [f"  {name} --> {END}" for name in self.steps if name in ends or name in self.topology.to_end]
        return "\n".join(lines)
