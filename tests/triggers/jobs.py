"""What the trigger tests run: a one-step workflow over the event's payload, and a clock they drive.

Also a process for the race test, ``python -m tests.triggers.jobs STORE_URL GO_FILE COUNT up|down``: it says it
is ready (makes ``GO_FILE.up`` or ``.down``), waits for ``GO_FILE``, fires events ``e0`` to ``e<COUNT-1>`` of one
trigger (in that order, or the reverse), and prints how many runs it created and the run ids in event order (JSON).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from podium import END, START, Graph, Workflow, open_store
from podium.triggers import Fired, Launcher, Trigger, TriggerEvent, TriggerHooks, serve


class Job(BaseModel):
    payload: Any = None
    handled: str = ""


def jobs(name: str = "jobs", delay: float = 0.0) -> Workflow[Job]:
    """A workflow whose one step says what it handled (after ``delay`` seconds)."""

    async def handle(state: Job) -> dict[str, Any]:
        if delay:
            await asyncio.sleep(delay)
        return {"handled": f"handled {json.dumps(state.payload, sort_keys=True)}"}

    graph = Graph(Job, name=name)
    graph.add(handle)
    graph.chain(START, "handle", END)
    return graph.build(input="payload", output="handled")


def event(key: str, payload: Any = None, trigger: str = "hook") -> TriggerEvent:
    return TriggerEvent(
        trigger=trigger, source="webhook", key=key, payload=payload if payload is not None else {"k": key}
    )


class StopClock(Exception):
    """The test's clock reached its end."""


class FakeClock:
    """Time that moves only when a trigger sleeps (by exactly as long) and ends at ``until`` (the sleep raises
    :class:`StopClock`). ``jump=(after, seconds)``: the first sleep that ends after ``after`` takes ``seconds``
    longer (the machine was suspended)."""

    def __init__(self, start: float, until: float, jump: tuple[float, float] | None = None) -> None:
        self.t = start
        self.until = until
        self.jump = jump

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds
        if self.jump is not None and self.t > self.jump[0]:
            self.t += self.jump[1]
            self.jump = None
        if self.t >= self.until:
            raise StopClock
        await asyncio.sleep(0)


async def race(url: str, go: str, count: int, order: str) -> None:
    store = open_store(url)
    await store.open()
    launcher = Launcher(jobs(), store)
    await asyncio.to_thread(_ready_then_wait, Path(f"{go}.{order}"), Path(go))
    numbers = range(count) if order == "up" else range(count - 1, -1, -1)
    fired = sorted([await launcher.fire(event(f"e{i}")) for i in numbers], key=lambda f: int(f.event.key[1:]))
    print(json.dumps({"created": sum(f.created for f in fired), "run_ids": [f.run_id for f in fired]}))
    await store.close()


def _ready_then_wait(ready: Path, go: Path) -> None:
    ready.touch()
    while not go.exists():  # a busy wait: both processes start firing at about the same moment
        time.sleep(0.0005)


if __name__ == "__main__":
    from tests.triggers import jobs as module  # the journal names this module's classes, not __main__'s

    asyncio.run(module.race(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]))


class Seen(TriggerHooks):
    """What a serving process told its observer."""

    def __init__(self) -> None:
        self.ready: dict[str, str] = {}
        self.fired: list[Fired] = []
        self.refused: list[tuple[TriggerEvent, Exception]] = []
        self.is_ready = asyncio.Event()
        self.expected = 0

    def on_ready(self, *, trigger: Trigger, detail: str) -> None:
        self.ready[trigger.name] = detail
        if len(self.ready) >= self.expected:
            self.is_ready.set()

    def on_fired(self, *, fired: Fired) -> None:
        self.fired.append(fired)

    def on_refused(self, *, event: TriggerEvent, error: Exception) -> None:
        self.refused.append((event, error))

    def url(self, name: str) -> str:
        return self.ready[name].removeprefix("listening on ")


@contextlib.asynccontextmanager
async def serving(workflow: Workflow[Any], triggers: Sequence[Trigger], **options: Any) -> AsyncIterator[Seen]:
    """``serve`` in a task for the body of the ``with``, then stopped; the observer tells what it did."""
    seen = Seen()
    seen.expected = len(triggers)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(workflow, triggers, stop=stop, observer=seen, **options))
    ready = asyncio.create_task(seen.is_ready.wait())
    await asyncio.wait([task, ready], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        ready.cancel()
        task.result()  # it failed to start: raise why
    try:
        yield seen
    finally:
        stop.set()
        await task
