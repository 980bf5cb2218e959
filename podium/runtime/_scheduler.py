"""The scheduler: runs a workflow superstep by superstep.

A run proceeds in *supersteps* (the bulk-synchronous model of Pregel, which LangGraph also uses). Each superstep
runs its tasks concurrently against the same state snapshot, then applies their writes **in task order** (never
completion order) and decides the next tasks from the new state. This is what makes a run deterministic: the
same journal of step results always yields the same states and the same routing decisions, however the tasks
happened to interleave, and it is what lets a resume replay a journal. A superstep with one task runs it inline,
without creating an asyncio task; that is why a sequential chain costs a few microseconds per step.

A superstep is atomic: if one of its tasks waits for a person, the others' results are journaled but none is
applied until the waiting task finishes, after the run resumes.

Parallel branches that are several steps long should be sub-workflows (the pattern builders do this), so that a
slow branch does not hold the others to its pace.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any

from podium.errors import JoinStalledError, JournalMismatchError, RoutingError, StepError
from podium.flow._step import END, Send, Step
from podium.journal._codec import decode, encode
from podium.journal._events import Snapshot, TasksScheduled
from podium.observe._hooks import emit
from podium.runtime._limits import LimitReached, Limits
from podium.runtime._progress import Progress, looping_steps
from podium.runtime._scope import Scope
from podium.runtime._task import Outcome, Run, Suspended, Task, run_parallel, run_task, short

if TYPE_CHECKING:
    from podium.flow._graph import Route
    from podium.flow._workflow import Workflow

__all__ = ["drive"]

Observer = Callable[[Snapshot, list[Task]], None]


async def drive(
    run: Run,
    workflow: Workflow[Any],
    state: Any,
    scope: str,
    id_prefix: str,
    *,
    restore: Snapshot | None = None,
    observe: Observer | None = None,
    limits: Limits | None = None,
) -> Any:
    """Run one workflow (the top one, or a sub-workflow inside a step) to its end; return its final state.

    Args:
        restore: a snapshot to continue from (top level only) instead of the workflow's start.
        observe: called after each superstep with its snapshot and tasks (time-travel reads this).
        limits: a sub-workflow invocation's own limits (see :class:`~podium.Limits`), applied with the run's.
    """
    if limits is None or not _enforcing(run):
        return await _drive(run, workflow, state, scope, id_prefix, restore, observe)
    account = Scope(run, limits, scope[:-1], id_prefix, run.scope_of(id_prefix[:-1]))
    if run.scopes is None:
        run.scopes = {}
    run.scopes[id_prefix] = account
    try:
        if limits.max_seconds is None:
            return await _drive(run, workflow, state, scope, id_prefix, restore, observe)
        deadline = asyncio.timeout(limits.max_seconds)
        try:
            async with deadline:
                return await _drive(run, workflow, state, scope, id_prefix, restore, observe)
        except TimeoutError:
            if not deadline.expired():
                raise
            running = ", ".join(repr(p) for p in run.in_flight if p.startswith(scope)) or "none"
            raise LimitReached(
                "max_seconds",
                f"{account.name} reached its max_seconds={limits.max_seconds:g}; steps still running: {running}",
            ) from None
    finally:
        run.scopes.pop(id_prefix, None)


async def _drive(
    run: Run,
    workflow: Workflow[Any],
    state: Any,
    scope: str,
    id_prefix: str,
    restore: Snapshot | None,
    observe: Observer | None,
) -> Any:
    topology = workflow.topology
    limits = run.limits
    journal = run.journal
    account = run.scope_of(id_prefix)
    max_iterations, max_repeats = _caps(limits, account)
    loops = looping_steps(workflow) if _enforcing(run) else frozenset()
    watched = loops and (max_repeats is not None or any(s.max_repeats is not None for s in workflow.steps.values()))
    progress = Progress(max_repeats, loops) if watched else None
    if restore is not None:
        state = decode(restore.state)
        superstep = restore.superstep
        iterations = dict(restore.iterations)
        join_seen = [set(seen) for seen in restore.join_seen]
        tasks = [
            Task(_step(run, workflow, t["step"], superstep), decode(t.get("item")), "item" in t)
            for t in restore.frontier
        ]
        run.steps_done = restore.steps_done
        run.state = state
    else:
        superstep = 0
        iterations = {}
        join_seen = [set() for _ in topology.joins]
        tasks = await _next(run, workflow, (), state, join_seen, scope, start=True)
    while tasks:
        superstep += 1
        if run.handle is not None and run.handle.cancel_reason is not None:
            raise asyncio.CancelledError(run.handle.cancel_reason)
        if limits.max_steps is not None and run.steps_done + len(tasks) > limits.max_steps:
            raise LimitReached(
                "max_steps",
                f"max_steps={limits.max_steps} reached: {run.steps_done} steps ran and {len(tasks)} more were due",
            )
        if account is not None:
            account.take_steps(len(tasks))
        for index, task in enumerate(tasks):
            task.task_id = f"{id_prefix}{superstep}.{index}"
            task.path = scope + task.step.name
            task.label = f"{task.path}@{task.task_id}" if task.has_item else task.path
        _count_iterations(max_iterations, tasks, iterations)
        if progress is not None:
            progress.check(tasks, state)
        # a lone task needs no schedule of its own: its step_completed (or step_failed) names it
        if (
            journal is not None
            and len(tasks) > 1
            and journal.writable
            and not all(t.task_id in journal.completed for t in tasks)
        ):
            journal.later(TasksScheduled(scope=scope, superstep=superstep, tasks=_described(tasks, ids=True)))
        if run.hooks.on_superstep:
            await emit(
                run.hooks.on_superstep, run_id=run.run_id, scope=scope, index=superstep, tasks=[t.label for t in tasks]
            )
        run.steps_done += len(tasks)
        if len(tasks) == 1:
            outcomes = [await run_task(run, tasks[0], state)]
            failure = _first_failure(outcomes)
        else:
            outcomes, failure = await run_parallel(run, workflow, tasks, state)
            failure = failure or _first_failure(outcomes)
        if failure is None:
            waiting = [question for outcome in outcomes for question in outcome.waiting]
            if waiting:
                raise Suspended(waiting)
        state = workflow.schema.apply(
            state,
            [(o.task.path, o.task.label, o.update) for o in outcomes if o.update],
            run_id=run.run_id,
        )
        if not scope:
            run.state = state
        if failure is not None:
            raise failure
        if progress is not None:
            progress.ran(outcomes)
        ran = tasks
        tasks = await _next(run, workflow, outcomes, state, join_seen, scope, start=False)
        if not scope:
            if observe is not None:
                observe(_snapshot(run, superstep, state, tasks, iterations, join_seen), ran)
            elif journal is not None and journal.writable and superstep % journal.snapshot_every == 0:
                journal.later(_snapshot(run, superstep, state, tasks, iterations, join_seen))
    for join, seen in zip(topology.joins, join_seen, strict=True):
        if seen:
            raise JoinStalledError(
                run_id=run.run_id, join=scope + join.target, waiting_for=tuple(sorted(join.sources - seen))
            )
    return state


def _enforcing(run: Run) -> bool:
    """Whether the run enforces its sub-workflows' limits and no-progress: not a replay that only reads a journal
    (``history``), which goes as far as the journal does, however the run ended."""
    return run.journal is None or run.journal.writable


def _caps(limits: Limits, account: Scope | None) -> tuple[tuple[int, str] | None, int | None]:
    """The ``max_iterations`` of steps that set none (and whose bound it is), and the default ``max_repeats``:
    the run's, or the smaller of the run's and those of the sub-workflow scopes this invocation runs in."""
    iterations = (limits.max_iterations, "") if limits.max_iterations is not None else None
    repeats = limits.max_repeats
    if account is not None:
        scoped = account.max_iterations()
        if scoped is not None and (iterations is None or scoped[0] < iterations[0]):
            iterations = scoped
        bound = account.max_repeats()
        if bound is not None and (repeats is None or bound < repeats):
            repeats = bound
    return iterations, repeats


def _step(run: Run, workflow: Workflow[Any], name: str, superstep: int) -> Step:
    step = workflow.steps.get(name)
    if step is None:
        raise JournalMismatchError(
            f"the snapshot after superstep {superstep} schedules step {name!r}, which the workflow no longer has",
            run_id=run.run_id,
            task_id=f"{superstep + 1}.*",
        )
    return step


def _snapshot(
    run: Run, superstep: int, state: Any, frontier: list[Task], iterations: dict[str, int], join_seen: list[set[str]]
) -> Snapshot:
    return Snapshot(
        superstep=superstep,
        state=encode(state),
        frontier=_described(frontier, ids=False),
        iterations=dict(iterations),
        join_seen=[sorted(seen) for seen in join_seen],
        steps_done=run.steps_done,
    )


def _described(tasks: list[Task], *, ids: bool) -> list[dict[str, Any]]:
    described = []
    for task in tasks:
        entry: dict[str, Any] = {"id": task.task_id, "step": task.step.name} if ids else {"step": task.step.name}
        if task.has_item:
            entry["item"] = encode(task.item)
        described.append(entry)
    return described


def _count_iterations(default: tuple[int, str] | None, tasks: list[Task], iterations: dict[str, int]) -> None:
    counted: dict[str, int] = {}
    for task in tasks:
        name = task.step.name
        if name in counted:
            task.iteration = counted[name]
            continue
        count = counted[name] = task.iteration = iterations.get(name, 0) + 1
        own = task.step.max_iterations
        cap = own if own is not None else default[0] if default is not None else None
        if cap is not None and count > cap:
            whose = f" (the bound of {default[1]})" if own is None and default is not None and default[1] else ""
            raise LimitReached("max_iterations", f"step {task.path!r} reached its max_iterations={cap}{whose}")
        iterations[name] = count


def _first_failure(outcomes: Sequence[Outcome]) -> StepError | None:
    for outcome in outcomes:
        if outcome.error is not None and not outcome.handled:
            return outcome.error
    return None


async def _next(
    run: Run,
    workflow: Workflow[Any],
    outcomes: Sequence[Outcome],
    state: Any,
    join_seen: list[set[str]],
    scope: str,
    *,
    start: bool,
) -> list[Task]:
    """The next superstep's tasks, in a deterministic order; a step named by several sources runs once."""
    topology = workflow.topology
    steps = workflow.steps
    tasks: list[Task] = []
    plain: set[str] = set()
    sources: list[tuple[str, str, Sequence[str | Send], list[Any] | None, bool]] = (
        [("__start__", "", (), None, False)]
        if start
        else [(o.task.step.name, o.task.task_id, o.goto, o.events, o.diverted) for o in outcomes if not o.cancelled]
    )
    for name, task_id, goto, events, diverted in sources:
        chosen: list[str | Send] = list(goto)
        if not diverted:  # a failure that on_error sent elsewhere does not go the step's own way
            chosen.extend(topology.edges.get(name, ()))
            route = topology.routes.get(name)
            if route is not None:
                chosen.extend(_evaluate_route(run, route, state, scope + name))
            for index in topology.joins_of.get(name, ()):
                seen = join_seen[index]
                seen.add(name)
                join = topology.joins[index]
                if seen >= join.sources:
                    seen.clear()
                    chosen.append(join.target)
        for event in events or ():
            subscribers = {s: None for t, s in topology.subscriptions if isinstance(event, t)}
            chosen.extend(Send(subscriber, event) for subscriber in subscribers)  # once per step and event
        for target in chosen:
            if isinstance(target, Send):
                step = steps.get(target.to)
                if step is None:
                    raise RoutingError(
                        f"sent an item to unknown step {target.to!r}", run_id=run.run_id, step=scope + name
                    )
                tasks.append(Task(step, target.item, True))
            elif target != END and target not in plain:
                plain.add(target)
                tasks.append(Task(steps[target], None, False))
        if run.hooks.on_route and chosen:
            labels = [t if isinstance(t, str) else f"{t.to}[{short(t.item, 40)}]" for t in chosen]
            await emit(run.hooks.on_route, run_id=run.run_id, step=scope + name, task_id=task_id, targets=labels)
    return tasks


def _evaluate_route(run: Run, route: Route, state: Any, source: str) -> list[str | Send]:
    try:
        choice = route.fn(state)
    except Exception as exc:
        raise RoutingError(
            f"its route function raised {type(exc).__name__}: {exc}", run_id=run.run_id, step=source
        ) from exc
    if route.mapping is not None:
        if not isinstance(choice, Hashable) or choice not in route.mapping:
            raise RoutingError(
                f"its route returned {choice!r}, not one of {list(route.mapping)}", run_id=run.run_id, step=source
            )
        return [route.mapping[choice]]
    if choice is None:
        return []
    picked = [choice] if isinstance(choice, str | Send) else list(choice) if isinstance(choice, list | tuple) else None
    if picked is None or not all(isinstance(t, str | Send) for t in picked):
        raise RoutingError(
            f"its route returned {short(choice)}; return a step name, a list of names, Send tasks, END or None",
            run_id=run.run_id,
            step=source,
        )
    for target in picked:
        name = target.to if isinstance(target, Send) else target
        if name not in route.targets:
            raise RoutingError(
                f"its route returned {name!r}, which is not among its targets {list(route.targets)}",
                run_id=run.run_id,
                step=source,
            )
    return picked
