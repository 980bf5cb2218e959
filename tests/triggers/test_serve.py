"""Serving: triggers start runs and a worker executes them; stopping lets runs finish within a grace period and
leaves the rest resumable; ``podium serve`` does it all from a crew file and stops on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from podium import ConfigError, MemoryStore, RunStatus, Store, Worker, open_store
from podium.triggers import Schedule, Trigger, WatchFolder, Webhook
from tests.triggers.jobs import jobs, serving

ROOT = Path(__file__).resolve().parents[2]


async def settled(store: Store, count: int, seconds: float = 10.0) -> list[Any]:
    """The store's runs once ``count`` of them have finished (or whatever there is when time is up)."""
    deadline = time.monotonic() + seconds
    while True:
        runs = await store.list_runs()
        if sum(r.status == "completed" for r in runs) >= count or time.monotonic() > deadline:
            return runs
        await asyncio.sleep(0.05)


async def running(store: Store, run_id: str) -> None:
    while True:
        if (await store.get_run(run_id)).status == "running":
            return
        await asyncio.sleep(0.01)


async def test_triggers_start_runs_that_are_executed_once(tmp_path: Path) -> None:
    store = MemoryStore()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.txt").write_text("a")
    triggers: list[Trigger] = [
        Webhook(path="/in", name="hook", port=0),
        WatchFolder(path=inbox, name="inbox", settle=0.1, poll=0.05),
    ]
    async with serving(jobs(), triggers, store=store) as seen, httpx.AsyncClient() as client:
        posted = await client.post(seen.url("hook"), json={"n": 1})
        again = await client.post(seen.url("hook"), json={"n": 1})
        runs = await settled(store, 2)
    assert (posted.status_code, again.status_code) == (202, 200)
    assert sorted((r.run_id.split("-")[0], r.status) for r in runs) == [("hook", "completed"), ("inbox", "completed")]
    assert sum(f.created for f in seen.fired) == 2
    assert "watching" in seen.ready["inbox"]


async def test_stopping_lets_runs_finish_within_the_grace_and_leaves_the_rest_resumable() -> None:
    store = MemoryStore()
    slow = jobs(delay=30.0)
    async with serving(slow, [Webhook(path="/in", name="hook", port=0)], store=store, grace=0.2) as seen:
        async with httpx.AsyncClient() as client:
            run_id = (await client.post(seen.url("hook"), json={"n": 1})).json()["run_id"]
        await running(store, run_id)
        started = time.monotonic()
    assert time.monotonic() - started < 5  # the grace, not the run's 30 s
    info = await store.get_run(run_id)
    assert (info.status, info.owner) == ("running", None)  # not ended: its lease given up for the next worker
    worker = Worker([jobs()], store=store)  # the next serve (quick, this time)
    assert await worker.run_once() == 1
    assert worker.finished[0].status is RunStatus.COMPLETED


async def test_schedules_run_on_the_real_clock_too(tmp_path: Path) -> None:
    """A smoke test of the system clock path: catch_up fires the minute that just began, at once."""
    store = MemoryStore()
    async with serving(jobs(), [Schedule(cron="* * * * *", name="minutely", catch_up=120)], store=store) as seen:
        runs = await settled(store, 1)
    assert [r.status for r in runs][:1] == ["completed"]
    assert seen.fired[0].event.source == "schedule"


async def test_a_missing_folder_or_store_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="folder trigger 'inbox': no folder at"):
        async with serving(jobs(), [WatchFolder(path=tmp_path / "nope", name="inbox")], store=MemoryStore()):
            pass
    with pytest.raises(ConfigError, match="needs a store"):
        async with serving(jobs(), [], store=False):
            pass


def test_podium_serve_runs_a_crews_triggers_until_sigterm(tmp_path: Path) -> None:
    crew_dir = tmp_path / "intake"
    shutil.copytree(ROOT / "examples" / "intake", crew_dir)
    crew = crew_dir / "crew.yaml"
    crew.write_text(crew.read_text().replace("port: 8765", "port: 0"))  # any free port: it is printed
    (crew_dir / "inbox" / "notes.txt").write_text("The pump in hall 2 is leaking. Please send someone today.")
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PODIUM_OUTPUT": str(tmp_path / "out")}
    command = [sys.executable, "-m", "podium.cli", "serve", str(crew), "--model", "test", "--store", url]
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        lines: list[str] = []
        assert proc.stderr is not None
        while not any("listening on" in line for line in lines):
            line = proc.stderr.readline()
            assert line, "".join(lines)
            lines.append(line)
        hook = next(line for line in lines if "listening on" in line).split("listening on ")[1].strip()
        document = {"title": "Refund request", "text": "I was charged twice in March."}
        first = httpx.post(hook, json=document, timeout=10)
        again = httpx.post(hook, json=document, timeout=10)
        assert (first.status_code, again.status_code) == (202, 200)
        runs = asyncio.run(_settled_in(url, 2))
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    err = "".join(lines) + err
    assert proc.returncode == 0, err
    assert sorted(r.workflow for r in runs) == ["intake", "intake"]
    assert {r.status for r in runs} == {"completed"}, err
    assert {r.run_id.split("-")[0] for r in runs} == {"documents", "inbox"}
    assert "seen before" in err
    assert err.rstrip().endswith("stopped")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["notes.md", "refund-request.md"]
    shown = subprocess.run(
        [sys.executable, "-m", "podium.cli", "show", first.json()["run_id"], "--store", url, "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    report = json.loads(shown.stdout)
    assert report["trigger"]["source"] == "webhook"
    assert report["trigger"]["payload"] == document
    assert [t["step"] for t in report["tasks"]] == ["intake_source", "opener", "reader", "filer"]


async def _settled_in(url: str, count: int) -> list[Any]:
    store = open_store(url)
    await store.open()
    try:
        return await settled(store, count, seconds=20.0)
    finally:
        await store.close()
