"""The runner's side of a run's journal: what a resume replays, and the writes that record progress.

A new run is journaled (``run_accepted``) before its first step runs. From then on every task's result is written
before the run acts on it, so after a crash the journal says exactly which tasks finished: a resume replays the
run's orchestration from its latest snapshot, takes those tasks' results from the journal instead of running them
again, and runs only what had not finished.

Every write goes through :meth:`RunJournal.write`, which the store fences by the run's owner: a process that lost
its lease (it stalled, and another took the run over) is stopped by its next write.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from podium.errors import JournalMismatchError, LeaseLostError, RunStateError
from podium.journal._codec import encode
from podium.journal._events import (
    Event,
    InterruptAnswered,
    InterruptAsked,
    ModelCalled,
    RunAccepted,
    RunFinished,
    RunStarted,
    Snapshot,
    StepCompleted,
)
from podium.journal._store import RunState, Store
from podium.models._types import Usage
from podium.runtime._ledger import Ledger

if TYPE_CHECKING:
    from podium.flow._workflow import Workflow

__all__ = ["RunJournal", "new_owner"]

_HOST = socket.gethostname()


def new_owner() -> str:
    """A worker id for one execution of one run: host, process and a random part."""
    return f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class RunJournal:
    """One execution's view of a run's journal.

    Attributes:
        completed: the journaled result of every finished task, by task id (what a resume replays).
        answers: journaled answers to the run's questions, encoded, by question id.
        asked: questions already journaled (so a re-run of a waiting step does not ask twice).
        snapshot: the latest snapshot, where a resume starts.
        initial: the run's initial state, encoded.
    """

    def __init__(
        self,
        store: Store,
        run_id: str,
        owner: str,
        *,
        lease_seconds: float,
        snapshot_every: int,
        clock: Callable[[], float],
        writable: bool = True,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.snapshot_every = snapshot_every
        self.clock = clock
        self.writable = writable
        self.completed: dict[str, StepCompleted] = {}
        self.answers: dict[str, Any] = {}
        self.asked: set[str] = set()
        self.snapshot: Snapshot | None = None
        self.initial: Any = None
        self.status: str | None = None
        self.fingerprint: str | None = None
        self.usage: dict[str, Usage] = {}
        self.model_calls = 0
        self.agent_calls: dict[str, int] = {}
        self.spent: list[tuple[str, str, Usage]] = []
        """Every model call journaled: task id, agent, usage (sub-workflow budgets count a resumed task's)."""
        self.steps: list[str] | None = None
        self.ledger = Ledger()
        """Tool calls by idempotency key and the effects to undo, as the journal tells them."""
        self._later: list[Event] = []

    @classmethod
    async def begin(cls, store: Store, workflow: Workflow[Any], state: Any, run_id: str, **options: Any) -> RunJournal:
        """Journal a new run (before any of its steps runs) and own it."""
        journal = cls(store, run_id, new_owner(), **options)
        journal.initial = encode(state)
        journal.answers = {}
        await store.create_run(
            run_id,
            workflow.name,
            [
                RunAccepted(
                    workflow=workflow.name,
                    state=journal.initial,
                    fingerprint=workflow.fingerprint,
                    steps=workflow.step_paths(),
                ),
                RunStarted(owner=journal.owner, resumed=False),
            ],
            owner=journal.owner,
            lease_seconds=journal.lease_seconds,
            at=journal.clock(),
        )
        return journal

    @classmethod
    async def load(
        cls,
        store: Store,
        workflow: Workflow[Any],
        run_id: str,
        *,
        claim: bool,
        owner: str | None = None,
        **options: Any,
    ) -> RunJournal:
        """Read a run's journal to replay it; with ``claim``, take its lease and journal the resumption.

        Args:
            owner: the worker id to claim as (one that already holds the lease, from ``claim_next``); a new one
                if None.

        Raises:
            RunNotFoundError: no such run.
            RunStateError: it completed, another process owns it, or it belongs to another workflow.
        """
        journal = cls(store, run_id, owner or new_owner(), writable=claim, **options)
        info = await store.get_run(run_id)
        if info.workflow != workflow.name:
            raise RunStateError(
                f"it is a run of workflow {info.workflow!r}, not {workflow.name!r}", run_id=run_id, status=info.status
            )
        entries = await store.read(run_id)
        for entry in entries:
            journal._index(entry.event)
        if journal.fingerprint not in (None, workflow.fingerprint):
            raise JournalMismatchError(
                f"the workflow's structure changed since the run began: {journal.describe_change(workflow)}",
                run_id=run_id,
                task_id="-",
            )
        if claim:
            if journal.ledger.compensation is not None and journal.status is not None:
                raise RunStateError(
                    "its side effects were undone after it ended "
                    f"{journal.ledger.compensation.status}; start a new run instead",
                    run_id=run_id,
                    status=info.status,
                )
            await store.claim(run_id, journal.owner, lease_seconds=journal.lease_seconds, at=journal.clock())
            for entry in await store.read(run_id, after=entries[-1].seq if entries else 0):
                journal._index(entry.event)  # written between our first read and the claim (an answer, say)
            await journal.write(RunStarted(owner=journal.owner, resumed=True), status="running")
        return journal

    def describe_change(self, workflow: Workflow[Any]) -> str:
        """What differs between the workflow that began the run and ``workflow``, as far as the journal tells."""
        now = workflow.step_paths()
        if self.steps is not None and self.steps != now:
            removed = [p for p in self.steps if p not in now]
            added = [p for p in now if p not in self.steps]
            if removed or added:
                return f"steps removed {removed}, added {added}"
        return "its edges, routes, joins or step options differ"

    def _index(self, event: Event) -> None:
        self.ledger.index(event)
        if isinstance(event, StepCompleted):
            self.completed[event.task_id] = event
        elif isinstance(event, InterruptAnswered):
            self.answers[event.interrupt_id] = event.answer
        elif isinstance(event, InterruptAsked):
            self.asked.add(event.interrupt_id)
        elif isinstance(event, Snapshot):
            self.snapshot = event
        elif isinstance(event, RunAccepted) and self.initial is None:
            self.initial = event.state
            self.fingerprint = event.fingerprint
            self.steps = event.steps
        elif isinstance(event, RunFinished):
            self.status = event.status
        elif isinstance(event, ModelCalled):
            spent = _spent(event)
            self.usage[event.agent] = self.usage.get(event.agent, Usage()) + spent
            self.model_calls += 1
            self.agent_calls[event.agent] = self.agent_calls.get(event.agent, 0) + 1
            self.spent.append((event.task_id, event.agent, spent))

    def later(self, event: Event) -> None:
        """Write ``event`` with the next write (records that need not be durable before the run goes on)."""
        self._later.append(event)

    async def write(
        self, *events: Event, status: RunState | None = None, reason: str | None = None, release: bool = False
    ) -> None:
        """Write buffered and given events in one transaction, as the run's owner.

        Raises:
            LeaseLostError: another process owns the run now.
        """
        if not self.writable:
            raise RuntimeError("a replay of a journal for reading never writes")  # a bug in podium if reached
        batch = [*self._later, *events] if self._later else list(events)
        self._later.clear()
        for event in batch:
            if isinstance(event, ModelCalled):  # sub-workflow budgets count every attempt's calls, live or resumed
                self.spent.append((event.task_id, event.agent, _spent(event)))
        await self.store.append(
            self.run_id,
            batch,
            owner=self.owner,
            lease_seconds=self.lease_seconds,
            at=self.clock(),
            status=status,
            reason=reason,
            release=release,
        )

    async def keep_lease(self, task: asyncio.Task[Any]) -> None:
        """Renew the lease every third of its length while the run executes; cancel ``task`` if it is lost."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            kept = await self.store.renew(self.owner, [self.run_id], lease_seconds=self.lease_seconds, at=self.clock())
            if self.run_id not in kept:
                task.cancel(str(LeaseLostError(run_id=self.run_id, owner=self.owner)))
                return


def _spent(event: ModelCalled) -> Usage:
    """What a journaled model call cost."""
    return Usage(input_tokens=event.input_tokens, output_tokens=event.output_tokens, cost_usd=event.cost_usd)
