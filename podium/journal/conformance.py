"""The conformance suite: what every :class:`~podium.journal.Store` must do, as checks any store can run.

podium's own stores (memory, SQLite, PostgreSQL) pass it in podium's tests; a third-party store runs it the same
way. Give it a *factory* that makes opened stores::

    from podium.journal.conformance import CHECKS, run_conformance

    async def factory(like: Store | None = None, /) -> Store:
        store = MyStore(location_of(like) if like else new_empty_location())
        await store.open()
        return store

    await run_conformance(factory)                          # every check; the first failure raises

    @pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
    async def test_my_store(check: Check) -> None:          # or one test per check
        await check(factory)

Each check calls ``factory()`` once, for a fresh, empty store, and some then call ``factory(store)`` for a second
store object on the same file or database, as a second process would open it (a store that lives in one object,
like ``MemoryStore``, returns ``store`` itself). A check closes the stores it was given.

Leases. A store may measure leases on its own clock (``PostgresStore`` uses the database's, so machines agree).
So the checks pass ``at`` close to the real time, let a lease run out by sleeping past it, and compare
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
from typing import Any, Protocol, TypeVar

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
        """An opened store: fresh and empty, or, given ``like``, another store object on ``like``'s file or
        database (``like`` itself for a store that cannot be opened twice)."""
        ...


Check = Callable[[StoreFactory], Awaitable[None]]
CHECKS: list[Check] = []
"""Every check, in the order they are defined here."""

LEASE = 60.0
"""A lease that stays live for the whole of a check."""
SHORT = 0.05
"""A lease that a check lets run out, by sleeping :data:`PAST_SHORT`."""
PAST_SHORT = 0.15
SKEW = 5.0
"""How far ``lease_until`` may be from ``at + lease_seconds`` (a store may use its own clock for leases)."""

E = TypeVar("E", bound=BaseException)


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
    """Now, and later than the previous call, so runs made one after another have distinct times."""
    global _last_tick
    _last_tick = max(time.time(), _last_tick + 1e-6)  # a microsecond: many calls in a row drift little from now
    return _last_tick


async def _raises(error: type[E], call: Awaitable[object], what: str) -> E:
    """Await ``call``, which must raise ``error``; returns the error."""
    try:
        await call
    except error as exc:
        return exc
    raise AssertionError(f"{what} must raise {error.__name__}")


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
    return StepCompleted(task_id=f"t{n}", step="s", attempt=1, update={"n": n}, goto=[], emitted=[], duration=0.5)


def _ask(interrupt_id: str) -> InterruptAsked:
    return InterruptAsked(
        interrupt_id=interrupt_id,
        task_id="t1",
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
    first = _started(owner or "w0") if events is None else events
    await store.create_run(run_id, workflow, first, owner=owner, lease_seconds=lease, at=at)
    return at


async def _append(store: Store, run_id: str, events: Sequence[Event], owner: str = "w1", **options: Any) -> int:
    return await store.append(run_id, events, owner=owner, lease_seconds=options.pop("lease", LEASE), **options)


async def _finish(store: Store, run_id: str, status: RunState = "completed") -> None:
    event = RunFinished(status=status, reason=None, limit=None, error_type=None, output=None, steps=1)
    await _append(store, run_id, [event], at=tick(), status=status, release=True)


def _lease_near(info: RunInfo, expected: float) -> bool:
    return info.lease_until is not None and abs(info.lease_until - expected) < SKEW


def _seqs(entries: Sequence[Entry]) -> list[int]:
    return [e.seq for e in entries]


def _ids(runs: Sequence[RunInfo]) -> list[str]:
    return [info.run_id for info in runs]


# -- records holding user values, for the round trip ----------------------------------------------------------


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
    """One of everything the codec keeps, nested, and text and numbers that JSON handling tends to damage."""
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
        "text": 'na\u00efve \u2013 \u96ea \U0001f30a \u200f "quoted" back\\slash nul\x00 newline\n',
        "numbers": [0.1 + 0.2, 1e-300, 1.7976931348623157e308, -(2**63), 2**64 + 1, 10**30, 5e-324],
        "empty": [{}, [], ""],
    }


def _every_event() -> list[Event]:
    v = encode(_values())
    schema = {"type": "object", "properties": {"title": {"type": "string"}}}
    return [
        RunAccepted(workflow="wf", state=v, parent_run_id="p1", forked_at="t3"),
        RunStarted(owner="w1", resumed=True),
        TasksScheduled(scope="t0/", superstep=2, tasks=[{"id": "t1", "step": "a", "item": v}, {"id": "t2"}]),
        StepCompleted(
            task_id="t1",
            step="a",
            attempt=3,
            update={"f": v},
            goto=[v, "b"],
            emitted=[v],
            duration=0.125,
            recovered="ValueError: boom",
        ),
        StepFailed(task_id="t2", step="b", attempt=2, error_type="KeyError", message="'x' \u2717", handled=True),
        InterruptAsked(
            interrupt_id="q1",
            task_id="t1",
            step="a",
            prompt="Publish?",
            ask="Note",
            schema="m:Note",
            json_schema=schema,
            value=v,
        ),
        InterruptAnswered(interrupt_id="q1", answer=v),
        RunSuspended(waiting=["q1", "q2"]),
        Snapshot(
            superstep=2,
            state=v,
            frontier=[{"id": "t3", "item": v}],
            iterations={"loop": 2},
            join_seen=[["a", "b"]],
            steps_done=7,
        ),
        RunFinished(status="failed", reason="step 'b' failed", limit=None, error_type="KeyError", output=v, steps=7),
    ]


# -- create_run -------------------------------------------------------------------------------------------------


@_check
async def test_store_satisfies_the_protocol(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        assert isinstance(store, Store), f"{type(store).__name__} lacks some of Store's methods"
        assert isinstance(store.url, str), "a store has a url"
        stats = await store.stats()
        assert (stats.runs, stats.events) == (0, 0), f"a fresh store is empty, got {stats}"
        assert await store.list_runs() == [], "a fresh store lists no runs"


@_check
async def test_create_run_with_owner_is_running(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        at = tick() + 0.000_000_1  # with all its digits
        events = _started()
        await store.create_run("r1", "wf", events, owner="w1", lease_seconds=LEASE, at=at, parent_run_id="p0")
        info = await store.get_run("r1")
        assert (info.run_id, info.workflow, info.parent_run_id, info.reason) == ("r1", "wf", "p0", None), info
        assert (info.status, info.owner) == ("running", "w1"), f"an owned new run is running: {info}"
        assert (info.created_at, info.updated_at) == (at, at), f"created_at and updated_at are the caller's at: {info}"
        assert _lease_near(info, at + LEASE), f"lease_until should be about at + lease_seconds: {info}"
        assert info.last_seq == 2, info
        entries = await store.read("r1")
        assert [e.event for e in entries] == events, "read() gives back the events as written"
        assert _seqs(entries) == [1, 2], f"seq counts from 1: {_seqs(entries)}"
        assert [e.at for e in entries] == [at, at], "each event keeps the caller's at exactly"


@_check
async def test_create_run_without_owner_is_pending(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        at = await _new_run(store, owner=None)
        info = await store.get_run("r1")
        assert (info.status, info.owner, info.lease_until) == ("pending", None, None), info
        assert (info.created_at, info.parent_run_id) == (at, None), info
        await _new_run(store, "empty", owner=None, events=[])
        assert (await store.get_run("empty")).last_seq == 0, "a run may start with no events"
        assert await store.read("empty") == []


@_check
async def test_create_run_twice_is_refused(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store)
        before = await store.get_run("r1")
        again = _new_run(store, owner="w2", events=[_step(1), _ask("q1")])
        exc = await _raises(RunStateError, again, "create_run with an existing id")
        assert (exc.run_id, exc.status) == ("r1", "running"), f"the error names the run: {exc}"
        assert await store.get_run("r1") == before, "the existing run is unchanged"
        assert _seqs(await store.read("r1")) == [1, 2], "no events were added to the existing run"
        assert await store.questions("r1") == [], "no question was recorded"


# -- append -----------------------------------------------------------------------------------------------------


@_check
async def test_append_continues_seq_and_returns_last(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store)
        at = tick()
        last = await _append(store, "r1", [_step(1), _step(2)], at=at)
        assert last == 4, f"append returns the last event's seq (4), got {last}"
        assert await _append(store, "r1", [], at=tick()) == 4, "appending nothing returns the last seq"
        assert await _append(store, "r1", [_step(3)], at=tick()) == 5
        entries = await store.read("r1")
        assert _seqs(entries) == [1, 2, 3, 4, 5], _seqs(entries)
        assert [e.event for e in entries[2:]] == [_step(1), _step(2), _step(3)]
        assert (entries[2].at, entries[3].at) == (at, at), "events keep the at they were appended with"
        assert (await store.get_run("r1")).last_seq == 5


@_check
async def test_append_sets_status_and_reason(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store)
        await _append(store, "r1", [_ask("q1")], at=tick(), status="waiting", reason="asked a person")
        info = await store.get_run("r1")
        assert (info.status, info.reason) == ("waiting", "asked a person"), info
        at = tick()
        await _append(store, "r1", [_step(1)], at=at)
        info = await store.get_run("r1")
        assert (info.status, info.reason) == ("waiting", "asked a person"), f"no status given: both kept, {info}"
        assert info.updated_at == at, "updated_at is the append's at"
        await _append(store, "r1", [], at=tick(), status="running")
        info = await store.get_run("r1")
        assert (info.status, info.reason) == ("running", None), f"a new status without a reason clears it: {info}"


@_check
async def test_append_keeps_the_lease_and_renew_extends_it(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store, lease=10.0)
        before = await store.get_run("r1")
        await _append(store, "r1", [_step(1)], at=tick(), lease=LEASE * 10)
        info = await store.get_run("r1")
        assert info.owner == "w1", info
        assert info.lease_until is not None, info
        assert before.lease_until is not None, before
        assert info.lease_until >= before.lease_until - 1.0, f"append must not shorten the lease: {info}"
        at = tick()
        assert await store.renew("w1", ["r1"], lease_seconds=LEASE * 10, at=at) == {"r1"}
        assert _lease_near(await store.get_run("r1"), at + LEASE * 10), "renew extends the lease"


@_check
async def test_append_with_release_gives_up_the_lease(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store)
        await _append(store, "r1", [RunSuspended(waiting=["q1"])], at=tick(), status="waiting", release=True)
        info = await store.get_run("r1")
        assert (info.owner, info.lease_until) == (None, None), f"release clears owner and lease: {info}"
        assert (info.status, info.last_seq) == ("waiting", 3), info
        await _raises(LeaseLostError, _append(store, "r1", [_step(1)], at=tick()), "the old owner's append")


@_check
async def test_append_is_fenced_by_owner(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store)
        before = await store.get_run("r1")
        write = _append(store, "r1", [_step(1), _ask("q1")], "w2", at=tick(), status="failed", release=True)
        exc = await _raises(LeaseLostError, write, "append by a worker that does not own the run")
        assert (exc.run_id, exc.owner) == ("r1", "w2"), f"the error names the run and the writer: {exc}"
        assert await store.get_run("r1") == before, "a refused append changes nothing on the run"
        assert _seqs(await store.read("r1")) == [1, 2], "a refused append writes no events"
        assert await store.questions("r1") == [], "a refused append records no question"
        assert await _append(store, "r1", [_step(1)], at=tick()) == 3, "a refused append spends no seq"


@_check
async def test_append_to_unknown_run(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        exc = await _raises(RunNotFoundError, _append(store, "nope", [_step(1)], at=tick()), "append to no run")
        assert exc.run_id == "nope", exc
        assert (await store.stats()).events == 0


@_check
async def test_append_after_a_takeover_is_fenced(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store, lease=SHORT)
        await asyncio.sleep(PAST_SHORT)
        await store.claim("r1", "w2", lease_seconds=LEASE, at=tick())
        await _raises(LeaseLostError, _append(store, "r1", [_step(1)], at=tick()), "the overtaken owner's append")
        assert await _append(store, "r1", [_step(2)], "w2", at=tick()) == 3
        assert [e.event for e in await store.read("r1", after=2)] == [_step(2)]


@_check
async def test_a_write_that_fails_writes_nothing(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store)
        before = await store.get_run("r1")
        bad = StepCompleted(task_id="t9", step="s", attempt=1, update={"x": object()}, goto=[], emitted=[], duration=0)
        for write in (
            _append(store, "r1", [_step(1), _ask("q1"), bad], at=tick()),
            _new_run(store, "r2", events=[*_started(), _ask("q2"), bad]),
        ):
            # Which error is the store's choice: events are meant to hold encoded values only.
            await _raises(Exception, write, "writing an event that cannot be serialised")
        assert await store.get_run("r1") == before, "the failed append changed the run"
        assert _seqs(await store.read("r1")) == [1, 2], "the failed append wrote events"
        assert await store.questions("r1") == [], "the failed append recorded a question"
        assert _ids(await store.list_runs()) == ["r1"], "the failed create_run left a run behind"
        assert (await store.stats()).events == 2
        assert await _append(store, "r1", [_step(1)], at=tick()) == 3, "a failed append spends no seq"


# -- claim ------------------------------------------------------------------------------------------------------


@_check
async def test_claim_an_unowned_run(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store, owner=None)
        at = tick()
        info = await store.claim("r1", "w2", lease_seconds=LEASE, at=at)
        assert (info.owner, info.updated_at) == ("w2", at), f"claim takes the lease: {info}"
        assert _lease_near(info, at + LEASE), info
        assert await store.get_run("r1") == info, "claim returns the run as stored"
        assert await _append(store, "r1", [_step(1)], "w2", at=tick()) == 3


@_check
async def test_claim_own_run_again(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store, lease=10.0)
        at = tick()
        info = await store.claim("r1", "w1", lease_seconds=LEASE * 10, at=at)
        assert info.owner == "w1", info
        assert _lease_near(info, at + LEASE * 10), f"claiming again renews the lease: {info}"


@_check
async def test_claim_refused_while_another_lease_is_live(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store)
        before = await store.get_run("r1")
        claim = store.claim("r1", "w2", lease_seconds=LEASE, at=tick())
        exc = await _raises(RunStateError, claim, "claiming a run whose owner's lease is live")
        assert (exc.run_id, exc.status) == ("r1", "running"), exc
        assert await store.get_run("r1") == before, "a refused claim changes nothing"


@_check
async def test_claim_takes_over_an_expired_lease(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store, lease=SHORT)
        await asyncio.sleep(PAST_SHORT)
        at = tick()
        info = await store.claim("r1", "w2", lease_seconds=LEASE, at=at)
        assert info.owner == "w2", f"an expired lease can be taken over: {info}"
        assert _lease_near(info, at + LEASE), info


@_check
async def test_claim_a_finished_run(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store, "done")
        await _finish(store, "done", "completed")
        claim = store.claim("done", "w2", lease_seconds=LEASE, at=tick())
        exc = await _raises(RunStateError, claim, "claiming a completed run")
        assert exc.status == "completed", exc
        await _new_run(store, "failed")
        await _finish(store, "failed", "failed")
        info = await store.claim("failed", "w2", lease_seconds=LEASE, at=tick())
        assert info.owner == "w2", "a failed run may be claimed (to resume it)"


@_check
async def test_claim_unknown_run(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        claim = store.claim("nope", "w1", lease_seconds=LEASE, at=tick())
        assert (await _raises(RunNotFoundError, claim, "claiming an unknown run")).run_id == "nope"


# -- claim_next -------------------------------------------------------------------------------------------------


@_check
async def test_claim_next_takes_the_oldest_first(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        base = tick() - 100
        for name, offset in [("middle", 2.0), ("newest", 3.0), ("oldest", 1.0)]:
            await _new_run(store, name, owner=None, at=base + offset)
        got = [await store.claim_next(f"w{i}", workflows=["wf"], lease_seconds=LEASE, at=tick()) for i in range(4)]
        assert [i.run_id if i else None for i in got] == ["oldest", "middle", "newest", None], got
        first = got[0]
        assert first is not None
        assert first.owner == "w0", first
        assert _lease_near(first, time.time() + LEASE), first
        assert await store.get_run("oldest") == first, "claim_next returns the run as stored"


@_check
async def test_claim_next_filters_by_workflow_and_status(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store, "other", owner=None, workflow="other")
        ended: tuple[RunState, ...] = ("waiting", "failed", "completed", "limited", "cancelled")
        for status in ended:
            await _new_run(store, status)
            await _append(store, status, [], at=tick(), status=status, release=True)
        got = await store.claim_next("w2", workflows=["wf"], lease_seconds=LEASE, at=tick())
        assert got is None, f"only pending runs and running runs with an expired lease are claimed, got {got}"
        assert await store.claim_next("w2", workflows=[], lease_seconds=LEASE, at=tick()) is None
        got = await store.claim_next("w2", workflows=["wf", "other"], lease_seconds=LEASE, at=tick())
        assert got is not None
        assert got.run_id == "other", got
        for status in ended:
            assert (await store.get_run(status)).owner is None, f"the {status} run was claimed"


@_check
async def test_claim_next_skips_live_leases_and_takes_expired_ones(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store, "live")  # the oldest: claim_next would take it first if it could
        await _new_run(store, "expired", lease=SHORT)
        await _new_run(store, "claimed", owner=None)
        await store.claim("claimed", "w1", lease_seconds=LEASE, at=tick())  # pending, but its lease is live
        await asyncio.sleep(PAST_SHORT)
        got = await store.claim_next("w2", workflows=["wf"], lease_seconds=LEASE, at=tick())
        assert got is not None
        assert (got.run_id, got.owner) == ("expired", "w2"), got
        got = await store.claim_next("w3", workflows=["wf"], lease_seconds=LEASE, at=tick())
        assert got is None, f"runs whose lease is live are skipped, pending or running; got {got}"
        assert (await store.get_run("live")).owner == "w1"


@_check
async def test_claim_next_never_hands_out_a_live_lease_again_even_to_its_holder(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store, "mine")  # owned by w1, lease live
        got = await store.claim_next("w1", workflows=["wf"], lease_seconds=LEASE, at=tick())
        assert got is None, f"a worker must not be handed a run it already executes; got {got}"


@_check
async def test_claim_next_returns_none_when_nothing(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        assert await store.claim_next("w1", workflows=["wf"], lease_seconds=LEASE, at=tick()) is None


# -- renew and release ------------------------------------------------------------------------------------------


@_check
async def test_renew_returns_only_owned_runs(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store, "mine", lease=10.0)
        await _new_run(store, "mine-expired", lease=SHORT)
        await _new_run(store, "theirs", owner="w2", lease=10.0)
        await _new_run(store, "released")
        await store.release("released", "w1", at=tick())
        await asyncio.sleep(PAST_SHORT)
        theirs = await store.get_run("theirs")
        at = tick()
        asked = ["mine", "mine-expired", "theirs", "released", "nope"]
        kept = await store.renew("w1", asked, lease_seconds=LEASE * 10, at=at)
        assert kept == {"mine", "mine-expired"}, f"renew returns the runs the owner still holds, got {kept}"
        for run_id in ("mine", "mine-expired"):
            assert _lease_near(await store.get_run(run_id), at + LEASE * 10), f"{run_id}'s lease was not extended"
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
        assert (info.owner, info.lease_until) == (None, None), info
        assert (info.status, info.updated_at) == ("running", at), f"release keeps the status: {info}"
        await store.release("nope", "w1", at=tick())  # no error: there is nothing to give up
        got = await store.claim_next("w2", workflows=["wf"], lease_seconds=LEASE, at=tick())
        assert got is not None
        assert got.run_id == "r1", "a released running run can be claimed at once"


# -- reading ----------------------------------------------------------------------------------------------------


@_check
async def test_reading_an_unknown_run(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        for call in (store.get_run("nope"), store.read("nope"), store.questions("nope"), store.compact("nope")):
            assert (await _raises(RunNotFoundError, call, "reading an unknown run")).run_id == "nope"


@_check
async def test_list_runs_newest_first_with_filters(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        base = tick() - 100
        await _new_run(store, "a", at=base + 1)
        await _new_run(store, "b", owner=None, workflow="other", at=base + 3)
        await _new_run(store, "c", at=base + 2)
        await _new_run(store, "d", owner=None, at=base + 4)
        assert _ids(await store.list_runs()) == ["d", "b", "c", "a"], "newest first"
        assert _ids(await store.list_runs(limit=2)) == ["d", "b"]
        assert _ids(await store.list_runs(status="pending")) == ["d", "b"]
        assert _ids(await store.list_runs(workflow="wf")) == ["d", "c", "a"]
        assert _ids(await store.list_runs(status="running", workflow="wf")) == ["c", "a"]
        assert await store.list_runs(status="completed") == []
        assert await store.list_runs(workflow="other") == [await store.get_run("b")]


@_check
async def test_read_after(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store)
        await _append(store, "r1", [_step(1), _step(2), _step(3)], at=tick())
        assert _seqs(await store.read("r1", after=3)) == [4, 5]
        assert [e.event for e in await store.read("r1", after=4)] == [_step(3)]
        assert await store.read("r1", after=5) == []
        assert _seqs(await store.read("r1", after=0)) == [1, 2, 3, 4, 5]


@_check
async def test_every_event_kind_round_trips(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        events = _every_event()
        assert len({e.kind for e in events}) == 10, "one record of each kind"
        at = await _new_run(store, events=events[:3])
        later = tick() + 0.000_000_1
        await _append(store, "r1", events[3:], at=later)
        entries = await store.read("r1")
        for entry, event in zip(entries, events, strict=True):
            assert entry.event == event, f"{event.kind} changed on the way through the store:\n{entry.event}\n{event}"
        assert [e.at for e in entries] == [at] * 3 + [later] * 7, "times are kept to the last bit"
        first = entries[0].event
        assert isinstance(first, RunAccepted)
        assert decode(first.state) == _values(), "values decode as they were"
        assert await store.read("r1") == entries, "reading twice gives the same"
        first.state["text"] = "changed by a reader"
        assert (await store.read("r1"))[0].event == events[0], "a reader changing what it read changed the journal"


# -- questions --------------------------------------------------------------------------------------------------


@_check
async def test_interrupt_asked_creates_a_pending_question(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store)
        at = tick()
        asked = _ask("q1")
        await _append(store, "r1", [_step(1), asked], at=at)
        (question,) = await store.questions("r1")
        assert (question.run_id, question.interrupt_id, question.task_id, question.step) == ("r1", "q1", "t1", "review")
        assert (question.prompt, question.ask, question.schema) == (asked.prompt, asked.ask, asked.schema), question
        assert (question.json_schema, question.value) == (asked.json_schema, asked.value), question
        assert decode(question.value) == {"draft": (1, 2)}, "the question's value decodes as it was"
        assert (question.asked_at, question.answered, question.answer, question.answered_at) == (at, False, None, None)
        assert await store.questions("r1", pending=True) == [question]
        question.value["draft"] = "changed by a reader"
        assert (await store.questions("r1"))[0].value == asked.value, "a reader changing a question changed the journal"
        await _new_run(store, "r2", events=[_ask("q9")])
        assert [q.interrupt_id for q in await store.questions("r2")] == ["q9"], "create_run records questions too"
        assert [q.interrupt_id for q in await store.questions("r1")] == ["q1"], "questions belong to their run"


@_check
async def test_questions_come_in_the_order_asked(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store)
        at = tick()
        await _append(store, "r1", [_ask("q-b"), _ask("q-c"), _ask("q-a")], at=at)
        await _append(store, "r1", [_ask("q-0")], at=at)
        ids = [q.interrupt_id for q in await store.questions("r1")]
        assert ids == ["q-b", "q-c", "q-a", "q-0"], f"questions come in the order asked, got {ids}"


@_check
async def test_answer_is_recorded_once(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store)
        await _append(store, "r1", [_ask("q1"), _ask("q2")], at=tick())
        at = tick()
        answer = encode({"ok": True, "note": ("fine", 1)})
        await store.answer("r1", "q1", answer, at=at)
        q1, q2 = await store.questions("r1")
        assert (q1.answered, q1.answer, q1.answered_at) == (True, answer, at), q1
        assert decode(q1.answer) == {"ok": True, "note": ("fine", 1)}
        assert not q2.answered, q2
        assert [q.interrupt_id for q in await store.questions("r1", pending=True)] == ["q2"]
        entries = await store.read("r1")
        assert (entries[-1].seq, entries[-1].at) == (5, at), entries[-1]
        assert entries[-1].event == InterruptAnswered(interrupt_id="q1", answer=answer), entries[-1]
        info = await store.get_run("r1")
        assert (info.last_seq, info.updated_at) == (5, at), info
        again = store.answer("r1", "q1", encode(False), at=tick())
        exc = await _raises(InterruptError, again, "answering a question twice")
        assert (exc.run_id, exc.interrupt_id) == ("r1", "q1"), exc
        assert await store.get_run("r1") == info, "a refused answer changes nothing on the run"
        assert await store.read("r1") == entries, "a refused answer writes no event"
        assert (await store.questions("r1"))[0] == q1, "the first answer stands"
        answer["ok"] = "changed by the caller after answering"
        assert (await store.questions("r1"))[0].answer == q1.answer, "the stored answer shares nothing with the caller"
        assert await _append(store, "r1", [_step(1)], at=tick()) == 6


@_check
async def test_answer_to_unknown_question(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store)
        exc = await _raises(InterruptError, store.answer("r1", "nope", True, at=tick()), "answering no question")
        assert exc.interrupt_id == "nope", exc
        assert (await store.get_run("r1")).last_seq == 2
        assert _seqs(await store.read("r1")) == [1, 2]
        await _raises(RunNotFoundError, store.answer("nope", "q1", True, at=tick()), "answering in an unknown run")


@_check
async def test_answering_the_last_question_makes_a_waiting_run_pending(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store)
        asks: list[Event] = [_ask("q1"), _ask("q2"), RunSuspended(waiting=["q1", "q2"])]
        await _append(store, "r1", asks, at=tick(), status="waiting", release=True)
        await store.answer("r1", "q2", True, at=tick())
        assert (await store.get_run("r1")).status == "waiting", "one question is still open: the run keeps waiting"
        await store.answer("r1", "q1", True, at=tick())
        info = await store.get_run("r1")
        assert (info.status, info.owner) == ("pending", None), f"all answered: the run is pending again, {info}"
        got = await store.claim_next("w2", workflows=["wf"], lease_seconds=LEASE, at=tick())
        assert got is not None
        assert got.run_id == "r1", "and a worker can pick it up"
        await _new_run(store, "busy")
        await _append(store, "busy", [_ask("q1")], at=tick())
        await store.answer("busy", "q1", True, at=tick())
        assert (await store.get_run("busy")).status == "running", "a run that is not waiting keeps its status"


# -- housekeeping -----------------------------------------------------------------------------------------------


@_check
async def test_delete_runs_removes_finished_runs_before_the_cutoff(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        finished: tuple[RunState, ...] = ("completed", "failed", "limited", "cancelled")
        await _new_run(store, "pending", owner=None)
        for run_id in (*finished, "running", "waiting"):
            await _new_run(store, run_id)
            await _append(store, run_id, [_ask(f"q-{run_id}")], at=tick())
        for status in finished:
            await _finish(store, status, status)
        await _append(store, "waiting", [], at=tick(), status="waiting", release=True)
        cutoff = tick()
        await _new_run(store, "recent")
        await _finish(store, "recent", "completed")
        events_before = (await store.stats()).events
        deleted = await store.delete_runs(finished_before=cutoff)
        assert deleted == 4, f"the four runs that finished before the cutoff are deleted, got {deleted}"
        assert sorted(_ids(await store.list_runs())) == ["pending", "recent", "running", "waiting"]
        for run_id in finished:
            await _raises(RunNotFoundError, store.questions(run_id), f"reading deleted run {run_id}")
        stats = await store.stats()
        assert (stats.runs, stats.events) == (4, events_before - 4 * 4), f"their events went too: {stats}"
        assert len(await store.questions("running")) == 1
        assert await store.delete_runs(finished_before=cutoff) == 0
        await _new_run(store, "completed")  # the id is free again, and nothing of the old run is left
        assert await store.questions("completed") == []
        assert _seqs(await store.read("completed")) == [1, 2]


@_check
async def test_compact_keeps_what_a_resume_needs(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        snapshot = Snapshot(superstep=1, state={}, frontier=[], iterations={}, join_seen=[], steps_done=1)
        failed = StepFailed(task_id="t1", step="s", attempt=1, error_type="E", message="m", handled=True)
        answered = InterruptAnswered(interrupt_id="q1", answer=True)
        await _new_run(store)  # seq 1 run_accepted, 2 run_started
        await _append(store, "r1", [_step(1), _ask("q1"), failed, answered, snapshot, _step(2)], at=tick())  # 3..8
        await _append(store, "r1", [_step(3), snapshot, _step(4)], at=tick())  # 9..11, the latest snapshot at 10
        dropped = await store.compact("r1")
        kept = _seqs(await store.read("r1"))
        assert kept == [1, 4, 5, 6, 10, 11], (
            f"keeps acceptance, question, failure, answer, and from the snapshot: {kept}"
        )
        assert dropped == 5, f"compact returns how many events it dropped (5), got {dropped}"
        assert (await store.stats()).events == 6
        assert (await store.get_run("r1")).last_seq == 11, "seq numbers are never reused"
        assert await _append(store, "r1", [_step(5)], at=tick()) == 12
        assert await store.compact("r1") == 0, "nothing more to drop"
        assert len(await store.questions("r1")) == 1, "questions are kept"


@_check
async def test_compact_without_a_snapshot_drops_nothing(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store)
        await _append(store, "r1", [_step(1), _step(2)], at=tick())
        assert await store.compact("r1") == 0
        assert _seqs(await store.read("r1")) == [1, 2, 3, 4]


@_check
async def test_stats_count_runs_and_events(factory: StoreFactory) -> None:
    async with _store(factory) as store:
        await _new_run(store, "a")
        await _new_run(store, "b", events=[_step(1)])
        await _append(store, "a", [_step(2), _ask("q1")], at=tick())
        stats = await store.stats()
        assert (stats.runs, stats.events) == (2, 5), stats
        assert isinstance(stats.bytes, int), stats
        assert stats.bytes >= 0, stats


# -- two store objects, and concurrency ------------------------------------------------------------------------


@_check
async def test_a_second_store_object_sees_the_same_journal(factory: StoreFactory) -> None:
    async with _two(factory) as (first, second):
        await _new_run(first)
        await _append(first, "r1", [_ask("q1")], at=tick())
        assert await second.get_run("r1") == await first.get_run("r1")
        assert await second.read("r1") == await first.read("r1")
        await second.answer("r1", "q1", True, at=tick())
        await _raises(LeaseLostError, _append(second, "r1", [_step(1)], "w2", at=tick()), "a non-owner's append")
        assert await _append(first, "r1", [_step(1)], at=tick()) == 5
        assert _seqs(await second.read("r1")) == [1, 2, 3, 4, 5]
        await first.open()  # opening again is harmless
        assert (await first.stats()).runs == 1


@_check
async def test_concurrent_appends_to_many_runs(factory: StoreFactory) -> None:
    async with _two(factory) as (first, second):
        for i in range(50):
            await _new_run(first, f"r{i}", owner=f"w{i}")

        async def work(i: int) -> int:
            return await _append(first if i % 2 else second, f"r{i}", [_step(i), _ask(f"q{i}")], f"w{i}", at=tick())

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
            return await _append(first if i % 2 else second, "r1", [_step(i), _step(i)], at=tick())

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
        claimed = sorted(_ids(got))
        assert claimed == sorted(f"r{i}" for i in range(10)), f"each run is claimed exactly once: {claimed}"
        for info in got:
            assert (await first.get_run(info.run_id)).owner == info.owner, f"{info.run_id}: the stored owner lost"


@_check
async def test_concurrent_answers_leave_the_run_pending(factory: StoreFactory) -> None:
    async with _two(factory) as (first, second):
        await _new_run(first)
        await _append(first, "r1", [_ask(f"q{i}") for i in range(6)], at=tick(), status="waiting", release=True)
        await asyncio.gather(*((first if i % 2 else second).answer("r1", f"q{i}", i, at=tick()) for i in range(6)))
        info = await first.get_run("r1")
        assert info.status == "pending", f"the last answer, whichever it was, made the run pending: {info}"
        assert info.last_seq == 14, info
        answered = [e.event for e in await first.read("r1", after=8)]
        ids = sorted(e.interrupt_id for e in answered if isinstance(e, InterruptAnswered))
        assert ids == [f"q{i}" for i in range(6)], ids
