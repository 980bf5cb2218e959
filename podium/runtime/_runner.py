"""A run from start to end: journal it, drive it within its limits, and say how it ended.

``execute`` starts a new run or resumes one from its journal; ``history`` replays a journal without running
anything, for time-travel and forks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from podium.errors import EncodingError, JoinStalledError, LeaseLostError, StepError
from podium.journal._codec import decode, encode
from podium.journal._events import RunFinished, RunSuspended, Snapshot
from podium.observe._hooks import HookSet, emit
from podium.runtime._journal import RunJournal
from podium.runtime._limits import LimitReached, Limits
from podium.runtime._result import RunResult, RunStatus
from podium.runtime._saga import compensate, resumed_result
from podium.runtime._scheduler import drive
from podium.runtime._task import EndOfJournal, Run, Suspended, Task

if TYPE_CHECKING:
    from podium.flow._workflow import Workflow
    from podium.journal._store import Store
    from podium.observe._hooks import Hooks
    from podium.runtime._handle import RunHandle

__all__ = ["Checkpoint", "JournalOptions", "execute", "history"]

_DEFAULT_LIMITS = Limits()


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalOptions:
    """How a run uses its journal.

    Attributes:
        lease_seconds: how long this process's claim on a run lasts without renewal; another process may take the
            run over once it lapses (renewed every third of it while the run executes).
        snapshot_every: write a snapshot every this many supersteps, so a resume replays at most that many.
    """

    lease_seconds: float = 30.0
    snapshot_every: int = 50


@dataclass(frozen=True, slots=True, kw_only=True)
class Checkpoint:
    """The state of a run after one of its (top-level) supersteps, as its journal tells it.

    Attributes:
        superstep: its number, from 1.
        tasks: the tasks that ran in it (``step@task_id``; steps inside sub-workflows ran within these).
        state: the state after it.
        next: the steps due in the next superstep.
        snapshot: everything a fork needs to continue from here.
    """

    superstep: int
    tasks: list[str]
    state: Any
    next: list[str]
    snapshot: Snapshot


async def execute(
    workflow: Workflow[Any],
    input: Any,
    *,
    run_id: str,
    limits: Limits | None,
    hooks: Sequence[Hooks],
    handle: RunHandle[Any] | None = None,
    store: Store | None = None,
    resume: bool = False,
    options: JournalOptions | None = None,
    owner: str | None = None,
) -> RunResult[Any]:
    """Run ``workflow`` to its end (or resume it from its journal) and return the result; see ``Workflow.run``."""
    if handle is not None:
        handle.started = True
    run = Run(run_id, limits or workflow.limits or _DEFAULT_LIMITS, HookSet(hooks), handle)
    restore = None
    if store is None:
        state = workflow.state_of(input)
    else:
        await store.open()
        opts = options or JournalOptions()
        settings = {"lease_seconds": opts.lease_seconds, "snapshot_every": opts.snapshot_every, "clock": run.clock}
        if resume:
            loaded = await RunJournal.load(store, workflow, run_id, claim=True, owner=owner, **settings)
            run.attach(loaded)
            restore = loaded.snapshot
            state = decode(loaded.initial)
        else:
            state = workflow.state_of(input)
            run.attach(await RunJournal.begin(store, workflow, state, run_id, **settings))
    run.state = state
    journal = run.journal
    keeper = None
    if journal is not None:
        main = asyncio.current_task()
        assert main is not None
        keeper = asyncio.get_running_loop().create_task(journal.keep_lease(main))
    try:
        started = run.journal.ledger.compensation if run.journal is not None else None
        if started is None:
            result = await _drive_to_end(run, workflow, state, restore)
        else:  # the run was undoing its side effects when its process stopped: finish that, run nothing else
            result = resumed_result(run, workflow, started)
        result = await compensate(run, workflow, result)
    except asyncio.CancelledError:
        lost = keeper is not None and keeper.done() and not keeper.cancelled()
        await _stop(keeper)
        if lost and journal is not None:
            _uncancel()
            raise LeaseLostError(run_id=run_id, owner=journal.owner) from None
        await _release(run)
        raise
    except BaseException:
        await _stop(keeper)
        await _release(run)  # whatever stopped this process from running it, another may resume it at once
        raise
    await _stop(keeper)  # before the write that gives the lease up, so a renewal cannot race it
    if journal is not None:
        result = await _journal_end(journal, result)
    if run.hooks.on_run_finish:
        try:
            await emit(run.hooks.on_run_finish, run_id=run_id, result=result)
        except asyncio.CancelledError:
            if not _cancelled_by(handle):
                raise  # a cancel() that arrives while the run reports its end changes nothing about it
    return result


async def _drive_to_end(run: Run, workflow: Workflow[Any], state: Any, restore: Snapshot | None) -> RunResult[Any]:
    started = run.clock()
    status, error, reason, limit, output = RunStatus.COMPLETED, None, None, None, None
    waiting: tuple[str, ...] = ()
    deadline = asyncio.timeout(run.limits.max_seconds) if run.limits.max_seconds else None
    try:
        if run.hooks.on_run_start:
            await emit(run.hooks.on_run_start, run_id=run.run_id, workflow=workflow.name, state=state)
        if deadline is None:
            state = await drive(run, workflow, state, "", "", restore=restore)
        else:
            async with deadline:
                state = await drive(run, workflow, state, "", "", restore=restore)
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
    except Suspended as signal:
        status, state, waiting = RunStatus.WAITING, run.state, tuple(signal.waiting)
        reason = f"waiting for answers to {', '.join(signal.waiting)}"
    except asyncio.CancelledError:
        if not _cancelled_by(run.handle):
            raise
        status, state = RunStatus.CANCELLED, run.state
        reason = run.handle.cancel_reason if run.handle is not None else None
    return RunResult(
        run_id=run.run_id,
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
        waiting=waiting,
        usage_by_agent=dict(run.usage),
    )


async def _journal_end(journal: RunJournal, result: RunResult[Any]) -> RunResult[Any]:
    """Journal how the run ended and give up its lease; a waiting run's result lists its open questions."""
    if result.status is RunStatus.WAITING:
        await journal.write(
            RunSuspended(waiting=list(result.waiting)), status="waiting", reason=result.reason, release=True
        )
        return result
    try:
        output = encode(result.output)
    except EncodingError:
        output = None  # the output is still in the result; the journal keeps the state it came from
    await journal.write(
        RunFinished(
            status=result.status.value,
            reason=result.reason,
            limit=result.limit,
            error_type=type(result.error).__name__ if result.error else _compensated_error(journal),
            output=output,
            steps=result.steps,
        ),
        status=result.status.value,  # type: ignore[arg-type]
        reason=result.reason,
        release=True,
    )
    return result


def _compensated_error(journal: RunJournal) -> str | None:
    """The error type of a run whose compensation a resume finished (its result has no error object)."""
    started = journal.ledger.compensation
    return started.error_type if started is not None else None


async def history(workflow: Workflow[Any], store: Store, run_id: str) -> list[Checkpoint]:
    """The run's state after each of its top-level supersteps, replayed from its journal without running a step.

    The replay stops where the journal does (at a task that had not finished). For a forked run, or after
    ``compact()``, history starts at the snapshot it continues from (a checkpoint with no tasks).

    Raises:
        RunNotFoundError: no such run.
        JournalMismatchError: the workflow no longer matches the journal.
    """
    await store.open()
    journal = await RunJournal.load(
        store, workflow, run_id, claim=False, lease_seconds=0.0, snapshot_every=1, clock=lambda: 0.0
    )
    checkpoints: list[Checkpoint] = []

    def observe(snapshot: Snapshot, ran: list[Task]) -> None:
        checkpoints.append(
            Checkpoint(
                superstep=snapshot.superstep,
                tasks=[t.label if t.has_item else t.path for t in ran],
                state=decode(snapshot.state),
                next=[entry["step"] for entry in snapshot.frontier],
                snapshot=snapshot,
            )
        )

    run = Run(run_id, Limits(max_steps=None, max_iterations=None, max_seconds=None), HookSet(()), None, journal)
    journal.answers = {}  # a question with no recorded answer ends the replay like any unfinished task
    state = decode(journal.initial)
    compacted = journal.snapshot is not None and not _starts_at_beginning(journal)
    if compacted:  # a forked or compacted run: its history begins at the snapshot
        assert journal.snapshot is not None
        observe(journal.snapshot, [])
    with contextlib.suppress(EndOfJournal):
        await drive(run, workflow, state, "", "", restore=journal.snapshot if compacted else None, observe=observe)
    return checkpoints


def _starts_at_beginning(journal: RunJournal) -> bool:
    return any(task_id.startswith("1.") for task_id in journal.completed)


async def _stop(keeper: asyncio.Task[None] | None) -> None:
    if keeper is not None and not keeper.done():
        keeper.cancel()
        await asyncio.wait([keeper])  # leave no task behind


async def _release(run: Run) -> None:
    """Give up the run's lease, if this execution still holds it (best effort: the store may be what failed)."""
    if run.journal is not None and run.journal.writable:
        with contextlib.suppress(Exception):
            await asyncio.shield(run.journal.store.release(run.run_id, run.journal.owner, at=run.clock()))


def _cancelled_by(handle: RunHandle[Any] | None) -> bool:
    """Whether the cancellation being handled is the handle's ``cancel()`` (then absorbed) or the caller's own."""
    if handle is None or handle.cancel_reason is None:
        return False
    _uncancel()
    return True


def _uncancel() -> None:
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()
