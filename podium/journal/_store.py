"""The ``Store`` protocol: where journals live, and the records it hands back.

Three implementations pass one conformance suite (:mod:`podium.journal.conformance`): in memory, SQLite (the
default, one file) and PostgreSQL (several processes or machines). A store keeps three things per run: the
run's row (status, owner and lease: an index over the journal, updated in the same transaction as the events),
its append-only events, and its questions to people.

**Ownership.** A process works on a run only while it holds the run's lease: ``create_run``/``claim`` take it,
every ``append`` checks it (and extends it) in the same transaction as the write, ``renew`` keeps it alive
through long steps. A process whose lease ran out and was taken over gets :class:`~podium.errors.LeaseLostError`
on its next write and stops, so two processes never both record a run's progress; another process can claim a
run whose owner died once the lease has expired.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeAlias, runtime_checkable

from podium.journal._events import Event

__all__ = ["FINISHED", "Entry", "Question", "RunInfo", "RunState", "Store", "StoreStats"]

RunState: TypeAlias = Literal["pending", "running", "waiting", "completed", "failed", "limited", "cancelled"]
"""``pending``: nobody owns it yet (submitted, or all its questions answered); ``running``: a process owns it;
``waiting``: it asked people and waits for answers; the last four are how it ended (it may be resumed unless
``completed``)."""

FINISHED: frozenset[str] = frozenset({"completed", "failed", "limited", "cancelled"})


@dataclass(frozen=True, slots=True, kw_only=True)
class RunInfo:
    """A run as the store's index knows it."""

    run_id: str
    workflow: str
    status: RunState
    created_at: float
    updated_at: float
    owner: str | None
    lease_until: float | None
    last_seq: int
    parent_run_id: str | None
    reason: str | None

    @property
    def duration(self) -> float:
        return self.updated_at - self.created_at


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One stored event: its place in the run's journal (``seq``, from 1), when it was written, the record."""

    seq: int
    at: float
    event: Event


@dataclass(frozen=True, slots=True, kw_only=True)
class Question:
    """A question a step asked a person (see ``podium.interrupt``), and its answer once given."""

    run_id: str
    interrupt_id: str
    task_id: str
    step: str
    prompt: str
    ask: str
    schema: str | None
    json_schema: dict[str, Any] | None
    value: Any
    asked_at: float
    answered: bool
    answer: Any
    answered_at: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreStats:
    runs: int
    events: int
    bytes: int
    """Bytes on disk (SQLite file and its WAL, PostgreSQL's tables and indexes); 0 in memory."""


@runtime_checkable
class Store(Protocol):
    """Where journals are kept. Every method is atomic: it writes all it says, or nothing and raises.

    Times (``at``) are seconds since the epoch from the caller's clock.
    """

    url: str

    async def open(self) -> None:
        """Connect, create the schema if the store is empty, and refuse anything that is not a podium journal.

        Raises:
            StoreError: cannot connect, or the file or database is something else (nothing is modified).
        """

    async def close(self) -> None: ...

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
        """Create a run with its first events; ``owner`` holds its lease (status ``running``) or None (``pending``).

        Raises:
            RunStateError: a run with this id exists.
        """

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
        """Append events if ``owner`` still owns the run; set ``status``, and give up the lease if asked.

        The lease is checked, not necessarily extended: :meth:`renew` is what keeps it (a store may also extend it
        here, as PostgreSQL's does in the statement that checks it).

        ``interrupt_asked`` events also become pending questions. Returns the last event's ``seq``.

        Raises:
            LeaseLostError: the run is owned by someone else now.
            RunNotFoundError: no such run.
        """
        ...

    async def claim(self, run_id: str, owner: str, *, lease_seconds: float, at: float) -> RunInfo:
        """Take the run's lease: it must be unowned, its owner's lease expired, or already ``owner``'s.

        Raises:
            RunNotFoundError: no such run.
            RunStateError: it is completed, or another owner's lease is live.
        """
        ...

    async def claim_next(
        self, owner: str, *, workflows: Collection[str], lease_seconds: float, at: float
    ) -> RunInfo | None:
        """Claim the oldest run of one of ``workflows`` that is pending, or running with an expired lease (or, where
        the store can tell, whose owner was a process on this machine that died). A live lease, even the caller's
        own, is never claimed again."""
        ...

    async def renew(self, owner: str, run_ids: Collection[str], *, lease_seconds: float, at: float) -> set[str]:
        """Extend ``owner``'s leases; returns the runs it still owns."""
        ...

    async def release(self, run_id: str, owner: str, *, at: float) -> None:
        """Give up the lease (if ``owner`` holds it) without changing the run's status."""

    async def get_run(self, run_id: str) -> RunInfo:
        """Raises RunNotFoundError."""
        ...

    async def list_runs(
        self, *, status: RunState | None = None, workflow: str | None = None, limit: int = 100
    ) -> list[RunInfo]:
        """Runs, newest first."""
        ...

    async def read(self, run_id: str, *, after: int = 0) -> list[Entry]:
        """The run's events with ``seq > after``, in order. Raises RunNotFoundError."""
        ...

    async def questions(self, run_id: str, *, pending: bool = False) -> list[Question]:
        """The run's questions in the order asked; only unanswered ones if ``pending``. Raises RunNotFoundError."""
        ...

    async def answer(self, run_id: str, interrupt_id: str, answer: Any, *, at: float) -> None:
        """Record the (encoded, already validated) answer and an ``interrupt_answered`` event, once.

        A waiting run whose last pending question this answers becomes ``pending`` again.

        Raises:
            RunNotFoundError: no such run.
            InterruptError: no such question, or it was answered already.
        """

    async def delete_runs(self, *, finished_before: float) -> int:
        """Delete runs that ended before this time, with their events and questions; returns how many."""
        ...

    async def compact(self, run_id: str) -> int:
        """Drop the events a resume no longer needs: those before the run's latest snapshot, except the run's
        acceptance, its questions and answers, failures and its end. Returns how many were dropped."""
        ...

    async def stats(self) -> StoreStats: ...
