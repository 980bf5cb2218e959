"""Step fallbacks: when a step fails for good, the next of its alternatives is given the same state and item.

::

    graph.add(summarize, into="summary", retry=RetryPolicy(), fallbacks=[summarize_short, cached_summary])

A failure (not a cancellation, a limit or the runtime's own signals) is first retried as the step's policy says;
once the policy gives up, the next alternative runs, with the policy's attempts of its own, and so on. The first to
succeed gives the step's outcome. Each failed attempt is journaled (``step_failed``, with ``retry_in`` 0 before a
switch) and so is each switch (``fallback_taken``). When the last alternative fails too, the step's error names
every failure (and ``on_error``, if the step has one, gets that error). A crash in between starts the task again
from the step itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from podium.errors import StepFailedError
from podium.journal._events import FallbackTaken

if TYPE_CHECKING:
    from podium.runtime._task import Outcome, Task

__all__ = ["Switched", "fall_back"]


class Switched:
    """Where a task is in its step's fallbacks."""

    __slots__ = ("failures", "index", "since")

    def __init__(self, since: int) -> None:
        self.index = -1
        """The alternative that runs (an index into ``Step.fallbacks``); -1 before the first switch."""
        self.since = since
        """The task's attempt number at which it started (the retry policy counts from there)."""
        self.failures: list[str] = []
        """``name (ErrorType: message)`` of each callable that failed for good, in order."""


def fall_back(task: Task, outcome: Outcome, failed: str, attempt: int) -> FallbackTaken | None:
    """Note that ``failed`` (the step or its current alternative) failed for good on ``attempt``.

    Returns the switch to journal when another alternative is left (the task then runs it); otherwise None, and
    the outcome's error becomes one that names every failure.
    """
    error = outcome.error
    assert error is not None
    switched = task.fallback
    if switched is None:
        switched = task.fallback = Switched(attempt)
    cause = error.__cause__ or error
    switched.failures.append(f"{failed} ({type(cause).__name__}: {cause})")
    fallbacks = task.step.fallbacks
    if switched.index + 1 < len(fallbacks):
        switched.index += 1
        switched.since = attempt + 1
        return FallbackTaken(
            task_id=task.task_id,
            step=task.path,
            failed=failed,
            to=fallbacks[switched.index].name,
            error_type=type(cause).__name__,
            reason=str(error),
        )
    outcome.error = StepFailedError(
        f"failed, and so did each of its fallbacks: {'; '.join(switched.failures)}",
        run_id=error.run_id,
        step=task.path,
        attempt=attempt,
    )
    outcome.error.__cause__ = cause
    return None
