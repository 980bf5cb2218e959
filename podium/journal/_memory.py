"""``MemoryStore``: journals in a dict, for tests and for runs that need no durability across processes."""

from __future__ import annotations

import copy
import dataclasses
import os
import socket
from collections.abc import Collection, Sequence
from typing import Any, cast

from pydantic_core import from_json, to_json

from podium.errors import InterruptError, LeaseLostError, RunNotFoundError, RunStateError
from podium.journal._events import EVENTS, Event, InterruptAnswered, InterruptAsked
from podium.journal._store import FINISHED, Entry, Question, RunInfo, RunState, StoreStats

__all__ = ["KEEP_WHEN_COMPACTING", "MemoryStore", "claim_refusal", "question_from"]

KEEP_WHEN_COMPACTING = frozenset(
    {"run_accepted", "trigger_fired", "interrupt_asked", "interrupt_answered", "step_failed", "run_finished"}
)


class MemoryStore:
    """A :class:`~podium.journal.Store` in this process's memory. Events are kept as the JSON text a durable store
    would write, so what goes through it round-trips exactly as it would on disk, and what a caller reads shares no
    object with the journal (changing it changes nothing stored)."""

    def __init__(self) -> None:
        self.url = "memory://"
        self._runs: dict[str, RunInfo] = {}
        self._events: dict[str, list[tuple[int, float, str, bytes]]] = {}  # seq, at, kind, the event as JSON
        self._questions: dict[str, dict[str, Question]] = {}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _run(self, run_id: str) -> RunInfo:
        info = self._runs.get(run_id)
        if info is None:
            raise RunNotFoundError(run_id, url=self.url)
        return info

    def _write(self, run_id: str, events: Sequence[Event], at: float) -> int:
        log = self._events[run_id]
        seq = self._runs[run_id].last_seq
        encoded = [(event, EVENTS.dump_json(event)) for event in events]  # all or nothing: encode before storing
        for event, data in encoded:
            seq += 1
            log.append((seq, at, event.kind, data))
            if isinstance(event, InterruptAsked):
                stored = cast(InterruptAsked, EVENTS.validate_json(data))  # shares nothing with the caller's event
                self._questions[run_id][event.interrupt_id] = question_from(run_id, stored, at)
        return seq

    async def create_run(
        self,
        run_id: str,
        workflow: str,
        events: Sequence[Event],
        *,
        owner: str | None,
        lease_seconds: float,
        at: float,
        parent_run_id: str | None = None,
    ) -> None:
        if run_id in self._runs:
            raise RunStateError("a run with this id exists already", run_id=run_id, status=self._runs[run_id].status)
        self._runs[run_id] = RunInfo(
            run_id=run_id,
            workflow=workflow,
            status="running" if owner else "pending",
            created_at=at,
            updated_at=at,
            owner=owner,
            lease_until=at + lease_seconds if owner else None,
            last_seq=0,
            parent_run_id=parent_run_id,
            reason=None,
        )
        self._events[run_id] = []
        self._questions[run_id] = {}
        try:
            last = self._write(run_id, events, at)
        except BaseException:
            del self._runs[run_id], self._events[run_id], self._questions[run_id]
            raise
        self._runs[run_id] = dataclasses.replace(self._runs[run_id], last_seq=last)

    async def append(
        self,
        run_id: str,
        events: Sequence[Event],
        *,
        owner: str,
        lease_seconds: float,
        at: float,
        status: RunState | None = None,
        reason: str | None = None,
        release: bool = False,
    ) -> int:
        info = self._run(run_id)
        if info.owner != owner:
            raise LeaseLostError(run_id=run_id, owner=owner)
        last = self._write(run_id, events, at)
        self._runs[run_id] = dataclasses.replace(
            info,
            last_seq=last,
            updated_at=at,
            status=status or info.status,
            reason=reason if status else info.reason,
            owner=None if release else owner,
            lease_until=None if release else info.lease_until,
        )
        return last

    async def claim(self, run_id: str, owner: str, *, lease_seconds: float, at: float) -> RunInfo:
        info = self._run(run_id)
        refusal = claim_refusal(info, owner, at)
        if refusal:
            raise RunStateError(refusal, run_id=run_id, status=info.status)
        claimed = dataclasses.replace(info, owner=owner, lease_until=at + lease_seconds, updated_at=at)
        self._runs[run_id] = claimed
        return claimed

    async def claim_next(
        self, owner: str, *, workflows: Collection[str], lease_seconds: float, at: float
    ) -> RunInfo | None:
        for info in sorted(self._runs.values(), key=lambda i: i.created_at):
            claimable = info.workflow in workflows and info.status in ("pending", "running")
            if claimable and not claim_refusal(info, "", at):  # a live lease, even the caller's, is not for taking
                return await self.claim(info.run_id, owner, lease_seconds=lease_seconds, at=at)
        return None

    async def renew(self, owner: str, run_ids: Collection[str], *, lease_seconds: float, at: float) -> set[str]:
        kept = set()
        for run_id in run_ids:
            info = self._runs.get(run_id)
            if info is not None and info.owner == owner:
                self._runs[run_id] = dataclasses.replace(info, lease_until=at + lease_seconds)
                kept.add(run_id)
        return kept

    async def release(self, run_id: str, owner: str, *, at: float) -> None:
        info = self._runs.get(run_id)
        if info is not None and info.owner == owner:
            self._runs[run_id] = dataclasses.replace(info, owner=None, lease_until=None, updated_at=at)

    async def get_run(self, run_id: str) -> RunInfo:
        return self._run(run_id)

    async def list_runs(
        self, *, status: RunState | None = None, workflow: str | None = None, limit: int = 100
    ) -> list[RunInfo]:
        runs = [
            info
            for info in self._runs.values()
            if (status is None or info.status == status) and (workflow is None or info.workflow == workflow)
        ]
        return sorted(runs, key=lambda i: i.created_at, reverse=True)[:limit]

    async def read(self, run_id: str, *, after: int = 0) -> list[Entry]:
        self._run(run_id)
        return [
            Entry(seq=seq, at=at, event=EVENTS.validate_json(data))
            for seq, at, _kind, data in self._events[run_id]
            if seq > after
        ]

    async def questions(self, run_id: str, *, pending: bool = False) -> list[Question]:
        self._run(run_id)
        return [copy.deepcopy(q) for q in self._questions[run_id].values() if not (pending and q.answered)]

    async def answer(self, run_id: str, interrupt_id: str, answer: Any, *, at: float) -> None:
        info = self._run(run_id)
        question = self._questions[run_id].get(interrupt_id)
        if question is None:
            raise InterruptError("no such question in this run", run_id=run_id, interrupt_id=interrupt_id)
        if question.answered:
            raise InterruptError("was answered already", run_id=run_id, interrupt_id=interrupt_id)
        self._questions[run_id][interrupt_id] = dataclasses.replace(
            question, answered=True, answer=from_json(to_json(answer)), answered_at=at
        )
        last = self._write(run_id, [InterruptAnswered(interrupt_id=interrupt_id, answer=answer)], at)
        still_pending = any(not q.answered for q in self._questions[run_id].values())
        status: RunState = "pending" if info.status == "waiting" and not still_pending else info.status
        self._runs[run_id] = dataclasses.replace(info, last_seq=last, updated_at=at, status=status)

    async def delete_runs(self, *, finished_before: float) -> int:
        doomed = [r for r, i in self._runs.items() if i.status in FINISHED and i.updated_at < finished_before]
        for run_id in doomed:
            del self._runs[run_id], self._events[run_id], self._questions[run_id]
        return len(doomed)

    async def compact(self, run_id: str) -> int:
        self._run(run_id)
        log = self._events[run_id]
        snapshots = [seq for seq, _at, kind, _data in log if kind == "snapshot"]
        if not snapshots:
            return 0
        cut = snapshots[-1]
        kept = [e for e in log if e[0] >= cut or e[2] in KEEP_WHEN_COMPACTING]
        self._events[run_id] = kept
        return len(log) - len(kept)

    async def stats(self) -> StoreStats:
        return StoreStats(runs=len(self._runs), events=sum(len(e) for e in self._events.values()), bytes=0)


def claim_refusal(info: RunInfo, owner: str, at: float) -> str | None:
    """Why ``owner`` may not claim the run now, or None if it may."""
    if info.status == "completed":
        return "it completed; fork it to run it again from any step"
    if info.owner is not None and info.owner != owner and (info.lease_until or 0.0) > at and _alive(info.owner):
        return f"worker {info.owner} holds its lease for {info.lease_until - at:.1f} s more"  # type: ignore[operator]
    return None


def _alive(owner: str) -> bool:
    """False only when the owner is a process on this machine that no longer exists (it crashed): then its run can
    be taken over at once instead of when its lease runs out. Owners elsewhere are trusted until their lease ends."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return True
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def question_from(run_id: str, event: InterruptAsked, at: float) -> Question:
    return Question(
        run_id=run_id,
        interrupt_id=event.interrupt_id,
        task_id=event.task_id,
        step=event.step,
        prompt=event.prompt,
        ask=event.ask,
        schema=event.schema,
        json_schema=event.json_schema,
        value=event.value,
        asked_at=at,
        answered=False,
        answer=None,
        answered_at=None,
    )
