"""The conformance suite: what every :class:`~podium.journal.Store` must do, as checks any store can be run against.

podium's own stores (memory, SQLite, PostgreSQL) pass it in podium's tests; a third-party store runs it the same
way. Give it a *factory* that makes an opened store::

    from podium.journal.conformance import CHECKS, run_conformance

    async def factory(like: Store | None = None) -> Store:
        store = MyStore(location_of(like) if like else new_empty_location())
        await store.open()
        return store

    await run_conformance(factory)                       # all checks, stops at the first failure

    @pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
    async def test_my_store(check): await check(factory)   # one test per check

Each check calls ``factory()`` once for a fresh, empty store, and some call ``factory(store)`` for a second store
object on the same file or database as ``store`` (a store that lives in one object, like ``MemoryStore``, returns
``store`` itself): two processes sharing one journal. A check closes what it was given.

Leases. A store may measure leases on its own clock (``PostgresStore`` uses the database's, so machines agree),
so the checks pass ``at`` close to the real time and let a lease run out by sleeping past it, and they compare
``lease_until`` with a few seconds' tolerance.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import decimal
import enum
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import PurePosixPath
from typing import Any, Protocol

import pydantic

from podium.errors import InterruptError, LeaseLostError, RunNotFoundError, RunStateError
from podium.journal._codec import decode, encode
from podium.journal._events import (
    Event,
    InterruptAnswered,
    InterruptAsked,
    RunAccepted,
    RunFinished,
    RunStarted,
    RunSuspended,
    Snapshot,
    StepCompleted,
    StepFailed,
    TasksScheduled,
)
from podium.journal._store import Entry, RunInfo, RunState, Store

__all__ = ["CHECKS", "Check", "StoreFactory", "run_conformance"]


class StoreFactory(Protocol):
    """Makes the stores a check runs against."""

    async def __call__(self, like: Store | None = None, /) -> Store:
        """An opened store: fresh and empty, or with ``like``, another store object on ``like``'s file or
        database (``like`` itself for a store that cannot be opened twice)."""
        ...


Check = Callable[[StoreFactory], Awaitable[None]]
CHECKS: list[Check] = []
"""Every check, in the order they are defined."""

LEASE = 60.0
"""A lease that stays live for the whole of a check."""
SHORT = 0.05
"""A lease that a check lets run out, by sleeping :data:`PAST_SHORT`."""
PAST_SHORT = 0.15
SKEW = 5.0
"""How far ``lease_until`` may be from ``at + lease_seconds`` (a store may use its own clock for leases)."""


async def run_conformance(factory: StoreFactory) -> None:
    """Run every check against the stores ``factory`` makes; the first failure raises ``AssertionError``."""
    for check in CHECKS:
        await check(factory)


def _check(fn: Check) -> Check:
    CHECKS.append(fn)
    return fn


# -- helpers ----------------------------------------------------------------------------------------------------

_last_tick = 0.0


def tick() -> float:
    """Now, strictly later than the last call, so runs created one after another have distinct times."""
    global _last_tick
    _last_tick = max(time.time(), _last_tick + 1e-6)  # a microsecond: calls in a row drift little from the clock
    return _last_tick


@asynccontextmanager
async def _store(factory: StoreFactory) -> AsyncIterator[Store]:
    store = await factory()
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def _two(factory: StoreFactory) -> AsyncIterator[tuple[Store, Store]]:
    """A fresh store and a second object on the same location (which may be the same object)."""
    async with _store(factory) as first:
        second = await factory(first)
        try:
            yield first, second
        finally:
            if second is not first:
                await second.close()


def _started(owner: str = "w1") -> list[Event]:
    return [RunAccepted(workflow="wf", state=encode({"topic": "tides"})), RunStarted(owner=owner, resumed=False)]


def _step(n: int) -> StepCompleted:
    return StepCompleted(
        task_id=f"t{n}", step=f"s{n}", attempt=1, update={"n": n}, goto=[], emitted=[], duration=0.01 * n
    )


def _ask(interrupt_id: str, task_id: str = "t1") -> InterruptAsked:
    return InterruptAsked(
        interrupt_id=interrupt_id,
        task_id=task_id,
        step="review",
        prompt=f"Approve {interrupt_id}?",
        ask="bool",
        schema="builtins:bool",
        json_schema={"type": "boolean"},
        value=encode({"draft": (1, 2)}),
    )


async def _new_run(
    store: Store,
    run_id: str = "r1",
    *,
    owner: str | None = "w1",
    workflow: str = "wf",
    lease: float = LEASE,
    events: Sequence[Event] | None = None,
    at: float | None = None,
) -> float:
    at = tick() if at is None else at
    started = _started(owner or "w0") if events is None else events
    await store.create_run(run_id, workflow, started, owner=owner, lease_seconds=lease, at=at)
    return at


async def _finish(store: Store, run_id: str, status: RunState = "completed", owner: str = "w1") -> None:
    event = RunFinished(status=status, reason=None, limit=None, error_type=None, output=None, steps=1)
    await store.append(run_id, [event], owner=owner, lease_seconds=LEASE, at=tick(), status=status, release=True)


def _lease_near(info: RunInfo, expected: float) -> bool:
    return info.lease_until is not None and abs(info.lease_until - expected) < SKEW


def _seqs(entries: Sequence[Entry]) -> list[int]:
    return [e.seq for e in entries]


# -- records with user values, for the round trip -------------------------------------------------------------


class Color(enum.Enum):
    RED = "red"


class Note(pydantic.BaseModel):
    title: str
    tags: tuple[str, ...] = ()
    when: dt.datetime | None = None


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: float


def _values() -> dict[str, Any]:
    """One of everything the codec keeps, nested, plus text and numbers that JSON handles carelessly."""
    return {
        "model": Note(title="Tidal power", tags=("sea", "energy"), when=dt.datetime(2026, 11, 21, 14, tzinfo=dt.UTC)),
        "point": Point(x=1, y=-0.0),
        "tuple": (1, "two", (3.5, None)),
        "set": {1, 2, 3},
        "frozenset": frozenset({"a"}),
        "bytes": b"\x00\xffbinary",
        "date": dt.date(2026, 1, 2),
        "time": dt.time(3, 4, 5, 6),
        "delta": dt.timedelta(seconds=1.5),
        "uuid": uuid.UUID(int=42),
        "decimal": decimal.Decimal("1.10"),
        "path": PurePosixPath("/tmp/x"),
        "enum": Color.RED,
        "int_keys": {1: "one", (2, 3): "pair"},
        "dollar_key": {"$tuple": "not a tag"},
        "text": 'naïve café – 雪 – 🌊 – \u200f – quote" back\\slash – nul\x00 – newline\n',
        "numbers": [0.1 + 0.2, 1e-300, 1.7976931348623157e308, -(2**63), 2**64 + 1, 10**30, 5e-324],
        "empty": [{}, [], ""],
    }


def _every_event() -> list[Event]:
    v = encode(_values())
    return [
        RunAccepted(workflow="wf", state=v, parent_run_id="p1", forked_at="t3"),
        RunStarted(owner="w1", resumed=True),
        TasksScheduled(
            scope="t0/", superstep=2, tasks=[{"id": "t1", "step": "a", "item": v}, {"id": "t2", "step": "b"}]
        ),
        StepCompleted(
            task_id="t1",
            step="a",
            attempt=3,
            update={"f": v},
            goto=[v, "b"],
            emitted=[v],
            duration=0.125,
            recovered="ValueError: boom",
        ),  # fmt: skip
        StepFailed(task_id="t2", step="b", attempt=2, error_type="KeyError", message="'x' ✗", handled=True),
        InterruptAsked(
            interrupt_id="q1",
            task_id="t1",
            step="a",
            prompt="Publish? ✓",
            ask="Note",
            schema="m:Note",
            json_schema={"type": "object", "properties": {"title": {"type": "string"}}},
            value=v,
        ),  # fmt: skip
        InterruptAnswered(interrupt_id="q1", answer=v),
        RunSuspended(waiting=["q1", "q2"]),
        Snapshot(
            superstep=2,
            state=v,
            frontier=[{"id": "t3", "step": "c", "item": v}],
            iterations={"loop": 2},
            join_seen=[["a", "b"]],
            steps_done=7,
        ),  # fmt: skip
        RunFinished(status="failed", reason="step 'b' failed", limit=None, error_type="KeyError", output=v, steps=7),
    ]


# -- create_run -----------------------------------------------------------------------------------------------


@_check
async def test_store_satisfies_the_protocol(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        assert isinstance(store, Store), f"{type(store).__name__} lacks some of Store's methods"
        assert isinstance(store.url, str) and store.url, "a store has a url"
        stats = await store.stats()
        assert (stats.runs, stats.events) == (0, 0), f"a fresh store is empty, got {stats}"
        assert await store.list_runs() == [], "a fresh store lists no runs"


@_check
async def test_create_run_with_owner_is_running(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        at = 1_763_737_200.123_456_7 + (time.time() - 1_763_737_200.123_456_7)  # now, with all its digits
        events = _started()
        await store.create_run("r1", "wf", events, owner="w1", lease_seconds=LEASE, at=at, parent_run_id="p0")
        info = await store.get_run("r1")
        assert info.run_id == "r1" and info.workflow == "wf" and info.parent_run_id == "p0", info
        assert info.status == "running" and info.owner == "w1", f"an owned new run is running, got {info}"
        assert info.created_at == at and info.updated_at == at, f"created_at/updated_at are the caller's at: {info}"
        assert _lease_near(info, at + LEASE), f"lease_until should be about at + lease_seconds: {info}"
        assert info.last_seq == 2 and info.reason is None, info
        entries = await store.read("r1")
        assert [e.event for e in entries] == events, "read() gives back the events as written"
        assert _seqs(entries) == [1, 2], f"seq counts from 1: {_seqs(entries)}"
        assert all(e.at == at for e in entries), "each event keeps the caller's at exactly"


@_check
async def test_create_run_without_owner_is_pending(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        at = await _new_run(store, owner=None)
        info = await store.get_run("r1")
        assert info.status == "pending", f"an unowned new run is pending, got {info.status}"
        assert info.owner is None and info.lease_until is None, info
        assert info.created_at == at and info.parent_run_id is None, info
        await _new_run(store, "empty", owner=None, events=[])
        assert (await store.get_run("empty")).last_seq == 0, "a run may start with no events"
        assert await store.read("empty") == []


@_check
async def test_create_run_twice_is_refused(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store)
        before = await store.get_run("r1")
        try:
            await _new_run(store, owner="w2", events=[_step(1), _ask("q1")])
        except RunStateError as exc:
            assert exc.run_id == "r1" and exc.status == "running", f"the error names the run: {exc}"
        else:
            raise AssertionError("create_run with an existing id must raise RunStateError")
        assert await store.get_run("r1") == before, "the existing run is unchanged"
        assert _seqs(await store.read("r1")) == [1, 2], "no events were added to the existing run"
        assert await store.questions("r1") == [], "no question was recorded"


# -- append ---------------------------------------------------------------------------------------------------


@_check
async def test_append_continues_seq_and_returns_last(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store)
        at = tick()
        last = await store.append("r1", [_step(1), _step(2)], owner="w1", lease_seconds=LEASE, at=at)
        assert last == 4, f"append returns the last event's seq (4), got {last}"
        assert await store.append("r1", [], owner="w1", lease_seconds=LEASE, at=tick()) == 4, "nothing appended"
        assert await store.append("r1", [_step(3)], owner="w1", lease_seconds=LEASE, at=tick()) == 5
        entries = await store.read("r1")
        assert _seqs(entries) == [1, 2, 3, 4, 5], _seqs(entries)
        assert [e.event for e in entries[2:]] == [_step(1), _step(2), _step(3)]
        assert entries[2].at == at and entries[3].at == at, "events keep the at they were appended with"
        assert (await store.get_run("r1")).last_seq == 5


@_check
async def test_append_sets_status_and_reason(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store)
        await store.append("r1", [_ask("q1")], owner="w1", lease_seconds=LEASE, at=tick(), status="waiting",
                           reason="asked a person")  # fmt: skip
        info = await store.get_run("r1")
        assert (info.status, info.reason) == ("waiting", "asked a person"), info
        at = tick()
        await store.append("r1", [_step(1)], owner="w1", lease_seconds=LEASE, at=at)
        info = await store.get_run("r1")
        assert (info.status, info.reason) == ("waiting", "asked a person"), f"no status given: both kept, {info}"
        assert info.updated_at == at, "updated_at is the append's at"
        await store.append("r1", [], owner="w1", lease_seconds=LEASE, at=tick(), status="running")
        info = await store.get_run("r1")
        assert (info.status, info.reason) == ("running", None), f"a new status without a reason clears it: {info}"


@_check
async def test_append_extends_the_lease(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store, lease=10.0)
        at = tick()
        await store.append("r1", [_step(1)], owner="w1", lease_seconds=LEASE * 10, at=at)
        info = await store.get_run("r1")
        assert info.owner == "w1" and _lease_near(info, at + LEASE * 10), f"append extends the lease: {info}"


@_check
async def test_append_with_release_gives_up_the_lease(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store)
        await store.append("r1", [RunSuspended(waiting=["q1"])], owner="w1", lease_seconds=LEASE, at=tick(),
                           status="waiting", release=True)  # fmt: skip
        info = await store.get_run("r1")
        assert info.owner is None and info.lease_until is None, f"release clears owner and lease: {info}"
        assert info.status == "waiting" and info.last_seq == 3, info
        try:
            await store.append("r1", [_step(1)], owner="w1", lease_seconds=LEASE, at=tick())
        except LeaseLostError:
            pass
        else:
            raise AssertionError("after releasing, the old owner's append must raise LeaseLostError")


@_check
async def test_append_is_fenced_by_owner(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store)
        before = await store.get_run("r1")
        try:
            await store.append("r1", [_step(1), _ask("q1")], owner="w2", lease_seconds=LEASE, at=tick(),
                               status="failed", reason="x", release=True)  # fmt: skip
        except LeaseLostError as exc:
            assert (exc.run_id, exc.owner) == ("r1", "w2"), f"the error names the run and the writer: {exc}"
        else:
            raise AssertionError("append by a worker that does not own the run must raise LeaseLostError")
        assert await store.get_run("r1") == before, "a refused append changes nothing on the run"
        assert _seqs(await store.read("r1")) == [1, 2], "a refused append writes no events"
        assert await store.questions("r1") == [], "a refused append records no question"
        assert await store.append("r1", [_step(1)], owner="w1", lease_seconds=LEASE, at=tick()) == 3, "seq unspent"


@_check
async def test_append_to_unknown_run(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        try:
            await store.append("nope", [_step(1)], owner="w1", lease_seconds=LEASE, at=tick())
        except RunNotFoundError as exc:
            assert exc.run_id == "nope", exc
        else:
            raise AssertionError("append to an unknown run must raise RunNotFoundError")
        assert (await store.stats()).events == 0


@_check
async def test_append_after_a_takeover_is_fenced(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store, lease=SHORT)
        await asyncio.sleep(PAST_SHORT)
        await store.claim("r1", "w2", lease_seconds=LEASE, at=tick())
        try:
            await store.append("r1", [_step(1)], owner="w1", lease_seconds=LEASE, at=tick())
        except LeaseLostError:
            pass
        else:
            raise AssertionError("the owner whose lease was taken over must get LeaseLostError")
        assert await store.append("r1", [_step(2)], owner="w2", lease_seconds=LEASE, at=tick()) == 3
        assert [e.event for e in await store.read("r1", after=2)] == [_step(2)]


# -- claim ----------------------------------------------------------------------------------------------------


@_check
async def test_claim_an_unowned_run(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store, owner=None)
        at = tick()
        info = await store.claim("r1", "w2", lease_seconds=LEASE, at=at)
        assert info.owner == "w2" and _lease_near(info, at + LEASE), f"claim takes the lease: {info}"
        assert info.updated_at == at, info
        assert await store.get_run("r1") == info, "claim returns the run as stored"
        assert await store.append("r1", [_step(1)], owner="w2", lease_seconds=LEASE, at=tick()) == 3


@_check
async def test_claim_own_run_again(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store, lease=10.0)
        at = tick()
        info = await store.claim("r1", "w1", lease_seconds=LEASE * 10, at=at)
        assert info.owner == "w1" and _lease_near(info, at + LEASE * 10), f"claiming again renews the lease: {info}"


@_check
async def test_claim_refused_while_another_lease_is_live(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store)
        before = await store.get_run("r1")
        try:
            await store.claim("r1", "w2", lease_seconds=LEASE, at=tick())
        except RunStateError as exc:
            assert (exc.run_id, exc.status) == ("r1", "running"), exc
        else:
            raise AssertionError("claiming a run whose owner's lease is live must raise RunStateError")
        assert await store.get_run("r1") == before, "a refused claim changes nothing"


@_check
async def test_claim_takes_over_an_expired_lease(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store, lease=SHORT)
        await asyncio.sleep(PAST_SHORT)
        at = tick()
        info = await store.claim("r1", "w2", lease_seconds=LEASE, at=at)
        assert info.owner == "w2" and _lease_near(info, at + LEASE), f"an expired lease can be taken over: {info}"


@_check
async def test_claim_a_finished_run(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store, "done")
        await _finish(store, "done", "completed")
        try:
            await store.claim("done", "w2", lease_seconds=LEASE, at=tick())
        except RunStateError as exc:
            assert exc.status == "completed", exc
        else:
            raise AssertionError("claiming a completed run must raise RunStateError")
        await _new_run(store, "failed")
        await _finish(store, "failed", "failed")
        info = await store.claim("failed", "w2", lease_seconds=LEASE, at=tick())
        assert info.owner == "w2", "a failed run may be claimed (to resume it)"


@_check
async def test_claim_unknown_run(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        try:
            await store.claim("nope", "w1", lease_seconds=LEASE, at=tick())
        except RunNotFoundError as exc:
            assert exc.run_id == "nope", exc
        else:
            raise AssertionError("claiming an unknown run must raise RunNotFoundError")


# -- claim_next -----------------------------------------------------------------------------------------------


@_check
async def test_claim_next_takes_the_oldest_first(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        base = tick()
        for name, offset in [("middle", 2.0), ("newest", 3.0), ("oldest", 1.0)]:
            await _new_run(store, name, owner=None, at=base - 100 + offset)
        got = [await store.claim_next(f"w{i}", workflows=["wf"], lease_seconds=LEASE, at=tick()) for i in range(4)]
        assert [i.run_id if i else None for i in got] == ["oldest", "middle", "newest", None], got
        first = got[0]
        assert first is not None and first.owner == "w0" and _lease_near(first, time.time() + LEASE), first
        assert await store.get_run("oldest") == first, "claim_next returns the run as stored"


@_check
async def test_claim_next_filters_by_workflow_and_status(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store, "other", owner=None, workflow="other")
        ended: tuple[RunState, ...] = ("waiting", "failed", "completed", "limited", "cancelled")
        for status in ended:
            await _new_run(store, status)
            await store.append(status, [], owner="w1", lease_seconds=LEASE, at=tick(), status=status, release=True)
        assert await store.claim_next("w2", workflows=["wf"], lease_seconds=LEASE, at=tick()) is None, (
            "only pending runs and running runs with an expired lease are claimed"
        )
        assert await store.claim_next("w2", workflows=[], lease_seconds=LEASE, at=tick()) is None
        got = await store.claim_next("w2", workflows=["wf", "other"], lease_seconds=LEASE, at=tick())
        assert got is not None and got.run_id == "other", got
        for status in ("waiting", "failed", "completed"):
            info = await store.get_run(status)
            assert info.owner is None, f"the {status} run was not claimed: {info}"


@_check
async def test_claim_next_skips_live_leases_and_takes_expired_ones(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store, "live", owner="w1")  # the oldest: claim_next would take it first if it could
        await _new_run(store, "expired", owner="w1", lease=SHORT)
        await _new_run(store, "claimed", owner=None)
        await store.claim("claimed", "w1", lease_seconds=LEASE, at=tick())
        await asyncio.sleep(PAST_SHORT)
        got = await store.claim_next("w2", workflows=["wf"], lease_seconds=LEASE, at=tick())
        assert got is not None and got.run_id == "expired" and got.owner == "w2", got
        assert await store.claim_next("w2", workflows=["wf"], lease_seconds=LEASE, at=tick()) is None, (
            "runs whose lease is live are skipped, pending or running"
        )
        assert await store.claim_next("w1", workflows=["wf"], lease_seconds=LEASE, at=tick()) is None, (
            "claim_next hands out work a worker does not hold already: its own live runs are skipped too"
        )
        assert (await store.get_run("live")).owner == "w1"


@_check
async def test_claim_next_returns_none_when_nothing(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        assert await store.claim_next("w1", workflows=["wf"], lease_seconds=LEASE, at=tick()) is None


# -- renew and release ----------------------------------------------------------------------------------------


@_check
async def test_renew_returns_only_owned_runs(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store, "mine", lease=10.0)
        await _new_run(store, "mine-too", lease=SHORT)
        await _new_run(store, "theirs", owner="w2", lease=10.0)
        await _new_run(store, "released")
        await store.release("released", "w1", at=tick())
        await asyncio.sleep(PAST_SHORT)
        theirs = await store.get_run("theirs")
        at = tick()
        kept = await store.renew("w1", ["mine", "mine-too", "theirs", "released", "nope"], lease_seconds=LEASE * 10,
                                 at=at)  # fmt: skip
        assert kept == {"mine", "mine-too"}, f"renew returns the runs the owner still holds, got {kept}"
        for run_id in ("mine", "mine-too"):
            assert _lease_near(await store.get_run(run_id), at + LEASE * 10), f"{run_id}'s lease was extended"
        assert await store.get_run("theirs") == theirs, "another owner's lease is left alone"
        assert (await store.get_run("released")).owner is None
        assert await store.renew("w1", [], lease_seconds=LEASE, at=tick()) == set()


@_check
async def test_release(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store)
        before = await store.get_run("r1")
        await store.release("r1", "w2", at=tick())
        assert await store.get_run("r1") == before, "release by a worker that is not the owner does nothing"
        at = tick()
        await store.release("r1", "w1", at=at)
        info = await store.get_run("r1")
        assert info.owner is None and info.lease_until is None, info
        assert info.status == "running" and info.updated_at == at, f"release keeps the status: {info}"
        await store.release("nope", "w1", at=tick())  # no error: there is nothing to give up
        got = await store.claim_next("w2", workflows=["wf"], lease_seconds=LEASE, at=tick())
        assert got is not None and got.run_id == "r1", "a released running run can be claimed at once"


# -- reading --------------------------------------------------------------------------------------------------


@_check
async def test_get_run_of_unknown_run(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        for call in (store.get_run("nope"), store.read("nope"), store.questions("nope"), store.compact("nope")):
            try:
                await call
            except RunNotFoundError as exc:
                assert exc.run_id == "nope", exc
            else:
                raise AssertionError("reading an unknown run must raise RunNotFoundError")


@_check
async def test_list_runs_newest_first_with_filters(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        base = tick() - 100
        await _new_run(store, "a", at=base + 1)
        await _new_run(store, "b", owner=None, workflow="other", at=base + 3)
        await _new_run(store, "c", at=base + 2)
        await _new_run(store, "d", owner=None, at=base + 4)
        ids = [i.run_id for i in await store.list_runs()]
        assert ids == ["d", "b", "c", "a"], f"newest first: {ids}"
        assert [i.run_id for i in await store.list_runs(limit=2)] == ["d", "b"]
        assert [i.run_id for i in await store.list_runs(status="pending")] == ["d", "b"]
        assert [i.run_id for i in await store.list_runs(workflow="wf")] == ["d", "c", "a"]
        assert [i.run_id for i in await store.list_runs(status="running", workflow="wf")] == ["c", "a"]
        assert await store.list_runs(status="completed") == []
        assert (await store.list_runs(workflow="other"))[0] == await store.get_run("b")


@_check
async def test_read_after(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store)
        await store.append("r1", [_step(1), _step(2), _step(3)], owner="w1", lease_seconds=LEASE, at=tick())
        assert _seqs(await store.read("r1", after=3)) == [4, 5]
        assert [e.event for e in await store.read("r1", after=4)] == [_step(3)]
        assert await store.read("r1", after=5) == []
        assert _seqs(await store.read("r1", after=0)) == [1, 2, 3, 4, 5]


@_check
async def test_every_event_kind_round_trips(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        events = _every_event()
        kinds = {e.kind for e in events}
        assert len(kinds) == 10, "one record of each kind"
        at = tick()
        await _new_run(store, events=events[:3], at=at)
        at2 = tick() + 0.000_000_1
        await store.append("r1", events[3:], owner="w1", lease_seconds=LEASE, at=at2)
        entries = await store.read("r1")
        for entry, event in zip(entries, events, strict=True):
            assert entry.event == event, f"{event.kind} changed on the way through the store:\n{entry.event}\n{event}"
        assert [e.at for e in entries] == [at] * 3 + [at2] * 7, "times are kept to the last bit"
        first = entries[0].event
        assert isinstance(first, RunAccepted) and decode(first.state) == _values(), "values decode as they were"
        again = await store.read("r1")
        assert again == entries, "reading twice gives the same"
        assert isinstance(again[0].event, RunAccepted)
        again[0].event.state["text"] = "changed by a reader"
        assert (await store.read("r1"))[0].event == events[0], "a reader changing what it read changes no journal"


# -- questions ------------------------------------------------------------------------------------------------


@_check
async def test_interrupt_asked_creates_a_pending_question(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store)
        at = tick()
        asked = _ask("q1")
        await store.append("r1", [_step(1), asked], owner="w1", lease_seconds=LEASE, at=at)
        (question,) = await store.questions("r1")
        assert (question.run_id, question.interrupt_id, question.task_id, question.step) == ("r1", "q1", "t1", "review")
        assert (question.prompt, question.ask, question.schema) == (asked.prompt, asked.ask, asked.schema), question
        assert question.json_schema == asked.json_schema and question.value == asked.value, question
        assert decode(question.value) == {"draft": (1, 2)}, "the question's value decodes as it was"
        assert question.asked_at == at and not question.answered, question
        assert question.answer is None and question.answered_at is None, question
        assert await store.questions("r1", pending=True) == [question]
        await _new_run(store, "r2", events=[_ask("q9")])
        assert [q.interrupt_id for q in await store.questions("r2")] == ["q9"], "create_run records questions too"
        assert [q.interrupt_id for q in await store.questions("r1")] == ["q1"], "questions are per run"


@_check
async def test_questions_come_in_the_order_asked(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store)
        at = tick()
        await store.append("r1", [_ask("q-b"), _ask("q-c"), _ask("q-a")], owner="w1", lease_seconds=LEASE, at=at)
        await store.append("r1", [_ask("q-0")], owner="w1", lease_seconds=LEASE, at=at)
        ids = [q.interrupt_id for q in await store.questions("r1")]
        assert ids == ["q-b", "q-c", "q-a", "q-0"], f"questions come in the order asked, got {ids}"


@_check
async def test_answer_is_recorded_once(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store)
        await store.append("r1", [_ask("q1"), _ask("q2")], owner="w1", lease_seconds=LEASE, at=tick())
        at = tick()
        answer = encode({"ok": True, "note": ("fine", 1)})
        await store.answer("r1", "q1", answer, at=at)
        q1, q2 = await store.questions("r1")
        assert q1.answered and q1.answer == answer and q1.answered_at == at, q1
        assert decode(q1.answer) == {"ok": True, "note": ("fine", 1)}
        assert not q2.answered, q2
        assert [q.interrupt_id for q in await store.questions("r1", pending=True)] == ["q2"]
        entries = await store.read("r1")
        assert entries[-1].seq == 5 and entries[-1].at == at, entries[-1]
        assert entries[-1].event == InterruptAnswered(interrupt_id="q1", answer=answer), entries[-1]
        info = await store.get_run("r1")
        assert info.last_seq == 5 and info.updated_at == at, info
        try:
            await store.answer("r1", "q1", encode(False), at=tick())
        except InterruptError as exc:
            assert (exc.run_id, exc.interrupt_id) == ("r1", "q1"), exc
        else:
            raise AssertionError("answering a question twice must raise InterruptError")
        assert await store.get_run("r1") == info, "a refused answer changes nothing on the run"
        assert await store.read("r1") == entries, "a refused answer writes no event"
        assert (await store.questions("r1"))[0] == q1, "the first answer stands"
        assert await store.append("r1", [_step(1)], owner="w1", lease_seconds=LEASE, at=tick()) == 6


@_check
async def test_answer_to_unknown_question(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store)
        try:
            await store.answer("r1", "nope", True, at=tick())
        except InterruptError as exc:
            assert exc.interrupt_id == "nope", exc
        else:
            raise AssertionError("answering an unknown question must raise InterruptError")
        assert (await store.get_run("r1")).last_seq == 2 and _seqs(await store.read("r1")) == [1, 2]
        try:
            await store.answer("nope", "q1", True, at=tick())
        except RunNotFoundError:
            pass
        else:
            raise AssertionError("answering in an unknown run must raise RunNotFoundError")


@_check
async def test_answering_the_last_question_makes_a_waiting_run_pending(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store)
        await store.append("r1", [_ask("q1"), _ask("q2"), RunSuspended(waiting=["q1", "q2"])], owner="w1",
                           lease_seconds=LEASE, at=tick(), status="waiting", release=True)  # fmt: skip
        await store.answer("r1", "q2", True, at=tick())
        assert (await store.get_run("r1")).status == "waiting", "one question is still open: the run keeps waiting"
        await store.answer("r1", "q1", True, at=tick())
        info = await store.get_run("r1")
        assert info.status == "pending" and info.owner is None, f"all answered: the run is pending again, {info}"
        got = await store.claim_next("w2", workflows=["wf"], lease_seconds=LEASE, at=tick())
        assert got is not None and got.run_id == "r1", "and a worker can pick it up"
        await _new_run(store, "busy")
        await store.append("busy", [_ask("q1")], owner="w1", lease_seconds=LEASE, at=tick())
        await store.answer("busy", "q1", True, at=tick())
        assert (await store.get_run("busy")).status == "running", "a run that is not waiting keeps its status"


# -- housekeeping ---------------------------------------------------------------------------------------------


@_check
async def test_delete_runs_removes_finished_runs_before_the_cutoff(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store, "pending", owner=None)
        for run_id in ("completed", "failed", "limited", "cancelled", "running", "waiting"):
            await _new_run(store, run_id)
            await store.append(run_id, [_ask(f"q-{run_id}")], owner="w1", lease_seconds=LEASE, at=tick())
        finished: tuple[RunState, ...] = ("completed", "failed", "limited", "cancelled")
        for status in finished:
            await _finish(store, status, status)
        await store.append("waiting", [], owner="w1", lease_seconds=LEASE, at=tick(), status="waiting", release=True)
        cutoff = tick()
        await _new_run(store, "recent")
        await _finish(store, "recent", "completed")
        events_before = (await store.stats()).events
        deleted = await store.delete_runs(finished_before=cutoff)
        assert deleted == 4, f"the four runs that finished before the cutoff are deleted, got {deleted}"
        left = sorted(i.run_id for i in await store.list_runs())
        assert left == ["pending", "recent", "running", "waiting"], left
        for run_id in ("completed", "failed", "limited", "cancelled"):
            try:
                await store.questions(run_id)
            except RunNotFoundError:
                pass
            else:
                raise AssertionError(f"{run_id} should be gone")
        stats = await store.stats()
        assert stats.runs == 4 and stats.events == events_before - 4 * 4, f"their events went too: {stats}"
        assert len(await store.questions("running")) == 1 and len(await store.read("recent")) == 3
        assert await store.delete_runs(finished_before=cutoff) == 0
        await _new_run(store, "completed")  # the id is free again, with nothing left over from before
        assert await store.questions("completed") == [] and _seqs(await store.read("completed")) == [1, 2]


@_check
async def test_compact_keeps_what_a_resume_needs(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        snapshot = Snapshot(superstep=1, state={}, frontier=[], iterations={}, join_seen=[], steps_done=1)
        failed = StepFailed(task_id="t1", step="s1", attempt=1, error_type="E", message="m", handled=True)
        early = [_step(1), _ask("q1"), failed, InterruptAnswered(interrupt_id="q1", answer=True), snapshot, _step(2)]
        await _new_run(store)  # seq 1 run_accepted, 2 run_started
        await store.append("r1", early, owner="w1", lease_seconds=LEASE, at=tick())  # seq 3..8
        later = [_step(3), snapshot, _step(4)]
        await store.append("r1", later, owner="w1", lease_seconds=LEASE, at=tick())  # seq 9..11, snapshot at 10
        dropped = await store.compact("r1")
        kept = await store.read("r1")
        assert _seqs(kept) == [1, 4, 5, 6, 10, 11], (
            f"kept accepted, asked, failed, answered and from the snapshot: {_seqs(kept)}"
        )
        assert dropped == 5, f"compact returns how many events it dropped (5), got {dropped}"
        assert (await store.stats()).events == 6
        assert (await store.get_run("r1")).last_seq == 11, "seq numbers are never reused"
        assert await store.append("r1", [_step(5)], owner="w1", lease_seconds=LEASE, at=tick()) == 12
        assert await store.compact("r1") == 0, "nothing more to drop"
        assert len(await store.questions("r1")) == 1, "questions are kept"


@_check
async def test_compact_without_a_snapshot_drops_nothing(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store)
        await store.append("r1", [_step(1), _step(2)], owner="w1", lease_seconds=LEASE, at=tick())
        assert await store.compact("r1") == 0
        assert _seqs(await store.read("r1")) == [1, 2, 3, 4]


@_check
async def test_stats_count_runs_and_events(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store, "a")
        await _new_run(store, "b", events=[_step(1)])
        await store.append("a", [_step(2), _ask("q1")], owner="w1", lease_seconds=LEASE, at=tick())
        stats = await store.stats()
        assert (stats.runs, stats.events) == (2, 5), stats
        assert isinstance(stats.bytes, int) and stats.bytes >= 0, stats


# -- two store objects, and concurrency ----------------------------------------------------------------------


@_check
async def test_a_second_store_object_sees_the_same_journal(factory: StoreFactory) -> None:
    async with _two(factory) as (first, second):
        await _new_run(first)
        await first.append("r1", [_ask("q1")], owner="w1", lease_seconds=LEASE, at=tick())
        assert await second.get_run("r1") == await first.get_run("r1")
        assert await second.read("r1") == await first.read("r1")
        await second.answer("r1", "q1", True, at=tick())
        try:
            await second.append("r1", [_step(1)], owner="w2", lease_seconds=LEASE, at=tick())
        except LeaseLostError:
            pass
        else:
            raise AssertionError("the lease holds across store objects")
        assert await first.append("r1", [_step(1)], owner="w1", lease_seconds=LEASE, at=tick()) == 5
        assert _seqs(await second.read("r1")) == [1, 2, 3, 4, 5]
        await first.open()  # opening again is harmless
        assert (await first.stats()).runs == 1


@_check
async def test_concurrent_appends_to_many_runs(factory: StoreFactory) -> None:
    async with _two(factory) as (first, second):
        for i in range(50):
            await _new_run(first, f"r{i}", owner=f"w{i}")

        async def work(i: int) -> int:
            store = first if i % 2 else second
            return await store.append(f"r{i}", [_step(i), _ask(f"q{i}")], owner=f"w{i}", lease_seconds=LEASE, at=tick())

        lasts = await asyncio.gather(*(work(i) for i in range(50)))
        assert lasts == [4] * 50, f"every append succeeded with seq 3..4: {lasts}"
        for i in range(50):
            entries = await first.read(f"r{i}")
            assert [e.event for e in entries[2:]] == [_step(i), _ask(f"q{i}")], f"r{i}: {entries}"
        assert (await first.stats()).events == 200


@_check
async def test_concurrent_appends_to_one_run_keep_seq_dense(factory: StoreFactory) -> None:
    async with _two(factory) as (first, second):
        await _new_run(first)

        async def work(i: int) -> int:
            store = first if i % 2 else second
            return await store.append("r1", [_step(i), _step(i)], owner="w1", lease_seconds=LEASE, at=tick())

        lasts = await asyncio.gather(*(work(i) for i in range(20)))
        assert sorted(lasts) == list(range(4, 43, 2)), f"each append got its own seq numbers: {sorted(lasts)}"
        entries = await second.read("r1")
        assert _seqs(entries) == list(range(1, 43)), "seq has no gaps and no duplicates"
        for pair in range(2, 42, 2):
            assert entries[pair].event == entries[pair + 1].event, "one append's events stay together"


@_check
async def test_concurrent_claim_next_claims_each_run_once(factory: StoreFactory) -> None:
    async with _two(factory) as (first, second):
        base = tick() - 100
        for i in range(10):
            await _new_run(first, f"r{i}", owner=None, at=base + i)

        async def work(i: int) -> RunInfo | None:
            store = first if i % 2 else second
            return await store.claim_next(f"w{i}", workflows=["wf"], lease_seconds=LEASE, at=tick())

        got = [info for info in await asyncio.gather(*(work(i) for i in range(20))) if info is not None]
        claimed = sorted(info.run_id for info in got)
        assert claimed == sorted(f"r{i}" for i in range(10)), f"each run is claimed exactly once: {claimed}"
        for info in got:
            assert (await first.get_run(info.run_id)).owner == info.owner, f"{info.run_id}: the stored owner won"


@_check
async def test_concurrent_answers_leave_the_run_pending(factory: StoreFactory) -> None:
    async with _two(factory) as (first, second):
        asks: list[Event] = [_ask(f"q{i}") for i in range(6)]
        await _new_run(first)
        await first.append("r1", asks, owner="w1", lease_seconds=LEASE, at=tick(), status="waiting", release=True)
        await asyncio.gather(*((first if i % 2 else second).answer("r1", f"q{i}", i, at=tick()) for i in range(6)))
        info = await first.get_run("r1")
        assert info.status == "pending", f"the last answer, whichever it was, made the run pending: {info}"
        answered = [e.event for e in await first.read("r1", after=8)]
        assert sorted(e.interrupt_id for e in answered if isinstance(e, InterruptAnswered)) == [
            f"q{i}" for i in range(6)
        ]
        assert info.last_seq == 14
