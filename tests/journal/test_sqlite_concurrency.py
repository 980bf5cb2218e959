"""Many runs, and several processes, journaling into one SQLite file at once: no "database is locked", no lost or
duplicated event.

The cross-process test runs this module as a program (``python -m tests.journal.test_sqlite_concurrency``): each
child process starts its runs with the same workflow the in-process tests use.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel

from podium import END, START, Graph, RunStatus, SQLiteStore, Workflow

REPO_ROOT = Path(__file__).resolve().parents[2]
STEPS = 5


class Tally(BaseModel):
    n: int = 0


async def bump(state: Tally) -> dict[str, int]:
    await asyncio.sleep(0)  # yield, so that every run is in flight at once and their writes interleave
    return {"n": state.n + 1}


def five_steps() -> Workflow[Tally]:
    graph = Graph(Tally, name="five_steps")
    names = [f"s{i}" for i in range(STEPS)]
    for name in names:
        graph.add(bump, name=name)
    graph.chain(START, *names, END)
    return graph.build(output="n")


async def run_many(store: SQLiteStore, count: int) -> list[str]:
    """Start ``count`` runs at once; return the problems (an exception, or a run that did not complete)."""
    workflow = five_steps()
    results = await asyncio.gather(*(workflow.run(Tally(), store=store) for _ in range(count)), return_exceptions=True)
    problems = []
    for result in results:
        if isinstance(result, BaseException):
            problems.append(f"{type(result).__name__}: {result}")
        elif result.status is not RunStatus.COMPLETED or result.output != STEPS:
            problems.append(f"run {result.run_id} ended {result.status.value}: {result.reason}")
    return problems


async def check_journal(path: Path, runs: int) -> None:
    """The file holds ``runs`` completed runs, each with exactly ``STEPS`` step_completed events and gapless seqs."""
    store = SQLiteStore(path)
    await store.open()
    try:
        listed = await store.list_runs(limit=runs * 2)
        assert len(listed) == runs
        assert {info.status for info in listed} == {"completed"}
        assert len(await store.list_runs(status="completed", limit=runs * 2)) == runs
        for info in listed:
            entries = await store.read(info.run_id)
            assert [e.seq for e in entries] == list(range(1, len(entries) + 1)), info.run_id
            assert info.last_seq == len(entries)
            kinds = [e.event.kind for e in entries]
            assert kinds.count("step_completed") == STEPS, (info.run_id, kinds)
            assert kinds[0] == "run_accepted"
            assert kinds[-1] == "run_finished"
        assert (await store.stats()).runs == runs
    finally:
        await store.close()


@pytest.mark.parametrize("durability", ["process", "power"])
async def test_a_thousand_concurrent_runs_share_one_file(
    tmp_path: Path, durability: Literal["process", "power"]
) -> None:
    path = tmp_path / "j.db"
    store = SQLiteStore(path, durability=durability)
    try:
        problems = await run_many(store, 1_000)
    finally:
        await store.close()
    assert problems == []
    await check_journal(path, 1_000)


def test_two_processes_share_one_file(tmp_path: Path) -> None:
    """Both processes open the (not yet existing) file, then run 300 runs each, at the same moment."""
    path = tmp_path / "j.db"
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.journal.test_sqlite_concurrency", str(path), "300", str(tmp_path), str(i)],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [child.communicate(timeout=90) for child in children]
    for child, (stdout, stderr) in zip(children, outputs, strict=True):
        assert child.returncode == 0, stderr
        assert json.loads(stdout) == {"problems": [], "runs": 300}
        assert "database is locked" not in stderr
    asyncio.run(check_journal(path, 600))


# ---------------------------------------------------------------------------------------------------- child


def _wait_for_all(folder: Path, me: int, processes: int) -> None:
    """A barrier between the child processes, so that their runs really overlap."""
    (folder / f"ready-{me}").touch()
    deadline = time.monotonic() + 60
    while sum(1 for _ in folder.glob("ready-*")) < processes:
        if time.monotonic() > deadline:
            raise SystemExit("the other process never became ready")
        time.sleep(0.001)


async def _child(path: Path, runs: int) -> list[str]:
    store = SQLiteStore(path)
    try:
        return await run_many(store, runs)
    finally:
        await store.close()


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("path", type=Path)
    parser.add_argument("runs", type=int)
    parser.add_argument("barrier", type=Path)
    parser.add_argument("me", type=int)
    args = parser.parse_args(argv)
    _wait_for_all(args.barrier, args.me, 2)
    problems = asyncio.run(_child(args.path, args.runs))
    print(json.dumps({"problems": problems[:20], "runs": args.runs}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
