"""Retention: ``delete_runs`` removes only finished runs older than a cutoff; ``compact`` keeps what a resume needs.

Both run against the SQLite store (a file) and the memory store.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel

import podium
from podium import (
    END,
    START,
    Graph,
    JournalOptions,
    MemoryStore,
    RunNotFoundError,
    RunStatus,
    SQLiteStore,
    Store,
    Workflow,
    reducers,
)

StoreKind = Literal["sqlite", "memory"]


@contextlib.asynccontextmanager
async def open_store(kind: StoreKind, tmp_path: Path) -> AsyncIterator[Store]:
    store: Store = SQLiteStore(tmp_path / "j.db") if kind == "sqlite" else MemoryStore()
    await store.open()
    try:
        yield store
    finally:
        await store.close()


class Crash(BaseException):
    """Stands for the process dying in the middle of a step: not an error the runtime catches."""


class Loop(BaseModel):
    n: int = 0
    trail: Annotated[list[int], reducers.append] = []


LOOP_LENGTH = 200
SNAPSHOT_EVERY = 20
CRASH_AT = 150  # the superstep whose step "kills the process"


def looping(executed: list[int], *, crash_at: int | None = None) -> Workflow[Loop]:
    """One step that goes round ``LOOP_LENGTH`` times; it logs the ``n`` it was called with in ``executed``."""

    async def tick(state: Loop) -> dict[str, object]:
        executed.append(state.n)
        if crash_at is not None and state.n + 1 == crash_at:
            raise Crash
        return {"n": state.n + 1, "trail": [state.n + 1]}

    graph = Graph(Loop, name="long_loop")
    graph.add(tick, max_iterations=LOOP_LENGTH)
    graph.edge(START, "tick")
    graph.route("tick", lambda s: "tick" if s.n < LOOP_LENGTH else END, ["tick", END])
    return graph.build()


async def wait_for_lease_to_lapse(store: Store, run_id: str) -> None:
    """A resume may take the run once nobody holds its lease: podium releases it when an exception leaves run(),
    but a process that really died leaves it held (by a live pid here) until it runs out."""
    info = await store.get_run(run_id)
    if info.lease_until is not None:
        await asyncio.sleep(max(0.0, info.lease_until - time.time()) + 0.01)


# ---------------------------------------------------------------------------------------------------- compact


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
async def test_a_compacted_crashed_run_resumes_to_the_same_end_running_only_unfinished_steps(
    kind: StoreKind, tmp_path: Path
) -> None:
    options = JournalOptions(snapshot_every=SNAPSHOT_EVERY, lease_seconds=0.5)
    # at most: run_accepted, the latest snapshot, and the tasks_scheduled and step_completed of each superstep
    # since it (a one-task loop), plus the kinds compaction always keeps (none occur here but run_finished)
    bound = 2 + 2 * SNAPSHOT_EVERY + 1
    async with open_store(kind, tmp_path) as store:
        straight: list[int] = []
        reference = await looping(straight).run(Loop(), store=store, journal=options)
        assert reference.status is RunStatus.COMPLETED
        assert straight == list(range(LOOP_LENGTH))

        before_crash: list[int] = []
        with pytest.raises(Crash):
            await looping(before_crash, crash_at=CRASH_AT).run(Loop(), run_id="crashed", store=store, journal=options)
        assert before_crash == list(range(CRASH_AT))
        assert (await store.get_run("crashed")).status == "running"

        journaled = len(await store.read("crashed"))
        dropped = await store.compact("crashed")
        kept = await store.read("crashed")
        assert dropped == journaled - len(kept)
        assert journaled > CRASH_AT - 1  # a step_completed per finished superstep, and more
        assert len(kept) <= bound
        assert kept[0].event.kind == "run_accepted"
        assert [e.event.kind for e in kept].count("snapshot") == 1

        await wait_for_lease_to_lapse(store, "crashed")
        after_resume: list[int] = []
        resumed = await looping(after_resume).resume("crashed", store=store, journal=options)

        assert resumed.status is RunStatus.COMPLETED
        assert resumed.state == reference.state
        assert resumed.state.trail == list(range(1, LOOP_LENGTH + 1))
        # the superstep that crashed and those after it ran; the finished ones after the snapshot were replayed
        assert after_resume == list(range(CRASH_AT - 1, LOOP_LENGTH))

        await store.compact("crashed")
        assert len(await store.read("crashed")) <= bound
        assert (await store.get_run("crashed")).status == "completed"


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
async def test_compact_without_a_snapshot_drops_nothing(kind: StoreKind, tmp_path: Path) -> None:
    async with open_store(kind, tmp_path) as store:
        short = await looping([]).run(Loop(), store=store, journal=JournalOptions(snapshot_every=LOOP_LENGTH + 1))
        journaled = await store.read(short.run_id)
        assert "snapshot" not in [e.event.kind for e in journaled]
        assert await store.compact(short.run_id) == 0
        assert await store.read(short.run_id) == journaled


# ---------------------------------------------------------------------------------------------------- delete_runs


class Plain(BaseModel):
    n: int = 0
    answer: str = ""


def plain(name: str, step: Callable[[Plain], Awaitable[dict[str, object]]]) -> Workflow[Plain]:
    graph = Graph(Plain, name=name)
    graph.add(step, name="only")
    graph.chain(START, "only", END)
    return graph.build()


async def ok(state: Plain) -> dict[str, object]:
    return {"n": state.n + 1}


async def fails(state: Plain) -> dict[str, object]:
    raise ValueError("no")


async def crashes(state: Plain) -> dict[str, object]:
    raise Crash


async def asks(state: Plain) -> dict[str, object]:
    return {"answer": podium.ask("Go on?", schema=str)}


def question_rows(path: Path, run_id: str) -> int:
    with contextlib.closing(sqlite3.connect(path)) as db:
        (count,) = db.execute("SELECT count(*) FROM podium_questions WHERE run_id = ?", (run_id,)).fetchone()
    return int(count)


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
async def test_delete_runs_removes_only_finished_runs_older_than_the_cutoff(kind: StoreKind, tmp_path: Path) -> None:
    async with open_store(kind, tmp_path) as store:
        completed = await plain("ok", ok).run(store=store)
        failed = await plain("fails", fails).run(store=store)
        assert failed.status is RunStatus.FAILED
        asked = plain("asks", asks)
        answered = await asked.run(store=store)
        await podium.answer(answered.run_id, answered.waiting[0], "yes", store=store)
        answered = await asked.resume(answered.run_id, store=store)
        assert answered.status is RunStatus.COMPLETED
        with pytest.raises(Crash):
            await plain("crashes", crashes).run(run_id="running", store=store)
        waiting = await asked.run(store=store)
        assert waiting.status is RunStatus.WAITING
        old = [completed.run_id, failed.run_id, answered.run_id, "running", waiting.run_id]
        cutoff = max([(await store.get_run(run_id)).updated_at for run_id in old]) + 0.001
        await asyncio.sleep(max(0.0, cutoff - time.time()) + 0.01)  # the next run finishes after the cutoff
        recent = await plain("ok", ok).run(store=store)

        doomed = [completed.run_id, failed.run_id, answered.run_id]
        survivors = ["running", waiting.run_id, recent.run_id]
        assert {(await store.get_run(r)).status for r in survivors} == {"running", "waiting", "completed"}
        events = {run_id: len(await store.read(run_id)) for run_id in doomed + survivors}
        total = (await store.stats()).events
        if kind == "sqlite":
            assert question_rows(tmp_path / "j.db", answered.run_id) == 1

        assert await store.delete_runs(finished_before=cutoff) == len(doomed)

        for run_id in doomed:
            with pytest.raises(RunNotFoundError):
                await store.get_run(run_id)
            with pytest.raises(RunNotFoundError):
                await store.read(run_id)
            with pytest.raises(RunNotFoundError):
                await store.questions(run_id)
        for run_id in survivors:
            assert len(await store.read(run_id)) == events[run_id]
        assert [q.prompt for q in await store.questions(waiting.run_id, pending=True)] == ["Go on?"]
        stats = await store.stats()
        assert stats.runs == len(survivors)
        assert stats.events == total - sum(events[r] for r in doomed)
        if kind == "sqlite":
            assert question_rows(tmp_path / "j.db", answered.run_id) == 0
        assert await store.delete_runs(finished_before=cutoff) == 0


def file_pages(path: Path) -> int:
    """The database file's size in pages once its WAL is checkpointed into it (from a connection of our own)."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        (page_size,) = db.execute("PRAGMA page_size").fetchone()
    assert busy == 0
    return path.stat().st_size // int(page_size)


async def test_the_file_stops_growing_when_runs_are_compacted_and_old_ones_deleted(tmp_path: Path) -> None:
    """Round after round of runs, each compacted, each round's runs deleted in the next: the space freed is reused.

    Measured here: the file settles at about 41 pages by the third round and moves by at most 2 more; with
    compaction alone it grows by about 4 pages a round (the runs' kept events), so the 8 rounds checked at the
    end would add about 30 pages; with neither, about 120 a round.
    """
    path = tmp_path / "j.db"
    options = JournalOptions(snapshot_every=SNAPSHOT_EVERY)
    pages = []
    async with open_store("sqlite", tmp_path) as store:
        for _ in range(12):
            round_started = time.time()
            for _ in range(5):
                result = await looping([]).run(Loop(), store=store, journal=options)
                assert result.status is RunStatus.COMPLETED
                await store.compact(result.run_id)
            await store.delete_runs(finished_before=round_started)
            assert (await store.stats()).runs == 5
            pages.append(file_pages(path))
    assert pages[-1] - pages[3] <= 8, pages
