"""Runs started in the background, and cancellation (podium.runtime._handle and the runner's cancel path)."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from podium import START, Graph, Hooks, RunHandle, RunIncompleteError, RunStatus, reducers


class State(BaseModel):
    log: Annotated[list[str], reducers.append] = []


def logs(name: str, delay: float = 0.0) -> Callable[[State], Awaitable[dict[str, Any]]]:
    async def step(state: State) -> dict[str, Any]:
        await asyncio.sleep(delay)
        return {"log": name}

    return step


def first_then_wait(entered: asyncio.Event, after: list[str]) -> Graph[State]:
    """``first`` completes, then ``wait`` blocks forever (it records if it ever gets past the wait)."""

    async def wait(state: State) -> dict[str, Any]:
        entered.set()
        await asyncio.Event().wait()
        after.append("woke")
        return {"log": "wait"}

    graph = Graph(State, name="waiting")
    graph.add(logs("first"), name="first").add(wait)
    graph.chain(START, "first", "wait")
    return graph


async def test_awaiting_a_handle_gives_the_run_result() -> None:
    graph = Graph(State)
    graph.add(logs("a"), name="a")
    graph.edge(START, "a")
    handle = graph.build().start(run_id="bg")
    assert isinstance(handle, RunHandle)
    assert handle.run_id == "bg"
    result = await handle
    assert result.status == RunStatus.COMPLETED
    assert result.state.log == ["a"]
    assert handle.done()
    assert (await handle.result()) is result


async def test_cancel_while_a_step_awaits_ends_the_run_cancelled_with_the_partial_state() -> None:
    entered = asyncio.Event()
    after: list[str] = []
    handle = first_then_wait(entered, after).build().start()
    await asyncio.wait_for(entered.wait(), 5)
    assert handle.cancel("because")
    started = time.perf_counter()
    result = await handle
    assert time.perf_counter() - started < 2.0
    assert result.status == RunStatus.CANCELLED
    assert result.reason == "because"
    assert result.error is None
    assert result.state.log == ["first"]
    assert after == []
    with pytest.raises(RunIncompleteError) as exc_info:
        result.unwrap()
    assert exc_info.value.status == "cancelled"
    assert exc_info.value.reason == "because"


async def test_cancel_without_a_reason_has_a_default_reason() -> None:
    entered = asyncio.Event()
    handle = first_then_wait(entered, []).build().start()
    await asyncio.wait_for(entered.wait(), 5)
    handle.cancel()
    result = await handle
    assert result.status == RunStatus.CANCELLED
    assert result.reason


async def test_cancel_before_the_run_started_runs_no_step() -> None:
    ran: list[str] = []

    async def step(state: State) -> None:
        ran.append("ran")

    graph = Graph(State)
    graph.add(step)
    graph.edge(START, "step")
    handle = graph.build().start()
    assert handle.cancel("too early")  # the run's task has not had a chance to start yet
    result = await handle
    assert result.status == RunStatus.CANCELLED
    assert result.reason == "too early"
    assert ran == []


async def test_cancel_after_the_run_finished_returns_false_and_changes_nothing() -> None:
    graph = Graph(State)
    graph.add(logs("a"), name="a")
    graph.edge(START, "a")
    handle = graph.build().start()
    result = await handle
    assert handle.cancel("late") is False
    assert (await handle).status == RunStatus.COMPLETED
    assert result.status == RunStatus.COMPLETED


async def test_cancel_during_parallel_branches_cancels_them_all_and_leaves_no_tasks() -> None:
    after: list[str] = []
    entered = asyncio.Event()

    async def wait(state: State) -> None:
        entered.set()
        await asyncio.sleep(5)
        after.append("woke")

    graph = Graph(State)
    graph.add(wait, name="left").add(wait, name="right")
    graph.edge(START, "left").edge(START, "right")
    before = asyncio.all_tasks()
    handle = graph.build().start()
    await asyncio.wait_for(entered.wait(), 5)
    handle.cancel("stop")
    started = time.perf_counter()
    result = await handle
    assert time.perf_counter() - started < 2.0
    assert result.status == RunStatus.CANCELLED
    assert asyncio.all_tasks() == before
    assert after == []


async def test_cancelling_an_awaiter_of_the_handle_does_not_cancel_the_run() -> None:
    graph = Graph(State)
    graph.add(logs("slow", delay=0.1), name="slow")
    graph.edge(START, "slow")
    handle = graph.build().start()
    waiter = asyncio.ensure_future(handle.result())
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    result = await handle
    assert result.status == RunStatus.COMPLETED
    assert result.state.log == ["slow"]


class SlowStart(Hooks):
    async def on_run_start(self, *, run_id: str, workflow: str, state: Any) -> None:
        await asyncio.sleep(0.1)


async def test_cancel_while_an_async_start_hook_runs_still_gives_a_cancelled_result() -> None:
    graph = Graph(State)
    graph.add(logs("a"), name="a")
    graph.edge(START, "a")
    handle = graph.build().start(hooks=[SlowStart()])
    await asyncio.sleep(0.02)
    assert handle.cancel("early")
    result = await handle
    assert result.status == RunStatus.CANCELLED


# -- cancelling the caller --------------------------------------------------------------------------------


async def test_cancelling_the_task_awaiting_run_propagates_and_leaves_no_child_tasks() -> None:
    after: list[str] = []
    entered = asyncio.Event()

    async def wait(state: State) -> None:
        entered.set()
        await asyncio.sleep(5)
        after.append("woke")

    graph = Graph(State)
    graph.add(wait, name="left").add(wait, name="right").add(logs("first"), name="first")
    graph.edge(START, "first").edge("first", "left").edge("first", "right")
    workflow = graph.build()
    before = asyncio.all_tasks()
    outer = asyncio.ensure_future(workflow.run())
    await asyncio.wait_for(entered.wait(), 5)
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    assert outer.cancelled()
    assert asyncio.all_tasks() == before
    await asyncio.sleep(0.05)
    assert after == []


async def test_cancelling_the_caller_during_a_single_step_propagates_too() -> None:
    entered = asyncio.Event()
    workflow = first_then_wait(entered, []).build()
    outer = asyncio.ensure_future(workflow.run())
    await asyncio.wait_for(entered.wait(), 5)
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer


async def test_a_timeout_around_run_is_respected() -> None:
    entered = asyncio.Event()
    workflow = first_then_wait(entered, []).build()
    started = time.perf_counter()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(workflow.run(), 0.1)
    assert time.perf_counter() - started < 2.0
