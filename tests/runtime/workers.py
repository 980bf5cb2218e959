"""A worker process for the multi-process tests: ``python -m tests.runtime.workers STORE_URL LOG MODE [LEASE]``.

MODE ``serve`` executes pending runs until none is left; ``crash`` kills its own process (SIGKILL) in the middle of
the second step of the first run it executes, leaving that run owned by a dead worker.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Annotated, Any

from pydantic import BaseModel

from podium import END, START, Graph, JournalOptions, Worker, Workflow, context, open_store, reducers


class Job(BaseModel):
    n: int = 0
    log: Annotated[list[str], reducers.append] = []


def build(log_path: str, crash: bool) -> Workflow[Job]:
    def record(name: str) -> None:
        line = f"{os.getpid()} {context().run_id} {name}\n".encode()
        fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    async def one(state: Job) -> dict[str, Any]:
        await asyncio.sleep(0.01)
        record("one")
        return {"n": state.n + 1, "log": "one"}

    async def two(state: Job) -> dict[str, Any]:
        if crash:
            os.kill(os.getpid(), signal.SIGKILL)
        await asyncio.sleep(0.01)
        record("two")
        return {"n": state.n + 10, "log": "two"}

    async def three(state: Job) -> dict[str, Any]:
        await asyncio.sleep(0.01)
        record("three")
        return {"n": state.n + 100, "log": "three"}

    graph = Graph(Job, name="jobs")
    graph.add(one).add(two).add(three)
    graph.chain(START, "one", "two", "three", END)
    return graph.build(output="n")


async def main(url: str, log_path: str, mode: str, lease: str = "30") -> None:
    workflow = build(log_path, crash=mode == "crash")
    options = JournalOptions(lease_seconds=float(lease))
    worker = Worker([workflow], store=open_store(url), concurrency=4, poll_seconds=0.05, journal=options)
    await worker.run_once()
    await worker.store.close()


if __name__ == "__main__":
    from tests.runtime import workers  # the journal names this module's classes, not __main__'s

    asyncio.run(workers.main(*sys.argv[1:5]))
