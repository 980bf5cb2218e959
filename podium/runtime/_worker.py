"""``Worker``: runs whatever runs a store holds for it, so several processes can share the work.

Submit runs with ``workflow.submit(input, store=...)`` (journaled, owned by nobody), and start workers in any
number of processes on one store (PostgreSQL across machines, SQLite on one machine)::

    worker = Worker([content_team, support_triage], store="postgresql://...", concurrency=8)
    await worker.serve(stop_event)

A worker claims the oldest pending run (or one whose owner's lease ran out: its process died) with the store's
atomic ``claim_next``, so a run is never executed by two live workers at once, and resumes it from its journal:
steps another worker finished are not run again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from podium.errors import ConfigError, JournalError
from podium.runtime._journal import new_owner
from podium.runtime._runner import JournalOptions, execute

if TYPE_CHECKING:
    from podium.flow._workflow import StoreArg, Workflow
    from podium.observe._hooks import Hooks
    from podium.runtime._limits import Limits
    from podium.runtime._result import RunResult

__all__ = ["Worker"]


class Worker:
    """Claims and executes the pending runs of some workflows in a store.

    Args:
        workflows: the workflows this worker can run (matched by name).
        store: the shared store (default store if None).
        concurrency: runs executed at once.
        poll_seconds: how long ``serve`` sleeps when there is nothing to claim.
        limits: override the workflows' limits.
        journal: lease and snapshot settings.
        hooks: observers of every run this worker executes.
    """

    def __init__(
        self,
        workflows: Sequence[Workflow[Any]],
        *,
        store: StoreArg = None,
        concurrency: int = 4,
        poll_seconds: float = 0.5,
        limits: Limits | None = None,
        journal: JournalOptions | None = None,
        hooks: Sequence[Hooks] = (),
    ) -> None:
        from podium.flow._workflow import resolve_store

        resolved = resolve_store(store)
        if resolved is None:
            raise ConfigError("a Worker needs a store to find runs in")
        if concurrency < 1:
            raise ConfigError("concurrency must be at least 1")
        self.store = resolved
        self.workflows = {w.name: w for w in workflows}
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.limits = limits
        self.options = journal or JournalOptions()
        self.hooks = tuple(hooks)
        self._wake = asyncio.Event()
        self.finished: list[RunResult[Any]] = []
        self.refused: list[tuple[str, JournalError]] = []
        """Runs this worker claimed but could not execute (another took them over, the journal does not match
        this worker's workflow, the store failed), with why; the runs stay in the store as they were."""

    async def run_once(self) -> int:
        """Claim and execute runs until none is left to claim; returns how many were executed."""
        await self.store.open()
        done = 0
        while True:
            batch = []
            for _ in range(self.concurrency):
                owner = new_owner()
                info = await self.store.claim_next(
                    owner, workflows=self.workflows, lease_seconds=self.options.lease_seconds, at=time.time()
                )
                if info is None:
                    break
                batch.append(self._execute(info.workflow, info.run_id, owner))
            if not batch:
                return done
            await asyncio.gather(*batch)
            done += len(batch)

    def wake(self) -> None:
        """Look for runs to claim now rather than at the next poll (a run was just submitted in this process)."""
        self._wake.set()

    async def serve(self, stop: asyncio.Event) -> None:
        """Execute runs as they come until ``stop`` is set; runs in progress then finish first.

        A run is claimed whenever fewer than ``concurrency`` are executing: at once after :meth:`wake` or when a
        run ends, else every ``poll_seconds``. Cancelling ``serve`` cancels the runs in progress; each gives its
        lease up, so another worker resumes it at once.
        """
        await self.store.open()
        self._wake = asyncio.Event()  # of this loop
        running: set[asyncio.Task[None]] = set()
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                self._wake.clear()  # before claiming: a wake() during the claims is not lost
                while len(running) < self.concurrency:
                    owner = new_owner()
                    info = await self.store.claim_next(
                        owner, workflows=self.workflows, lease_seconds=self.options.lease_seconds, at=time.time()
                    )
                    if info is None:
                        break
                    running.add(asyncio.create_task(self._execute(info.workflow, info.run_id, owner)))
                woken = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait(
                    [stopping, woken, *running], timeout=self.poll_seconds, return_when=asyncio.FIRST_COMPLETED
                )
                woken.cancel()
                for task in [t for t in running if t.done()]:
                    running.discard(task)
                    task.result()  # a run's unexpected error (a hook that raised) stops the worker, as in run_once
            await asyncio.gather(*running)
            running.clear()
        finally:
            stopping.cancel()
            for task in running:
                task.cancel()
            if running:
                await asyncio.wait(running)

    async def _execute(self, workflow_name: str, run_id: str, owner: str) -> None:
        workflow = self.workflows[workflow_name]
        try:
            result = await execute(
                workflow,
                None,
                run_id=run_id,
                limits=self.limits,
                hooks=self.hooks,
                store=self.store,
                resume=True,
                options=self.options,
                owner=owner,
            )
        except JournalError as exc:
            self.refused.append((run_id, exc))
            with contextlib.suppress(Exception):  # so another worker (with the right code) can take it at once
                await self.store.release(run_id, owner, at=time.time())
            return
        self.finished.append(result)
