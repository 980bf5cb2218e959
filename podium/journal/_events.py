"""The journal's records: everything a run decides or observes, in the order it happened.

Each record is a frozen dataclass with a ``kind``; :data:`EVENTS` is the one ``TypeAdapter`` that reads and writes
them. Values that came from user code (state, updates, items, answers) are held already encoded by
:mod:`podium.journal._codec`, so a record is plain JSON all the way down.

A run's journal reads, for example::

    run_accepted      the run exists, with its input; written before any step runs
    trigger_fired     a trigger started the run: which one, what it saw, and the idempotency key (with run_accepted)
    run_started       a process took the run (again, after a resume)
    tasks_scheduled   the tasks of a superstep that has several (a lone task is named by its own record)
    step_completed    a task's update, routing and emitted events: never executed again once written
    step_failed       a task's error and attempt (``handled`` when on_error recovered)
    interrupt_asked   a step asked a person; interrupt_answered: the answer
    run_suspended     the run waits for answers; no process owns it
    snapshot          the state and frontier after a superstep, so resume need not replay from the start
    model_called      an agent's call to a model: what it answered, the tokens and the cost (replay reads these)
    model_failed      an agent's call to a model that failed, and whether (and when) it is tried again
    breaker_changed   a model's circuit breaker opened, went half-open or closed
    fallback_taken    a failed agent or step handed its task to the next of its fallbacks
    tool_started      an agent is about to call a tool that is not idempotent, with its idempotency key
    tool_called       an agent's call to a tool: arguments and result, or why it was refused
    compensation_started  the run failed or was cancelled after side effects; undoing them begins
    compensated       one step's or tool call's compensation ran; compensation_failed: an attempt that failed
    knowledge_written a step (an agent, through its tools, or the step's own code) wrote to the knowledge base
    run_finished      completed, failed, limited or cancelled, with the reason
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import Field, TypeAdapter

__all__ = [
    "EVENTS",
    "BreakerChanged",
    "Compensated",
    "CompensationFailed",
    "CompensationStarted",
    "Event",
    "FallbackTaken",
    "InterruptAnswered",
    "InterruptAsked",
    "KnowledgeWritten",
    "ModelCalled",
    "ModelFailed",
    "RunAccepted",
    "RunFinished",
    "RunStarted",
    "RunSuspended",
    "Snapshot",
    "StepCompleted",
    "StepFailed",
    "TasksScheduled",
    "ToolCalled",
    "ToolStarted",
    "TriggerFired",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunAccepted:
    """The run exists. Its input is the initial state, encoded."""

    kind: Literal["run_accepted"] = "run_accepted"
    workflow: str
    state: Any
    parent_run_id: str | None = None
    forked_at: str | None = None
    fingerprint: str | None = None
    """The workflow's structure hash (``Workflow.fingerprint``), so a resume can tell the code changed."""
    steps: list[str] | None = None
    """The workflow's step paths, sub-workflows' included, so a refused resume can say what changed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TriggerFired:
    """A trigger (a schedule, a watched folder, a webhook) started the run, in the transaction that created it.

    The run's id is derived from the trigger's name and ``key`` (the event's idempotency key), so the same event
    seen twice maps to the same run id, and the store refuses the second run.
    """

    kind: Literal["trigger_fired"] = "trigger_fired"
    trigger: str
    source: str
    """``schedule``, ``folder`` or ``webhook``."""
    key: str
    payload: Any
    """What the trigger saw (the due time, the file, the request's JSON body), encoded."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStarted:
    """A process (``owner``) began or resumed executing the run."""

    kind: Literal["run_started"] = "run_started"
    owner: str
    resumed: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class TasksScheduled:
    """A superstep's tasks (``[{"id", "step", "item"?}]``) in task order, in ``scope`` ("" or a task id + "/")."""

    kind: Literal["tasks_scheduled"] = "tasks_scheduled"
    scope: str
    superstep: int
    tasks: list[dict[str, Any]]


@dataclass(frozen=True, slots=True, kw_only=True)
class StepCompleted:
    """A task's result: ``update`` (field → encoded value), ``goto`` and ``emitted`` (encoded), how long it took."""

    kind: Literal["step_completed"] = "step_completed"
    task_id: str
    step: str
    attempt: int
    update: dict[str, Any] | None
    goto: list[Any]
    emitted: list[Any]
    duration: float
    recovered: str | None = None
    """The error that ``on_error`` turned into this update, if any."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StepFailed:
    """A task failed (``handled``: on_error recovered it, and a step_completed follows)."""

    kind: Literal["step_failed"] = "step_failed"
    task_id: str
    step: str
    attempt: int
    error_type: str
    message: str
    handled: bool
    retry_in: float | None = None
    """When the step's retry policy tries it again: after this many seconds."""


@dataclass(frozen=True, slots=True, kw_only=True)
class InterruptAsked:
    """A step asked a person. ``schema`` is the answer type's import path, ``json_schema`` its JSON Schema."""

    kind: Literal["interrupt_asked"] = "interrupt_asked"
    interrupt_id: str
    task_id: str
    step: str
    prompt: str
    ask: str
    schema: str | None
    json_schema: dict[str, Any] | None
    value: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class InterruptAnswered:
    """A person answered; ``answer`` is encoded, and already checked against the question's schema."""

    kind: Literal["interrupt_answered"] = "interrupt_answered"
    interrupt_id: str
    answer: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSuspended:
    """The run stopped to wait for answers to these questions; it resumes when they are given."""

    kind: Literal["run_suspended"] = "run_suspended"
    waiting: list[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """The top-level runner's position after a superstep: enough to resume without replaying what came before."""

    kind: Literal["snapshot"] = "snapshot"
    superstep: int
    state: Any
    frontier: list[dict[str, Any]]
    iterations: dict[str, int]
    join_seen: list[list[str]]
    steps_done: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelCalled:
    """An agent asked a model (call ``index`` within its task) and got ``message`` (encoded) back."""

    kind: Literal["model_called"] = "model_called"
    task_id: str
    agent: str
    index: int
    model: str
    message: Any
    input_tokens: int
    output_tokens: int
    cost_usd: float
    duration: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelFailed:
    """An agent's call ``index`` to a model failed on ``attempt``; ``retry_in`` seconds before the next, if any."""

    kind: Literal["model_failed"] = "model_failed"
    task_id: str
    agent: str
    index: int
    attempt: int
    model: str
    error_type: str
    message: str
    transient: bool
    retry_in: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerChanged:
    """The circuit breaker of ``model`` changed state, during a call of this task."""

    kind: Literal["breaker_changed"] = "breaker_changed"
    task_id: str
    model: str
    state: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class FallbackTaken:
    """``failed`` (an agent, or a step's callable) failed for good; its task goes to ``to``, the next fallback."""

    kind: Literal["fallback_taken"] = "fallback_taken"
    task_id: str
    step: str
    failed: str
    to: str
    error_type: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolStarted:
    """An agent is about to call a tool that is not idempotent. Journaled before the call: if no ``tool_called``
    with the same ``key`` follows, the call was in flight when the run stopped, and may or may not have happened."""

    kind: Literal["tool_started"] = "tool_started"
    task_id: str
    agent: str
    tool: str
    key: str
    arguments: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCalled:
    """An agent called a tool (``refused``: the agent was not granted it, and the tool did not run).

    ``key`` is the call's idempotency key: a later call with the same key in the same task (after a crash, or in a
    retried attempt) gets this result instead of calling the tool again. ``resolved`` says how a call that was in
    flight when the run stopped was settled: ``"redone"``, ``"reconciled"`` (the tool's reconcile hook) or
    ``"person"`` (someone answered).
    """

    kind: Literal["tool_called"] = "tool_called"
    task_id: str
    agent: str
    tool: str
    call_id: str
    arguments: Any
    result: Any = None
    error: str | None = None
    refused: bool = False
    key: str | None = None
    resolved: str | None = None
    compensable: bool = False
    """The tool declares a compensation: the call is undone if the run fails or is cancelled later."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CompensationStarted:
    """The run failed or was cancelled after side effects that declare how to undo themselves; compensating them
    begins. A resume after a crash from here on finishes compensating instead of running the workflow."""

    kind: Literal["compensation_started"] = "compensation_started"
    status: str
    reason: str | None
    error_type: str | None
    state: Any
    pending: list[str]
    """What will be undone, in order: each effect's target (a step's task id, a tool call's key)."""
    steps: int = 0
    """Step executions when the run ended, for the result of a resume that finishes the compensation."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Compensated:
    """One side effect was undone (``target``: a task id, or a tool call's key)."""

    kind: Literal["compensated"] = "compensated"
    target: str
    name: str
    attempt: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CompensationFailed:
    """An attempt to undo a side effect failed; ``retry_in`` is None when no attempt is left (it needs a person)."""

    kind: Literal["compensation_failed"] = "compensation_failed"
    target: str
    name: str
    attempt: int
    error_type: str
    message: str
    retry_in: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class KnowledgeWritten:
    """A task wrote record ``record_id`` of the knowledge base (see :mod:`podium.knowledge`).

    ``action`` is ``created``, ``updated``, ``unchanged`` (the same write again, after a crash or a retry: the
    record's id is derived from the run, so nothing was duplicated) or ``deleted``. The record itself keeps the
    provenance (agent, run, step, task, time); this is the run's own account of what it wrote.
    """

    kind: Literal["knowledge_written"] = "knowledge_written"
    task_id: str
    agent: str | None
    namespace: str
    record_id: str
    record_kind: str
    title: str
    action: str
    content_hash: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFinished:
    """The run ended: ``status`` is completed, failed, limited or cancelled."""

    kind: Literal["run_finished"] = "run_finished"
    status: str
    reason: str | None
    limit: str | None
    error_type: str | None
    output: Any
    steps: int


Event: TypeAlias = Annotated[
    RunAccepted
    | TriggerFired
    | RunStarted
    | TasksScheduled
    | StepCompleted
    | StepFailed
    | InterruptAsked
    | InterruptAnswered
    | RunSuspended
    | Snapshot
    | ModelCalled
    | ModelFailed
    | BreakerChanged
    | FallbackTaken
    | ToolStarted
    | ToolCalled
    | CompensationStarted
    | Compensated
    | CompensationFailed
    | KnowledgeWritten
    | RunFinished,
    Field(discriminator="kind"),
]


class _Records:
    """The one ``TypeAdapter`` for journal records, built on first use: building it costs about 20 ms and 2 MB,
    which a process that runs without a journal (or only imports podium) should not pay."""

    @functools.cached_property
    def adapter(self) -> TypeAdapter[Event]:
        return TypeAdapter(Event)

    def dump_json(self, event: Event) -> bytes:
        return self.adapter.dump_json(event)

    def dump_python(self, event: Event, *, mode: Literal["json", "python"] = "python") -> Any:
        return self.adapter.dump_python(event, mode=mode)

    def validate_json(self, data: str | bytes) -> Event:
        return self.adapter.validate_json(data)

    def validate_python(self, data: Any) -> Event:
        return self.adapter.validate_python(data)


EVENTS = _Records()
"""Reads a stored record (JSON, or a dict with ``kind``) into its dataclass, and dumps one back."""
