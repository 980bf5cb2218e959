"""Another path for a step that fails for good: ``on_error=divert("manual_review")``, or ``on_error="manual_review"``.

::

    def manual_review(state: Order, failure: Failure) -> dict:
        return {"status": f"held: {failure.step} failed ({failure.error_type}: {failure.message})"}

    graph.add(charge, retry=RetryPolicy(), on_error="manual_review")
    graph.add(manual_review)

When ``charge`` fails (after its retries and fallbacks), the run goes to ``manual_review`` *instead of* ``charge``'s
own successors: its edges, its route and the joins it is a source of are not followed for this task. The target
gets the failure's details as a :class:`Failure`: as its item (so it takes ``(state, failure)``), or, with
``divert(to, into="field")``, in a state field. The target is one of the step's routes; ``Graph.build()`` checks
that it exists and can take the failure.

Any ``on_error`` handler that chooses where to go (returns ``Command(goto=...)`` or ``Send``) diverts the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from podium.errors import StepError
from podium.flow._step import END, Send

__all__ = ["Divert", "Diverted", "Failure", "divert"]


class Failure(BaseModel):
    """What went wrong with a step that failed for good: what a diverted path or a person is given.

    Attributes:
        step: the step's path (``"charge"``, ``"team/write"``).
        error_type: the original exception's type (``TimeoutError``, ``AgentOutputError``).
        message: podium's message: the step, the run, the attempt and what happened.
        attempt: the attempt that failed last.
        item: the failed task's item, if it had one (a subtask, an event).
    """

    model_config = ConfigDict(frozen=True)

    step: str
    error_type: str
    message: str
    attempt: int = 1
    item: Any = None

    @classmethod
    def of(cls, error: StepError, item: Any = None) -> Failure:
        """The details of ``error`` (its ``__cause__`` names the type), for the task that had ``item``."""
        cause = error.__cause__ or error
        return cls(
            step=error.step, error_type=type(cause).__name__, message=str(error), attempt=error.attempt, item=item
        )


@dataclass(frozen=True, slots=True)
class Diverted:
    """What a divert gives the runtime: the update and the next task(s), applied as they are."""

    update: Mapping[str, Any] | None
    goto: Sequence[str | Send]


@dataclass(frozen=True, slots=True)
class Divert:
    """An ``on_error`` handler that sends the run to step ``to`` with the :class:`Failure` (see :func:`divert`)."""

    to: str
    into: str | None = None

    def __call__(self, state: Any, error: StepError, item: Any = None) -> Diverted:
        failure = Failure.of(error, item)
        if self.into is None:
            return Diverted(None, (Send(self.to, failure),) if self.to != END else (END,))
        return Diverted({self.into: failure}, (self.to,))


def divert(to: str, *, into: str | None = None) -> Divert:
    """``on_error`` that takes another path: run step ``to`` instead of the failed step's successors.

    Args:
        to: the step to run; it must take ``(state, failure)`` unless ``into`` is given.
        into: a state field for the :class:`Failure` (typed ``Failure | None``, say); the target then runs as a plain
            step. Without it the failure is the target's item.
    """
    return Divert(to, into)
