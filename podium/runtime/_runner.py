"""The scheduler: runs a workflow superstep by superstep.

A run proceeds in *supersteps* (the bulk-synchronous model of Pregel, which LangGraph also uses). Each superstep
runs its tasks concurrently against the same state snapshot, then applies their writes **in task order** (never
completion order) and decides the next tasks from the new state. This is what makes a run deterministic: the
same journal of step results always yields the same states and the same routing decisions, however the tasks
happened to interleave. A superstep with one task runs it inline, without creating an asyncio task; that is why a
sequential chain costs a few microseconds per step.

Parallel branches that are several steps long should be sub-workflows (the pattern builders do this), so that a
slow branch does not hold the others to its pace.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from podium.errors import (
    JoinStalledError,
    PodiumError,
    RoutingError,
    StepError,
    StepFailedError,
    StepOutputError,
    WorkflowDefinitionError,
)
from podium.flow._step import END, Command, Send, Step
from podium.observe._hooks import HookSet, emit
from podium.runtime._context import StepContext, _current
from podium.runtime._limits import LimitReached, Limits
from podium.runtime._result import RunResult, RunStatus
from podium.runtime._threads import run_in_thread

if TYPE_CHECKING:
    from podium.flow._graph import Route
    from podium.flow._workflow import Workflow
    from podium.observe._hooks import Hooks
    from podium.runtime._handle import RunHandle

__all__ = ["execute"]

_DEFAULT_LIMITS = Limits()


class _Run:
    """What a run's top-level workflow and its sub-workflows share."""

    __slots__ = ("clock", "handle", "hooks", "in_flight", "limits", "run_id", "state", "steps_done")

    def __init__(self, run_id: str, limits: Limits, hooks: HookSet, handle: RunHandle[Any] | None) -> None:
        self.run_id = run_id
        self.limits = limits
        self.hooks = hooks
        self.handle = handle
        self.clock: Callable[[], float] = time.time
        self.steps_done = 0
        self.in_flight: dict[str, None] = {}
        self.state: Any = None


class _Task:
    __slots__ = ("has_item", "item", "iteration", "label", "path", "step", "task_id")

    def __init__(self, step: Step, item: Any, has_item: bool) -> None:
        self.iteration = 1
        self.step = step
        self.item = item
        self.has_item = has_item
        self.task_id = ""
        self.path = ""
        self.label = ""


class _Outcome:
    __slots__ = ("cancelled", "error", "events", "goto", "handled", "task", "update")

    def __init__(self, task: _Task) -> None:
        self.task = task
        self.update: Mapping[str, Any] | None = None
        self.goto: Sequence[str | Send] = ()
        self.events: list[Any] | None = None
        self.error: StepError | None = None
        self.handled = False
        self.cancelled = False


async def execute(
    workflow: Workflow[Any],
    input: Any,
    *,
    run_id: str,
    limits: Limits | None,
    hooks: Sequence[Hooks],
    handle: RunHandle[Any] | None = None,
) -> RunResult[Any]:
    """Run ``workflow`` from ``input`` to its end and return the result; see ``Workflow.run``."""
    if handle is not None:
        handle.started = True
    run = _Run(run_id, limits or workflow.limits or _DEFAULT_LIMITS, HookSet(hooks), handle)
    state = workflow.state_of(input)
    run.state = state
    started = run.clock()
    status, error, reason, limit, output = RunStatus.COMPLETED, None, None, None, None
    deadline = asyncio.timeout(run.limits.max_seconds) if run.limits.max_seconds else None
    try:
        if run.hooks.on_run_start:
            await emit(run.hooks.on_run_start, run_id=run_id, workflow=workflow.name, state=state)
        if deadline is None:
            state = await _drive(run, workflow, state, "", "")
        else:
            async with deadline:
                state = await _drive(run, workflow, state, "", "")
        output = workflow.output_of(state)
    except LimitReached as hit:
        status, reason, limit, state = RunStatus.LIMITED, hit.reason, hit.limit, run.state
    except TimeoutError:
        if deadline is None or not deadline.expired():
            raise
        running = ", ".join(repr(p) for p in run.in_flight) or "none"
        status, limit, state = RunStatus.LIMITED, "max_seconds", run.state
        reason = f"max_seconds={run.limits.max_seconds:g} reached; steps still running: {running}"
    except (StepError, JoinStalledError) as exc:
        status, error, reason, state = RunStatus.FAILED, exc, str(exc), run.state
    except asyncio.CancelledError:
        if not _cancelled_by(handle):
            raise
        status, reason, state = RunStatus.CANCELLED, handle.cancel_reason if handle else None, run.state
    result = RunResult(
        run_id=run_id,
        workflow=workflow.name,
        status=status,
        state=state,
        output=output,
        error=error,
        reason=reason,
        limit=limit,
        steps=run.steps_done,
        started_at=started,
        finished_at=run.clock(),
    )
    if run.hooks.on_run_finish:
        try:
            await emit(run.hooks.on_run_finish, run_id=run_id, result=result)
        except asyncio.CancelledError:
            if not _cancelled_by(handle):
                raise  # a cancel() that arrives while the run reports its end changes nothing about it
    return result


def _cancelled_by(handle: RunHandle[Any] | None) -> bool:
    """Whether the cancellation being handled is the handle's ``cancel()`` (then absorbed) or the caller's own."""
    if handle is None or handle.cancel_reason is None:
        return False
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()
    return True


async def _drive(run: _Run, workflow: Workflow[Any], state: Any, scope: str, id_prefix: str) -> Any:
    """Run one workflow (the top one, or a sub-workflow inside a step) to its end; return its final state."""
    topology = workflow.topology
    limits = run.limits
    iterations: dict[str, int] = {}
    join_seen: list[set[str]] = [set() for _ in topology.joins]
    tasks, decisions = _next_tasks(run, workflow, (), state, join_seen, scope, start=True)
    for step, task_id, targets in decisions:
        await emit(run.hooks.on_route, run_id=run.run_id, step=step, task_id=task_id, targets=targets)
    superstep = 0
    while tasks:
        superstep += 1
        if run.handle is not None and run.handle.cancel_reason is not None:
            raise asyncio.CancelledError(run.handle.cancel_reason)
        if limits.max_steps is not None and run.steps_done + len(tasks) > limits.max_steps:
            raise LimitReached(
                "max_steps",
                f"max_steps={limits.max_steps} reached: {run.steps_done} steps ran and {len(tasks)} more were due",
            )
        for index, task in enumerate(tasks):
            task.task_id = f"{id_prefix}{superstep}.{index}"
            task.path = scope + task.step.name
            task.label = f"{task.path}@{task.task_id}" if task.has_item else task.path
        _count_iterations(limits, tasks, iterations)
        if run.hooks.on_superstep:
            await emit(
                run.hooks.on_superstep,
                run_id=run.run_id,
                scope=scope,
                index=superstep,
                tasks=[t.label for t in tasks],
            )
        run.steps_done += len(tasks)
        if len(tasks) == 1:
            outcomes = [await _run_task(run, tasks[0], state)]
            failure = _first_failure(outcomes)
        else:
            outcomes, failure = await _run_parallel(run, workflow, tasks, state)
            failure = failure or _first_failure(outcomes)
        state = workflow.schema.apply(
            state,
            [(o.task.path, o.task.label, o.update) for o in outcomes if o.update],
            run_id=run.run_id,
        )
        if not scope:
            run.state = state
        if failure is not None:
            raise failure
        tasks, decisions = _next_tasks(run, workflow, outcomes, state, join_seen, scope, start=False)
        for step, task_id, targets in decisions:
            await emit(run.hooks.on_route, run_id=run.run_id, step=step, task_id=task_id, targets=targets)
    for join, seen in zip(topology.joins, join_seen, strict=True):
        if seen:
            raise JoinStalledError(
                run_id=run.run_id, join=scope + join.target, waiting_for=tuple(sorted(join.sources - seen))
            )
    return state


def _count_iterations(limits: Limits, tasks: list[_Task], iterations: dict[str, int]) -> None:
    counted: dict[str, int] = {}
    for task in tasks:
        name = task.step.name
        if name in counted:
            task.iteration = counted[name]
            continue
        count = counted[name] = task.iteration = iterations.get(name, 0) + 1
        cap = task.step.max_iterations if task.step.max_iterations is not None else limits.max_iterations
        if cap is not None and count > cap:
            raise LimitReached("max_iterations", f"step {task.path!r} reached its max_iterations={cap}")
        iterations[name] = count


def _first_failure(outcomes: Sequence[_Outcome]) -> StepError | None:
    for outcome in outcomes:
        if outcome.error is not None and not outcome.handled:
            return outcome.error
    return None


async def _run_parallel(
    run: _Run, workflow: Workflow[Any], tasks: list[_Task], state: Any
) -> tuple[list[_Outcome], StepError | None]:
    """Run a superstep's tasks concurrently; on an unhandled failure, cancel the rest if the workflow says so."""
    loop = asyncio.get_running_loop()
    futures: list[asyncio.Task[_Outcome]] = []
    first: list[_Outcome] = []

    def on_done(future: asyncio.Task[_Outcome]) -> None:
        if future.cancelled():
            return
        if future.exception() is not None:  # a limit reached inside a step: stop every branch
            stop = True
        else:
            outcome = future.result()
            if first or outcome.error is None or outcome.handled:
                return
            first.append(outcome)
            stop = workflow.cancel_siblings
        if stop:
            for other in futures:
                if not other.done():
                    other.cancel()

    for task in tasks:
        future = loop.create_task(_run_task(run, task, state))
        future.add_done_callback(on_done)
        futures.append(future)
    try:
        await asyncio.wait(futures)
    except asyncio.CancelledError:
        for future in futures:
            future.cancel()
        await asyncio.wait(futures)
        raise
    for future in futures:
        if not future.cancelled() and future.exception() is not None:
            raise future.exception()  # type: ignore[misc]
    outcomes = []
    for task, future in zip(tasks, futures, strict=True):
        if future.cancelled():
            outcome = _Outcome(task)
            outcome.cancelled = True
            run.in_flight.pop(task.label, None)  # cancelled because a sibling failed: no longer running
            if run.hooks.on_step_fail:
                await emit(
                    run.hooks.on_step_fail,
                    run_id=run.run_id,
                    step=task.path,
                    task_id=task.task_id,
                    attempt=1,
                    error=asyncio.CancelledError("a parallel branch failed"),
                    handled=False,
                )
        else:
            outcome = future.result()  # _run_task catches everything but cancellation
        outcomes.append(outcome)
    # the failure to report is the one that happened first, not the first in task order
    return outcomes, (first[0].error if first else None)


async def _run_task(run: _Run, task: _Task, state: Any) -> _Outcome:
    """Run one task; every failure becomes the outcome's error, only cancellation propagates."""
    step = task.step
    outcome = _Outcome(task)
    ctx = StepContext(
        run_id=run.run_id,
        step=task.path,
        task_id=task.task_id,
        attempt=1,
        iteration=task.iteration,
        started_at=run.clock(),
    )
    hooks = run.hooks
    if hooks.on_step_start:
        await emit(
            hooks.on_step_start,
            run_id=run.run_id,
            step=task.path,
            task_id=task.task_id,
            attempt=1,
            item=task.item,
        )
    run.in_flight[task.label] = None
    token = _current.set(ctx)
    try:
        result = await _call(run, task, state)
        _normalize(outcome, result, run.run_id)
    except (asyncio.CancelledError, LimitReached):
        raise
    except Exception as exc:
        outcome.error = _as_step_error(exc, run.run_id, task)
        if step.on_error is not None:
            try:
                args = (state, outcome.error, task.item)[: step.on_error_arity]
                recovered = step.on_error(*args)
                if inspect.isawaitable(recovered):
                    recovered = await recovered
                outcome.goto, outcome.update = (), None  # nothing of the failed output survives
                _normalize(outcome, recovered, run.run_id)
                outcome.handled = True
            except Exception as handler_exc:
                outcome.error = StepFailedError(
                    f"its on_error handler raised {type(handler_exc).__name__}: {handler_exc}",
                    run_id=run.run_id,
                    step=task.path,
                )
                outcome.error.__cause__ = handler_exc
    finally:
        _current.reset(token)
    # a cancelled task stays in in_flight: the run is ending, and its reason names what was running
    run.in_flight.pop(task.label, None)
    outcome.events = ctx._events
    if outcome.error is not None:
        if hooks.on_step_fail:
            await emit(
                hooks.on_step_fail,
                run_id=run.run_id,
                step=task.path,
                task_id=task.task_id,
                attempt=1,
                error=outcome.error,
                handled=outcome.handled,
            )
    elif hooks.on_step_finish:
        await emit(
            hooks.on_step_finish,
            run_id=run.run_id,
            step=task.path,
            task_id=task.task_id,
            attempt=1,
            update=outcome.update,
            duration=run.clock() - ctx.started_at,
        )
    return outcome


async def _call(run: _Run, task: _Task, state: Any) -> Any:
    step = task.step
    call: Awaitable[Any]
    if step.workflow is not None:
        call = _call_workflow(run, task, state)
    else:
        fn = step.fn
        assert fn is not None
        args: tuple[Any, ...] = (state, task.item)[: step.arity]
        if task.has_item and step.arity < 2:
            raise RoutingError(
                "was sent an item but takes no item; give it a (state, item) signature",
                run_id=run.run_id,
                step=task.path,
            )
        if step.is_async:
            call = fn(*args)
        elif step.thread:
            call = _awaited(run_in_thread(fn, *args))
        else:
            result = fn(*args)
            if not inspect.isawaitable(result):
                return result
            call = result
    if step.timeout is None:
        return await call
    try:
        async with asyncio.timeout(step.timeout):
            return await call
    except TimeoutError as exc:
        raise StepFailedError(
            f"did not finish within its timeout of {step.timeout:g} s", run_id=run.run_id, step=task.path
        ) from exc


async def _awaited(call: Awaitable[Any]) -> Any:
    """A sync callable may still return an awaitable (an async function behind a plain decorator)."""
    result = await call
    return await result if inspect.isawaitable(result) else result


async def _call_workflow(run: _Run, task: _Task, state: Any) -> Any:
    step = task.step
    child = step.workflow
    assert child is not None
    if step.input is not None:
        child_input = step.input(*(state, task.item)[: step.arity])
    elif task.has_item:
        child_input = task.item
    else:
        child_input = child.schema.project(state)
    child_state = child.state_of(child_input)
    final = await _drive(run, child, child_state, task.path + "/", task.task_id + "/")
    if step.output is None:
        return child.output_of(final)
    return step.output(*(final, state, task.item)[: step.output_arity])


def _normalize(outcome: _Outcome, result: Any, run_id: str) -> None:
    """Read a step's return value as an update and a routing choice, or raise StepOutputError."""
    task = outcome.task
    step = task.step
    if isinstance(result, Command):
        goto = result.goto
        outcome.goto = (goto,) if isinstance(goto, str | Send) else tuple(goto)
        result = result.update
    elif isinstance(result, Send):
        outcome.goto, result = (result,), None
    elif (
        isinstance(result, list)
        and step.into is None
        and (result or step.routes)  # [] from a step that routes is a fan-out over no items
        and all(isinstance(x, Send) for x in result)
    ):
        outcome.goto, result = tuple(result), None
    for target in outcome.goto:
        name = target.to if isinstance(target, Send) else target
        if name not in step.routes and name != END:
            declared = [r for r in step.routes if r != END]
            raise RoutingError(
                f"chose {name!r}, which is not among its declared routes {declared} (or END)",
                run_id=run_id,
                step=task.path,
            )
    if result is None:
        return
    if step.into is not None:
        outcome.update = {step.into: result}
        return
    if not isinstance(result, Mapping):
        raise StepOutputError(
            f"returned {type(result).__name__} {_short(result)}; return a dict of field updates, add the step "
            f"with into='<field>' to store its value, or return Command/Send",
            run_id=run_id,
            step=task.path,
        )
    if step.writes is not None:
        undeclared = [key for key in result if key not in step.writes]
        if undeclared:
            raise StepOutputError(
                f"wrote {undeclared}, which are not in its declared writes {sorted(step.writes)}",
                run_id=run_id,
                step=task.path,
            )
    outcome.update = result


def _next_tasks(
    run: _Run,
    workflow: Workflow[Any],
    outcomes: Sequence[_Outcome],
    state: Any,
    join_seen: list[set[str]],
    scope: str,
    *,
    start: bool,
) -> tuple[list[_Task], list[tuple[str, str, list[str]]]]:
    """The next superstep's tasks, in a deterministic order; a step named by several sources runs once.

    Also returns the routing decisions, for the ``on_route`` hooks, when any are registered.
    """
    topology = workflow.topology
    steps = workflow.steps
    tasks: list[_Task] = []
    decisions: list[tuple[str, str, list[str]]] = []
    plain: set[str] = set()
    sources: list[tuple[str, str, Sequence[str | Send], list[Any] | None]] = (
        [("__start__", "", (), None)]
        if start
        else [(o.task.step.name, o.task.task_id, o.goto, o.events) for o in outcomes if not o.cancelled]
    )
    for name, task_id, goto, events in sources:
        chosen: list[str | Send] = list(goto)
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
                tasks.append(_Task(step, target.item, True))
            elif target != END and target not in plain:
                plain.add(target)
                tasks.append(_Task(steps[target], None, False))
        if run.hooks.on_route and chosen:
            labels = [t if isinstance(t, str) else f"{t.to}[{_short(t.item, 40)}]" for t in chosen]
            decisions.append((scope + name, task_id, labels))
    return tasks, decisions


def _evaluate_route(run: _Run, route: Route, state: Any, source: str) -> list[str | Send]:
    try:
        choice = route.fn(state)
    except Exception as exc:
        raise RoutingError(
            f"its route function raised {type(exc).__name__}: {exc}", run_id=run.run_id, step=source
        ) from exc
    if route.mapping is not None:
        if not isinstance(choice, Hashable) or choice not in route.mapping:
            raise RoutingError(
                f"its route returned {choice!r}, not one of {list(route.mapping)}",
                run_id=run.run_id,
                step=source,
            )
        return [route.mapping[choice]]
    if choice is None:
        return []
    picked = [choice] if isinstance(choice, str | Send) else list(choice) if isinstance(choice, list | tuple) else None
    if picked is None or not all(isinstance(t, str | Send) for t in picked):
        raise RoutingError(
            f"its route returned {_short(choice)}; return a step name, a list of names, Send tasks, END or None",
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


def _as_step_error(exc: Exception, run_id: str, task: _Task) -> StepError:
    if isinstance(exc, StepError):
        return exc
    if isinstance(exc, PodiumError | WorkflowDefinitionError):
        error: StepError = StepFailedError(f"{type(exc).__name__}: {exc}", run_id=run_id, step=task.path)
    else:
        error = StepFailedError(f"raised {type(exc).__name__}: {exc}", run_id=run_id, step=task.path)
    error.__cause__ = exc
    return error


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
