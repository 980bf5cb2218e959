"""Limits: a run ends with a clear status and its best partial state, not a hang (podium.runtime._limits)."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from podium import (
    END,
    START,
    ConfigError,
    Graph,
    LimitReached,
    Limits,
    PodiumError,
    RunIncompleteError,
    RunStatus,
    Send,
    StepFailedError,
    WorkflowDefinitionError,
    reducers,
)


class State(BaseModel):
    log: Annotated[list[str], reducers.append] = []
    n: int = 0


def logs(name: str) -> Callable[[State], Awaitable[dict[str, Any]]]:
    async def step(state: State) -> dict[str, Any]:
        return {"log": name}

    return step


async def hang(state: State) -> None:
    await asyncio.Event().wait()


def increment(state: State) -> dict[str, Any]:
    return {"n": state.n + 1, "log": f"n={state.n + 1}"}


def forever_loop(**add: Any) -> Graph[State]:
    """``increment`` routes back to itself forever."""
    graph = Graph(State, name="loop")
    graph.add(increment, thread=False, **add)
    graph.edge(START, "increment")
    graph.route("increment", lambda s: "increment", ["increment", END])
    return graph


# -- the Limits value -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [{"max_steps": 0}, {"max_steps": -1}, {"max_iterations": 0}, {"max_seconds": 0}, {"max_seconds": -0.5}],
)
def test_non_positive_limits_are_a_config_error(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=next(iter(options))):
        Limits(**options)


def test_config_error_is_also_a_value_error_and_none_means_unbounded() -> None:
    with pytest.raises(ValueError, match="max_steps"):
        Limits(max_steps=0)
    unbounded = Limits(max_steps=None, max_iterations=None, max_seconds=None)
    assert unbounded.max_steps is None


def test_default_limits_bound_every_run() -> None:
    limits = Limits()
    assert limits.max_steps is not None
    assert limits.max_iterations is not None
    assert limits.max_seconds is not None


# -- max_steps --------------------------------------------------------------------------------------------


async def test_max_steps_ends_the_run_limited_with_the_last_completed_superstep() -> None:
    graph = Graph(State)
    for name in ("a", "b", "c", "d"):
        graph.add(logs(name), name=name)
    graph.chain(START, "a", "b", "c", "d")
    result = await graph.build().run(limits=Limits(max_steps=2))
    assert result.status == RunStatus.LIMITED
    assert result.limit == "max_steps"
    assert result.reason is not None
    assert "max_steps=2" in result.reason
    assert result.error is None
    assert result.output is None
    assert result.state.log == ["a", "b"]
    assert result.steps == 2
    with pytest.raises(RunIncompleteError) as exc_info:
        result.unwrap()
    assert exc_info.value.status == "limited"
    assert exc_info.value.run_id == result.run_id


async def test_max_steps_counts_every_task_of_a_fan_out_and_never_starts_a_partial_superstep() -> None:
    ran: list[int] = []

    def plan(state: State) -> list[Send]:
        return [Send("work", n) for n in range(5)]

    def work(state: State, item: int) -> dict[str, Any]:
        ran.append(item)
        return {"log": str(item)}

    graph = Graph(State)
    graph.add(plan, routes=["work"]).add(work)
    graph.edge(START, "plan")
    result = await graph.build().run(limits=Limits(max_steps=4))
    assert result.status == RunStatus.LIMITED
    assert result.limit == "max_steps"
    assert ran == []
    assert result.steps == 1


async def test_max_steps_stops_an_endless_loop() -> None:
    result = await forever_loop().build().run(limits=Limits(max_steps=10, max_iterations=None))
    assert result.status == RunStatus.LIMITED
    assert result.limit == "max_steps"
    assert result.state.n == 10


async def test_limits_from_build_apply_and_run_limits_override_them() -> None:
    workflow = forever_loop().build(limits=Limits(max_steps=3))
    assert (await workflow.run()).state.n == 3
    overridden = await workflow.run(limits=Limits(max_steps=6))
    assert overridden.state.n == 6


# -- max_iterations ---------------------------------------------------------------------------------------


async def test_max_iterations_stops_a_cycle() -> None:
    result = await forever_loop().build().run(limits=Limits(max_iterations=4))
    assert result.status == RunStatus.LIMITED
    assert result.limit == "max_iterations"
    assert result.reason is not None
    assert "'increment'" in result.reason
    assert result.state.n == 4


async def test_max_iterations_of_a_step_overrides_the_run_limit() -> None:
    result = await forever_loop(max_iterations=3).build().run(limits=Limits(max_iterations=50))
    assert result.status == RunStatus.LIMITED
    assert result.limit == "max_iterations"
    assert "max_iterations=3" in (result.reason or "")
    assert result.state.n == 3


async def test_a_step_max_iterations_is_per_step() -> None:
    graph = Graph(State)
    graph.add(increment, thread=False, max_iterations=10).add(logs("after"), name="after", max_iterations=1)
    graph.edge(START, "increment")
    graph.route("increment", lambda s: "increment" if s.n < 5 else "after", ["increment", "after"])
    result = await graph.build().run()
    assert result.status == RunStatus.COMPLETED, result.reason
    assert result.state.n == 5


async def test_a_fan_out_counts_as_one_iteration_of_its_step() -> None:
    def plan(state: State) -> list[Send]:
        return [Send("work", n) for n in range(5)]

    def work(state: State, item: int) -> dict[str, Any]:
        return {"log": str(item)}

    graph = Graph(State)
    graph.add(plan, routes=["work"]).add(work, max_iterations=1)
    graph.edge(START, "plan")
    result = await graph.build().run()
    assert result.status == RunStatus.COMPLETED, result.reason
    assert len(result.state.log) == 5


def test_a_non_positive_step_max_iterations_is_rejected() -> None:
    graph = Graph(State)
    with pytest.raises((ConfigError, WorkflowDefinitionError), match="max_iterations"):
        graph.add(increment, max_iterations=0)


# -- max_seconds ------------------------------------------------------------------------------------------


async def test_max_seconds_ends_a_step_that_never_returns_promptly() -> None:
    graph = Graph(State)
    graph.add(logs("a"), name="a").add(hang)
    graph.chain(START, "a", "hang")
    started = time.perf_counter()
    result = await graph.build().run(limits=Limits(max_seconds=0.2))
    assert time.perf_counter() - started < 2.0
    assert result.status == RunStatus.LIMITED
    assert result.limit == "max_seconds"
    assert result.reason is not None
    assert "max_seconds=0.2" in result.reason
    assert result.state.log == ["a"]


async def test_max_seconds_cancels_every_parallel_branch() -> None:
    graph = Graph(State)
    graph.add(hang, name="left").add(hang, name="right")
    graph.edge(START, "left").edge(START, "right")
    before = asyncio.all_tasks()
    started = time.perf_counter()
    result = await graph.build().run(limits=Limits(max_seconds=0.2))
    assert time.perf_counter() - started < 2.0
    assert result.status == RunStatus.LIMITED
    assert asyncio.all_tasks() == before


async def test_max_seconds_reason_names_the_steps_in_flight() -> None:
    graph = Graph(State)
    graph.add(logs("done"), name="done").add(hang)
    graph.edge(START, "hang").edge(START, "done")
    result = await graph.build().run(limits=Limits(max_seconds=0.1))
    assert result.status == RunStatus.LIMITED
    assert "'hang'" in (result.reason or "")
    assert "'done'" not in (result.reason or "")


async def test_a_limit_reached_inside_a_sub_workflow_limits_the_run() -> None:
    child = forever_loop().build(output="n")
    graph = Graph(State, name="parent")
    graph.add(child, name="team", into="n")
    graph.edge(START, "team")
    result = await graph.build().run(limits=Limits(max_steps=5))
    assert result.status == RunStatus.LIMITED, result.reason
    assert result.limit == "max_steps"
    assert result.error is None


async def test_a_limit_inside_a_sub_workflow_is_not_swallowed_by_the_parent_on_error() -> None:
    child = forever_loop().build(output="n")
    graph = Graph(State, name="parent")
    graph.add(child, name="team", into="n", on_error=lambda state, error: -1)
    graph.edge(START, "team")
    result = await graph.build().run(limits=Limits(max_iterations=3))
    assert result.status == RunStatus.LIMITED
    assert result.limit == "max_iterations"


# -- per-step timeout -------------------------------------------------------------------------------------


async def test_a_step_timeout_fails_the_run_promptly() -> None:
    graph = Graph(State)
    graph.add(hang, timeout=0.1)
    graph.edge(START, "hang")
    started = time.perf_counter()
    result = await graph.build().run()
    assert time.perf_counter() - started < 2.0
    assert result.status == RunStatus.FAILED
    assert isinstance(result.error, StepFailedError)
    assert result.error.step == "hang"
    assert "timeout" in str(result.error)
    assert isinstance(result.error.__cause__, TimeoutError)


async def test_a_step_timeout_can_be_handled_by_on_error() -> None:
    graph = Graph(State)
    graph.add(hang, timeout=0.05, on_error=lambda state, error: {"log": "timed out"})
    graph.edge(START, "hang")
    result = await graph.build().run()
    assert result.status == RunStatus.COMPLETED, result.reason
    assert result.state.log == ["timed out"]


async def test_a_step_that_finishes_within_its_timeout_is_unaffected() -> None:
    async def quick(state: State) -> dict[str, Any]:
        await asyncio.sleep(0.01)
        return {"log": "quick"}

    graph = Graph(State)
    graph.add(quick, timeout=5)
    graph.edge(START, "quick")
    result = await graph.build().run()
    assert result.status == RunStatus.COMPLETED
    assert result.state.log == ["quick"]


async def test_a_sync_step_in_a_thread_times_out_too() -> None:
    def slow(state: State) -> None:
        time.sleep(0.4)

    graph = Graph(State)
    graph.add(slow, timeout=0.05)
    graph.edge(START, "slow")
    started = time.perf_counter()
    result = await graph.build().run()
    assert time.perf_counter() - started < 0.3
    assert isinstance(result.error, StepFailedError)
    assert "timeout" in str(result.error)


def test_a_timeout_on_an_inline_sync_step_is_refused_at_build_time() -> None:
    def slow(state: State) -> dict[str, Any]:
        time.sleep(0.3)
        return {"log": "slow"}

    graph = Graph(State)
    with pytest.raises(WorkflowDefinitionError, match="timeout cannot interrupt a sync step") as caught:
        graph.add(slow, thread=False, timeout=0.05)
    assert caught.value.where == "step 'slow'"


def test_run_sync_returns_at_max_seconds_even_if_a_sync_step_is_stuck_in_its_thread() -> None:
    def stuck(state: State) -> None:
        time.sleep(1.0)

    graph = Graph(State)
    graph.add(stuck)
    graph.edge(START, "stuck")
    started = time.perf_counter()
    result = graph.build().run_sync(limits=Limits(max_seconds=0.1))
    elapsed = time.perf_counter() - started
    assert result.status == RunStatus.LIMITED
    assert elapsed < 0.8


async def test_a_step_can_end_the_run_as_limited_by_raising_limit_reached() -> None:
    async def enough(state: State) -> None:
        raise LimitReached("max_handoffs", "three handoffs is enough")

    graph = Graph(State)
    graph.add(logs("a"), name="a").add(enough).add(hang)
    graph.edge(START, "a").edge("a", "enough").edge("a", "hang")
    started = time.perf_counter()
    result = await graph.build().run(limits=Limits(max_seconds=10))
    assert time.perf_counter() - started < 2.0
    assert result.status == RunStatus.LIMITED
    assert result.limit == "max_handoffs"
    assert result.reason == "three handoffs is enough"
    assert result.state.log == ["a"]


async def test_limit_reached_is_not_a_podium_error_so_on_error_does_not_swallow_it() -> None:
    async def enough(state: State) -> None:
        raise LimitReached("budget", "out of budget")

    graph = Graph(State)
    graph.add(enough, on_error=lambda state, error: {"log": "swallowed"})
    graph.edge(START, "enough")
    result = await graph.build().run()
    assert not isinstance(LimitReached("x", "y"), PodiumError)
    assert result.status == RunStatus.LIMITED
    assert result.state.log == []


async def test_max_seconds_reason_does_not_name_branches_cancelled_earlier() -> None:
    async def slow(state: State) -> None:
        await asyncio.sleep(5)

    async def explode(state: State) -> None:
        raise RuntimeError("branch failed")

    child = Graph(State, name="child")
    child.add(slow).add(explode)
    child.edge(START, "slow").edge(START, "explode")
    graph = Graph(State, name="parent")
    graph.add(child.build(output="n"), name="team", into="n", on_error=lambda state, error: 0)
    graph.add(hang)
    graph.chain(START, "team", "hang")
    result = await graph.build().run(limits=Limits(max_seconds=0.2))
    assert result.status == RunStatus.LIMITED
    assert "'hang'" in (result.reason or "")
    assert "slow" not in (result.reason or "")
