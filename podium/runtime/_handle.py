"""``RunHandle``: a run started in the background, which can be awaited or cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from podium.flow._workflow import Workflow
    from podium.journal._store import Store
    from podium.observe._hooks import Hooks
    from podium.runtime._limits import Limits
    from podium.runtime._result import RunResult
    from podium.runtime._runner import JournalOptions

__all__ = ["RunHandle"]

S = TypeVar("S")


class RunHandle(Generic[S]):
    """A running run. ``await handle`` (or ``await handle.result()``) gives its :class:`RunResult`."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.cancel_reason: str | None = None
        self.started = False
        self._task: asyncio.Task[RunResult[S]] | None = None

    @classmethod
    def start(
        cls,
        workflow: Workflow[S],
        input: S | Mapping[str, Any] | Any,
        *,
        run_id: str,
        limits: Limits | None,
        hooks: Sequence[Hooks],
        store: Store | None = None,
        options: JournalOptions | None = None,
    ) -> RunHandle[S]:
        from podium.runtime._runner import execute

        handle = cls(run_id)
        handle._task = asyncio.get_running_loop().create_task(
            execute(
                workflow, input, run_id=run_id, limits=limits, hooks=hooks, handle=handle, store=store, options=options
            ),
            name=f"podium-run-{run_id}",
        )
        return handle

    def cancel(self, reason: str = "cancelled by the caller") -> bool:
        """Ask the run to stop: steps in flight are cancelled and the run ends with status ``cancelled``.

        Returns:
            False if the run had already finished.
        """
        assert self._task is not None
        if self._task.done():
            return False
        if self.cancel_reason is None:
            self.cancel_reason = reason
            if self.started:  # else the run sees the reason before its first superstep
                self._task.cancel(reason)
        return True

    def done(self) -> bool:
        return self._task is not None and self._task.done()

    async def result(self) -> RunResult[S]:
        assert self._task is not None
        return await asyncio.shield(self._task)

    def __await__(self) -> Generator[Any, None, RunResult[S]]:
        return self.result().__await__()
