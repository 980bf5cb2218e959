"""The scheduler: supersteps, fan-out, joins, routing, dynamic tasks, sub-workflows, events and failures."""

import asyncio
import gc
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

import podium
from podium import (
    END,
    START,
    Command,
    ConfigError,
    Graph,
    JoinStalledError,
    RoutingError,
    RunStatus,
    Send,
    StepError,
    StepFailedError,
    StepOutputError,
    UpdateConflictError,
    reducers,
)


class State(BaseModel):
    log: Annotated[list[str], reducers.append] = []
    results: Annotated[list[Any], reducers.append] = []
    n: int = 0
    text: str = ""
    topic: str = ""


class Child(BaseModel):
    topic: str = ""
    text: str = ""
    n: int = 0


class Ping(BaseModel):
    text: str = ""


class LoudPing(Ping):
    pass


class Other(BaseModel):
    pass


class Boom(Exception):
    pass


def logs(name: str, delay: float = 0.0, **update: Any) -> Callable[[State], Awaitable[dict[str, Any]]]:
    """An async step that sleeps ``delay`` seconds, then appends ``name`` to the log (plus ``update``)."""

    async def step(state: State) -> dict[str, Any]:
        await asyncio.sleep(delay)
        return {"log": name, **update}

    return step


async def _status_and_text(graph: Graph[State]) -> tuple[RunStatus, str]:
    """Run and drop the result at once, so a never-awaited coroutine it references is collected here."""
    result = await graph.build().run()
    outcome = result.status, result.state.text
    del result
    gc.collect()
    return outcome


def chain_of(*names: str) -> Graph[State]:
    graph = Graph(State, name="chain")
    for name in names:
        graph.add(logs(name), name=name)
    graph.chain(START, *names)
    return graph


# -- sequential -------------------------------------------------------------------------------------------


async def test_a_chain_runs_its_steps_in_order_and_completes() -> None:
    result = await chain_of("a", "b", "c").build().run()
    assert result.status == RunStatus.COMPLETED
    assert result.ok
    assert result.state.log == ["a", "b", "c"]
    assert result.steps == 3
    assert result.error is None
    assert result.output == result.state
    assert result.unwrap() == result.state
    assert result.workflow == "chain"
    assert result.finished_at >= result.started_at


async def test_each_step_sees_the_writes_of_the_step_before() -> None:
    def double(state: State) -> dict[str, Any]:
        return {"n": state.n * 2}

    def increment(state: State) -> dict[str, Any]:
        return {"n": state.n + 1}

    graph = Graph(State)
    graph.add(increment).add(double)
    graph.chain(START, "increment", "double")
    result = await graph.build().run({"n": 3})
    assert result.state.n == 8


async def test_into_stores_the_return_value_and_none_writes_nothing() -> None:
    async def title(state: State) -> str:
        return "Tides"

    async def nothing(state: State) -> None:
        return None

    graph = Graph(State)
    graph.add(title, into="text").add(nothing)
    graph.chain(START, "title", "nothing")
    result = await graph.build().run({"n": 1})
    assert result.state.text == "Tides"
    assert result.state.n == 1


async def test_run_id_is_kept_or_generated() -> None:
    workflow = chain_of("a").build()
    assert (await workflow.run(run_id="run-7")).run_id == "run-7"
    first, second = await workflow.run(), await workflow.run()
    assert first.run_id
    assert first.run_id != second.run_id


def test_run_sync_runs_outside_an_event_loop() -> None:
    result = chain_of("a", "b").build().run_sync({"n": 1})
    assert result.status == RunStatus.COMPLETED
    assert result.state.log == ["a", "b"]


async def test_run_sync_inside_a_running_loop_is_a_config_error() -> None:
    workflow = chain_of("a").build()
    with pytest.raises(ConfigError, match="running event loop"):
        workflow.run_sync()


# -- static fan-out and joins -----------------------------------------------------------------------------


async def test_static_fan_out_runs_branches_concurrently() -> None:
    # each branch waits for all three to arrive: serial execution would time out
    barrier = asyncio.Barrier(3)

    def meet(name: str) -> Callable[[State], Coroutine[Any, Any, dict[str, Any]]]:
        async def step(state: State) -> dict[str, Any]:
            await barrier.wait()
            return {"log": name}

        return step

    graph = Graph(State)
    for name in ("a", "b", "c"):
        graph.add(meet(name), name=name, timeout=5)
        graph.edge(START, name)
    result = await graph.build().run()
    assert result.status == RunStatus.COMPLETED, result.reason
    assert result.state.log == ["a", "b", "c"]


async def test_static_fan_out_of_slow_branches_takes_about_as_long_as_one() -> None:
    graph = Graph(State)
    for name in ("a", "b", "c"):
        graph.add(logs(name, delay=0.3), name=name)
        graph.edge(START, name)
    started = time.perf_counter()
    result = await graph.build().run()
    assert time.perf_counter() - started < 0.8  # serially it would take 0.9 s
    assert result.steps == 3


async def test_parallel_writes_merge_in_task_order_not_completion_order() -> None:
    graph = Graph(State)
    graph.add(logs("slow", delay=0.15), name="slow").add(logs("medium", delay=0.05), name="medium")
    graph.add(logs("fast"), name="fast")
    graph.edge(START, "slow").edge(START, "medium").edge(START, "fast")
    result = await graph.build().run()
    assert result.state.log == ["slow", "medium", "fast"]


async def test_a_join_waits_for_every_source_even_across_supersteps() -> None:
    seen: list[list[str]] = []

    def merge(state: State) -> dict[str, Any]:
        seen.append(list(state.log))
        return {"log": "merge"}

    graph = Graph(State)
    graph.add(logs("a"), name="a").add(logs("x"), name="x").add(logs("b"), name="b").add(merge)
    graph.edge(START, "a").edge(START, "x").edge("x", "b")
    graph.join(["a", "b"], "merge")
    result = await graph.build().run()
    assert result.status == RunStatus.COMPLETED, result.reason
    assert seen == [["a", "x", "b"]]
    assert result.state.log == ["a", "x", "b", "merge"]


async def test_a_step_named_by_several_sources_in_one_superstep_runs_once() -> None:
    calls: list[str] = []

    def merge(state: State) -> None:
        calls.append("merge")

    graph = Graph(State)
    graph.add(logs("a"), name="a").add(logs("b"), name="b").add(merge)
    graph.edge(START, "a").edge(START, "b").edge("a", "merge").edge("b", "merge")
    result = await graph.build().run()
    assert calls == ["merge"]
    assert result.steps == 3


async def test_a_join_fires_again_each_time_all_its_sources_have_run_again() -> None:
    calls: list[int] = []

    def merge(state: State) -> dict[str, Any]:
        calls.append(state.n)
        return {"n": state.n + 1}

    graph = Graph(State)
    graph.add(logs("a"), name="a").add(logs("b"), name="b").add(merge)
    graph.edge(START, "a").edge(START, "b")
    graph.join(["a", "b"], "merge")
    graph.route("merge", lambda s: ["a", "b"] if s.n < 3 else END, ["a", "b", END])
    result = await graph.build().run()
    assert result.status == RunStatus.COMPLETED, result.reason
    assert calls == [0, 1, 2]


# -- conditional routes -----------------------------------------------------------------------------------


async def test_a_route_returning_a_list_runs_every_chosen_step() -> None:
    graph = chain_of("a")
    graph.add(logs("b"), name="b").add(logs("c"), name="c").add(logs("d"), name="d")
    graph.route("a", lambda s: ["b", "d"], ["b", "c", "d"])
    result = await graph.build().run()
    assert result.state.log == ["a", "b", "d"]


async def test_a_route_with_a_mapping_goes_to_the_mapped_step() -> None:
    graph = chain_of("a")
    graph.add(logs("yes"), name="yes").add(logs("no"), name="no")
    graph.route("a", lambda s: s.n > 0, {True: "yes", False: "no"})
    workflow = graph.build()
    assert (await workflow.run({"n": 1})).state.log == ["a", "yes"]
    assert (await workflow.run({"n": 0})).state.log == ["a", "no"]


@pytest.mark.parametrize("choice", [END, None, [END]])
async def test_a_route_returning_end_or_none_ends_the_path(choice: Any) -> None:
    graph = chain_of("a")
    graph.add(logs("b"), name="b")
    graph.route("a", lambda s: choice, ["b", END])
    result = await graph.build().run()
    assert result.status == RunStatus.COMPLETED
    assert result.state.log == ["a"]


async def test_a_route_from_start_chooses_the_first_step() -> None:
    graph = Graph(State)
    graph.add(logs("short"), name="short").add(logs("long"), name="long")
    graph.route(START, lambda s: "long" if len(s.text) > 3 else "short", ["short", "long"])
    workflow = graph.build()
    assert (await workflow.run({"text": "abcdef"})).state.log == ["long"]
    assert (await workflow.run({"text": "ab"})).state.log == ["short"]


async def test_a_route_returning_an_undeclared_target_fails_the_run() -> None:
    graph = chain_of("a")
    graph.add(logs("b"), name="b").add(logs("c"), name="c")
    graph.edge("b", "c")
    graph.route("a", lambda s: "c", ["b", END])
    result = await graph.build().run()
    assert result.status == RunStatus.FAILED
    assert isinstance(result.error, RoutingError)
    assert result.error.step == "a"
    assert "'c'" in str(result.error)
    assert result.state.log == ["a"]


async def test_a_mapping_route_returning_an_unknown_key_fails_the_run() -> None:
    graph = chain_of("a")
    graph.add(logs("b"), name="b")
    graph.route("a", lambda s: "maybe", {"yes": "b", "no": END})
    result = await graph.build().run()
    assert isinstance(result.error, RoutingError)
    assert "'maybe'" in str(result.error)


async def test_a_route_function_that_raises_fails_the_run_with_a_routing_error() -> None:
    def broken(state: State) -> str:
        raise KeyError("missing")

    graph = chain_of("a")
    graph.add(logs("b"), name="b")
    graph.route("a", broken, ["b"])
    result = await graph.build().run()
    assert result.status == RunStatus.FAILED
    assert isinstance(result.error, RoutingError)
    assert result.error.step == "a"
    assert "KeyError" in str(result.error)
    assert isinstance(result.error.__cause__, KeyError)


async def test_a_route_returning_something_that_is_not_a_name_fails_the_run() -> None:
    graph = chain_of("a")
    graph.add(logs("b"), name="b")
    graph.route("a", lambda s: 3, ["b", END])
    result = await graph.build().run()
    assert result.status == RunStatus.FAILED
    assert isinstance(result.error, RoutingError)


async def test_a_loop_goes_round_until_its_condition_holds() -> None:
    def increment(state: State) -> dict[str, Any]:
        return {"n": state.n + 1, "log": str(state.n + 1)}

    graph = Graph(State)
    graph.add(increment).add(logs("done"), name="done")
    graph.edge(START, "increment")
    graph.route("increment", lambda s: "increment" if s.n < 5 else "done", ["increment", "done"])
    result = await graph.build().run()
    assert result.status == RunStatus.COMPLETED
    assert result.state.n == 5
    assert result.state.log == ["1", "2", "3", "4", "5", "done"]


# -- Command and Send -------------------------------------------------------------------------------------


async def test_a_command_updates_and_goes_where_it_says() -> None:
    def decide(state: State) -> Command:
        return Command(update={"text": "chosen"}, goto="b")

    graph = Graph(State)
    graph.add(decide, routes=["b", "c"]).add(logs("b"), name="b").add(logs("c"), name="c")
    graph.edge(START, "decide")
    result = await graph.build().run()
    assert result.status == RunStatus.COMPLETED, result.reason
    assert result.state.text == "chosen"
    assert result.state.log == ["b"]


async def test_a_command_update_goes_through_into() -> None:
    def decide(state: State) -> Command:
        return Command(update="value", goto=[END])

    graph = Graph(State)
    graph.add(decide, into="text", routes=[END])
    graph.edge(START, "decide")
    result = await graph.build().run()
    assert result.status == RunStatus.COMPLETED, result.reason
    assert result.state.text == "value"


async def test_a_command_to_an_undeclared_route_fails_with_a_routing_error() -> None:
    def decide(state: State) -> Command:
        return Command(goto="c")

    graph = Graph(State)
    graph.add(decide, routes=["b"]).add(logs("b"), name="b").add(logs("c"), name="c")
    graph.edge(START, "decide").edge("b", "c")
    result = await graph.build().run()
    assert result.status == RunStatus.FAILED
    assert isinstance(result.error, RoutingError)
    assert result.error.step == "decide"
    assert "'c'" in str(result.error)
    assert result.state.log == []


async def test_send_fans_out_one_task_per_item_and_gathers_in_send_order() -> None:
    merges: list[list[Any]] = []

    def plan(state: State) -> list[Send]:
        return [Send("work", n) for n in range(4)]

    async def work(state: State, item: int) -> dict[str, Any]:
        await asyncio.sleep(0.02 * (4 - item))  # the last item finishes first
        return {"results": item * 10}

    def merge(state: State) -> dict[str, Any]:
        merges.append(list(state.results))
        return {"text": "merged"}

    graph = Graph(State)
    graph.add(plan, routes=["work"]).add(work).add(merge)
    graph.edge(START, "plan").edge("work", "merge")
    result = await graph.build().run()
    assert result.status == RunStatus.COMPLETED, result.reason
    assert result.state.results == [0, 10, 20, 30]
    assert merges == [[0, 10, 20, 30]]
    assert result.steps == 1 + 4 + 1


async def test_send_tasks_run_concurrently() -> None:
    barrier = asyncio.Barrier(3)

    def plan(state: State) -> list[Send]:
        return [Send("work", n) for n in range(3)]

    async def work(state: State, item: int) -> dict[str, Any]:
        await barrier.wait()
        return {"results": item}

    graph = Graph(State)
    graph.add(plan, routes=["work"]).add(work, timeout=5)
    graph.edge(START, "plan")
    result = await graph.build().run()
    assert result.status == RunStatus.COMPLETED, result.reason
    assert result.state.results == [0, 1, 2]


async def test_a_single_send_or_a_command_of_sends_is_a_dynamic_task() -> None:
    def one(state: State) -> Send:
        return Send("work", "single")

    def several(state: State) -> Command:
        return Command(update={"text": "planned"}, goto=[Send("work", "x"), Send("work", "y")])

    def work(state: State, item: str) -> dict[str, Any]:
        return {"results": item}

    single = Graph(State)
    single.add(one, routes=["work"]).add(work)
    single.edge(START, "one")
    assert (await single.build().run()).state.results == ["single"]
    command = Graph(State)
    command.add(several, routes=["work"]).add(work)
    command.edge(START, "several")
    result = await command.build().run()
    assert result.state.results == ["x", "y"]
    assert result.state.text == "planned"


async def test_send_to_a_step_not_among_the_declared_routes_is_a_routing_error() -> None:
    def plan(state: State) -> list[Send]:
        return [Send("work", 1)]

    def work(state: State, item: int) -> None:
        return None

    graph = Graph(State)
    graph.add(plan, routes=["other"]).add(work).add(logs("other"), name="other")
    graph.edge(START, "plan").edge("other", "work")
    result = await graph.build().run()
    assert result.status == RunStatus.FAILED
    assert isinstance(result.error, RoutingError)
    assert result.error.step == "plan"
    assert "'work'" in str(result.error)


async def test_send_to_a_step_that_takes_no_item_is_a_routing_error() -> None:
    def plan(state: State) -> list[Send]:
        return [Send("work", 1)]

    def work(state: State) -> None:
        return None

    graph = Graph(State)
    graph.add(plan, routes=["work"]).add(work)
    graph.edge(START, "plan")
    result = await graph.build().run()
    assert isinstance(result.error, RoutingError)
    assert result.error.step == "work"
    assert "takes no item" in str(result.error)


async def test_a_fan_out_over_zero_items_schedules_nothing() -> None:
    def plan(state: State) -> list[Send]:
        return [Send("work", topic) for topic in state.topic.split()]

    def work(state: State, item: str) -> dict[str, Any]:
        return {"results": item}

    graph = Graph(State)
    graph.add(plan, routes=["work"]).add(work)
    graph.edge(START, "plan")
    result = await graph.build().run({"topic": ""})
    assert result.status == RunStatus.COMPLETED, result.reason
    assert result.state.results == []


async def test_a_route_can_fan_out_with_sends() -> None:
    def work(state: State, item: str) -> dict[str, Any]:
        return {"results": item.upper()}

    graph = chain_of("a")
    graph.add(work)
    graph.route("a", lambda s: [Send("work", t) for t in s.topic.split()], ["work"])
    result = await graph.build().run({"topic": "x y z"})
    assert result.state.results == ["X", "Y", "Z"]


# -- sub-workflows ----------------------------------------------------------------------------------------


def _child(**build: Any) -> podium.Workflow[Child]:
    async def write(state: Child) -> dict[str, Any]:
        return {"text": f"{state.topic}:{state.n}", "n": state.n + 1}

    graph = Graph(Child, name="child")
    graph.add(write)
    graph.edge(START, "write")
    return graph.build(**build)


async def test_a_sub_workflow_gets_the_shared_fields_and_its_output_goes_into_a_field() -> None:
    graph = Graph(State, name="parent")
    graph.add(_child(output="text"), name="team", into="text")
    graph.edge(START, "team")
    result = await graph.build().run({"topic": "tides", "n": 2, "log": ["kept"]})
    assert result.status == RunStatus.COMPLETED, result.reason
    assert result.state.text == "tides:2"
    assert result.state.n == 2
    assert result.state.log == ["kept"]


async def test_a_sub_workflow_with_input_and_output_maps() -> None:
    graph = Graph(State, name="parent")
    graph.add(
        _child(),
        name="team",
        input=lambda s: {"topic": s.text.upper(), "n": 10},
        output=lambda c: {"text": c.text, "n": c.n},
    )
    graph.edge(START, "team")
    result = await graph.build().run({"text": "moon", "topic": "ignored"})
    assert result.status == RunStatus.COMPLETED, result.reason
    assert result.state.text == "MOON:10"
    assert result.state.n == 11


async def test_a_sub_workflow_output_function_can_return_an_update_dict() -> None:
    graph = Graph(State, name="parent")
    graph.add(_child(output=lambda c: {"text": c.text.upper()}), name="team")
    graph.edge(START, "team")
    result = await graph.build().run({"topic": "sun", "n": 1})
    assert result.state.text == "SUN:1"


async def test_a_sub_workflow_receives_a_send_item_as_its_input() -> None:
    def plan(state: State) -> list[Send]:
        return [Send("team", {"topic": t, "n": i}) for i, t in enumerate(state.topic.split())]

    graph = Graph(State, name="parent")
    graph.add(plan, routes=["team"])
    graph.add(_child(output=lambda c: {"results": c.text}), name="team")
    graph.edge(START, "plan")
    result = await graph.build().run({"topic": "a b c"})
    assert result.status == RunStatus.COMPLETED, result.reason
    assert result.state.results == ["a:0", "b:1", "c:2"]


async def test_a_failing_step_inside_a_sub_workflow_names_its_nested_path() -> None:
    async def write(state: Child) -> None:
        raise Boom("no ink")

    child = Graph(Child, name="child")
    child.add(write)
    child.edge(START, "write")
    graph = Graph(State, name="parent")
    graph.add(child.build(output="text"), name="team", into="text")
    graph.edge(START, "team")
    result = await graph.build().run()
    assert result.status == RunStatus.FAILED
    assert isinstance(result.error, StepFailedError)
    assert result.error.step == "team/write"
    assert "'team/write'" in str(result.error)
    assert isinstance(result.error.__cause__, Boom)


async def test_sub_workflow_steps_count_towards_the_run_steps() -> None:
    graph = Graph(State, name="parent")
    graph.add(_child(output="text"), name="team", into="text")
    graph.edge(START, "team")
    result = await graph.build().run()
    assert result.steps == 2


# -- sync steps -------------------------------------------------------------------------------------------


async def test_sync_steps_run_in_a_worker_thread_by_default() -> None:
    threads: list[threading.Thread] = []

    def work(state: State) -> None:
        threads.append(threading.current_thread())

    graph = Graph(State)
    graph.add(work)
    graph.edge(START, "work")
    await graph.build().run()
    assert threads
    assert threads[0] is not threading.main_thread()


async def test_sync_steps_with_thread_false_run_inline() -> None:
    threads: list[threading.Thread] = []

    def work(state: State) -> None:
        threads.append(threading.current_thread())

    graph = Graph(State)
    graph.add(work, thread=False)
    graph.edge(START, "work")
    await graph.build().run()
    assert threads == [threading.main_thread()]


async def test_parallel_sync_steps_do_not_block_each_other() -> None:
    def sleeper(name: str) -> Callable[[State], dict[str, Any]]:
        def step(state: State) -> dict[str, Any]:
            time.sleep(0.25)
            return {"log": name}

        return step

    graph = Graph(State)
    for name in ("a", "b", "c", "d"):
        graph.add(sleeper(name), name=name)
        graph.edge(START, name)
    started = time.perf_counter()
    result = await graph.build().run()
    assert time.perf_counter() - started < 0.8  # serially it would take 1.0 s
    assert result.state.log == ["a", "b", "c", "d"]


async def test_a_sync_step_with_thread_false_may_return_an_awaitable() -> None:
    async def inner(state: State) -> dict[str, Any]:
        return {"text": "awaited"}

    def wrapper(state: State) -> Coroutine[Any, Any, dict[str, Any]]:
        return inner(state)

    graph = Graph(State)
    graph.add(wrapper, thread=False)
    graph.edge(START, "wrapper")
    assert (await graph.build().run()).state.text == "awaited"


@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
async def test_a_sync_step_returning_an_awaitable_is_awaited_in_the_default_mode_too() -> None:
    async def inner(state: State) -> dict[str, Any]:
        return {"text": "awaited"}

    def wrapper(state: State) -> Coroutine[Any, Any, dict[str, Any]]:
        return inner(state)

    graph = Graph(State)
    graph.add(wrapper)
    graph.edge(START, "wrapper")
    status, text = await _status_and_text(graph)
    assert status == RunStatus.COMPLETED
    assert text == "awaited"


# -- events -----------------------------------------------------------------------------------------------


async def test_an_emitted_event_wakes_its_subscriber_next_superstep_with_the_event() -> None:
    received: list[tuple[str, Any]] = []

    async def speak(state: State) -> dict[str, Any]:
        podium.context().emit(Ping(text="hello"))
        podium.context().emit(LoudPing(text="HELLO"))
        podium.context().emit(Other())
        return {"log": "speak"}

    async def listen(state: State, event: Ping) -> dict[str, Any]:
        received.append((podium.context().task_id, event))
        return {"log": f"heard {event.text}"}

    graph = Graph(State)
    graph.add(speak).add(listen).add(logs("next"), name="next")
    graph.edge(START, "speak").edge("speak", "next")
    graph.on(Ping, "listen")
    result = await graph.build().run()
    assert result.status == RunStatus.COMPLETED, result.reason
    assert [event for _task, event in received] == [Ping(text="hello"), LoudPing(text="HELLO")]
    assert all(task_id.startswith("2.") for task_id, _event in received)
    assert result.state.log == ["speak", "next", "heard hello", "heard HELLO"]


async def test_an_event_nobody_subscribed_to_is_ignored() -> None:
    async def speak(state: State) -> None:
        podium.context().emit(Other())

    async def listen(state: State, event: Ping) -> dict[str, Any]:
        return {"log": "heard"}

    graph = Graph(State)
    graph.add(speak).add(listen)
    graph.edge(START, "speak")
    graph.on(Ping, "listen")
    result = await graph.build().run()
    assert result.status == RunStatus.COMPLETED
    assert result.state.log == []
    assert result.steps == 1


async def test_events_emitted_from_a_sync_step_in_a_thread_are_delivered() -> None:
    def speak(state: State) -> None:
        podium.context().emit(Ping(text="from thread"))

    def listen(state: State, event: Ping) -> dict[str, Any]:
        return {"log": event.text}

    graph = Graph(State)
    graph.add(speak).add(listen)
    graph.edge(START, "speak")
    graph.on(Ping, "listen")
    assert (await graph.build().run()).state.log == ["from thread"]


# -- failures ---------------------------------------------------------------------------------------------


async def test_a_step_that_raises_fails_the_run_with_the_original_as_cause() -> None:
    async def explode(state: State) -> None:
        raise Boom("kaboom")

    graph = chain_of("a")
    graph.add(explode).add(logs("after"), name="after")
    graph.edge("a", "explode").edge("explode", "after")
    result = await graph.build().run(run_id="r1")
    assert result.status == RunStatus.FAILED
    assert not result.ok
    error = result.error
    assert isinstance(error, StepFailedError)
    assert error.step == "explode"
    assert error.run_id == "r1"
    assert error.attempt == 1
    assert "kaboom" in str(error)
    assert "Boom" in str(error)
    assert isinstance(error.__cause__, Boom)
    assert result.reason == str(error)
    assert result.output is None
    assert result.state.log == ["a"]
    with pytest.raises(StepFailedError) as exc_info:
        result.unwrap()
    assert exc_info.value is error


async def test_a_sync_step_that_raises_in_a_thread_fails_the_same_way() -> None:
    def explode(state: State) -> None:
        raise Boom("thread kaboom")

    graph = Graph(State)
    graph.add(explode)
    graph.edge(START, "explode")
    result = await graph.build().run()
    assert isinstance(result.error, StepFailedError)
    assert isinstance(result.error.__cause__, Boom)


async def test_a_failing_branch_cancels_its_siblings_by_default() -> None:
    side_effects: list[str] = []

    async def slow(state: State) -> dict[str, Any]:
        await asyncio.sleep(5)
        side_effects.append("slow finished")
        return {"log": "slow"}

    async def explode(state: State) -> None:
        await asyncio.sleep(0.01)
        raise Boom("branch failed")

    graph = Graph(State)
    graph.add(slow).add(explode)
    graph.edge(START, "slow").edge(START, "explode")
    started = time.perf_counter()
    result = await graph.build().run()
    assert time.perf_counter() - started < 2.0
    assert result.status == RunStatus.FAILED
    assert isinstance(result.error, StepFailedError)
    assert result.error.step == "explode"
    assert result.state.log == []
    await asyncio.sleep(0.05)
    assert side_effects == []


async def test_on_branch_failure_finish_lets_siblings_complete_and_keeps_their_writes() -> None:
    async def slow(state: State) -> dict[str, Any]:
        await asyncio.sleep(0.1)
        return {"log": "slow", "text": "kept"}

    async def explode(state: State) -> None:
        raise Boom("branch failed")

    graph = Graph(State)
    graph.add(slow).add(explode).add(logs("after"), name="after")
    graph.edge(START, "slow").edge(START, "explode").edge("slow", "after")
    result = await graph.build(on_branch_failure="finish").run()
    assert result.status == RunStatus.FAILED
    assert isinstance(result.error, StepFailedError)
    assert result.error.step == "explode"
    assert result.state.log == ["slow"]
    assert result.state.text == "kept"


async def test_on_error_turns_a_failure_into_an_update_and_the_run_goes_on() -> None:
    handled: list[tuple[State, Exception]] = []

    async def explode(state: State) -> None:
        raise Boom("recoverable")

    def recover(state: State, error: Exception) -> dict[str, Any]:
        handled.append((state, error))
        return {"text": f"recovered from {type(error.__cause__).__name__}"}

    graph = Graph(State)
    graph.add(explode, on_error=recover).add(logs("after"), name="after")
    graph.chain(START, "explode", "after")
    result = await graph.build().run({"n": 4})
    assert result.status == RunStatus.COMPLETED, result.reason
    assert result.state.text == "recovered from Boom"
    assert result.state.log == ["after"]
    [(state, error)] = handled
    assert state.n == 4
    assert isinstance(error, StepFailedError)
    assert error.step == "explode"


async def test_on_error_with_three_parameters_gets_the_item() -> None:
    def plan(state: State) -> list[Send]:
        return [Send("work", 1), Send("work", 2)]

    def work(state: State, item: int) -> dict[str, Any]:
        if item == 2:
            raise Boom("two")
        return {"results": item}

    def recover(state: State, error: Exception, item: int) -> dict[str, Any]:
        return {"results": -item}

    graph = Graph(State)
    graph.add(plan, routes=["work"]).add(work, on_error=recover)
    graph.edge(START, "plan")
    result = await graph.build().run()
    assert result.status == RunStatus.COMPLETED, result.reason
    assert result.state.results == [1, -2]


async def test_an_on_error_handler_that_raises_fails_the_run_and_says_so() -> None:
    async def explode(state: State) -> None:
        raise Boom("first")

    def recover(state: State, error: Exception) -> None:
        raise ValueError("handler broke too")

    graph = Graph(State)
    graph.add(explode, on_error=recover)
    graph.edge(START, "explode")
    result = await graph.build().run()
    assert result.status == RunStatus.FAILED
    assert isinstance(result.error, StepFailedError)
    assert result.error.step == "explode"
    assert "on_error" in str(result.error)
    assert "handler broke too" in str(result.error)
    assert isinstance(result.error.__cause__, ValueError)


def test_an_on_error_handler_with_the_wrong_signature_is_rejected() -> None:
    graph = Graph(State)
    with pytest.raises(podium.WorkflowDefinitionError, match="on_error"):
        graph.add(logs("a"), name="a", on_error=lambda state: None)


@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
async def test_an_async_on_error_handler_is_awaited() -> None:
    async def explode(state: State) -> None:
        raise Boom("first")

    async def recover(state: State, error: Exception) -> dict[str, Any]:
        return {"text": "recovered"}

    graph = Graph(State)
    graph.add(explode, on_error=recover)
    graph.edge(START, "explode")
    status, text = await _status_and_text(graph)
    assert status == RunStatus.COMPLETED
    assert text == "recovered"


async def test_a_recovered_failure_does_not_follow_the_routing_of_the_failed_output() -> None:
    def decide(state: State) -> Command:
        return Command(update=42, goto="publish")  # an int without into: a StepOutputError

    graph = Graph(State)
    graph.add(decide, routes=["publish"], on_error=lambda state, error: {"text": "recovered"})
    graph.add(logs("publish"), name="publish")
    graph.edge(START, "decide")
    result = await graph.build().run()
    assert result.state.text == "recovered"
    assert result.state.log == []


async def test_a_failure_inside_a_sub_workflow_can_be_handled_by_the_parent_step() -> None:
    async def write(state: Child) -> None:
        raise Boom("inner")

    child = Graph(Child, name="child")
    child.add(write)
    child.edge(START, "write")
    graph = Graph(State, name="parent")
    graph.add(
        child.build(output="text"),
        name="team",
        into="text",
        on_error=lambda state, error: f"fallback after {error.step}",
    )
    graph.edge(START, "team")
    result = await graph.build().run()
    assert result.status == RunStatus.COMPLETED, result.reason
    assert result.state.text == "fallback after team/write"


async def test_returning_a_non_dict_without_into_is_a_step_output_error() -> None:
    def count(state: State) -> int:
        return 42

    graph = Graph(State)
    graph.add(count)
    graph.edge(START, "count")
    result = await graph.build().run()
    assert result.status == RunStatus.FAILED
    assert isinstance(result.error, StepOutputError)
    assert result.error.step == "count"
    assert "int" in str(result.error)
    assert "into=" in str(result.error)


async def test_writing_fields_outside_the_declared_writes_is_a_step_output_error() -> None:
    def write(state: State) -> dict[str, Any]:
        return {"text": "ok", "n": 3}

    graph = Graph(State)
    graph.add(write, writes=["text"])
    graph.edge(START, "write")
    result = await graph.build().run()
    assert isinstance(result.error, StepOutputError)
    assert result.error.step == "write"
    assert "['n']" in str(result.error)
    assert result.state.text == ""


async def test_a_join_that_can_no_longer_fire_fails_with_join_stalled() -> None:
    graph = chain_of("a")
    graph.add(logs("b"), name="b").add(logs("c"), name="c").add(logs("d"), name="d")
    graph.route("a", lambda s: "b", ["b", "c"])
    graph.join(["b", "c"], "d")
    result = await graph.build().run(run_id="stall")
    assert result.status == RunStatus.FAILED
    error = result.error
    assert isinstance(error, JoinStalledError)
    assert not isinstance(error, StepError)
    assert error.join == "d"
    assert error.waiting_for == ("c",)
    assert error.run_id == "stall"
    assert result.state.log == ["a", "b"]
    with pytest.raises(JoinStalledError):
        result.unwrap()


async def test_parallel_writes_to_a_plain_field_fail_with_an_update_conflict() -> None:
    graph = Graph(State)
    graph.add(logs("a", text="from a"), name="a").add(logs("b", text="from b"), name="b")
    graph.edge(START, "a").edge(START, "b")
    result = await graph.build().run({"text": "before"})
    assert result.status == RunStatus.FAILED
    error = result.error
    assert isinstance(error, UpdateConflictError)
    assert error.field == "text"
    assert error.writers == ("a", "b")
    assert "'text'" in str(error)
    assert "'a'" in str(error)
    assert "'b'" in str(error)
    assert result.state.text == "before"
    assert result.state.log == []


async def test_dynamic_tasks_writing_a_plain_field_conflict_too() -> None:
    def plan(state: State) -> list[Send]:
        return [Send("work", 1), Send("work", 2)]

    def work(state: State, item: int) -> dict[str, Any]:
        return {"n": item}

    graph = Graph(State)
    graph.add(plan, routes=["work"]).add(work)
    graph.edge(START, "plan")
    result = await graph.build().run()
    assert isinstance(result.error, UpdateConflictError)
    assert result.error.field == "n"
    assert len(result.error.writers) == 2


async def test_a_bad_update_from_a_send_task_names_the_step_path() -> None:
    def plan(state: State) -> list[Send]:
        return [Send("work", 1)]

    def work(state: State, item: int) -> dict[str, Any]:
        return {"n": "not a number"}

    graph = Graph(State)
    graph.add(plan, routes=["work"]).add(work)
    graph.edge(START, "plan")
    result = await graph.build().run()
    assert isinstance(result.error, StepOutputError)
    assert result.error.step == "work"
