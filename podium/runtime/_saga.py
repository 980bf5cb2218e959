"""Saga compensation: when a run fails or is cancelled after side effects, undo them, newest first.

A step (``Graph.add(..., compensate=undo)``) or a tool (``@tool(compensate=undo)``) declares how to undo itself;
each one that finishes leaves an :class:`~podium.runtime._ledger.Effect` in the run's ledger. When the run ends
``failed`` or ``cancelled`` and it has effects to undo:

1. ``compensation_started`` is journaled: how the run ended, its state, and the effects that will be undone.
2. Each is undone in reverse order of finishing. A compensation that raises is retried (the workflow's
   ``compensation_retry``); every failed attempt is journaled (``compensation_failed``) and each success too
   (``compensated``). One that still fails after its retries is reported in ``RunResult.not_compensated``, and the
   others are still undone.
3. The run ends as it would have (``failed`` or ``cancelled``), its reason saying what was undone.

A crash while compensating is resumed like any crash (``workflow.resume``, ``podium resume``, a worker): the
resume sees ``compensation_started`` and finishes compensating instead of running the workflow again. A compensation
that was running when the process died runs again, so compensations must be idempotent ("delete the account if it
exists"). A run whose effects were undone cannot be resumed.

A ``limited`` run is not compensated: its partial result is what it is kept for. A run without a journal is
compensated too, but cannot survive a crash in the middle.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from podium.errors import EncodingError
from podium.journal._codec import decode, encode
from podium.journal._events import Compensated, CompensationFailed, CompensationStarted
from podium.runtime._ledger import Effect, compensation_of
from podium.runtime._result import RunResult, RunStatus
from podium.runtime._retry import RetryPolicy
from podium.runtime._threads import run_in_thread

if TYPE_CHECKING:
    from podium.flow._step import Step
    from podium.flow._workflow import Workflow
    from podium.runtime._task import Run

__all__ = ["COMPENSATION_RETRY", "compensate", "resumed_result"]

COMPENSATION_RETRY = RetryPolicy(
    max_attempts=5, initial_interval=0.5, backoff=2.0, max_interval=30.0, retry_on=(Exception,)
)
"""Compensations are retried on any exception: undoing is worth insisting on."""

Undo = Callable[..., Any]


async def compensate(run: Run, workflow: Workflow[Any], result: RunResult[Any]) -> RunResult[Any]:
    """Undo the run's side effects if it failed or was cancelled (or finish doing so, after a crash)."""
    ledger = run.ledger
    started = ledger.compensation
    # calls of tools with a compensation that never finished (the run was cancelled during them): whether they took
    # effect is unknown, so they cannot be undone blindly; they are reported for a person to check
    doubtful = [
        f"tool {s.tool} (in doubt: cut off in flight)" for s in ledger.in_flight.values() if compensation_of(s.tool)
    ]
    if started is None:
        if result.status not in (RunStatus.FAILED, RunStatus.CANCELLED) or not (ledger.effects or doubtful):
            return result
        pending: list[tuple[Effect, Undo | None]] = [
            (e, undo) for e in reversed(ledger.effects) if (undo := _undo_of(workflow, e)) is not None
        ]
        if not pending and not doubtful:
            return result
        started = CompensationStarted(
            status=result.status.value,
            reason=result.reason,
            error_type=type(result.error).__name__ if result.error is not None else None,
            state=_encoded(result.state),
            pending=[effect.target for effect, _ in pending],
            steps=result.steps,
        )
        ledger.compensation = started
        if run.journal is not None:
            await run.journal.write(started)
    else:  # a resumed run that was compensating when its process stopped
        effects = {effect.target: effect for effect in ledger.effects}
        pending = [(effects[t], _undo_of(workflow, effects[t])) for t in started.pending if t in effects]
    policy = workflow.compensation_retry or COMPENSATION_RETRY
    done: list[str] = []
    failed: list[str] = list(doubtful)
    for effect, undo in pending:
        if effect.target in ledger.compensated:
            done.append(effect.label)
        elif await _undo(run, workflow, effect, undo, result.state, policy):
            ledger.compensated.add(effect.target)
            done.append(effect.label)
        else:
            failed.append(effect.label)
    reason = result.reason or result.status.value
    if done:
        reason += f"; undone: {', '.join(done)}"
    if failed:
        reason += f"; could not undo: {', '.join(failed)} (needs a person)"
    return dataclasses.replace(result, reason=reason, compensated=tuple(done), not_compensated=tuple(failed))


def resumed_result(run: Run, workflow: Workflow[Any], started: CompensationStarted) -> RunResult[Any]:
    """The result the run had when it began compensating, for a resume that finishes the compensation (its
    ``error`` is not rebuilt: the journal keeps its type and message, and the reason says it)."""
    now = run.clock()
    return RunResult(
        run_id=run.run_id,
        workflow=workflow.name,
        status=RunStatus(started.status),
        state=decode(started.state) if started.state is not None else run.state,
        reason=started.reason,
        steps=started.steps,
        started_at=now,
        finished_at=now,
        usage_by_agent=dict(run.usage),
    )


async def _undo(
    run: Run, workflow: Workflow[Any], effect: Effect, undo: Undo | None, state: Any, policy: RetryPolicy
) -> bool:
    """Run one compensation until it succeeds or its attempts run out; journal every attempt's outcome."""
    journal = run.journal
    attempt = 1
    while True:
        try:
            if undo is None:  # the code changed between the crash and the resume
                raise LookupError(f"no compensation is declared for {effect.label} any more")
            await _call(undo, _arguments(workflow, effect, state, undo))
        except Exception as exc:
            again = undo is not None and policy.retries(exc, attempt)
            retry_in = policy.delay(attempt, effect.target, exc) if again else None
            if journal is not None:
                await journal.write(
                    CompensationFailed(
                        target=effect.target,
                        name=effect.name,
                        attempt=attempt,
                        error_type=type(exc).__name__,
                        message=str(exc),
                        retry_in=retry_in,
                    )
                )
            if retry_in is None:
                return False
            await asyncio.sleep(retry_in)
            attempt += 1
        else:
            if journal is not None:
                await journal.write(Compensated(target=effect.target, name=effect.name, attempt=attempt))
            return True


async def _call(undo: Undo, args: tuple[Any, ...]) -> None:
    if inspect.iscoroutinefunction(undo):
        await undo(*args)
        return
    result = await run_in_thread(undo, *args)
    if inspect.isawaitable(result):
        await result


def _arguments(workflow: Workflow[Any], effect: Effect, state: Any, undo: Undo) -> tuple[Any, ...]:
    """What a compensation is given: a step's output (and the run's state), a tool's result (and arguments)."""
    value = decode(effect.value) if effect.encoded else effect.value
    if effect.kind == "tool":
        return (value, decode(effect.arguments))[: _arity(undo)]
    step = _step_at(workflow, effect.name)
    assert step is not None
    if effect.encoded and step.into is not None:  # the journal holds the update; the output is the into field
        value = (value or {}).get(step.into)
    return (value, state)[: step.compensate_arity]


def _undo_of(workflow: Workflow[Any], effect: Effect) -> Undo | None:
    if effect.undo is not None:
        return effect.undo
    if effect.kind == "tool":
        return compensation_of(effect.name)
    step = _step_at(workflow, effect.name)
    return step.compensate if step is not None else None


def _step_at(workflow: Workflow[Any], path: str) -> Step | None:
    """The step at ``path`` (``team/write`` is step ``write`` of the sub-workflow step ``team``)."""
    head, _, rest = path.partition("/")
    step = workflow.steps.get(head)
    if step is None or not rest:
        return step
    return _step_at(step.workflow, rest) if step.workflow is not None else None


def _arity(undo: Undo) -> int:
    from podium.flow._step import arity_of

    return max(arity_of(undo), 1)


def _encoded(state: Any) -> Any:
    try:
        return encode(state)
    except EncodingError:
        return None  # the run's journal still holds the states it came from
