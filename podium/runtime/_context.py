"""The run context: what a step can ask about the run it is part of, via ``podium.context()``.

Orchestration must be deterministic so that a replay makes the same decisions; a step that needs the time or a
fresh id takes them from here rather than from ``time.time()`` or ``uuid.uuid4()``. ``now()`` is the moment the
step's task started (fixed for the task), and ``new_id()`` derives ids from the run id, the task id and a counter.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from podium.errors import ConfigError

__all__ = ["StepContext", "context"]


@dataclass(slots=True, kw_only=True)
class StepContext:
    """Facts about the step that is running, and the run's deterministic clock and ids.

    Attributes:
        run_id: the run.
        step: the step's path: ``"write"``, or ``"team/write"`` inside the sub-workflow step ``team``.
        task_id: this execution's id, unique and stable within the run (the same on a replay).
        attempt: which attempt of this task is running, from 1.
        iteration: how many supersteps this step has run in so far in its workflow, this one included.
        started_at: when the task started, seconds since the epoch.
    """

    run_id: str
    step: str
    task_id: str
    attempt: int
    iteration: int
    started_at: float
    _ids: int = 0
    _events: list[Any] | None = field(default=None, repr=False)
    _answers: dict[str, Any] | None = field(default=None, repr=False)
    """Journaled answers to this run's questions (None when the run has no journal)."""
    _asked: int = 0
    _record: Callable[[Any], Awaitable[None]] | None = field(default=None, repr=False)
    _token: Callable[[str, str], None] | None = field(default=None, repr=False)
    _usage: Callable[[str, Any], None] | None = field(default=None, repr=False)
    _budget: Callable[[str | None, Any], None] | None = field(default=None, repr=False)
    _run: Any = field(default=None, repr=False)
    """The run this step belongs to; its ``ledger`` holds tool results by idempotency key and effects to undo."""
    _tool_calls: dict[str, int] | None = field(default=None, repr=False)
    """Identical tool calls so far in this attempt, for their idempotency keys."""

    def check_budget(self, agent: str | None = None, budget: Any = None) -> None:
        """Raise ``LimitReached`` if a token, cost or model-call budget is spent (before a model call): the run's,
        that of each sub-workflow invocation the step runs in, and, given ``agent``, the agent's (its own
        :class:`~podium.Budget` ``budget`` and the run's ``Limits.agents`` entry for its name)."""
        if self._budget is not None:
            self._budget(agent, budget)

    async def record(self, event: Any) -> None:
        """Journal an event from inside the step (an agent's model and tool calls); nothing without a journal."""
        if self._record is not None:
            await self._record(event)

    def token(self, agent: str, text: str) -> None:
        """Pass a streamed piece of a model's answer to the run's ``on_token`` hooks."""
        if self._token is not None:
            self._token(agent, text)

    def usage(self, agent: str, usage: Any) -> None:
        """Add a model call's usage to the run's totals."""
        if self._usage is not None:
            self._usage(agent, usage)

    def now(self) -> datetime:
        """The step's deterministic time: when its task started, as an aware UTC datetime."""
        return datetime.fromtimestamp(self.started_at, UTC)

    def new_id(self) -> str:
        """A fresh id that a replay of this run will produce again in the same place."""
        self._ids += 1
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"podium:{self.run_id}/{self.task_id}/{self._ids}"))

    def emit(self, event: Any) -> None:
        """Emit an event; steps subscribed to its type (``Graph.on``) run in the next superstep."""
        if self._events is None:
            self._events = []
        self._events.append(event)


_current: ContextVar[StepContext | None] = ContextVar("podium_step", default=None)


def context() -> StepContext:
    """The context of the step that is running.

    Raises:
        ConfigError: called outside a step.
    """
    ctx = _current.get()
    if ctx is None:
        raise ConfigError("podium.context() is only available inside a running step")
    return ctx
