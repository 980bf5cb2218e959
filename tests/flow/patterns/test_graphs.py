"""Graph patterns over the user's own state: sequential, parallel, loop, event_driven (podium.flow.patterns._graphs).

Every pattern is shown working, and failing inside one step or branch, with what happens to the others.
"""

import asyncio
import threading
import time
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from podium import (
    ConfigError,
    Limits,
    RunStatus,
    StepFailedError,
    WorkflowDefinitionError,
    context,
    event_driven,
    loop,
    parallel,
    reducers,
    sequential,
    step,
)


class Post(BaseModel):
    topic: str = ""
    notes: Annotated[list[str], reducers.append] = []
    draft: str = ""
    summary: str = ""
    a: str = ""
    b: str = ""


class Branch(BaseModel):
    topic: str = ""
    text: str = ""


def failed_step_error(error: object) -> StepFailedError:
    assert isinstance(error, StepFailedError), f"expected StepFailedError, got {error!r}"
    return error


# ---------------------------------------------------------------------------------------------- sequential


async def test_sequential_runs_steps_in_order_each_seeing_the_previous_writes() -> None:
    seen: list[tuple[str, list[str], str]] = []

    async def research(state: Post) -> dict[str, Any]:
        seen.append(("research", list(state.notes), state.draft))
        return {"notes": [f"fact about {state.topic}"]}

    def write(state: Post) -> str:
        seen.append(("write", list(state.notes), state.draft))
        return f"{state.topic}: {'; '.join(state.notes)}"

    def publish(state: Post) -> dict[str, Any]:
        seen.append(("publish", list(state.notes), state.draft))
        return {"summary": state.draft.upper()}

    wf = sequential(research, step(write, into="draft"), publish, state=Post, input="topic", output="summary")
    topic: Any = "tides"  # a bare input goes into input="topic" (Workflow.run's annotation admits only S | Mapping)
    result = await wf.run(topic)

    assert result.status is RunStatus.COMPLETED
    assert result.output == "TIDES: FACT ABOUT TIDES"
    assert seen == [
        ("research", [], ""),
        ("write", ["fact about tides"], ""),
        ("publish", ["fact about tides"], "tides: fact about tides"),
    ]
    assert result.steps == 3


async def test_sequential_failure_stops_the_chain_and_keeps_earlier_writes() -> None:
    ran: list[str] = []
    original = ValueError("the writer broke")

    def research(state: Post) -> dict[str, Any]:
        ran.append("research")
        return {"notes": ["n1"]}

    def write(state: Post) -> dict[str, Any]:
        ran.append("write")
        raise original

    def publish(state: Post) -> dict[str, Any]:
        ran.append("publish")
        return {"summary": "published"}

    result = await sequential(research, write, publish, state=Post).run()

    assert result.status is RunStatus.FAILED
    assert ran == ["research", "write"]
    error = failed_step_error(result.error)
    assert error.step == "write"
    assert error.__cause__ is original
    assert "the writer broke" in str(error)
    assert result.state.notes == ["n1"]
    assert result.state.summary == ""
    assert result.output is None


def test_sequential_sync_steps_run_in_a_worker_thread_async_steps_on_the_loop() -> None:
    threads: dict[str, int] = {}

    def sync_step(state: Post) -> None:
        threads["sync"] = threading.get_ident()

    async def async_step(state: Post) -> None:
        threads["async"] = threading.get_ident()

    result = sequential(sync_step, async_step, state=Post).run_sync()

    assert result.status is RunStatus.COMPLETED
    assert threads["sync"] != threading.get_ident()
    assert threads["async"] == threading.get_ident()


async def test_sequential_accepts_named_specs_and_sub_workflows() -> None:
    def upper(state: Branch) -> dict[str, Any]:
        return {"text": state.topic.upper()}

    def exclaim(state: Branch) -> dict[str, Any]:
        return {"text": state.text + "!"}

    inner = sequential(upper, exclaim, state=Branch, name="inner")
    names: list[str] = []

    def seed(state: Post) -> None:
        names.append(context().step)

    wf = sequential(
        step(seed, name="first"),
        step(inner, into="draft", output=lambda final: final.text),
        state=Post,
        output="draft",
    )
    result = await wf.run({"topic": "tides"})

    assert result.status is RunStatus.COMPLETED
    assert names == ["first"]
    assert result.output == "TIDES!"
    assert set(wf.steps) == {"first", "inner"}


def test_graph_builders_reject_unusable_arguments() -> None:
    with pytest.raises(TypeError, match=r"step\(fn, name="):
        sequential(lambda state: None, state=Post)
    with pytest.raises(ConfigError, match="at least one branch"):
        parallel(state=Post)
    with pytest.raises(ConfigError, match="at least one step"):
        loop(until=lambda s: True, max_iterations=2, state=Post)
    with pytest.raises(ConfigError, match="max_iterations must be at least 1"):
        loop(step(lambda s: None, name="body"), until=lambda s: True, max_iterations=0, state=Post)
    with pytest.raises(ConfigError, match="on_max"):
        loop(step(lambda s: None, name="body"), until=lambda s: True, max_iterations=2, state=Post, on_max="fail")


# ---------------------------------------------------------------------------------------------- parallel


async def test_parallel_merge_sees_every_branch_and_writes_apply_in_branch_order() -> None:
    async def slow(state: Post) -> dict[str, Any]:
        await asyncio.sleep(0.05)
        return {"notes": ["slow"]}

    async def fast(state: Post) -> dict[str, Any]:
        return {"notes": ["fast"]}

    merged: list[list[str]] = []

    def merge(state: Post) -> dict[str, Any]:
        merged.append(list(state.notes))
        return {"summary": "+".join(state.notes)}

    result = await parallel(slow, fast, merge=merge, state=Post, output="summary").run()

    assert result.status is RunStatus.COMPLETED
    # task order, not completion order: "slow" finished last but was declared first
    assert merged == [["slow", "fast"]]
    assert result.output == "slow+fast"


async def test_parallel_without_merge_ends_after_the_branches() -> None:
    def left(state: Post) -> dict[str, Any]:
        return {"a": "L"}

    def right(state: Post) -> dict[str, Any]:
        return {"b": "R"}

    result = await parallel(left, right, state=Post).run()

    assert result.status is RunStatus.COMPLETED
    assert (result.state.a, result.state.b) == ("L", "R")
    assert result.steps == 2


def test_parallel_sync_branches_run_concurrently_in_threads() -> None:
    barrier = threading.Barrier(2, timeout=5)

    def left(state: Post) -> dict[str, Any]:
        barrier.wait()  # raises BrokenBarrierError unless the other branch runs at the same time
        return {"a": "L"}

    def right(state: Post) -> dict[str, Any]:
        barrier.wait()
        return {"b": "R"}

    result = parallel(left, right, state=Post).run_sync()

    assert result.status is RunStatus.COMPLETED, result.error
    assert (result.state.a, result.state.b) == ("L", "R")


async def test_parallel_failure_cancels_the_other_branches_promptly() -> None:
    cancelled: list[str] = []
    effects: list[str] = []
    original = RuntimeError("branch down")

    async def failing(state: Post) -> dict[str, Any]:
        await asyncio.sleep(0.01)
        raise original

    async def slow(state: Post) -> dict[str, Any]:
        try:
            await asyncio.sleep(3)
        except asyncio.CancelledError:
            cancelled.append("slow")
            raise
        effects.append("slow")
        return {"a": "late"}

    def merge(state: Post) -> dict[str, Any]:
        effects.append("merge")
        return {}

    started = time.perf_counter()
    result = await parallel(failing, slow, merge=merge, state=Post).run()
    elapsed = time.perf_counter() - started

    assert result.status is RunStatus.FAILED
    assert elapsed < 1.5
    assert cancelled == ["slow"]
    assert effects == []
    error = failed_step_error(result.error)
    assert error.step == "failing"
    assert error.__cause__ is original
    assert result.state.a == ""


async def test_parallel_finish_lets_siblings_finish_and_keeps_their_writes() -> None:
    effects: list[str] = []

    async def failing(state: Post) -> dict[str, Any]:
        raise KeyError("missing")

    async def slow(state: Post) -> dict[str, Any]:
        await asyncio.sleep(0.1)
        effects.append("slow")
        return {"a": "kept", "notes": ["slow note"]}

    def merge(state: Post) -> dict[str, Any]:
        effects.append("merge")
        return {}

    result = await parallel(failing, slow, merge=merge, state=Post, on_branch_failure="finish").run()

    assert result.status is RunStatus.FAILED
    assert effects == ["slow"]  # the sibling finished; the merge never ran
    assert result.state.a == "kept"
    assert result.state.notes == ["slow note"]
    error = failed_step_error(result.error)
    assert error.step == "failing"
    assert isinstance(error.__cause__, KeyError)


async def test_parallel_reports_the_failure_that_happened_first_not_the_first_declared() -> None:
    async def late_failure(state: Post) -> dict[str, Any]:
        await asyncio.sleep(0.1)
        raise ValueError("late")

    async def early_failure(state: Post) -> dict[str, Any]:
        raise ValueError("early")

    result = await parallel(late_failure, early_failure, state=Post, on_branch_failure="finish").run()

    assert result.status is RunStatus.FAILED
    error = failed_step_error(result.error)
    assert error.step == "early_failure"
    assert str(error.__cause__) == "early"


async def test_parallel_branch_with_on_error_reports_and_the_merge_still_runs() -> None:
    def failing(state: Post) -> dict[str, Any]:
        raise RuntimeError("flaky")

    def ok(state: Post) -> dict[str, Any]:
        return {"notes": ["ok"]}

    def report(state: Post, error: Exception) -> dict[str, Any]:
        return {"notes": [f"failed: {error.__cause__}"]}

    def merge(state: Post) -> dict[str, Any]:
        return {"summary": " | ".join(state.notes)}

    wf = parallel(step(failing, on_error=report), ok, merge=merge, state=Post, output="summary")
    result = await wf.run()

    assert result.status is RunStatus.COMPLETED
    assert result.output == "failed: flaky | ok"


async def test_parallel_sub_workflow_branches_run_concurrently() -> None:
    async def first(state: Branch) -> dict[str, Any]:
        await asyncio.sleep(0.3)
        return {"text": state.topic + "1"}

    async def second(state: Branch) -> dict[str, Any]:
        await asyncio.sleep(0.3)
        return {"text": state.text + "2"}

    with_output = sequential(first, second, state=Branch, name="with_output", output=lambda s: {"a": s.text})
    without_output = sequential(first, second, state=Branch, name="without_output")
    wf = parallel(with_output, step(without_output, into="b", output=lambda final: final.text), state=Post)

    started = time.perf_counter()
    result = await wf.run({"topic": "t"})
    elapsed = time.perf_counter() - started

    assert result.status is RunStatus.COMPLETED, result.error
    assert (result.state.a, result.state.b) == ("t12", "t12")
    assert elapsed < 1.0  # 4 x 0.3 s one after the other would take 1.2 s


async def test_parallel_sub_workflow_branches_go_at_their_own_pace() -> None:
    # The first branch's first step waits for the second branch's *second* step: in lockstep supersteps
    # (branches as plain chains) this would deadlock; as sub-workflows each branch proceeds on its own.
    second_branch_done = asyncio.Event()

    async def wait_for_other(state: Branch) -> dict[str, Any]:
        await asyncio.wait_for(second_branch_done.wait(), timeout=2)
        return {"text": "waited"}

    def tail(state: Branch) -> dict[str, Any]:
        return {"text": state.text + "+tail"}

    def head(state: Branch) -> dict[str, Any]:
        return {"text": "head"}

    async def signal(state: Branch) -> dict[str, Any]:
        second_branch_done.set()
        return {"text": state.text + "+signal"}

    one = sequential(wait_for_other, tail, state=Branch, name="one", output=lambda s: {"a": s.text})
    two = sequential(head, signal, state=Branch, name="two", output=lambda s: {"b": s.text})
    result = await parallel(one, two, state=Post).run()

    assert result.status is RunStatus.COMPLETED, result.error
    assert (result.state.a, result.state.b) == ("waited+tail", "head+signal")


async def test_parallel_failure_inside_a_sub_workflow_branch_names_the_nested_step() -> None:
    cancelled: list[str] = []

    def ok(state: Branch) -> dict[str, Any]:
        return {"text": "ok"}

    def broken(state: Branch) -> dict[str, Any]:
        raise ZeroDivisionError("nested")

    async def slow(state: Post) -> dict[str, Any]:
        try:
            await asyncio.sleep(3)
        except asyncio.CancelledError:
            cancelled.append("slow")
            raise
        return {"a": "late"}

    sub = sequential(ok, broken, state=Branch, name="sub", output=lambda s: {"b": s.text})
    started = time.perf_counter()
    result = await parallel(sub, slow, state=Post).run()

    assert result.status is RunStatus.FAILED
    assert time.perf_counter() - started < 1.5
    error = failed_step_error(result.error)
    assert error.step == "sub/broken"
    assert isinstance(error.__cause__, ZeroDivisionError)
    assert cancelled == ["slow"]


def test_parallel_branches_replacing_one_field_without_a_merge_rule_are_refused_at_build() -> None:
    def left(state: Post) -> str:
        return "L"

    def right(state: Post) -> str:
        return "R"

    with pytest.raises(WorkflowDefinitionError, match="'draft'"):
        parallel(step(left, into="draft"), step(right, into="draft"), state=Post)


# ---------------------------------------------------------------------------------------------- loop


class Essay(BaseModel):
    draft: str = ""
    rounds: int = 0
    approved: bool = False
    critiques: Annotated[list[str], reducers.append] = []


def revise(state: Essay) -> dict[str, Any]:
    return {"draft": state.draft + "x", "rounds": state.rounds + 1}


def critique(state: Essay) -> dict[str, Any]:
    return {"approved": len(state.draft) >= 3, "critiques": [f"round {state.rounds}"]}


async def test_loop_runs_the_body_until_the_condition_holds() -> None:
    result = await loop(revise, critique, until=lambda s: s.approved, max_iterations=10, state=Essay).run()

    assert result.status is RunStatus.COMPLETED
    assert result.state.rounds == 3
    assert result.state.draft == "xxx"
    assert result.state.critiques == ["round 1", "round 2", "round 3"]


async def test_loop_condition_is_checked_after_each_full_round() -> None:
    seen: list[tuple[int, int]] = []

    def until(state: Essay) -> bool:
        seen.append((state.rounds, len(state.critiques)))
        return state.rounds == 2

    result = await loop(revise, critique, until=until, max_iterations=10, state=Essay).run()

    assert result.status is RunStatus.COMPLETED
    assert seen == [(1, 1), (2, 2)]  # always after the critique of the round, never mid-round


async def test_loop_on_max_stop_completes_after_exactly_max_iterations_rounds() -> None:
    wf = loop(revise, critique, until=lambda s: False, max_iterations=4, state=Essay, on_max="stop", output="draft")
    result = await wf.run()

    assert result.status is RunStatus.COMPLETED
    assert result.state.rounds == 4
    assert len(result.state.critiques) == 4
    assert result.output == "xxxx"


async def test_loop_on_max_limit_ends_limited_with_the_last_rounds_state() -> None:
    wf = loop(revise, critique, until=lambda s: False, max_iterations=3, state=Essay, on_max="limit")
    result = await wf.run()

    assert result.status is RunStatus.LIMITED
    assert result.limit == "max_iterations"
    assert result.reason is not None
    assert "max_iterations=3" in result.reason
    assert result.state.rounds == 3
    assert len(result.state.critiques) == 3
    assert result.output is None


async def test_loop_on_max_limit_converging_in_the_last_allowed_round_completes() -> None:
    wf = loop(revise, until=lambda s: s.rounds == 3, max_iterations=3, state=Essay, on_max="limit")
    result = await wf.run()

    assert result.status is RunStatus.COMPLETED
    assert result.state.rounds == 3


async def test_loop_body_failure_fails_the_run_mid_round_keeping_earlier_rounds() -> None:
    ran: list[str] = []

    def flaky_revise(state: Essay) -> dict[str, Any]:
        ran.append(f"revise {state.rounds + 1}")
        if state.rounds == 1:
            raise RuntimeError("model timeout")
        return {"draft": state.draft + "x", "rounds": state.rounds + 1}

    def counted_critique(state: Essay) -> dict[str, Any]:
        ran.append(f"critique {state.rounds}")
        return {"critiques": [f"round {state.rounds}"]}

    wf = loop(flaky_revise, counted_critique, until=lambda s: False, max_iterations=5, state=Essay)
    result = await wf.run()

    assert result.status is RunStatus.FAILED
    assert ran == ["revise 1", "critique 1", "revise 2"]
    error = failed_step_error(result.error)
    assert error.step == "flaky_revise"
    assert str(error.__cause__) == "model timeout"
    assert result.state.rounds == 1
    assert result.state.critiques == ["round 1"]


async def test_loop_condition_that_raises_fails_naming_the_until_step() -> None:
    def until(state: Essay) -> bool:
        raise LookupError("no score")

    result = await loop(revise, until=until, max_iterations=3, state=Essay, name="refine").run()

    assert result.status is RunStatus.FAILED
    error = failed_step_error(result.error)
    assert error.step == "refine_until"
    assert isinstance(error.__cause__, LookupError)


async def test_loop_body_steps_see_their_iteration_in_the_context() -> None:
    iterations: list[int] = []

    def body(state: Essay) -> dict[str, Any]:
        iterations.append(context().iteration)
        return {"rounds": state.rounds + 1}

    result = await loop(body, until=lambda s: s.rounds == 3, max_iterations=5, state=Essay).run()

    assert result.status is RunStatus.COMPLETED
    assert iterations == [1, 2, 3]


# ---------------------------------------------------------------------------------------------- event_driven


class Ticket(BaseModel):
    id: int


class UrgentTicket(Ticket):
    pass


class Triaged(BaseModel):
    id: int
    queue: str


class Ping(BaseModel):
    n: int


class Desk(BaseModel):
    inbox: list[Any] = []
    log: Annotated[list[str], reducers.append] = []


async def test_event_driven_chains_events_through_subscribers() -> None:
    def intake(state: Desk, event: Ticket) -> dict[str, Any]:
        context().emit(Triaged(id=event.id, queue="billing"))
        return {"log": [f"intake {event.id}"]}

    def billing(state: Desk, event: Triaged) -> dict[str, Any]:
        return {"log": [f"{event.queue} {event.id}"]}

    wf = event_driven({Ticket: intake, Triaged: billing}, source=lambda s: s.inbox, state=Desk, output="log")
    result = await wf.run({"inbox": [Ticket(id=1), Ticket(id=2)]})

    assert result.status is RunStatus.COMPLETED
    # one superstep per link of the chain: both intakes, then both billings
    assert result.output == ["intake 1", "intake 2", "billing 1", "billing 2"]


async def test_event_driven_matches_subclasses_and_runs_every_subscriber() -> None:
    def intake(state: Desk, event: Ticket) -> dict[str, Any]:
        return {"log": [f"intake {type(event).__name__} {event.id}"]}

    def audit(state: Desk, event: Ticket) -> dict[str, Any]:
        return {"log": [f"audit {event.id}"]}

    def pager(state: Desk, event: UrgentTicket) -> dict[str, Any]:
        return {"log": [f"page {event.id}"]}

    wf = event_driven({Ticket: [intake, audit], UrgentTicket: pager}, source=lambda s: s.inbox, state=Desk)
    result = await wf.run({"inbox": [Ticket(id=1), UrgentTicket(id=2)]})

    assert result.status is RunStatus.COMPLETED
    assert sorted(result.state.log) == sorted(
        ["intake Ticket 1", "audit 1", "intake UrgentTicket 2", "audit 2", "page 2"]
    )
    assert "page 1" not in result.state.log


async def test_event_driven_with_no_events_ends_after_the_source() -> None:
    def intake(state: Desk, event: Ticket) -> dict[str, Any]:
        return {"log": ["never"]}

    result = await event_driven({Ticket: intake}, source=lambda s: s.inbox, state=Desk).run()

    assert result.status is RunStatus.COMPLETED
    assert result.state.log == []
    assert result.steps == 1


async def test_an_agent_subscribes_to_an_event_type_and_gets_the_event_as_its_item() -> None:
    from podium import Agent, TestModel, use_model

    summarizer = Agent("summarizer", role="Summarizer")
    wf = event_driven({Ticket: step(summarizer, into="log")}, source=lambda s: s.inbox, state=Desk, output="log")
    model = TestModel({"summarizer": ["a summary", "another"]})
    with use_model(model):
        result = await wf.run({"inbox": [Ticket(id=1), Ticket(id=2)]})

    assert result.status is RunStatus.COMPLETED
    assert sorted(result.output) == ["a summary", "another"]
    prompts = sorted(call.messages[-1].content for call in model.calls)
    assert prompts == [Ticket(id=1).model_dump_json(indent=1), Ticket(id=2).model_dump_json(indent=1)]


async def test_event_driven_event_storm_is_bounded_by_max_steps() -> None:
    handled: list[int] = []

    def echo(state: Desk, event: Ping) -> dict[str, Any]:
        handled.append(event.n)
        context().emit(Ping(n=event.n + 1))
        context().emit(Ping(n=event.n + 1))
        return {"log": [str(event.n)]}

    wf = event_driven({Ping: echo}, source=lambda s: s.inbox, state=Desk)
    result = await wf.run({"inbox": [Ping(n=0)]}, limits=Limits(max_steps=20))

    assert result.status is RunStatus.LIMITED
    assert result.limit == "max_steps"
    assert result.steps <= 20
    # supersteps of 1 (source), 1, 2, 4, 8 tasks make 16 steps; the next 16 would pass 20, so it never starts
    assert result.steps == 16
    assert len(handled) == 15
    assert len(result.state.log) == 15


async def test_event_driven_handler_failure_cancels_the_other_handlers_of_its_superstep() -> None:
    cancelled: list[int] = []
    effects: list[str] = []

    async def intake(state: Desk, event: Ticket) -> dict[str, Any]:
        if event.id == 1:
            context().emit(Triaged(id=1, queue="lost"))
            raise ValueError("bad ticket 1")
        try:
            await asyncio.sleep(3)
        except asyncio.CancelledError:
            cancelled.append(event.id)
            raise
        effects.append(f"intake {event.id}")
        return {"log": [f"intake {event.id}"]}

    def billing(state: Desk, event: Triaged) -> dict[str, Any]:
        effects.append("billing")
        return {}

    wf = event_driven({Ticket: intake, Triaged: billing}, source=lambda s: s.inbox, state=Desk)
    started = time.perf_counter()
    result = await wf.run({"inbox": [Ticket(id=1), Ticket(id=2)]})

    assert result.status is RunStatus.FAILED
    assert time.perf_counter() - started < 1.5
    assert cancelled == [2]
    assert effects == []  # neither the sibling's late effect nor the failing handler's emitted event
    error = failed_step_error(result.error)
    assert error.step == "intake"
    assert str(error.__cause__) == "bad ticket 1"
    assert result.state.log == []


async def test_event_driven_delivers_an_event_once_to_a_step_subscribed_to_it_and_its_base() -> None:
    def handler(state: Desk, event: Ticket) -> dict[str, Any]:
        return {"log": [f"{type(event).__name__} {event.id}"]}

    wf = event_driven({Ticket: handler, UrgentTicket: handler}, source=lambda s: s.inbox, state=Desk)
    result = await wf.run({"inbox": [UrgentTicket(id=7)]})

    assert result.status is RunStatus.COMPLETED
    assert result.state.log == ["UrgentTicket 7"]
