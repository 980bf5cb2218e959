"""Forking: a new run that continues from any point of an old one, the old one untouched."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from podium.errors import ConfigError
from podium.journal._codec import decode, encode
from podium.journal._events import RunAccepted
from podium.runtime._runner import Checkpoint, history

if TYPE_CHECKING:
    from podium.flow._workflow import Workflow
    from podium.journal._store import Store

__all__ = ["fork"]


async def fork(
    workflow: Workflow[Any],
    store: Store,
    run_id: str,
    *,
    at: int | str,
    update: Mapping[str, Any] | None,
    new_run_id: str,
) -> str:
    """See ``Workflow.fork``: the new run's journal is its acceptance and one snapshot, the point forked from."""
    checkpoints = await history(workflow, store, run_id)
    point = _find(checkpoints, at, run_id)
    snapshot = point.snapshot
    if update:
        state = workflow.schema.replace(decode(snapshot.state), update)
        snapshot = dataclasses.replace(snapshot, state=encode(state))
    source = next(e.event for e in await store.read(run_id) if isinstance(e.event, RunAccepted))
    accepted = RunAccepted(
        workflow=workflow.name,
        state=source.state,
        parent_run_id=run_id,
        forked_at=f"superstep {point.superstep}",
        fingerprint=workflow.fingerprint,
        steps=workflow.step_paths(),
    )
    await store.create_run(
        new_run_id,
        workflow.name,
        [accepted, snapshot],
        owner=None,
        lease_seconds=0.0,
        at=_now(),
        parent_run_id=run_id,
    )
    return new_run_id


def _find(checkpoints: list[Checkpoint], at: int | str, run_id: str) -> Checkpoint:
    if isinstance(at, int):
        for point in checkpoints:
            if point.superstep == at:
                return point
    else:
        for point in reversed(checkpoints):
            for task in point.tasks:
                path, _, task_id = task.partition("@")
                if at in (path, task_id) or at == f"{point.superstep}.{point.tasks.index(task)}":
                    return point
    known = ", ".join(f"{p.superstep}: {'/'.join(p.tasks)}" for p in checkpoints) or "none"
    raise ConfigError(f"run {run_id} has no point {at!r} to fork from; its supersteps are {known}")


def _now() -> float:
    import time

    return time.time()
