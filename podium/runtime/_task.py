"""Tasks: one execution of one step, from its call to the outcome the scheduler applies.

Everything a step does wrong becomes its outcome's error (so a parallel sibling can be cancelled and the run can
say which step failed and why); only cancellation, a limit and the runtime's own signals propagate. With a journal,
a finished task's outcome is written before the scheduler uses it, and a task the journal already holds is not run
again: its outcome is read back instead.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from podium.errors import (
    EncodingError,
    JournalError,
    JournalMismatchError,
    PodiumError,
    RoutingError,
    StepError,
    StepFailedError,
    StepOutputError,
)
from podium.flow._state import short
from podium.flow._step import END, Command, Send, Step
from podium.journal._codec import decode, encode
from podium.journal._events import Event, InterruptAsked, StepCompleted, StepFailed
from podium.models._types import Usage
from podium.observe._hooks import HookSet, emit
from podium.runtime._context import StepContext, _current
from podium.runtime._divert import Diverted
from podium.runtime._escalate import Aborted
from podium.runtime._fallback import Switched, fall_back
from podium.runtime._interrupt import Interrupted
from podium.runtime._ledger import Effect, Ledger
from podium.runtime._limits import Budget, LimitReached, Limits
from podium.runtime._scope import Scope, check_spent, has_model_budget
from podium.runtime._threads import run_in_thread

if TYPE_CHECKING:
    from podium.flow._workflow import Workflow
    from podium.runtime._handle import RunHandle
    from podium.runtime._journal import RunJournal

__all__ = ["EndOfJournal", "Outcome", "Run", "Suspended", "Task", "run_parallel", "run_task", "short"]


class Run:
    """What a run's top-level workflow and its sub-workflows share while it executes."""

    __slots__ = (
        "_ledger",
        "agent_calls",
        "clock",
        "handle",
        "hooks",
        "in_flight",
        "journal",
        "limits",
        "model_calls",
        "run_id",
        "scopes",
        "spent_before",
        "state",
        "steps_done",
        "usage",
    )

    def __init__(
        self,
        run_id: str,
        limits: Limits,
        hooks: HookSet,
        handle: RunHandle[Any] | None,
        journal: RunJournal | None = None,
    ) -> None:
        self.run_id = run_id
        self.limits = limits
        self.hooks = hooks
        self.handle = handle
        self.journal: RunJournal | None = None
        self.clock: Callable[[], float] = time.time
        self.steps_done = 0
        self.in_flight: dict[str, None] = {}
        self.state: Any = None
        self.usage: dict[str, Usage] = {}
        """Model usage by agent: what the journal recorded before (all attempts cost money), then this run's."""
        self.model_calls = 0
        self.agent_calls: dict[str, int] = {}
        """Model calls by agent (on a resume, starting from those the journal recorded before)."""
        self.scopes: dict[str, Scope] | None = None
        """The sub-workflow invocations running with limits of their own, by task-id prefix (``"3.1/"``)."""
        self.spent_before: Sequence[tuple[str, str, Usage]] = ()
        """Each model call journaled so far (loaded on a resume, then appended as written): task id, agent, usage;
        a sub-workflow invocation with limits counts what its earlier attempts spent."""
        self._ledger: Ledger | None = None
        if journal is not None:
            self.attach(journal)

    def attach(self, journal: RunJournal) -> None:
        """Run with ``journal``, starting from what it recorded: model usage and calls (a resume counts them)."""
        self.journal = journal
        self.usage = dict(journal.usage)
        self.model_calls = journal.model_calls
        self.agent_calls = dict(journal.agent_calls)
        self.spent_before = journal.spent

    @property
    def ledger(self) -> Ledger:
        """Tool results by idempotency key and the effects to undo: the journal's, or made when first needed."""
        if self._ledger is None:
            self._ledger = self.journal.ledger if self.journal is not None else Ledger()
        return self._ledger

    def add_usage(self, agent: str, usage: Usage) -> None:
        """Count a model call in the run's totals and the agent's."""
        self.usage[agent] = self.usage.get(agent, Usage()) + usage
        self.model_calls += 1
        self.agent_calls[agent] = self.agent_calls.get(agent, 0) + 1

    def check_budget(self, agent: str | None = None, budget: Budget | None = None) -> None:
        """Raise :class:`LimitReached` if the run's model budget is spent, or ``agent``'s: its own ``budget`` or
        the run's ``Limits.agents`` entry for it (called before each model call)."""
        limits = self.limits
        if has_model_budget(limits):
            check_spent(limits, sum(self.usage.values(), Usage()), self.model_calls)
        if agent is None:
            return
        named = limits.agents.get(agent) if limits.agents else None
        if budget is None and named is None:
            return
        spent, calls = self.usage.get(agent, Usage()), self.agent_calls.get(agent, 0)
        for bound in (budget, named):
            if bound is not None:
                check_spent(bound, spent, calls, f"agent {agent!r}")

    def scope_of(self, task_id: str) -> Scope | None:
        """The innermost sub-workflow scope a task (or, given ``"3.1/"``, an invocation) runs in, if any."""
        scopes = self.scopes
        if not scopes:
            return None
        end = task_id.rfind("/")
        while end >= 0:
            found = scopes.get(task_id[: end + 1])
            if found is not None:
                return found
            end = task_id.rfind("/", 0, end)
        return None

    def usage_sink(self, task_id: str) -> Callable[[str, Usage], None]:
        """Where a task's model usage goes: the run, or the innermost scope it runs in (which passes it on)."""
        scope = self.scope_of(task_id)
        return self.add_usage if scope is None else scope.add_usage

    def budget_check(self, task_id: str) -> Callable[[str | None, Budget | None], None]:
        """What checks a task's model budgets: the run's check, or the innermost scope's (which checks the run's)."""
        scope = self.scope_of(task_id)
        return self.check_budget if scope is None else scope.check_budget


class Task:
    __slots__ = ("fallback", "has_item", "item", "iteration", "label", "path", "step", "task_id")

    def __init__(self, step: Step, item: Any, has_item: bool) -> None:
        self.iteration = 1
        self.step = step
        self.item = item
        self.has_item = has_item
        self.task_id = ""
        self.path = ""
        self.label = ""
        self.fallback: Switched | None = None
        """Which of the step's fallbacks runs, once the step itself has failed for good."""


class Outcome:
    __slots__ = ("cancelled", "diverted", "error", "events", "goto", "handled", "task", "update", "waiting")

    def __init__(self, task: Task) -> None:
        self.task = task
        self.update: Mapping[str, Any] | None = None
        self.goto: Sequence[str | Send] = ()
        self.events: list[Any] | None = None
        self.error: StepError | None = None
        self.handled = False
        self.cancelled = False
        self.waiting: Sequence[str] = ()
        """Questions (ids) this task waits for: its own, or those of a sub-workflow it runs."""
        self.diverted = False
        """``on_error`` chose where to go: the ``goto`` replaces the step's own edges, route and joins."""


class Suspended(BaseException):
    """A superstep could not finish because some of its tasks wait for answers."""

    def __init__(self, waiting: Sequence[str]) -> None:
        super().__init__(", ".join(waiting))
        self.waiting = list(waiting)


class EndOfJournal(BaseException):
    pass


async def run_parallel(
    run: Run, workflow: Workflow[Any], tasks: list[Task], state: Any
) -> tuple[list[Outcome], StepError | None]:
    """Run a superstep's tasks concurrently; on an unhandled failure, cancel the rest if the workflow says so.

    Returns the outcomes in task order and the failure that happened first (not the first in task order).
    """
    loop = asyncio.get_running_loop()
    futures: list[asyncio.Task[Outcome]] = []
    first: list[Outcome] = []

    def on_done(future: asyncio.Task[Outcome]) -> None:
        if future.cancelled():
            return
        if future.exception() is not None:  # a limit reached inside a step, or a journal failure: stop all
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
        future = loop.create_task(run_task(run, task, state))
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
            outcome = Outcome(task)
            outcome.cancelled = True
            run.in_flight.pop(task.label, None)  # cancelled because a sibling failed: no longer running
            await _report_failure(run, task, 1, asyncio.CancelledError("a parallel branch failed"), handled=False)
        else:
            outcome = future.result()
        outcomes.append(outcome)
    return outcomes, (first[0].error if first else None)


async def run_task(run: Run, task: Task, state: Any) -> Outcome:
    """Run one task (or read its outcome back from the journal); failures become the outcome's error.

    A failure the step's retry policy takes as transient is journaled (``step_failed`` with ``retry_in``) and the
    task is run again after the policy's wait, up to its ``max_attempts``.
    """
    journal = run.journal
    if journal is not None:
        recorded = journal.completed.get(task.task_id)
        if recorded is not None:
            return _replayed(run, task, recorded)
        if not journal.writable:
            raise EndOfJournal(task.task_id)
    ctx = _context(run, task)
    while True:
        outcome, retry_in = await _attempt(run, task, state, ctx)
        if retry_in is None:
            break
        await asyncio.sleep(retry_in)
        ctx.attempt += 1
        ctx._tool_calls = None  # a retried attempt's tool calls get the first attempt's keys again
    # a cancelled task stays in in_flight: the run is ending, and its reason names what was running
    run.in_flight.pop(task.label, None)
    outcome.events = ctx._events
    if task.step.compensate is not None and outcome.error is None and not outcome.waiting:
        # noted before the journal write: a cancellation while it commits must not lose what to undo
        update = outcome.update or {}
        output = update.get(task.step.into) if task.step.into is not None else dict(update)
        run.ledger.add(Effect("step", task.task_id, task.path, output, False, undo=task.step.compensate))
    if journal is not None and not outcome.waiting:
        await _record(run, outcome, ctx)
    hooks = run.hooks
    if outcome.error is not None:
        await _report_failure(run, task, ctx.attempt, outcome.error, handled=outcome.handled)
    elif hooks.on_step_finish and not outcome.waiting:
        await emit(
            hooks.on_step_finish,
            run_id=run.run_id,
            step=task.path,
            task_id=task.task_id,
            attempt=ctx.attempt,
            update=outcome.update,
            duration=run.clock() - ctx.started_at,
        )
    return outcome


def _context(run: Run, task: Task) -> StepContext:
    ctx = StepContext(
        run_id=run.run_id,
        step=task.path,
        task_id=task.task_id,
        attempt=1,
        iteration=task.iteration,
        started_at=run.clock(),
    )
    ctx._run = run
    ctx._usage = run.usage_sink(task.task_id)
    ctx._budget = run.budget_check(task.task_id)
    journal = run.journal
    if journal is not None:
        ctx._answers = journal.answers
        if journal.writable:
            ctx._record = journal.write
    if run.hooks.on_token:
        ctx._token = _token_hook(run, task.path)
    return ctx


async def _attempt(run: Run, task: Task, state: Any, ctx: StepContext) -> tuple[Outcome, float | None]:
    """One attempt at the task: its outcome, and the seconds to wait before the next attempt if there is one.

    A failure is retried as the step's policy says; then (once per failure) each of the step's fallbacks takes
    over, with the policy's attempts of its own; then ``on_error`` recovers it, if the step has one.
    """
    step = task.step
    switched = task.fallback
    runner = step if switched is None else step.fallbacks[switched.index]
    outcome = Outcome(task)
    if run.hooks.on_step_start:
        await emit(
            run.hooks.on_step_start,
            run_id=run.run_id,
            step=task.path,
            task_id=task.task_id,
            attempt=ctx.attempt,
            item=task.item,
        )
    run.in_flight[task.label] = None
    retry_in = None
    taken: Event | None = None
    question = None
    token = _current.set(ctx)
    try:
        result = await _call(run, task, state, runner)
        _normalize(outcome, result, run.run_id)
    except (asyncio.CancelledError, LimitReached, JournalError):
        raise  # a journal that cannot go on (lost lease, mismatch, failing store) is not this step's failure
    except Interrupted as signal:
        outcome.waiting = (signal.question.interrupt_id,)
        await _ask(run, signal.question)
    except Suspended as signal:  # a sub-workflow inside this step waits
        outcome.waiting = signal.waiting
    except Exception as exc:
        outcome.error = _as_step_error(exc, run.run_id, task, ctx.attempt)
        tries = ctx.attempt if switched is None else ctx.attempt - switched.since + 1  # of this callable
        if step.retry is not None and step.retry.retries(exc, tries):
            retry_in = step.retry.delay(tries, task.task_id, exc)
        else:
            if step.fallbacks:
                taken = fall_back(task, outcome, runner.name, ctx.attempt)
                retry_in = 0.0 if taken is not None else None
            if taken is None and step.on_error is not None:
                question = await _recover(outcome, state)
    finally:
        _current.reset(token)
    if retry_in is not None:
        await _retrying(run, outcome, ctx.attempt, retry_in, taken)
    elif question is not None:
        await _escalating(run, outcome, ctx.attempt, question)
    return outcome, retry_in


async def _retrying(run: Run, outcome: Outcome, attempt: int, retry_in: float, taken: Event | None = None) -> None:
    """Journal and report a failed attempt that will be tried again (by a fallback, when ``taken`` says so)."""
    task = outcome.task
    error = outcome.error
    assert error is not None
    if run.journal is not None and run.journal.writable:
        failed = _failed(task, error, attempt, handled=False, retry_in=retry_in)
        await (run.journal.write(failed, taken) if taken is not None else run.journal.write(failed))
    await _report_failure(run, task, attempt, error, handled=False)


async def _escalating(run: Run, outcome: Outcome, attempt: int, question: InterruptAsked) -> None:
    """Journal a failure that ``on_error`` turned into a question (then the question); the task waits for it."""
    task = outcome.task
    error = outcome.error
    assert error is not None
    outcome.error = None  # the task waits; its failure is the question's now
    if run.journal is not None and run.journal.writable:
        await run.journal.write(_failed(task, error, attempt, handled=True))
    await _ask(run, question)
    await _report_failure(run, task, attempt, error, handled=True)


async def _report_failure(run: Run, task: Task, attempt: int, error: BaseException, *, handled: bool) -> None:
    """Tell the run's ``on_step_fail`` hooks, if any, that an attempt at ``task`` failed."""
    if run.hooks.on_step_fail:
        await emit(
            run.hooks.on_step_fail,
            run_id=run.run_id,
            step=task.path,
            task_id=task.task_id,
            attempt=attempt,
            error=error,
            handled=handled,
        )


def _token_hook(run: Run, path: str) -> Callable[[str, str], None]:
    pending: set[asyncio.Future[Any]] = set()  # async hooks run on their own; keep them referenced till done

    def on_token(agent: str, text: str) -> None:
        for fn, is_async in run.hooks.on_token:
            result = fn(run_id=run.run_id, step=path, agent=agent, text=text)
            if is_async:
                future = asyncio.ensure_future(result)
                pending.add(future)
                future.add_done_callback(pending.discard)

    return on_token


async def _recover(outcome: Outcome, state: Any) -> InterruptAsked | None:
    """Let the step's ``on_error`` turn the failure into an update, another path, or a question to a person.

    Returns the question when the handler asked one that has no answer yet: the task then waits for it.
    """
    task = outcome.task
    step = task.step
    error = outcome.error
    assert step.on_error is not None
    assert error is not None
    try:
        recovered = step.on_error(*(state, error, task.item)[: step.on_error_arity])
        if inspect.isawaitable(recovered):
            recovered = await recovered
        outcome.goto, outcome.update = (), None  # nothing of the failed output survives
        if isinstance(recovered, Diverted):
            outcome.update, outcome.goto = recovered.update, tuple(recovered.goto)
        else:
            _normalize(outcome, recovered, error.run_id)
        outcome.handled = True
        outcome.diverted = bool(outcome.goto)
    except Interrupted as signal:  # the handler asked a person (escalate): the run waits, it is not a failure
        outcome.goto, outcome.update = (), None
        outcome.waiting = (signal.question.interrupt_id,)
        return signal.question
    except Aborted as abort:
        cause = error.__cause__ or error
        note = f" ({abort.comment})" if abort.comment else ""
        outcome.error = StepFailedError(
            f"a person chose to abort it{note} after it failed with {type(cause).__name__}: {cause}",
            run_id=error.run_id,
            step=task.path,
            attempt=error.attempt,
        )
        outcome.error.__cause__ = cause
    except (LimitReached, JournalError):
        raise  # a budget spent in the handler ends the run limited; a journal that cannot go on is not the step's
    except Exception as handler_exc:
        outcome.error = StepFailedError(
            f"its on_error handler raised {type(handler_exc).__name__}: {handler_exc}",
            run_id=error.run_id,
            step=task.path,
        )
        outcome.error.__cause__ = handler_exc
    return None


async def _ask(run: Run, question: InterruptAsked) -> None:
    journal = run.journal
    assert journal is not None  # ask() refuses to run without one
    if question.interrupt_id not in journal.asked:
        await journal.write(question)
        journal.asked.add(question.interrupt_id)


def _failed(task: Task, error: StepError, attempt: int, *, handled: bool, retry_in: float | None = None) -> StepFailed:
    """The journal record of a failed attempt: the original exception's type, podium's message."""
    cause = error.__cause__ or error
    return StepFailed(
        task_id=task.task_id,
        step=task.path,
        attempt=attempt,
        error_type=type(cause).__name__,
        message=str(error),
        handled=handled,
        retry_in=retry_in,
    )


async def _record(run: Run, outcome: Outcome, ctx: StepContext) -> None:
    """Journal a finished task's outcome before the scheduler acts on it."""
    journal = run.journal
    assert journal is not None
    task = outcome.task
    error = outcome.error
    failed = None
    if error is not None:
        failed = _failed(task, error, ctx.attempt, handled=outcome.handled)
        if not outcome.handled:
            await journal.write(failed)
            return
    try:
        completed = StepCompleted(
            task_id=task.task_id,
            step=task.path,
            attempt=ctx.attempt,
            update=encode(dict(outcome.update)) if outcome.update else None,
            goto=encode(list(outcome.goto)) if outcome.goto else [],
            emitted=encode(outcome.events) if outcome.events else [],
            duration=run.clock() - ctx.started_at,
            recovered=str(error) if error is not None else None,
        )
    except EncodingError as exc:
        outcome.update, outcome.goto, outcome.handled = None, (), False
        outcome.error = StepOutputError(
            f"returned a value the journal cannot hold: {exc}", run_id=run.run_id, step=task.path
        )
        outcome.error.__cause__ = exc
        await _record(run, outcome, ctx)
        return
    await (journal.write(failed, completed) if failed is not None else journal.write(completed))
    journal.completed[task.task_id] = completed  # a retried sub-workflow replays its finished steps, as a resume does


def _replayed(run: Run, task: Task, recorded: StepCompleted) -> Outcome:
    """The outcome of a task the journal holds, without running it again."""
    if recorded.step != task.path:
        raise JournalMismatchError(
            f"the journal ran step {recorded.step!r} here, the workflow now schedules {task.path!r}",
            run_id=run.run_id,
            task_id=task.task_id,
        )
    outcome = Outcome(task)
    outcome.update = {k: decode(v) for k, v in recorded.update.items()} if recorded.update else None
    outcome.goto = tuple(decode(recorded.goto))
    outcome.events = decode(recorded.emitted) or None
    outcome.diverted = recorded.recovered is not None and bool(recorded.goto)
    return outcome


async def _call(run: Run, task: Task, state: Any, step: Step) -> Any:
    """Call ``step`` (the task's step, or one of its fallbacks) with the task's state and item."""
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


async def _call_workflow(run: Run, task: Task, state: Any) -> Any:
    from podium.runtime._scheduler import drive

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
    limits = step.limits if step.limits is not None else child.limits  # the invocation's own, with the run's
    final = await drive(run, child, child_state, task.path + "/", task.task_id + "/", limits=limits)
    if step.output is None:
        return child.output_of(final)
    return step.output(*(final, state, task.item)[: step.output_arity])


def _normalize(outcome: Outcome, result: Any, run_id: str) -> None:
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
            f"returned {type(result).__name__} {short(result)}; return a dict of field updates, add the step "
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


def _as_step_error(exc: Exception, run_id: str, task: Task, attempt: int = 1) -> StepError:
    if isinstance(exc, StepError):
        return exc
    prefix = "" if isinstance(exc, PodiumError) else "raised "
    error = StepFailedError(f"{prefix}{type(exc).__name__}: {exc}", run_id=run_id, step=task.path, attempt=attempt)
    error.__cause__ = exc
    return error
