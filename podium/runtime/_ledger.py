"""A run's ledger of side effects: which tool calls happened, so none happens twice, and what to undo on failure.

**Exactly-once tool calls.** Each tool call an agent makes gets an idempotency key. The key comes from the run, the
task, the tool, the canonical JSON of its arguments and how many identical calls came before it in the same attempt.
So the same call made again in the same place gets the same key: after a crash, or in a retried attempt. A call
whose result is in the ledger is answered from it; the tool is not called again. A tool that is not idempotent is
journaled as started (``tool_started``) before it runs. If no result follows, the call was in flight when the run
stopped, and it may or may not have taken effect: see :func:`podium.agents._tool.call_once` for how that is settled.

**Compensations.** A step or tool that declares how to undo itself leaves an :class:`Effect` here when it finishes.
If the run fails or is cancelled, :mod:`podium.runtime._saga` undoes the effects in reverse order.

A resume rebuilds the ledger from the journal (:meth:`Ledger.index`), so both survive a crash.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from podium.journal._events import (
    Compensated,
    CompensationStarted,
    Event,
    StepCompleted,
    ToolCalled,
    ToolStarted,
)

__all__ = ["Effect", "Ledger", "tool_key"]


@dataclass(frozen=True, slots=True)
class Effect:
    """A finished step or tool call that may need undoing.

    Attributes:
        kind: ``"step"`` or ``"tool"``.
        target: the task id of a step, or the idempotency key of a tool call.
        name: the step's path, or the tool's name.
        value: what it produced (the step's output, the tool's result); encoded when ``encoded``.
        arguments: a tool call's arguments, encoded.
    """

    kind: Literal["step", "tool"]
    target: str
    name: str
    value: Any
    encoded: bool
    arguments: Any = None

    @property
    def label(self) -> str:
        return self.name if self.kind == "step" else f"tool {self.name}"


class Ledger:
    """Tool results by key, calls in flight, the effects to undo, and how far compensating got.

    Attributes:
        results: every finished tool call of the run, by idempotency key.
        in_flight: calls journaled as started whose result never came (a previous execution stopped).
        effects: finished steps and tool calls, in the order they finished.
        compensation: the ``compensation_started`` record once compensating began.
        compensated: the targets already undone.
    """

    __slots__ = ("compensated", "compensation", "effects", "in_flight", "results")

    def __init__(self) -> None:
        self.results: dict[str, ToolCalled] = {}
        self.in_flight: dict[str, ToolStarted] = {}
        self.effects: list[Effect] = []
        self.compensation: CompensationStarted | None = None
        self.compensated: set[str] = set()

    def index(self, event: Event) -> None:
        """Take in one journal record (on a resume, in journal order)."""
        if isinstance(event, ToolCalled):
            if event.key is not None:
                self.tool_finished(event, encoded=True)
        elif isinstance(event, ToolStarted):
            self.in_flight[event.key] = event
        elif isinstance(event, StepCompleted):
            if event.recovered is None:
                self.effects.append(Effect("step", event.task_id, event.step, event.update, True))
        elif isinstance(event, CompensationStarted):
            self.compensation = event
        elif isinstance(event, Compensated):
            self.compensated.add(event.target)

    def tool_finished(self, record: ToolCalled, *, encoded: bool, value: Any = None) -> None:
        """Note a finished tool call: its result answers the same call from now on, and it may need undoing."""
        assert record.key is not None
        self.results[record.key] = record
        self.in_flight.pop(record.key, None)
        if record.error is None and not record.refused:
            result = record.result if encoded else value
            self.effects.append(Effect("tool", record.key, record.tool, result, encoded, record.arguments))


def tool_key(run_id: str, task_id: str, tool: str, arguments: Mapping[str, Any], seen: dict[str, int]) -> str:
    """The idempotency key of a tool call; ``seen`` counts identical calls so far in this attempt."""
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), default=repr)
    call = f"{tool}:{canonical}"
    seen[call] = occurrence = seen.get(call, 0) + 1
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"podium:{run_id}/{task_id}/{call}#{occurrence}"))
