"""kill -9 in the middle of compensating: the resume finishes the compensation, undoing every account once.

Each campaign starts the saga of :mod:`tests.durability.saga_proc` in its own process and SIGKILLs it once the
log shows ``k`` accounts undone plus a few milliseconds (so most kills land while a compensation sleeps, in
flight). A second process resumes the run. Afterwards: no account is open, the journal says every account was
undone exactly once (``compensated``), the workflow never ran again, and a compensation journaled as done before
the kill was never run again (only the one in flight may run twice).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from podium import SQLiteStore
from podium.journal import Compensated, CompensationStarted, StepCompleted, StepFailed
from tests.durability.saga_proc import ACCOUNTS

ROOT = Path(__file__).resolve().parents[2]
KILL_AFTER = [0, 1, 2, 3, 4, 5, 1, 3]
"""Undone accounts seen in the log before each campaign's kill, once compensating has begun (repeats land at other
moments)."""


def _start(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.durability.saga_proc", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def _undone(log: Path, what: str = "undone") -> list[tuple[str, str]]:
    if not log.exists():
        return []
    lines = [line.split() for line in log.read_text().splitlines() if line]
    return [(pid, account) for pid, verb, account in lines if verb == what]


def _campaign(workdir: Path, k: int, extra: float) -> dict[str, object]:
    db, folder, log = workdir / "j.db", workdir / "accounts", workdir / "log"
    proc = _start([str(db), str(folder), str(log), "r1", "start"])
    deadline = time.monotonic() + 60
    while (
        (len(_undone(log)) < k or not _undone(log, "undoing")) and proc.poll() is None and time.monotonic() < deadline
    ):
        time.sleep(0.0005)
    time.sleep(extra)
    proc.kill()
    out, err = proc.communicate(timeout=60)
    killed = proc.returncode == -signal.SIGKILL
    journaled = {e.name.removeprefix("open_") for e in _journal(db) if isinstance(e, Compensated)}
    if not killed:  # a loaded machine let it finish first: nothing to resume (a resume would be refused)
        assert proc.returncode == 0, err
        return {"killed": False, "journaled": journaled, "again": set(), "result": json.loads(out.splitlines()[-1])}
    resumed = _start([str(db), str(folder), str(log), "r1", "resume"])
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    again = {account for pid, account in _undone(log, "undoing") if pid == str(resumed.pid)}
    return {"killed": killed, "journaled": journaled, "again": again, "result": json.loads(out.splitlines()[-1])}


def _journal(db: Path) -> list[object]:
    async def read() -> list[object]:
        store = SQLiteStore(db)
        await store.open()
        try:
            return [entry.event for entry in await store.read("r1")]
        finally:
            await store.close()

    return asyncio.run(read())


@pytest.mark.parametrize("campaign", range(len(KILL_AFTER)))
def test_a_kill_while_compensating_is_finished_by_the_resume(tmp_path: Path, campaign: int) -> None:
    k = KILL_AFTER[campaign]
    outcome = _campaign(tmp_path, k, extra=0.001 * (campaign % 4))
    result = outcome["result"]
    assert isinstance(result, dict)
    assert result["status"] == "failed"
    assert result["open"] == []  # every account closed
    events = _journal(tmp_path / "j.db")
    assert len([e for e in events if isinstance(e, CompensationStarted)]) == 1
    undone = Counter(e.name for e in events if isinstance(e, Compensated))
    assert undone == Counter(f"open_{a}" for a in ACCOUNTS)  # each exactly once in the journal
    assert len([e for e in events if isinstance(e, StepFailed)]) == 1  # the rejection ran once, never resumed
    assert len([e for e in events if isinstance(e, StepCompleted)]) == len(ACCOUNTS)
    if k < len(ACCOUNTS) - 2:
        assert outcome["killed"], "the kill came after the run had finished compensating"
    journaled, again = outcome["journaled"], outcome["again"]
    assert isinstance(journaled, set)
    assert isinstance(again, set)
    assert not journaled & again, f"compensations journaled as done before the kill ran again: {journaled & again}"
    assert again == set(ACCOUNTS) - journaled  # the resume undid exactly the rest, the one in flight included
