"""The run context a step reads with ``podium.context()`` (podium.runtime._context)."""

import asyncio
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

import podium
from podium import END, START, ConfigError, Graph, RunStatus, Send, StepContext, reducers


class State(BaseModel):
    seen: Annotated[list[dict[str, Any]], reducers.append] = []
    n: int = 0


def snapshot(ctx: StepContext, **extra: Any) -> dict[str, Any]:
    return {
        "run_id": ctx.run_id,
        "step": ctx.step,
        "task_id": ctx.task_id,
        "attempt": ctx.attempt,
        **extra,
    }


async def record(state: State) -> dict[str, Any]:
    return {"seen": snapshot(podium.context())}


def fan_out_graph() -> Graph[State]:
    graph = Graph(State, name="ctx")
    graph.add(record, name="a").add(record, name="b").add(record, name="c")
    graph.edge(START, "a").edge(START, "b").edge("a", "c")
    return graph


async def test_context_names_the_run_the_step_and_its_task() -> None:
    result = await fan_out_graph().build().run(run_id="run-42")
    assert result.status == RunStatus.COMPLETED, result.reason
    assert result.state.seen == [
        {"run_id": "run-42", "step": "a", "task_id": "1.0", "attempt": 1},
        {"run_id": "run-42", "step": "b", "task_id": "1.1", "attempt": 1},
        {"run_id": "run-42", "step": "c", "task_id": "2.0", "attempt": 1},
    ]


async def test_task_ids_are_stable_across_runs_of_the_same_input_and_unique_within_one() -> None:
    workflow = fan_out_graph().build()
    first = await workflow.run({"n": 1})
    second = await workflow.run({"n": 1})
    first_ids = [s["task_id"] for s in first.state.seen]
    assert first_ids == [s["task_id"] for s in second.state.seen]
    assert len(set(first_ids)) == len(first_ids)


async def test_dynamic_tasks_get_distinct_task_ids() -> None:
    def plan(state: State) -> list[Send]:
        return [Send("work", n) for n in range(3)]

    async def work(state: State, item: int) -> dict[str, Any]:
        return {"seen": snapshot(podium.context(), item=item)}

    graph = Graph(State)
    graph.add(plan, routes=["work"]).add(work)
    graph.edge(START, "plan")
    result = await graph.build().run()
    assert [(s["task_id"], s["item"]) for s in result.state.seen] == [("2.0", 0), ("2.1", 1), ("2.2", 2)]
    assert {s["step"] for s in result.state.seen} == {"work"}


async def test_now_is_fixed_for_the_whole_step_and_is_aware_utc() -> None:
    async def clock(state: State) -> dict[str, Any]:
        first = podium.context().now()
        await asyncio.sleep(0.02)
        return {"seen": {"first": first, "second": podium.context().now()}}

    graph = Graph(State)
    graph.add(clock)
    graph.edge(START, "clock")
    before = datetime.now(UTC)
    result = await graph.build().run()
    [seen] = result.state.seen
    assert seen["first"] == seen["second"]
    assert seen["first"].tzinfo is not None
    assert seen["first"].utcoffset().total_seconds() == 0
    assert abs((seen["first"] - before).total_seconds()) < 5


async def ids(state: State) -> dict[str, Any]:
    ctx = podium.context()
    return {"seen": {"ids": [ctx.new_id(), ctx.new_id(), ctx.new_id()]}}


def ids_graph() -> Graph[State]:
    graph = Graph(State)
    graph.add(ids, name="one").add(ids, name="two")
    graph.chain(START, "one", "two")
    return graph


async def test_new_id_is_deterministic_for_a_run_id_and_fresh_on_every_call() -> None:
    workflow = ids_graph().build()
    # the same run id twice: only possible without a journal (a store refuses a second run with one id)
    first = await workflow.run(run_id="same", store=False)
    again = await workflow.run(run_id="same", store=False)
    other = await workflow.run(run_id="other", store=False)
    first_ids = [i for s in first.state.seen for i in s["ids"]]
    assert first_ids == [i for s in again.state.seen for i in s["ids"]]
    assert len(set(first_ids)) == 6  # distinct across calls and across steps
    assert set(first_ids).isdisjoint(i for s in other.state.seen for i in s["ids"])


def test_context_outside_a_step_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="inside a running step"):
        podium.context()


async def test_context_is_gone_once_the_step_and_the_run_are_over() -> None:
    await fan_out_graph().build().run()
    with pytest.raises(ConfigError):
        podium.context()


async def test_context_works_in_sync_steps_run_in_threads() -> None:
    def in_thread(state: State) -> dict[str, Any]:
        ctx = podium.context()
        return {"seen": snapshot(ctx, main=threading.current_thread() is threading.main_thread())}

    graph = Graph(State)
    graph.add(in_thread)
    graph.edge(START, "in_thread")
    result = await graph.build().run(run_id="threaded")
    assert result.state.seen == [
        {"run_id": "threaded", "step": "in_thread", "task_id": "1.0", "attempt": 1, "main": False}
    ]


async def test_parallel_steps_each_see_their_own_context() -> None:
    def slow_record(delay: float) -> Callable[[State], Any]:
        async def step(state: State) -> dict[str, Any]:
            before = podium.context().step
            await asyncio.sleep(delay)
            return {"seen": {"before": before, "after": podium.context().step}}

        return step

    graph = Graph(State)
    graph.add(slow_record(0.05), name="slow").add(slow_record(0.0), name="fast")
    graph.edge(START, "slow").edge(START, "fast")
    result = await graph.build().run()
    assert result.state.seen == [{"before": "slow", "after": "slow"}, {"before": "fast", "after": "fast"}]


async def test_context_inside_a_sub_workflow_has_the_nested_path_and_task_id() -> None:
    child = Graph(State, name="child")
    child.add(record, name="write")
    child.edge(START, "write")
    parent = Graph(State, name="parent")
    parent.add(record, name="first")
    parent.add(child.build(output=lambda s: {"seen": s.seen[-1]}), name="team")
    parent.chain(START, "first", "team")
    result = await parent.build().run(run_id="nested")
    assert result.status == RunStatus.COMPLETED, result.reason
    assert result.state.seen == [
        {"run_id": "nested", "step": "first", "task_id": "1.0", "attempt": 1},
        {"run_id": "nested", "step": "team/write", "task_id": "2.0/1.0", "attempt": 1},
    ]


async def test_iteration_counts_the_supersteps_a_step_has_run_in() -> None:
    async def looped(state: State) -> dict[str, Any]:
        return {"seen": {"iteration": podium.context().iteration}, "n": state.n + 1}

    graph = Graph(State)
    graph.add(looped)
    graph.edge(START, "looped")
    graph.route("looped", lambda s: "looped" if s.n < 3 else END, ["looped", END])
    result = await graph.build().run()
    assert [s["iteration"] for s in result.state.seen] == [1, 2, 3]
