"""Lifecycle hooks: what a run reports, in what order, with which arguments (podium.observe._hooks)."""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from podium import (
    START,
    Graph,
    Hooks,
    Limits,
    RunResult,
    RunStatus,
    Send,
    StepFailedError,
    reducers,
)


class State(BaseModel):
    log: Annotated[list[str], reducers.append] = []
    n: int = 0


class Child(BaseModel):
    n: int = 0


class Boom(Exception):
    pass


class Recorder(Hooks):
    """Records every hook call as ``(event, kwargs)``; a mix of sync and async methods."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def of(self, event: str) -> list[dict[str, Any]]:
        return [kwargs for name, kwargs in self.calls if name == event]

    async def on_run_start(self, *, run_id: str, workflow: str, state: Any) -> None:
        await asyncio.sleep(0)
        self.calls.append(("run_start", {"run_id": run_id, "workflow": workflow, "state": state}))

    def on_superstep(self, *, run_id: str, scope: str, index: int, tasks: Sequence[str]) -> None:
        self.calls.append(("superstep", {"scope": scope, "index": index, "tasks": list(tasks)}))

    async def on_step_start(self, *, run_id: str, step: str, task_id: str, attempt: int, item: Any) -> None:
        details = {"step": step, "task_id": task_id, "attempt": attempt, "item": item}
        self.calls.append(("step_start", details))

    def on_step_finish(
        self, *, run_id: str, step: str, task_id: str, attempt: int, update: Any, duration: float
    ) -> None:
        details = {"step": step, "task_id": task_id, "update": update, "duration": duration}
        self.calls.append(("step_finish", details))

    async def on_step_fail(
        self, *, run_id: str, step: str, task_id: str, attempt: int, error: BaseException, handled: bool
    ) -> None:
        details = {"step": step, "task_id": task_id, "error": error, "handled": handled}
        self.calls.append(("step_fail", details))

    def on_route(self, *, run_id: str, step: str, task_id: str, targets: Sequence[str]) -> None:
        self.calls.append(("route", {"step": step, "task_id": task_id, "targets": list(targets)}))

    async def on_run_finish(self, *, run_id: str, result: RunResult[Any]) -> None:
        self.calls.append(("run_finish", {"run_id": run_id, "result": result}))


def logs(name: str, delay: float = 0.0) -> Callable[[State], Awaitable[dict[str, Any]]]:
    async def step(state: State) -> dict[str, Any]:
        await asyncio.sleep(delay)
        return {"log": name}

    return step


async def test_a_chain_reports_every_lifecycle_event_in_order() -> None:
    graph = Graph(State, name="pipeline")
    graph.add(logs("a"), name="a").add(logs("b"), name="b")
    graph.chain(START, "a", "b")
    recorder = Recorder()
    result = await graph.build().run({"n": 1}, run_id="r1", hooks=[recorder])
    any_duration = pytest.approx(0, abs=1)
    assert recorder.calls == [
        ("run_start", {"run_id": "r1", "workflow": "pipeline", "state": State(n=1)}),
        ("route", {"step": START, "task_id": "", "targets": ["a"]}),
        ("superstep", {"scope": "", "index": 1, "tasks": ["a"]}),
        ("step_start", {"step": "a", "task_id": "1.0", "attempt": 1, "item": None}),
        ("step_finish", {"step": "a", "task_id": "1.0", "update": {"log": "a"}, "duration": any_duration}),
        ("route", {"step": "a", "task_id": "1.0", "targets": ["b"]}),
        ("superstep", {"scope": "", "index": 2, "tasks": ["b"]}),
        ("step_start", {"step": "b", "task_id": "2.0", "attempt": 1, "item": None}),
        ("step_finish", {"step": "b", "task_id": "2.0", "update": {"log": "b"}, "duration": any_duration}),
        ("run_finish", {"run_id": "r1", "result": result}),
    ]
    assert all(kwargs["duration"] >= 0 for kwargs in recorder.of("step_finish"))


async def test_a_fan_out_reports_one_superstep_with_every_task() -> None:
    graph = Graph(State)
    graph.add(logs("a", 0.02), name="a").add(logs("b"), name="b").add(logs("c"), name="c")
    graph.edge(START, "a").edge(START, "b").edge("a", "c").edge("b", "c")
    recorder = Recorder()
    await graph.build().run(hooks=[recorder])
    assert [(s["index"], s["tasks"]) for s in recorder.of("superstep")] == [(1, ["a", "b"]), (2, ["c"])]
    assert recorder.of("route")[0]["targets"] == ["a", "b"]
    assert sorted(s["task_id"] for s in recorder.of("step_start")) == ["1.0", "1.1", "2.0"]
    names = recorder.names()
    assert names.index("superstep") < names.index("step_start")
    assert names[-1] == "run_finish"


async def test_dynamic_tasks_are_labelled_with_their_task_ids_and_items() -> None:
    def plan(state: State) -> list[Send]:
        return [Send("work", "x"), Send("work", "y")]

    def work(state: State, item: str) -> dict[str, Any]:
        return {"log": item}

    graph = Graph(State)
    graph.add(plan, routes=["work"]).add(work)
    graph.edge(START, "plan")
    recorder = Recorder()
    await graph.build().run(hooks=[recorder])
    assert recorder.of("superstep")[1]["tasks"] == ["work@2.0", "work@2.1"]
    assert {"step": "plan", "task_id": "1.0", "targets": ["work['x']", "work['y']"]} in recorder.of("route")
    assert [(s["step"], s["item"]) for s in recorder.of("step_start")][1:] == [("work", "x"), ("work", "y")]


async def test_a_failing_step_reports_on_step_fail_and_the_failed_result() -> None:
    async def explode(state: State) -> None:
        raise Boom("no")

    graph = Graph(State)
    graph.add(explode)
    graph.edge(START, "explode")
    recorder = Recorder()
    result = await graph.build().run(hooks=[recorder])
    [fail] = recorder.of("step_fail")
    assert fail["step"] == "explode"
    assert fail["task_id"] == "1.0"
    assert fail["handled"] is False
    assert isinstance(fail["error"], StepFailedError)
    assert fail["error"] is result.error
    assert recorder.of("step_finish") == []
    [finish] = recorder.of("run_finish")
    assert finish["result"].status == RunStatus.FAILED


async def test_a_handled_failure_reports_handled_true() -> None:
    async def explode(state: State) -> None:
        raise Boom("no")

    graph = Graph(State)
    graph.add(explode, on_error=lambda state, error: {"log": "recovered"})
    graph.edge(START, "explode")
    recorder = Recorder()
    result = await graph.build().run(hooks=[recorder])
    assert result.status == RunStatus.COMPLETED
    [fail] = recorder.of("step_fail")
    assert fail["handled"] is True


async def test_cancelled_siblings_are_reported_as_failed_with_a_cancellation() -> None:
    async def explode(state: State) -> None:
        raise Boom("no")

    graph = Graph(State)
    graph.add(logs("slow", 5), name="slow").add(explode)
    graph.edge(START, "slow").edge(START, "explode")
    recorder = Recorder()
    await graph.build().run(hooks=[recorder])
    fails = {f["step"]: f["error"] for f in recorder.of("step_fail")}
    assert set(fails) == {"slow", "explode"}
    assert isinstance(fails["slow"], asyncio.CancelledError)
    assert isinstance(fails["explode"], StepFailedError)


async def test_sub_workflow_steps_report_nested_paths_scopes_and_task_ids() -> None:
    async def inner(state: Child) -> dict[str, Any]:
        return {"n": state.n + 1}

    child = Graph(Child, name="child")
    child.add(inner)
    child.edge(START, "inner")
    graph = Graph(State, name="parent")
    graph.add(child.build(output="n"), name="team", into="n")
    graph.edge(START, "team")
    recorder = Recorder()
    result = await graph.build().run({"n": 1}, hooks=[recorder])
    assert result.state.n == 2
    supersteps = [(s["scope"], s["tasks"]) for s in recorder.of("superstep")]
    assert supersteps == [("", ["team"]), ("team/", ["team/inner"])]
    assert [(s["step"], s["task_id"]) for s in recorder.of("step_start")] == [
        ("team", "1.0"),
        ("team/inner", "1.0/1.0"),
    ]
    assert [(s["step"], s["update"]) for s in recorder.of("step_finish")] == [
        ("team/inner", {"n": 2}),
        ("team", {"n": 2}),
    ]


async def test_limited_runs_report_their_result_to_on_run_finish() -> None:
    graph = Graph(State)
    graph.add(logs("a"), name="a").add(logs("b"), name="b")
    graph.chain(START, "a", "b")
    recorder = Recorder()
    await graph.build().run(hooks=[recorder], limits=Limits(max_steps=1))
    [finish] = recorder.of("run_finish")
    assert finish["result"].status == RunStatus.LIMITED
    assert [s["step"] for s in recorder.of("step_start")] == ["a"]


async def test_several_hooks_are_called_in_registration_order() -> None:
    order: list[str] = []

    class Tagged(Hooks):
        def __init__(self, tag: str) -> None:
            self.tag = tag

        def on_step_start(self, *, run_id: str, step: str, task_id: str, attempt: int, item: Any) -> None:
            order.append(self.tag)

    graph = Graph(State)
    graph.add(logs("a"), name="a")
    graph.edge(START, "a")
    await graph.build().run(hooks=[Tagged("first"), Tagged("second")])
    assert order == ["first", "second"]


async def test_methods_that_are_not_overridden_are_not_called(monkeypatch: pytest.MonkeyPatch) -> None:
    called: list[str] = []

    def spy(self: Hooks, **kwargs: Any) -> None:
        called.append("base")

    # replace the base no-ops with spies: a hook that does not override them must not reach them
    for event in ("on_run_start", "on_superstep", "on_step_start", "on_step_finish", "on_route"):
        monkeypatch.setattr(Hooks, event, spy)

    finished: list[RunResult[Any]] = []

    class OnlyFinish(Hooks):
        def on_run_finish(self, *, run_id: str, result: RunResult[Any]) -> None:
            finished.append(result)

    graph = Graph(State)
    graph.add(logs("a"), name="a")
    graph.edge(START, "a")
    await graph.build().run(hooks=[OnlyFinish()])
    assert called == []
    assert len(finished) == 1


class Broken(Exception):
    pass


class RaisesOnStepStart(Hooks):
    def __init__(self) -> None:
        self.finished = False

    def on_step_start(self, *, run_id: str, step: str, task_id: str, attempt: int, item: Any) -> None:
        raise Broken("cannot record")

    def on_run_finish(self, *, run_id: str, result: RunResult[Any]) -> None:
        self.finished = True


async def test_a_hook_that_raises_propagates_out_of_run_without_a_result() -> None:
    # a hook that raises stops the run: run() raises the hook's own exception, no RunResult is made and
    # on_run_finish is not called
    ran: list[str] = []

    async def step(state: State) -> None:
        ran.append("ran")

    graph = Graph(State)
    graph.add(step)
    graph.edge(START, "step")
    hook = RaisesOnStepStart()
    with pytest.raises(Broken, match="cannot record"):
        await graph.build().run(hooks=[hook])
    assert ran == []
    assert not hook.finished


async def test_a_hook_that_raises_in_a_parallel_superstep_propagates_and_leaves_no_tasks() -> None:
    graph = Graph(State)
    graph.add(logs("a"), name="a").add(logs("b"), name="b")
    graph.edge(START, "a").edge(START, "b")
    before = asyncio.all_tasks()
    with pytest.raises(Broken):
        await graph.build().run(hooks=[RaisesOnStepStart()])
    assert asyncio.all_tasks() == before


async def test_a_raising_on_run_finish_propagates_after_the_run_completed() -> None:
    class FinishBroken(Hooks):
        async def on_run_finish(self, *, run_id: str, result: RunResult[Any]) -> None:
            raise Broken("finish")

    ran: list[str] = []

    async def step(state: State) -> None:
        ran.append("ran")

    graph = Graph(State)
    graph.add(step)
    graph.edge(START, "step")
    with pytest.raises(Broken, match="finish"):
        await graph.build().run(hooks=[FinishBroken()])
    assert ran == ["ran"]
