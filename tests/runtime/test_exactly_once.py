"""Exactly-once tool calls: a journaled result is never produced by a second call; an in-flight call is settled.

A crash is simulated in-process by :class:`Crash`, a ``BaseException`` that podium lets leave ``run()`` with the
journal as it was (see ``tests/durability/test_resume_in_process.py``); real SIGKILLs are in ``tests/durability``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import podium
from podium import START, Agent, Graph, RetryPolicy, RunStatus, SQLiteStore, TestModel, tool
from podium.agents._tool import InFlightCall, Resolution
from podium.journal import ToolCalled, ToolStarted
from podium.runtime._interrupt import Approval

FAST = RetryPolicy(max_attempts=3, initial_interval=0.0, jitter=0.0)


class Crash(BaseException):
    """Leaves run() at once, as if the process died."""


class Order(BaseModel):
    item: str
    receipt: Any = None


class Calls:
    """What the tools did, and where the next call should crash."""

    def __init__(self) -> None:
        self.made: Counter[str] = Counter()
        self.keys: list[str] = []
        self.crash_in: str | None = None


calls = Calls()


@pytest.fixture(autouse=True)
def fresh_calls() -> None:
    global calls
    calls = Calls()


@tool
async def charge(amount: int, idempotency_key: str) -> str:
    """Charge the customer.

    Args:
        amount: cents.
    """
    calls.keys.append(idempotency_key)
    if calls.crash_in == "charge":
        calls.crash_in = None
        raise Crash("the process died while charging")
    calls.made["charge"] += 1
    return f"ch_{amount}_{calls.made['charge']}"


@tool(idempotent=True)
async def lookup(sku: str) -> str:
    """Look up a product."""
    if calls.crash_in == "lookup":
        calls.crash_in = None
        raise Crash("the process died while looking up")
    calls.made["lookup"] += 1
    return f"{sku}: in stock"


def _found(call: InFlightCall) -> Resolution:
    calls.made["reconcile"] += 1
    return call.done(f"ch_{call.arguments['amount']}_found")


def _not_found(call: InFlightCall) -> Resolution:
    calls.made["reconcile"] += 1
    return call.redo()


async def _refund_body(amount: int) -> str:
    if calls.crash_in == "refund":
        calls.crash_in = None
        raise Crash("the process died while refunding")
    calls.made["refund"] += 1
    return f"re_{amount}"


refund_found = tool(name="refund", reconcile=_found)(_refund_body)
refund_redo = tool(name="refund", reconcile=_not_found)(_refund_body)


def _cashier(model: TestModel, tools: list[Any]) -> Agent:
    return Agent("cashier", model=model, tools=tools, retry=None)


def _script(tool_name: str = "charge") -> TestModel:
    arguments: dict[str, Any] = {"sku": "kettle"} if tool_name == "lookup" else {"amount": 500}
    return TestModel({"cashier": [TestModel.call(tool_name, **arguments), "charged"]})


def _checkout(tools: list[Any], *, fail_first: bool = False, tool_name: str = "charge") -> podium.Workflow[Order]:
    """One step: the cashier charges (through its tool), then the step may fail once, transiently."""
    failed = [not fail_first]

    async def checkout(state: Order) -> dict[str, Any]:
        answer = await _cashier(_script(tool_name), tools).ask(f"charge for {state.item}")
        if not failed[0]:
            failed[0] = True
            raise ConnectionError("the warehouse API dropped the connection")
        return {"receipt": answer}

    return Graph(Order, name="checkout").add(checkout, retry=FAST).edge(START, "checkout").build()


async def _journal(store: SQLiteStore, run_id: str) -> list[Any]:
    return [entry.event for entry in await store.read(run_id)]


async def test_a_retried_attempt_gets_the_journaled_result_instead_of_calling_again(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "j.db")
    result = await _checkout([charge], fail_first=True).run({"item": "kettle"}, store=store, run_id="r1")
    assert result.status is RunStatus.COMPLETED
    assert calls.made["charge"] == 1  # the second attempt's identical call was answered from the ledger
    events = await _journal(store, "r1")
    assert [e.key for e in events if isinstance(e, ToolStarted)] == [calls.keys[0]]
    assert [e.result for e in events if isinstance(e, ToolCalled)] == ["ch_500_1"]


async def test_without_a_journal_a_retried_attempt_is_still_deduplicated() -> None:
    result = await _checkout([charge], fail_first=True).run({"item": "kettle"}, store=False)
    assert result.status is RunStatus.COMPLETED
    assert calls.made["charge"] == 1


async def test_the_idempotency_key_is_stable_and_hidden_from_the_model(tmp_path: Path) -> None:
    assert "idempotency_key" not in charge.spec.parameters["properties"]
    store = SQLiteStore(tmp_path / "j.db")
    calls.crash_in = "charge"
    with pytest.raises(Crash):
        await _checkout([charge]).run({"item": "kettle"}, store=store, run_id="r1")
    await _answer_in_flight(store, "r1", Approval(decision="reject"))
    result = await _checkout([charge]).resume("r1", store=store)
    assert result.status is RunStatus.COMPLETED
    assert len(calls.keys) == 2
    assert calls.keys[0] == calls.keys[1]
    other = await _checkout([charge]).run({"item": "kettle"}, store=store, run_id="r2")
    assert other.ok
    assert calls.keys[-1] != calls.keys[0]


async def test_after_a_crash_a_journaled_call_is_not_made_again(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "j.db")

    async def pay_then_crash(state: Order) -> dict[str, Any]:
        answer = await _cashier(_script(), [charge]).ask("charge")
        if not calls.made["crashed"]:
            calls.made["crashed"] += 1
            raise Crash("the process died after the charge was journaled")
        return {"receipt": answer}

    flow = Graph(Order, name="checkout").add(pay_then_crash).edge(START, "pay_then_crash").build()
    with pytest.raises(Crash):
        await flow.run({"item": "kettle"}, store=store, run_id="r1")
    result = await flow.resume("r1", store=store)
    assert result.ok
    assert calls.made["charge"] == 1
    called = [e for e in await _journal(store, "r1") if isinstance(e, ToolCalled)]
    assert len(called) == 1  # the resumed attempt's call was answered from the journal, not journaled again


async def test_an_idempotent_tool_in_flight_is_simply_called_again(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "j.db")
    calls.crash_in = "lookup"
    flow = _checkout([lookup], tool_name="lookup")
    with pytest.raises(Crash):
        await flow.run({"item": "kettle"}, store=store, run_id="r1")
    assert not [e for e in await _journal(store, "r1") if isinstance(e, ToolStarted)]  # nothing to settle
    result = await flow.resume("r1", store=store)
    assert result.ok
    assert calls.made["lookup"] == 1


@pytest.mark.parametrize(
    ("reconciling", "made", "receipt"),
    [(refund_found, 0, "ch_500_found"), (refund_redo, 1, "re_500")],
    ids=["took-effect", "redo"],
)
async def test_an_in_flight_call_is_settled_by_the_tools_reconcile_hook(
    tmp_path: Path, reconciling: Any, made: int, receipt: str
) -> None:
    store = SQLiteStore(tmp_path / "j.db")
    calls.crash_in = "refund"

    async def settle(state: Order) -> dict[str, Any]:
        await _cashier(_script("refund"), [reconciling]).ask("refund")
        return {"receipt": calls_result(await _journal(store, "r1"))}

    flow = Graph(Order, name="refunds").add(settle).edge(START, "settle").build()
    with pytest.raises(Crash):
        await flow.run({"item": "kettle"}, store=store, run_id="r1")
    result = await flow.resume("r1", store=store)
    assert result.ok
    assert calls.made["reconcile"] == 1
    assert calls.made["refund"] == made
    assert result.state.receipt == receipt
    (called,) = [e for e in await _journal(store, "r1") if isinstance(e, ToolCalled)]
    assert called.resolved == "reconciled"


def calls_result(events: list[Any]) -> Any:
    return next(e.result for e in events if isinstance(e, ToolCalled))


async def _answer_in_flight(store: SQLiteStore, run_id: str, approval: Approval) -> None:
    """Resume once (the run stops, needing attention), then answer its question."""
    waiting = await _checkout([charge]).resume(run_id, store=store)
    assert waiting.status is RunStatus.WAITING
    (question,) = [q for q in await store.questions(run_id) if not q.answered]
    assert "charge" in question.prompt
    assert "may or may not have taken effect" in question.prompt
    assert "'amount': 500" in question.prompt
    await podium.answer(run_id, question.interrupt_id, approval, store=store)


async def test_without_a_hook_an_in_flight_call_waits_for_a_person_who_says_it_happened(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "j.db")
    calls.crash_in = "charge"
    with pytest.raises(Crash):
        await _checkout([charge]).run({"item": "kettle"}, store=store, run_id="r1")
    await _answer_in_flight(store, "r1", Approval(decision="edit", value="ch_500_by_hand"))
    result = await _checkout([charge]).resume("r1", store=store)
    assert result.ok
    assert calls.made["charge"] == 0  # the person said it took effect: never charged twice
    (called,) = [e for e in await _journal(store, "r1") if isinstance(e, ToolCalled)]
    assert called.resolved == "person"
    assert called.result == "ch_500_by_hand"


async def test_a_person_who_says_it_did_not_happen_gets_it_called_again(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "j.db")
    calls.crash_in = "charge"
    with pytest.raises(Crash):
        await _checkout([charge]).run({"item": "kettle"}, store=store, run_id="r1")
    await _answer_in_flight(store, "r1", Approval(decision="reject"))
    result = await _checkout([charge]).resume("r1", store=store)
    assert result.ok
    assert calls.made["charge"] == 1


async def test_a_reconcile_hook_that_returns_something_else_fails_the_step_clearly(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "j.db")
    bad = tool(name="refund", reconcile=lambda call: "yes")(_refund_body)
    calls.crash_in = "refund"

    async def settle(state: Order) -> dict[str, Any]:
        await _cashier(_script("refund"), [bad]).ask("refund")
        return {}

    flow = Graph(Order, name="refunds").add(settle).edge(START, "settle").build()
    with pytest.raises(Crash):
        await flow.run({"item": "kettle"}, store=store, run_id="r1")
    result = await flow.resume("r1", store=store)
    assert result.status is RunStatus.FAILED
    assert "reconcile must return call.done(result) or call.redo()" in (result.reason or "")


async def test_a_tool_that_overruns_its_timeout_is_reported_to_the_model() -> None:
    import asyncio

    @tool(timeout=0.01)
    async def slow(n: int) -> int:
        """Slow."""
        await asyncio.sleep(5)
        return n

    result = await slow({"n": 1})
    assert result.error is not None
    assert "timed out after 0.01 s" in result.error


async def test_a_call_that_failed_is_made_again_in_the_next_attempt() -> None:
    failures = [1]

    @tool
    async def reserve(seat: str) -> str:
        """Reserve a seat."""
        calls.made["reserve"] += 1
        if failures:
            failures.pop()
            raise ConnectionError("the booking API is down")
        return f"reserved {seat}"

    attempts = []

    async def book(state: Order) -> dict[str, Any]:
        model = TestModel({"cashier": [TestModel.call("reserve", seat="12A"), "done"]})
        await _cashier(model, [reserve]).ask("reserve")
        attempts.append(calls.made["reserve"])
        if len(attempts) == 1:
            raise ConnectionError("try the whole step again")
        return {"receipt": "ok"}

    flow = Graph(Order, name="booking").add(book, retry=FAST).edge(START, "book").build()
    result = await flow.run({"item": "seat"}, store=False)
    assert result.ok
    assert attempts == [1, 2]  # the failed call was not an answer for the retried attempt


async def test_an_in_flight_call_the_resumed_model_does_not_repeat_is_still_settled(tmp_path: Path) -> None:
    """A model need not word its calls the same way twice: the call cut off by the crash is settled anyway, and
    what it did is compensated when the run fails later."""
    store = SQLiteStore(tmp_path / "j.db")
    undone: list[Any] = []
    found = tool(name="refund", reconcile=_found, compensate=undone.append)(_refund_body)
    calls.crash_in = "refund"
    executions = [0]

    async def settle(state: Order) -> dict[str, Any]:
        executions[0] += 1
        amount = 500 if executions[0] == 1 else 499  # worded differently after the resume
        model = TestModel({"cashier": [TestModel.call("refund", amount=amount), "refunded"]})
        await _cashier(model, [found]).ask("refund")
        return {}

    def then_fail(state: Order) -> dict[str, Any]:
        raise ValueError("the ledger rejected the batch")

    flow = (
        Graph(Order, name="refunds")
        .add(settle)
        .add(then_fail)
        .edge(START, "settle")
        .edge("settle", "then_fail")
        .build(compensation_retry=FAST)
    )
    with pytest.raises(Crash):
        await flow.run({"item": "kettle"}, store=store, run_id="r1")
    result = await flow.resume("r1", store=store)
    assert calls.made["reconcile"] == 1  # the 500 was settled (it took effect), though not asked for again
    assert calls.made["refund"] == 1  # the 499 the resumed model asked for
    assert sorted(undone) == ["ch_500_found", "re_499"]  # both undone when the run failed
    assert result.compensated == ("tool refund", "tool refund")


async def test_without_a_hook_a_call_the_resumed_model_does_not_repeat_waits_for_a_person(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "j.db")
    calls.crash_in = "charge"
    executions = [0]

    async def pay(state: Order) -> dict[str, Any]:
        executions[0] += 1
        amount = 500 if executions[0] == 1 else 499
        model = TestModel({"cashier": [TestModel.call("charge", amount=amount), "charged"]})
        return {"receipt": await _cashier(model, [charge]).ask("charge")}

    flow = Graph(Order, name="checkout").add(pay).edge(START, "pay").build()
    with pytest.raises(Crash):
        await flow.run({"item": "kettle"}, store=store, run_id="r1")
    waiting = await flow.resume("r1", store=store)
    assert waiting.status is RunStatus.WAITING
    (question,) = [q for q in await store.questions("r1") if not q.answered]
    assert "'amount': 500" in question.prompt
    await podium.answer("r1", question.interrupt_id, Approval(decision="reject"), store=store)
    result = await flow.resume("r1", store=store)
    assert result.ok
    called = [e for e in await _journal(store, "r1") if isinstance(e, ToolCalled)]
    assert [(e.result, e.resolved) for e in called if e.error is None] == [("ch_499_1", None)]
    assert [e.resolved for e in called if e.error is not None] == ["person"]  # the 500: did not happen
