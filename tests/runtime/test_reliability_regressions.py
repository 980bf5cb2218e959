"""Regressions from the review of issue 5 (commit cc426cc): what a user relies on when steps retry, time out, fall
back, are cancelled or crash while their side effects are journaled and undone.

Each test is named for the promise it keeps; the reviewer's reproduction is the scenario it runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from podium import (
    END,
    START,
    Agent,
    Budget,
    Failure,
    Graph,
    Limits,
    RetryPolicy,
    RunStatus,
    Send,
    SQLiteStore,
    TestModel,
    Tool,
    Workflow,
    WorkflowDefinitionError,
    divert,
    reducers,
    tool,
)
from podium.agents._tool import InFlightCall, Resolution
from podium.journal import Compensated, Event, RunFinished, RunState, StepCompleted, ToolCalled, ToolStarted
from tests.runtime.test_exactly_once import Crash

RETRY = RetryPolicy(max_attempts=3, initial_interval=0.0, jitter=0.0, retry_on=(Exception,))


class Order(BaseModel):
    receipt: Any = None


class Trip(BaseModel):
    done: Annotated[list[str], reducers.append] = []


async def _events(store: SQLiteStore, run_id: str) -> list[Any]:
    return [entry.event for entry in await store.read(run_id)]


def _then_fail(work: Any) -> Workflow[Order]:
    """``work``, then a step that fails: the run is compensated."""

    def verify(state: Order) -> dict[str, Any]:
        raise RuntimeError("the verification failed")

    return Graph(Order, name="signup").add(work).add(verify).chain(START, work.__name__, "verify").build()


def _clerk(tools: list[Tool], *calls: Any) -> Any:
    """A step in which an agent makes ``calls`` with ``tools``."""

    async def work(state: Order) -> dict[str, Any]:
        clerk = Agent("clerk", model=TestModel({"clerk": [*calls, "done"]}), tools=tools, retry=None)
        return {"receipt": await clerk.ask("sign the customer up")}

    return work


# -- each tool call is undone by its own tool's compensation, and only if it declares one ------------------------------


async def test_a_later_tool_with_the_same_name_does_not_undo_an_earlier_tools_call(tmp_path: Path) -> None:
    undone: list[str] = []

    @tool(compensate=lambda result: undone.append(f"closed {result}"))
    def open_account(email: str) -> str:
        """Open an account."""
        return "acct-A"

    # another crew, loaded later into the same process, has a tool of the same name with an undo of its own
    @tool(name="open_account", compensate=lambda result: undone.append(f"someone else's undo of {result}"))
    def open_elsewhere(email: str) -> str:
        """Open an account elsewhere."""
        return "acct-B"

    work = _clerk([open_account], TestModel.call("open_account", email="a@example.com"))
    result = await _then_fail(work).run({}, store=SQLiteStore(tmp_path / "j.db"))
    assert result.status is RunStatus.FAILED
    assert undone == ["closed acct-A"]
    assert result.compensated == ("tool open_account",)


async def test_a_tool_without_a_compensation_is_never_undone(tmp_path: Path) -> None:
    undone: list[str] = []

    @tool
    def send_mail(to: str) -> str:
        """Send the welcome mail (it cannot be unsent)."""
        return "sent"

    @tool(name="send_mail", compensate=lambda result: undone.append(f"someone else's undo of {result}"))
    def send_other_mail(to: str) -> str:
        """Another crew's mail tool."""
        return "sent elsewhere"

    store = SQLiteStore(tmp_path / "j.db")
    work = _clerk([send_mail], TestModel.call("send_mail", to="a@example.com"))
    result = await _then_fail(work).run({}, store=store, run_id="r1")
    assert result.status is RunStatus.FAILED
    assert undone == []
    assert result.compensated == ()
    (called,) = [e for e in await _events(store, "r1") if isinstance(e, ToolCalled)]
    assert not called.compensable  # a resume of this journal leaves it alone too


# -- a call in doubt is settled before it is made again, in the same process as after a crash --------------------------


class Cashier:
    """A charging tool whose first call takes effect but never answers, and its reconcile hook."""

    def __init__(self) -> None:
        self.made: list[int] = []
        self.reconciled: list[str] = []

    def reconcile(self, call: InFlightCall) -> Resolution:
        self.reconciled.append(call.key)
        return call.done(f"ch_{call.arguments['amount']}_found")

    async def charge(self, amount: int) -> str:
        """Charge the customer."""
        self.made.append(amount)  # takes effect at once...
        if len(self.made) == 1:
            await asyncio.Event().wait()  # ...but the first answer never comes: a timeout cuts the call off
        return f"ch_{amount}"


def _checkout(charge: Tool, *, timeout: float | None = None, fail_first: bool = False) -> Workflow[Order]:
    attempts: list[int] = []

    async def pay(state: Order) -> dict[str, Any]:
        attempts.append(1)
        model = TestModel({"cashier": [TestModel.call("charge", amount=500), "charged"]})
        answer = await Agent("cashier", model=model, tools=[charge], retry=None).ask("charge 500")
        if fail_first and len(attempts) == 1:
            raise ConnectionError("the warehouse API dropped the connection")
        return {"receipt": answer}

    return Graph(Order, name="checkout").add(pay, timeout=timeout, retry=RETRY).edge(START, "pay").build()


async def _settled_once(store: SQLiteStore, cashier: Cashier) -> None:
    assert cashier.made == [500]  # never charged twice
    assert len(cashier.reconciled) == 1
    events = await _events(store, "r1")
    assert [e.key for e in events if isinstance(e, ToolStarted)] == cashier.reconciled
    (called,) = [e for e in events if isinstance(e, ToolCalled)]
    assert called.resolved == "reconciled"
    assert called.result == "ch_500_found"


async def test_a_call_cut_off_by_the_step_timeout_is_settled_before_the_retry_makes_it_again(tmp_path: Path) -> None:
    cashier = Cashier()
    charge = tool(name="charge", reconcile=cashier.reconcile)(cashier.charge)
    store = SQLiteStore(tmp_path / "j.db")
    result = await _checkout(charge, timeout=0.05).run({}, store=store, run_id="r1")
    assert result.status is RunStatus.COMPLETED
    await _settled_once(store, cashier)


async def test_a_call_that_overran_the_tools_timeout_is_settled_before_a_retried_step_makes_it_again(
    tmp_path: Path,
) -> None:
    cashier = Cashier()
    charge = tool(name="charge", reconcile=cashier.reconcile, timeout=0.05)(cashier.charge)
    store = SQLiteStore(tmp_path / "j.db")
    result = await _checkout(charge, fail_first=True).run({}, store=store, run_id="r1")
    assert result.status is RunStatus.COMPLETED
    await _settled_once(store, cashier)


# -- a fallback that makes the failed agent's call gets its journaled result ------------------------------------------


class Paid(BaseModel):
    ok: bool


@pytest.mark.parametrize("level", ["agent", "step"])
async def test_a_fallback_making_the_same_tool_call_gets_the_journaled_result(tmp_path: Path, level: str) -> None:
    made: list[int] = []

    @tool
    async def charge(amount: int) -> str:
        """Charge the customer."""
        made.append(amount)
        return f"ch_{len(made)}"

    def agent(name: str, answers: Sequence[str], fallbacks: Sequence[Agent] = ()) -> Agent:
        model = TestModel({name: [TestModel.call("charge", amount=5), *answers]})
        return Agent(name, model=model, tools=[charge], output=Paid, retry=None, max_reasks=1, fallbacks=fallbacks)

    backup = agent("backup", ['{"ok": true}'])
    primary = agent("primary", ["not json"] * 4, fallbacks=[backup] if level == "agent" else ())

    async def pay(state: Order) -> dict[str, Any]:
        return {"receipt": await primary.ask("pay")}

    async def pay_with_backup(state: Order) -> dict[str, Any]:
        return {"receipt": await backup.ask("pay")}

    step_fallbacks = [pay_with_backup] if level == "step" else []
    flow = Graph(Order, name="pay").add(pay, fallbacks=step_fallbacks).edge(START, "pay").build()
    store = SQLiteStore(tmp_path / "j.db")
    result = await flow.run({}, store=store, run_id="r1")
    assert result.status is RunStatus.COMPLETED
    assert result.state.receipt == Paid(ok=True)
    assert made == [5]  # the primary's charge answered the backup's identical call
    assert len([e for e in await _events(store, "r1") if isinstance(e, ToolCalled)]) == 1


# -- a retried sub-workflow, and a cancellation while a completion commits, undo exactly what happened ----------------


async def test_a_retried_sub_workflow_replays_its_finished_steps_and_the_saga_undoes_each_once(tmp_path: Path) -> None:
    booked: list[int] = []
    undone: list[Any] = []
    flaky = [True]

    def book(state: Order) -> dict[str, Any]:
        booked.append(len(booked) + 1)
        return {"receipt": f"B{len(booked)}"}

    def confirm(state: Order) -> dict[str, Any]:
        if flaky:
            flaky.pop()
            raise ConnectionError("the confirmation API dropped the connection")
        return {}

    def pay(state: Order) -> dict[str, Any]:
        raise RuntimeError("the payment was declined")

    team = (
        Graph(Order, name="team")
        .add(book, compensate=lambda output: undone.append(output))
        .add(confirm)
        .chain(START, "book", "confirm")
        .build(output="receipt")
    )
    flow = (
        Graph(Order, name="trip")
        .add(team, name="team", into="receipt", retry=RETRY)
        .add(pay)
        .chain(START, "team", "pay")
        .build()
    )
    store = SQLiteStore(tmp_path / "j.db")
    result = await flow.run({}, store=store, run_id="r1")
    assert result.status is RunStatus.FAILED
    assert booked == [1]  # the retry replayed book from the journal
    assert undone == [{"receipt": "B1"}]
    assert result.compensated == ("team/book",)
    assert [e.name for e in await _events(store, "r1") if isinstance(e, Compensated)] == ["team/book"]


class AcknowledgesLate(SQLiteStore):
    """Commits a step's completion at once but answers late (a PostgreSQL round trip, an fsync in a thread): the task
    that wrote it can be cancelled after the commit."""

    def __init__(self, path: Path, step: str) -> None:
        super().__init__(path)
        self.step = step
        self.committed = asyncio.Event()

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
        seq = await super().append(
            run_id, events, owner=owner, lease_seconds=lease_seconds, at=at, status=status, reason=reason,
            release=release,
        )  # fmt: skip
        if any(isinstance(e, StepCompleted) and e.step == self.step for e in events):
            self.committed.set()
            await asyncio.sleep(1)  # the sibling fails now, and this task is cancelled long before
        return seq


async def test_a_step_cancelled_while_its_completion_commits_is_still_compensated(tmp_path: Path) -> None:
    store = AcknowledgesLate(tmp_path / "j.db", step="book")
    undone: list[Any] = []

    async def book(state: Trip) -> dict[str, Any]:
        return {"done": ["booked"]}

    async def check(state: Trip) -> dict[str, Any]:
        await store.committed.wait()
        raise RuntimeError("the booking was rejected")

    flow = (
        Graph(Trip, name="parallel")
        .add(book, compensate=lambda output: undone.append(output))
        .add(check)
        .edge(START, "book")
        .edge(START, "check")
        .build()
    )
    result = await flow.run({}, store=store, run_id="r1")
    assert result.status is RunStatus.FAILED
    assert undone == [{"done": ["booked"]}]  # as a resume of this journal would have done
    assert result.compensated == ("book",)
    events = await _events(store, "r1")
    assert any(isinstance(e, StepCompleted) and e.step == "book" for e in events)
    assert [e.name for e in events if isinstance(e, Compensated)] == ["book"]


# -- budgets -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("crash", [False, True], ids=["live", "after-a-crash"])
async def test_a_sub_workflow_budget_counts_every_attempts_calls(tmp_path: Path, crash: bool) -> None:
    attempts: list[int] = []

    async def work(state: Order) -> dict[str, Any]:
        attempts.append(1)
        if crash and len(attempts) == 3:
            raise Crash("the process died in the third attempt")
        answer = await Agent("worker", model=TestModel(), retry=None).ask("work")
        if len(attempts) < 3:
            raise ConnectionError("the tool API dropped the connection")
        return {"receipt": answer}

    team = Graph(Order, name="team").add(work).edge(START, "work").build(output="receipt")
    flow = (
        Graph(Order, name="outer")
        .add(team, name="team", into="receipt", limits=Limits(max_model_calls=2), retry=RETRY)
        .edge(START, "team")
        .build()
    )
    store = SQLiteStore(tmp_path / "j.db")
    if crash:
        with pytest.raises(Crash):
            await flow.run({}, store=store, run_id="r1")
        result = await flow.resume("r1", store=store)
    else:
        result = await flow.run({}, store=store, run_id="r1")
    assert result.status is RunStatus.LIMITED  # two attempts spent the budget: the third may not call
    assert result.limit == "max_model_calls"
    assert "sub-workflow 'team'" in (result.reason or "")
    assert "max_model_calls=2: 2 calls made" in (result.reason or "")


async def test_a_budget_reached_in_an_on_error_handler_ends_the_run_limited(tmp_path: Path) -> None:
    backup = Agent("backup", model=TestModel(), retry=None, budget=Budget(max_model_calls=1))

    def write(state: Order) -> dict[str, Any]:
        raise RuntimeError("the writer is down")

    async def ask_the_backup(state: Order, error: Exception) -> dict[str, Any]:
        await backup.ask("draft")  # spends the backup's budget
        return {"receipt": await backup.ask("revise")}

    flow = Graph(Order, name="limited").add(write, on_error=ask_the_backup).edge(START, "write").build()
    store = SQLiteStore(tmp_path / "j.db")
    result = await flow.run({}, store=store, run_id="r1")
    assert result.status is RunStatus.LIMITED
    assert result.limit == "max_model_calls"
    assert "agent 'backup' reached its max_model_calls=1" in (result.reason or "")
    (finished,) = [e for e in await _events(store, "r1") if isinstance(e, RunFinished)]
    assert finished.status == "limited"


# -- definitions that cannot work are refused when built ---------------------------------------------------------------


def test_a_divert_from_a_step_that_feeds_a_join_is_refused() -> None:
    def broken(state: Trip) -> dict[str, Any]:
        raise RuntimeError("broken")

    def graph(on_error: Any) -> Graph[Trip]:
        return (
            Graph(Trip, name="joined")
            .add(broken, on_error=on_error)
            .add(lambda state: {"done": ["sibling"]}, name="sibling")
            .add(lambda state: {"done": ["merged"]}, name="merge")
            .edge(START, "broken")
            .edge(START, "sibling")
            .join(["broken", "sibling"], "merge")
        )

    def handle(state: Trip, failure: Failure) -> dict[str, Any]:
        return {"done": [f"handled {failure.step}"]}

    diverting = graph("handle").add(handle).edge("handle", END)
    with pytest.raises(WorkflowDefinitionError, match="feeds a join, which would wait for it forever"):
        diverting.build()
    graph(lambda state, error: {"done": ["recovered"]}).build()  # recovering with an update is the way


def test_a_divert_into_a_field_without_a_merge_rule_from_a_fan_out_is_refused() -> None:
    class Batch(BaseModel):
        failure: Failure | None = None
        failures: Annotated[list[Failure], reducers.append] = []

    def split(state: Batch) -> list[Send]:
        return [Send("work", 1), Send("work", 2)]

    def work(state: Batch, item: int) -> dict[str, Any]:
        raise RuntimeError(f"item {item} broke")

    def graph(into: str) -> Graph[Batch]:
        return (
            Graph(Batch, name="fan-out")
            .add(split, routes=["work"])
            .add(work, on_error=divert("handle", into=into))
            .add(lambda state: {}, name="handle")
            .edge(START, "split")
            .edge("handle", END)
        )

    with pytest.raises(WorkflowDefinitionError, match="several tasks of this step may fail in one superstep"):
        graph("failure").build()
    graph("failures").build()  # a field with a merge rule takes every task's failure


def test_a_step_with_fallbacks_cannot_declare_a_compensation() -> None:
    def book_with_stripe(state: Order) -> str:
        raise RuntimeError("stripe is down")

    def book_with_paypal(state: Order) -> str:
        return "paypal:123"

    with pytest.raises(WorkflowDefinitionError, match="a step with fallbacks cannot declare compensate="):
        Graph(Order, name="book").add(
            book_with_stripe,
            name="book",
            into="receipt",
            fallbacks=[book_with_paypal],
            compensate=lambda output: None,  # would be handed PayPal's booking to refund with Stripe
        )


# -- a compensation finished by a resume -------------------------------------------------------------------------------


async def test_a_run_resumed_while_compensating_reports_what_an_uninterrupted_run_does(tmp_path: Path) -> None:
    crash_undoing: list[bool] = []

    def unbook(output: dict[str, Any]) -> None:
        if crash_undoing:
            crash_undoing.pop()
            raise Crash("the process died while undoing the booking")

    def book(state: Order) -> dict[str, Any]:
        return {"receipt": "booked"}

    def pay(state: Order) -> dict[str, Any]:
        raise RuntimeError("the payment was declined")

    flow = Graph(Order, name="trip").add(book, compensate=unbook).add(pay).chain(START, "book", "pay").build()
    store = SQLiteStore(tmp_path / "j.db")
    straight = await flow.run({}, store=store, run_id="straight")
    crash_undoing.append(True)
    with pytest.raises(Crash):
        await flow.run({}, store=store, run_id="crashed")
    resumed = await flow.resume("crashed", store=store)

    def finished(events: list[Any]) -> tuple[str, int, str | None]:
        (event,) = [e for e in events if isinstance(e, RunFinished)]
        return event.status, event.steps, event.error_type

    assert (resumed.status, resumed.steps) == (straight.status, straight.steps) == (RunStatus.FAILED, 2)
    assert resumed.compensated == straight.compensated == ("book",)
    assert finished(await _events(store, "crashed")) == finished(await _events(store, "straight"))
    assert finished(await _events(store, "straight")) == ("failed", 2, "StepFailedError")
