"""What a run ends with."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from podium.errors import PodiumError, RunIncompleteError
from podium.models._types import Usage

__all__ = ["RunResult", "RunStatus"]

S = TypeVar("S")


class RunStatus(enum.StrEnum):
    """How a run ended."""

    COMPLETED = "completed"
    """Every path reached its end."""
    FAILED = "failed"
    """A step failed (or a join stalled); ``RunResult.error`` says which and why."""
    LIMITED = "limited"
    """A limit was reached; ``RunResult.limit`` names it and ``state`` is the partial state."""
    CANCELLED = "cancelled"
    """Someone cancelled the run; ``state`` is the partial state."""
    WAITING = "waiting"
    """A step asked a person (``podium.ask``); ``waiting`` lists the questions. Answer them, then resume."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult(Generic[S]):
    """The end of a run: its status, final (or partial) state and output.

    Attributes:
        run_id: the run.
        workflow: the workflow's name.
        status: how it ended.
        state: the state after the last superstep that finished.
        output: the workflow's output (``Graph.build(output=...)``) when completed, else None.
        error: the error of a failed run.
        reason: why a run did not complete, in one sentence.
        limit: the limit a limited run reached: ``"max_steps"``, ``"max_iterations"`` or ``"max_seconds"``.
        steps: how many step executions ran (or started, for those cut short), replayed ones included.
        started_at: seconds since the epoch.
        finished_at: seconds since the epoch.
        waiting: for a waiting run, the ids of the questions it waits for.
        usage_by_agent: tokens and cost per agent; ``usage`` sums them.
        compensated: for a failed or cancelled run, the side effects that were undone, newest first (step
            paths, ``tool <name>`` for tool calls).
        not_compensated: those whose compensation still failed after its retries: they need a person.
    """

    run_id: str
    workflow: str
    status: RunStatus
    state: S
    output: Any = None
    error: PodiumError | None = None
    reason: str | None = None
    limit: str | None = None
    steps: int = 0
    started_at: float = 0.0
    finished_at: float = 0.0
    waiting: tuple[str, ...] = ()
    usage_by_agent: Mapping[str, Usage] = field(default_factory=dict)
    compensated: tuple[str, ...] = ()
    not_compensated: tuple[str, ...] = ()

    @property
    def usage(self) -> Usage:
        """Tokens and cost of every model call of the run (all its executions), summed."""
        return sum(self.usage_by_agent.values(), Usage())

    @property
    def ok(self) -> bool:
        return self.status is RunStatus.COMPLETED

    @property
    def duration(self) -> float:
        return self.finished_at - self.started_at

    def unwrap(self) -> Any:
        """The output of a completed run.

        Raises:
            PodiumError: the run's own error if it failed.
            RunIncompleteError: the run was limited, cancelled or is waiting.
        """
        if self.status is RunStatus.COMPLETED:
            return self.output
        if self.error is not None:
            raise self.error
        raise RunIncompleteError(run_id=self.run_id, status=self.status.value, reason=self.reason or "")
