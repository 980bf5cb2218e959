"""A run's timeline, read from its journal: one record per task, and how the run ended (``podium show``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from podium.journal import Entry, Store

__all__ = ["TaskRecord", "plain", "run_end", "run_report", "run_trigger", "timeline"]


@dataclass(slots=True, kw_only=True)
class TaskRecord:
    """What the journal says about one task.

    Attributes:
        task_id: the task (``3.0``; ``2.0/1.1`` inside the sub-workflow of task ``2.0``).
        step: the step's path.
        status: ``scheduled`` (no result yet), ``waiting`` (asked a person), ``completed``, ``failed``,
            ``recovering`` (failed, and ``on_error`` handled it), ``recovered``, ``undone`` (compensated after the run
            failed) or ``undo failed``.
        agents: the agents that called a model in it.
        duration: seconds, once it finished.
        model_calls: calls to models; ``input_tokens``, ``output_tokens`` and ``cost_usd`` sum them.
        tool_calls: calls to tools (refused ones included).
        error: the error of a failed task.
    """

    task_id: str
    step: str | None = None
    status: str = "scheduled"
    agents: list[str] = field(default_factory=list)
    duration: float | None = None
    model_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    tool_calls: int = 0
    error: str | None = None


async def run_report(store: Store, run_id: str) -> dict[str, Any]:
    """Everything ``podium show`` tells about a run, as JSON-ready data: the run, its tasks, its questions, its end.

    Raises:
        RunNotFoundError: no such run.
    """
    info = await store.get_run(run_id)
    entries = await store.read(run_id)
    questions = [
        {
            "id": q.interrupt_id,
            "task_id": q.task_id,
            "step": q.step,
            "kind": q.ask,
            "prompt": q.prompt,
            "value": plain(q.value),
            "answered": q.answered,
            "answer": plain(q.answer),
        }
        for q in await store.questions(run_id)
    ]
    return {
        "run_id": run_id,
        "workflow": info.workflow,
        "status": info.status,
        "started": datetime.fromtimestamp(info.created_at).strftime("%Y-%m-%d %H:%M:%S"),
        "duration": round(info.duration, 3),
        "tasks": [dataclasses.asdict(record) for record in timeline(entries)],
        "questions": questions,
        "end": run_end(entries),
        "trigger": run_trigger(entries),
    }


def run_trigger(entries: Sequence[Entry]) -> dict[str, Any] | None:
    """What started the run, if a trigger did: its name, kind, the event's key and payload (plain data)."""
    for entry in entries[:3]:  # journaled with the run's acceptance
        event = entry.event
        if event.kind == "trigger_fired":
            return {"trigger": event.trigger, "source": event.source, "key": event.key, "payload": plain(event.payload)}
    return None


def timeline(entries: Sequence[Entry]) -> list[TaskRecord]:
    """One record per task, in the order the journal first names it."""
    tasks: dict[str, TaskRecord] = {}

    def task(task_id: str, step: str | None = None) -> TaskRecord:
        record = tasks.setdefault(task_id, TaskRecord(task_id=task_id))
        record.step = record.step or step
        return record

    for entry in entries:
        event = entry.event
        if event.kind == "tasks_scheduled":
            for item in event.tasks:
                task(item["id"], event.scope + item["step"])
        elif event.kind == "step_completed":
            record = task(event.task_id, event.step)
            record.status = "recovered" if event.recovered else "completed"
            record.duration = event.duration
        elif event.kind == "step_failed":
            record = task(event.task_id, event.step)
            record.status = "recovering" if event.handled else "failed"
            record.error = f"{event.error_type}: {event.message}"
        elif event.kind == "model_called":
            record = task(event.task_id)
            if event.agent not in record.agents:
                record.agents.append(event.agent)
            record.model_calls += 1
            record.input_tokens += event.input_tokens
            record.output_tokens += event.output_tokens
            record.cost_usd += event.cost_usd
        elif event.kind == "tool_called":
            task(event.task_id).tool_calls += 1
        elif event.kind == "interrupt_asked":
            task(event.task_id, event.step).status = "waiting"
        elif event.kind == "compensated" and event.target in tasks:
            tasks[event.target].status = "undone"
        elif event.kind == "compensation_failed" and event.target in tasks and event.retry_in is None:
            tasks[event.target].status = "undo failed"
    return list(tasks.values())


def run_end(entries: Sequence[Entry]) -> dict[str, Any] | None:
    """How the run ended (status, reason, limit, output as plain data, steps), how it waits, or None if neither."""
    for entry in reversed(entries):
        event = entry.event
        if event.kind == "run_finished":
            return {
                "status": event.status,
                "reason": event.reason,
                "limit": event.limit,
                "output": plain(event.output),
                "steps": event.steps,
            }
        if event.kind == "run_suspended":
            return {"status": "waiting", "waiting": list(event.waiting)}
    return None


def plain(data: Any) -> Any:
    """Journal data without its type tags (``{"$model": ..., "v": {...}}`` → ``{...}``), to show it without
    importing its classes."""
    if isinstance(data, list):
        return [plain(item) for item in data]
    if isinstance(data, dict):
        tags = [key for key in data if str(key).startswith("$")]
        if tags and len(data) <= 2:
            body = data["v"] if "v" in data else data[tags[0]]
            if tags[0] == "$dict":
                return {str(plain(k)): plain(v) for k, v in body}
            return plain(body)
        return {key: plain(item) for key, item in data.items()}
    return data
