"""The planner pattern: plan, one worker task per subtask at once, synthesize (podium.flow.patterns._planner).

Shown working, and failing inside one subtask, with what happens to the others under each failure policy.
"""

import asyncio
import threading
import time
from typing import Any

import pytest
from pydantic import BaseModel

from podium import (
    ConfigError,
    Conversation,
    Limits,
    RunStatus,
    StepFailedError,
    StepOutputError,
    planner,
    sequential,
    step,
)


def failed_step_error(error: object) -> StepFailedError:
    assert isinstance(error, StepFailedError), f"expected StepFailedError, got {error!r}"
    return error


def plan(state: Conversation) -> list[str]:
    return ["a", "b", "c"]


def synthesize(state: Conversation) -> list[tuple[str, Any, Any]]:
    return [(t.kind, t.about, t.content) for t in state.turns if t.kind in ("subtask", "error")]


async def test_planner_runs_one_worker_per_subtask_then_synthesizes() -> None:
    received: list[tuple[Any, Any]] = []

    async def work(state: Conversation, subtask: str) -> str:
        received.append((state.task, subtask))
        return subtask.upper()

    result = await planner(plan, work, synthesize).run({"task": "analyze Q3"})

    assert result.status is RunStatus.COMPLETED
    assert sorted(received) == [("analyze Q3", "a"), ("analyze Q3", "b"), ("analyze Q3", "c")]
    assert result.output == [("subtask", "a", "A"), ("subtask", "b", "B"), ("subtask", "c", "C")]
    assert [(t.speaker, t.kind) for t in result.state.turns] == [
        ("plan", "plan"),
        ("work", "subtask"),
        ("work", "subtask"),
        ("work", "subtask"),
        ("synthesize", "message"),
    ]
    assert result.state.turns[0].content == ["a", "b", "c"]
    assert result.steps == 5  # plan, three subtasks, synthesis: the synthesis runs once


async def test_planner_results_are_in_plan_order_when_subtasks_finish_in_reverse() -> None:
    finished: list[str] = []

    async def work(state: Conversation, subtask: str) -> str:
        await asyncio.sleep({"a": 0.15, "b": 0.08, "c": 0.0}[subtask])
        finished.append(subtask)
        return subtask.upper()

    result = await planner(plan, work, synthesize).run({"task": "goal"})

    assert finished == ["c", "b", "a"]
    assert result.output == [("subtask", "a", "A"), ("subtask", "b", "B"), ("subtask", "c", "C")]


def test_planner_sync_subtasks_run_concurrently_in_threads() -> None:
    barrier = threading.Barrier(3, timeout=5)

    def work(state: Conversation, subtask: str) -> str:
        barrier.wait()  # passes only when all three subtasks run at once
        return subtask

    result = planner(plan, work, synthesize).run_sync({"task": "goal"})

    assert result.status is RunStatus.COMPLETED, result.error
    assert [content for _, _, content in result.output] == ["a", "b", "c"]


async def test_planner_with_an_empty_plan_synthesizes_directly() -> None:
    worked: list[str] = []

    def nothing(state: Conversation) -> list[str]:
        return []

    def work(state: Conversation, subtask: str) -> str:
        worked.append(subtask)
        return subtask

    def summary(state: Conversation) -> str:
        return f"nothing to do for {state.task}"

    result = await planner(nothing, work, summary).run({"task": "goal"})

    assert result.status is RunStatus.COMPLETED
    assert result.output == "nothing to do for goal"
    assert worked == []
    assert [t.speaker for t in result.state.turns] == ["nothing", "summary"]


async def test_planner_plan_longer_than_max_subtasks_fails_naming_the_planner() -> None:
    worked: list[str] = []

    def big_plan(state: Conversation) -> list[str]:
        return [f"s{i}" for i in range(5)]

    def work(state: Conversation, subtask: str) -> str:
        worked.append(subtask)
        return subtask

    result = await planner(big_plan, work, synthesize, max_subtasks=4).run({"task": "goal"})

    assert result.status is RunStatus.FAILED
    assert isinstance(result.error, StepOutputError)
    assert result.error.step == "big_plan"
    assert "planned 5 subtasks; max_subtasks=4" in str(result.error)
    assert worked == []
    assert result.state.turns == []


async def test_planner_plan_of_exactly_max_subtasks_runs() -> None:
    def work(state: Conversation, subtask: str) -> str:
        return subtask

    result = await planner(plan, work, synthesize, max_subtasks=3).run({"task": "goal"})

    assert result.status is RunStatus.COMPLETED


@pytest.mark.parametrize("bad_plan", ["a, b, c", {"a": 1}, 3])
async def test_planner_plan_that_is_not_a_list_fails_with_a_step_output_error(bad_plan: Any) -> None:
    def vague(state: Conversation) -> Any:
        return bad_plan

    def work(state: Conversation, subtask: str) -> str:
        return subtask

    result = await planner(vague, work, synthesize).run({"task": "goal"})

    assert result.status is RunStatus.FAILED
    assert isinstance(result.error, StepOutputError)
    assert result.error.step == "vague"
    assert "must be a list" in str(result.error)


async def test_planner_subtask_failure_cancels_the_other_subtasks_and_skips_synthesis() -> None:
    cancelled: list[str] = []
    effects: list[str] = []
    original = ValueError("b broke")

    async def work(state: Conversation, subtask: str) -> str:
        if subtask == "b":
            await asyncio.sleep(0.01)
            raise original
        try:
            await asyncio.sleep(3)
        except asyncio.CancelledError:
            cancelled.append(subtask)
            raise
        effects.append(subtask)
        return subtask

    def synth(state: Conversation) -> str:
        effects.append("synth")
        return "never"

    started = time.perf_counter()
    result = await planner(plan, work, synth).run({"task": "goal"})

    assert result.status is RunStatus.FAILED
    assert time.perf_counter() - started < 1.5
    assert sorted(cancelled) == ["a", "c"]
    assert effects == []
    error = failed_step_error(result.error)
    assert error.step == "work"
    assert error.__cause__ is original
    assert [t.kind for t in result.state.turns] == ["plan"]


async def test_planner_skip_records_the_failure_lets_the_others_finish_and_synthesizes() -> None:
    finished: list[str] = []

    async def work(state: Conversation, subtask: str) -> str:
        if subtask == "b":
            raise ValueError("b broke")
        await asyncio.sleep(0.1 if subtask == "a" else 0)
        finished.append(subtask)
        return subtask.upper()

    result = await planner(plan, work, synthesize, on_subtask_failure="skip").run({"task": "goal"})

    assert result.status is RunStatus.COMPLETED
    assert sorted(finished) == ["a", "c"]
    assert result.output == [
        ("subtask", "a", "A"),
        ("error", "b", "ValueError: b broke"),
        ("subtask", "c", "C"),
    ]


async def test_planner_workflow_worker_runs_as_a_sub_workflow_per_subtask() -> None:
    class Research(BaseModel):
        topic: str = ""
        answer: str = ""

    async def look_up(state: Research) -> dict[str, Any]:
        await asyncio.sleep(0.3)
        return {"answer": f"{state.topic}!"}

    async def polish(state: Research) -> dict[str, Any]:
        await asyncio.sleep(0.3)
        return {"answer": state.answer.upper()}

    research = sequential(look_up, polish, state=Research, input="topic", output="answer", name="research")
    started = time.perf_counter()
    result = await planner(plan, research, synthesize).run({"task": "goal"})
    elapsed = time.perf_counter() - started

    assert result.status is RunStatus.COMPLETED, result.error
    assert result.output == [("subtask", "a", "A!"), ("subtask", "b", "B!"), ("subtask", "c", "C!")]
    assert elapsed < 1.2  # three 0.6 s subtasks one after the other would take 1.8 s


async def test_planner_failure_inside_a_workflow_worker_names_the_nested_step() -> None:
    class Research(BaseModel):
        topic: str = ""
        answer: str = ""

    def look_up(state: Research) -> dict[str, Any]:
        if state.topic == "c":
            raise LookupError("no data for c")
        return {"answer": state.topic}

    research = sequential(look_up, state=Research, input="topic", output="answer", name="research")
    result = await planner(plan, research, synthesize).run({"task": "goal"})

    assert result.status is RunStatus.FAILED
    error = failed_step_error(result.error)
    assert error.step == "research/look_up"
    assert isinstance(error.__cause__, LookupError)


async def test_planner_named_steps_and_limits_count_every_subtask() -> None:
    def work(state: Conversation, subtask: str) -> str:
        return subtask

    wf = planner(step(plan, name="decompose"), step(work, name="do"), step(synthesize, name="sum"))
    result = await wf.run({"task": "goal"}, limits=Limits(max_steps=4))

    assert result.status is RunStatus.LIMITED
    assert result.limit == "max_steps"
    assert [t.speaker for t in result.state.turns] == ["decompose", "do", "do", "do"]  # synthesis was not started


def test_planner_rejects_an_unknown_failure_policy() -> None:
    def work(state: Conversation, subtask: str) -> str:
        return subtask

    with pytest.raises(ConfigError, match="on_subtask_failure"):
        planner(plan, work, synthesize, on_subtask_failure="retry")
