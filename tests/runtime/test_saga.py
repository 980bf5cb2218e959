"""Saga compensation: a failed or cancelled run undoes its steps' and tools' side effects, newest first."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from podium import (
    START,
    Agent,
    Graph,
    Limits,
    RetryPolicy,
    RunStateError,
    RunStatus,
    SQLiteStore,
    TestModel,
    Workflow,
    reducers,
    tool,
)
from podium.journal import Compensated, CompensationFailed, CompensationStarted
from tests.runtime.test_exactly_once import Crash

QUICK = RetryPolicy(max_attempts=3, initial_interval=0.0, jitter=0.0, retry_on=(Exception,))


class Order(BaseModel):
    item: str
    done: Annotated[list[str], reducers.append] = []
    note: str = ""


class Ledger:
    """The outside world: what is booked, and the order things were undone in."""

    def __init__(self) -> None:
        self.booked: set[str] = set()
        self.undone: list[str] = []
        self.undo_failures: dict[str, int] = {}
        self.crash_undoing: str | None = None


world = Ledger()


@pytest.fixture(autouse=True)
def fresh_world() -> None:
    global world
    world = Ledger()


def _booking(name: str) -> Any:
    def book(state: Order) -> dict[str, Any]:
        world.booked.add(name)
        return {"done": [name]}

    book.__name__ = name
    return book


def _undo(name: str) -> Any:
    def undo(output: dict[str, Any], state: Order) -> None:
        assert output == {"done": [name]}  # the step's own output
        assert isinstance(state, Order)
        if world.crash_undoing == name:
            world.crash_undoing = None
            raise Crash(f"the process died while undoing {name}")
        if world.undo_failures.get(name, 0) > 0:
            world.undo_failures[name] -= 1
            raise ConnectionError(f"{name}'s API is down")
        world.booked.discard(name)
        world.undone.append(name)

    return undo


def _fail(state: Order) -> dict[str, Any]:
    raise ValueError("the payment was declined")


def _trip(fail: Any = _fail, *, retry: RetryPolicy = QUICK) -> Workflow[Order]:
    """flight -> hotel and car in parallel -> pay (which fails)."""
    return (
        Graph(Order, name="trip")
        .add(_booking("flight"), compensate=_undo("flight"))
        .add(_booking("hotel"), compensate=_undo("hotel"), thread=False)
        .add(_booking("car"), compensate=_undo("car"), thread=False)
        .add(_booking("insurance"))  # no compensation declared: left alone
        .add(fail, name="pay")
        .edge(START, "flight")
        .edge("flight", "hotel")
        .edge("flight", "car")
        .join(["hotel", "car"], "insurance")
        .edge("insurance", "pay")
        .build(compensation_retry=retry)
    )


async def _events(store: SQLiteStore, run_id: str) -> list[Any]:
    return [entry.event for entry in await store.read(run_id)]


async def test_a_failed_run_undoes_its_finished_steps_newest_first(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "j.db")
    result = await _trip().run({"item": "Lisbon"}, store=store, run_id="r1")
    assert result.status is RunStatus.FAILED
    assert world.booked == {"insurance"}  # no compensation declared for it
    assert world.undone == ["car", "hotel", "flight"]  # reverse of finishing (hotel and car in task order)
    assert result.compensated == ("car", "hotel", "flight")
    assert result.not_compensated == ()
    assert "payment was declined" in (result.reason or "")
    assert "undone: car, hotel, flight" in (result.reason or "")
    events = await _events(store, "r1")
    (started,) = [e for e in events if isinstance(e, CompensationStarted)]
    assert started.status == "failed"
    assert started.error_type == "StepFailedError"
    assert len(started.pending) == 3
    assert [e.name for e in events if isinstance(e, Compensated)] == ["car", "hotel", "flight"]


async def test_a_run_without_a_journal_is_compensated_too() -> None:
    result = await _trip().run({"item": "Lisbon"}, store=False)
    assert result.status is RunStatus.FAILED
    assert world.undone == ["car", "hotel", "flight"]


async def test_a_completed_or_limited_run_is_not_compensated(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "j.db")
    ok = await _trip(fail=lambda state: {"note": "paid"}).run({"item": "Lisbon"}, store=store)
    assert ok.ok
    assert world.undone == []
    assert ok.compensated == ()
    limited = await _trip().run({"item": "Lisbon"}, store=store, limits=Limits(max_steps=3))
    assert limited.status is RunStatus.LIMITED
    assert world.undone == []


async def test_a_failing_compensation_is_retried_and_journaled(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "j.db")
    world.undo_failures["hotel"] = 2
    result = await _trip().run({"item": "Lisbon"}, store=store, run_id="r1")
    assert world.undone == ["car", "hotel", "flight"]
    failures = [e for e in await _events(store, "r1") if isinstance(e, CompensationFailed)]
    assert [(e.name, e.attempt, e.error_type) for e in failures] == [
        ("hotel", 1, "ConnectionError"),
        ("hotel", 2, "ConnectionError"),
    ]
    assert all(e.retry_in is not None for e in failures)
    assert result.compensated == ("car", "hotel", "flight")


async def test_one_compensation_that_never_succeeds_is_reported_and_the_rest_still_run(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "j.db")
    world.undo_failures["hotel"] = 99
    result = await _trip().run({"item": "Lisbon"}, store=store, run_id="r1")
    assert result.status is RunStatus.FAILED
    assert world.undone == ["car", "flight"]
    assert "hotel" in world.booked
    assert result.not_compensated == ("hotel",)
    assert "could not undo: hotel (needs a person)" in (result.reason or "")
    last = [e for e in await _events(store, "r1") if isinstance(e, CompensationFailed)][-1]
    assert last.attempt == 3
    assert last.retry_in is None


async def test_a_cancelled_run_is_compensated(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "j.db")
    started = asyncio.Event()

    async def wait_forever(state: Order) -> dict[str, Any]:
        started.set()
        await asyncio.sleep(60)
        return {}

    handle = _trip(fail=wait_forever).start({"item": "Lisbon"}, store=store, run_id="r1")
    await started.wait()
    handle.cancel("the customer changed their mind")
    result = await handle.result()
    assert result.status is RunStatus.CANCELLED
    assert world.undone == ["car", "hotel", "flight"]
    assert (result.reason or "").startswith("the customer changed their mind; undone:")


async def test_a_crash_while_compensating_resumes_the_compensation_not_the_workflow(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "j.db")
    world.crash_undoing = "hotel"
    ran_pay = []

    def pay(state: Order) -> dict[str, Any]:
        ran_pay.append(1)
        raise ValueError("the payment was declined")

    with pytest.raises(Crash):
        await _trip(fail=pay).run({"item": "Lisbon"}, store=store, run_id="r1")
    assert world.undone == ["car"]
    result = await _trip(fail=pay).resume("r1", store=store)
    assert len(ran_pay) == 1  # the workflow did not run again
    assert result.status is RunStatus.FAILED
    assert world.undone == ["car", "hotel", "flight"]  # car, journaled as undone, was not undone twice
    assert result.compensated == ("car", "hotel", "flight")
    assert "payment was declined" in (result.reason or "")
    assert [e.name for e in await _events(store, "r1") if isinstance(e, Compensated)] == ["car", "hotel", "flight"]
    with pytest.raises(RunStateError, match="side effects were undone"):
        await _trip(fail=pay).resume("r1", store=store)


async def test_a_sub_workflows_steps_are_compensated(tmp_path: Path) -> None:
    inner = (
        Graph(Order, name="bookings")
        .add(_booking("flight"), compensate=_undo("flight"))
        .edge(START, "flight")
        .build(output=lambda state: state.done)
    )
    outer = (
        Graph(Order, name="trip")
        .add(inner, name="book", into="done")
        .add(_fail, name="pay")
        .edge(START, "book")
        .edge("book", "pay")
        .build(compensation_retry=QUICK)
    )
    result = await outer.run({"item": "Lisbon"}, store=SQLiteStore(tmp_path / "j.db"))
    assert result.status is RunStatus.FAILED
    assert world.undone == ["flight"]
    assert result.compensated == ("book/flight",)


async def test_an_into_step_gets_its_value_after_a_resume(tmp_path: Path) -> None:
    got: list[Any] = []

    def undo_note(note: str) -> None:
        got.append(note)
        if len(got) == 1:
            raise Crash("died while undoing")

    flow = (
        Graph(Order, name="notes")
        .add(lambda state: "reserved #7", name="reserve", into="note", compensate=undo_note)
        .add(_fail, name="pay")
        .edge(START, "reserve")
        .edge("reserve", "pay")
        .build(compensation_retry=QUICK)
    )
    store = SQLiteStore(tmp_path / "j.db")
    with pytest.raises(Crash):
        await flow.run({"item": "x"}, store=store, run_id="r1")
    await flow.resume("r1", store=store)
    assert got == ["reserved #7", "reserved #7"]  # live, then decoded from the journal


bookings: list[str] = []


def _cancel_room(result: str, arguments: dict[str, Any]) -> None:
    bookings.remove(result)
    assert arguments == {"room": "101"}


@tool(compensate=_cancel_room)
def book_room(room: str) -> str:
    """Book a hotel room."""
    bookings.append(f"booking-{room}")
    return f"booking-{room}"


async def test_a_tools_side_effect_is_compensated(tmp_path: Path) -> None:
    bookings.clear()
    model = TestModel({"concierge": [TestModel.call("book_room", room="101"), "booked"]})
    concierge = Agent("concierge", model=model, tools=[book_room])

    async def arrange(state: Order) -> dict[str, Any]:
        return {"note": await concierge.ask("book a room")}

    flow = (
        Graph(Order, name="stay")
        .add(arrange)
        .add(_fail, name="pay")
        .edge(START, "arrange")
        .edge("arrange", "pay")
        .build(compensation_retry=QUICK)
    )
    result = await flow.run({"item": "stay"}, store=SQLiteStore(tmp_path / "j.db"))
    assert result.status is RunStatus.FAILED
    assert bookings == []
    assert result.compensated == ("tool book_room",)


transfers: list[int] = []
sent: asyncio.Event  # made by the test, in its own event loop


async def _wait_for_the_bank(amount: int) -> str:
    transfers.append(amount)  # the request has gone out
    sent.set()
    await asyncio.sleep(30)  # the run is cancelled while it waits for the answer
    return "tx1"


transfer = tool(name="transfer", compensate=lambda result: None)(_wait_for_the_bank)


async def test_a_call_cut_off_by_a_cancellation_is_reported_as_in_doubt_not_undone_blindly(tmp_path: Path) -> None:
    global sent
    transfers.clear()
    sent = asyncio.Event()
    clerk = Agent("clerk", model=TestModel({"clerk": [TestModel.call("transfer", amount=9), "done"]}), tools=[transfer])

    async def pay(state: Order) -> dict[str, Any]:
        return {"note": await clerk.ask("pay")}

    flow = Graph(Order, name="pay").add(pay).edge(START, "pay").build(compensation_retry=QUICK)
    handle = flow.start({"item": "x"}, store=SQLiteStore(tmp_path / "j.db"))
    await asyncio.wait_for(sent.wait(), 10)
    handle.cancel("the customer left")
    result = await handle.result()
    assert result.status is RunStatus.CANCELLED
    assert result.not_compensated == ("tool transfer (in doubt: cut off in flight)",)
    assert "needs a person" in (result.reason or "")
