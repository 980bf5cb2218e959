"""Several processes sharing one store: every run executed, no step executed twice, dead owners taken over."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from podium import RunStatus, Store, Worker, open_store
from tests.runtime.workers import build

ROOT = Path(__file__).resolve().parents[2]


def spawn(url: str, log: Path, mode: str, lease: float = 30.0) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "tests.runtime.workers", url, str(log), mode, str(lease)]
    return subprocess.Popen(command, cwd=ROOT)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store several processes can share: a SQLite file, or a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'j.db'}"
    url: str = request.getfixturevalue("postgres_store_url")
    return url


async def submit(store: Store, log: Path, count: int) -> list[str]:
    workflow = build(str(log), crash=False)
    return [await workflow.submit({"n": i * 1000}, store=store) for i in range(count)]


def executions(log: Path) -> Counter[tuple[str, str]]:
    lines = log.read_text().splitlines() if log.exists() else []
    return Counter((run_id, step) for _pid, run_id, step in (line.split() for line in lines))


async def check_all_done_once(store: Store, run_ids: list[str], log: Path) -> None:
    counts = executions(log)
    for i, run_id in enumerate(run_ids):
        info = await store.get_run(run_id)
        assert info.status == "completed", info
        assert [counts[(run_id, step)] for step in ("one", "two", "three")] == [1, 1, 1], run_id
        finished = [e.event for e in await store.read(run_id) if e.event.kind == "run_finished"]
        assert len(finished) == 1
        assert finished[0].output == i * 1000 + 111


async def test_one_worker_executes_submitted_runs(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'j.db'}")
    log = tmp_path / "log"
    run_ids = await submit(store, log, 6)
    assert {(await store.get_run(r)).status for r in run_ids} == {"pending"}
    worker = Worker([build(str(log), crash=False)], store=store, concurrency=3)
    assert await worker.run_once() == 6
    assert {r.status for r in worker.finished} == {RunStatus.COMPLETED}
    await check_all_done_once(store, run_ids, log)
    await store.close()


@pytest.mark.slow
async def test_processes_sharing_a_store_never_run_a_step_twice(shared_url: str, tmp_path: Path) -> None:
    store = open_store(shared_url)
    log = tmp_path / "log"
    run_ids = await submit(store, log, 40)
    procs = [spawn(shared_url, log, "serve") for _ in range(3)]
    codes = await asyncio.gather(*(asyncio.to_thread(p.wait, 60) for p in procs))
    assert codes == [0, 0, 0]
    await check_all_done_once(store, run_ids, log)
    pids = {line.split()[0] for line in log.read_text().splitlines()}
    assert len(pids) > 1  # the work really was shared
    await store.close()


@pytest.mark.slow
async def test_a_run_whose_worker_died_is_taken_over(shared_url: str, tmp_path: Path) -> None:
    store = open_store(shared_url)
    log = tmp_path / "log"
    run_ids = await submit(store, log, 1)
    crashed = spawn(shared_url, log, "crash", lease=1.0)
    assert await asyncio.to_thread(crashed.wait, 60) == -9
    info = await store.get_run(run_ids[0])
    assert info.status == "running"
    assert info.owner is not None  # owned by a worker that no longer exists
    assert executions(log)[(run_ids[0], "one")] == 1
    await asyncio.sleep(1.2)  # PostgreSQL trusts a lease until it lapses (SQLite also sees the owner is dead)
    survivor = spawn(shared_url, log, "serve")
    assert await asyncio.to_thread(survivor.wait, 60) == 0
    await check_all_done_once(store, run_ids, log)  # "one" was journaled, so it did not run again
    await store.close()
