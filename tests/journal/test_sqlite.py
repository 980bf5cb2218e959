"""SQLiteStore beyond the conformance suite: files that are not journals, and two processes on one file."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import sqlite3
import sys
import threading
import time
from asyncio.subprocess import PIPE
from pathlib import Path
from typing import Any

import pytest

from podium.errors import StoreError
from podium.journal import RunAccepted, SQLiteStore, StepCompleted, _sqlite


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


@pytest.mark.parametrize("header", [b"", b"SQLite format 3\x00"], ids=["random", "sqlite-header-then-random"])
async def test_a_file_of_random_bytes_is_refused_untouched(tmp_path: Path, header: bytes) -> None:
    path = tmp_path / "notes.db"
    data = header + random.Random(7).randbytes(8192)
    path.write_bytes(data)
    with pytest.raises(StoreError, match=r"not a SQLite database|cannot be read as a SQLite database") as caught:
        await SQLiteStore(path).open()
    assert str(path) in str(caught.value)
    assert str(path) in caught.value.url
    assert path.read_bytes() == data, "the file was modified"
    assert _siblings(path) == ["notes.db"], "no -wal, -shm or -journal file may appear"


async def test_another_apps_sqlite_file_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        db.execute("INSERT INTO notes (body) VALUES ('keep me')")
    db.close()
    before = _digest(path)
    with pytest.raises(StoreError, match="not a podium journal") as caught:
        await SQLiteStore(path).open()
    assert "notes" in str(caught.value), "the message names what the file holds"
    assert _digest(path) == before, "the file was modified"
    assert _siblings(path) == ["app.db"]
    check = sqlite3.connect(path)
    try:
        assert check.execute("PRAGMA journal_mode").fetchone()[0] == "delete", "the file was switched to WAL"
    finally:
        check.close()


async def test_a_journal_of_a_future_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    store = SQLiteStore(path)
    await store.open()
    await store.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE podium_meta SET value = '2' WHERE key = 'version'")
    db.close()
    before = _digest(path)
    with pytest.raises(StoreError, match="version 2"):
        await SQLiteStore(path).open()
    assert _digest(path) == before


async def test_a_missing_folder_is_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "j.db"
    store = SQLiteStore(path)
    await store.open()
    try:
        await store.create_run("r1", "wf", [], owner=None, lease_seconds=30, at=time.time())
    finally:
        await store.close()
    assert path.is_file()


async def test_reopening_a_file_gives_back_its_runs(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    store = SQLiteStore(path)
    await store.open()
    event = RunAccepted(workflow="wf", state={"n": 1})
    await store.create_run("r1", "wf", [event], owner="w1", lease_seconds=30, at=time.time())
    runs, entries = await store.list_runs(), await store.read("r1")
    await store.close()
    again = SQLiteStore(path)
    await again.open()
    try:
        assert await again.list_runs() == runs
        assert await again.read("r1") == entries
    finally:
        await again.close()


_WRITER = """
import asyncio, json, sys, time
from podium.journal._events import RunStarted, StepCompleted
from podium.journal._sqlite import SQLiteStore

async def main(path: str, run_id: str, durability: str, seconds: float) -> None:
    print("ready", flush=True)
    sys.stdin.readline()  # go
    store = SQLiteStore(path, durability=durability, busy_timeout=10)
    appends, errors = 0, []
    try:
        await store.open()  # both processes create the file at once
        await store.create_run(run_id, "wf", [RunStarted(owner=run_id, resumed=False)], owner=run_id,
                               lease_seconds=60, at=time.time())
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            step = StepCompleted(task_id=str(appends), step="s", attempt=1, update={"n": appends}, goto=[],
                                 emitted=[], duration=0)
            await store.append(run_id, [step], owner=run_id, lease_seconds=60, at=time.time())
            appends += 1
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        await store.close()
    print(json.dumps({"appends": appends, "errors": errors}), flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])))
"""


@pytest.mark.parametrize("durability", ["process", "power"])
async def test_two_processes_write_one_file_without_database_is_locked(tmp_path: Path, durability: str) -> None:
    path = tmp_path / "shared" / "j.db"
    if durability == "power":  # here the file exists before the writers start; with "process" they create it
        store = SQLiteStore(path, durability="power")
        await store.open()
        await store.close()
    procs = [
        await asyncio.create_subprocess_exec(
            *(sys.executable, "-c", _WRITER, str(path), run_id, durability, "1.0"), stdin=PIPE, stdout=PIPE, stderr=PIPE
        )
        for run_id in ("a", "b")
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert (await asyncio.wait_for(proc.stdout.readline(), 30)).strip() == b"ready"
        outputs = await asyncio.wait_for(asyncio.gather(*(proc.communicate(b"go\n") for proc in procs)), 30)
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    results = {}
    for run_id, (out, err) in zip(("a", "b"), outputs, strict=True):
        assert out.strip(), f"writer {run_id} printed nothing; stderr:\n{err.decode()}"
        results[run_id] = json.loads(out.strip().splitlines()[-1])
        assert results[run_id]["errors"] == [], f"writer {run_id} failed: {results[run_id]['errors']}"
        assert results[run_id]["appends"] > 10, results[run_id]
    store = SQLiteStore(path)
    await store.open()
    try:
        for run_id, result in results.items():
            entries = await store.read(run_id)
            assert [e.seq for e in entries] == list(range(1, result["appends"] + 2)), f"{run_id}'s journal has gaps"
            assert all(isinstance(e.event, StepCompleted) for e in entries[1:])
    finally:
        await store.close()


async def test_power_mode_reads_do_not_see_a_write_in_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # In power mode a write runs in a worker thread on the store's one connection; a read on the event loop in the
    # middle of it would see the run's new last_seq before the events are in (or rows that are then rolled back).
    store = SQLiteStore(tmp_path / "j.db", durability="power")
    await store.open()
    await store.create_run("r1", "wf", [], owner="w1", lease_seconds=60, at=time.time())
    inside, go_on = threading.Event(), threading.Event()
    insert_events = _sqlite._insert_events

    def paused(*args: Any) -> int:
        inside.set()
        go_on.wait(10)
        return insert_events(*args)

    monkeypatch.setattr(_sqlite, "_insert_events", paused)
    step = StepCompleted(task_id="t", step="s", attempt=1, update={}, goto=[], emitted=[], duration=0)
    try:
        append = asyncio.create_task(store.append("r1", [step], owner="w1", lease_seconds=60, at=time.time()))
        assert await asyncio.to_thread(inside.wait, 10), "the append never started"
        reading = asyncio.create_task(store.get_run("r1"))
        await asyncio.sleep(0.1)
        if reading.done():
            assert reading.result().last_seq == 0, "a read saw the last_seq of a write not yet committed"
        go_on.set()
        assert (await append, (await reading).last_seq) == (1, 1)
        assert len(await store.read("r1")) == 1
    finally:
        go_on.set()
        await store.close()
