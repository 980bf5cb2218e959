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

import dataclasses
import json
import uuid
import weakref
from collections.abc import Callable, Mapping
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

__all__ = ["Effect", "Ledger", "compensation_of", "register_compensation", "tool_key"]


@dataclass(frozen=True, slots=True)
class Effect:
    """A finished step or tool call that may need undoing.

    Attributes:
        kind: ``"step"`` or ``"tool"``.
        target: the task id of a step, or the idempotency key of a tool call (with ``~2``, ``~3``... when the same
            target finished again: a step re-executed in a retried sub-workflow of a run without a journal).
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
    undo: Callable[..., Any] | None = None
    """The compensation, when the effect happened in this execution; found again by name after a resume."""

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

    __slots__ = ("_seen", "compensated", "compensation", "effects", "in_flight", "results")

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}
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
                self.add(Effect("step", event.task_id, event.step, event.update, True))
        elif isinstance(event, CompensationStarted):
            self.compensation = event
        elif isinstance(event, Compensated):
            self.compensated.add(event.target)

    def tool_finished(
        self, record: ToolCalled, *, encoded: bool, value: Any = None, undo: Callable[..., Any] | None = None
    ) -> None:
        """Note a finished tool call: its result answers the same call from now on, and it may need undoing."""
        assert record.key is not None
        self.results[record.key] = record
        self.in_flight.pop(record.key, None)
        if record.error is None and not record.refused and record.compensable:
            result = record.result if encoded else value
            self.add(Effect("tool", record.key, record.tool, result, encoded, record.arguments, undo))

    def add(self, effect: Effect) -> None:
        """Note an effect to undo if the run fails (a target seen before gets a suffix: both happened)."""
        self._seen[effect.target] = count = self._seen.get(effect.target, 0) + 1
        if count > 1:
            effect = dataclasses.replace(effect, target=f"{effect.target}~{count}")
        self.effects.append(effect)


_COMPENSATIONS: weakref.WeakValueDictionary[str, Callable[..., Any]] = weakref.WeakValueDictionary()
"""Tools' compensations by tool name, for a resumed run that compensates calls made by an earlier process (a live
run keeps each call's own compensation in its effect). Weak: a tool that is gone leaves nothing behind."""


def register_compensation(tool: str, undo: Callable[..., Any]) -> None:
    """Make ``undo`` the compensation of the tool named ``tool`` for resumed runs (the latest tool of a name wins)."""
    try:
        _COMPENSATIONS[tool] = undo
    except TypeError:  # not weak-referenceable (a builtin): keep it for the process
        _STRONG[tool] = undo


_STRONG: dict[str, Callable[..., Any]] = {}


def compensation_of(tool: str) -> Callable[..., Any] | None:
    """The compensation registered for the tool named ``tool``, if any."""
    return _COMPENSATIONS.get(tool) or _STRONG.get(tool)


def tool_key(run_id: str, task_id: str, tool: str, arguments: Mapping[str, Any], seen: dict[str, int]) -> str:
    """The idempotency key of a tool call; ``seen`` counts identical calls so far in this attempt."""
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), default=repr)
    call = f"{tool}:{canonical}"
    seen[call] = occurrence = seen.get(call, 0) + 1
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"podium:{run_id}/{task_id}/{call}#{occurrence}"))
