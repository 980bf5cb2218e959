"""Team patterns where someone decides who works next: supervisor, hierarchical, handoff (podium.flow.patterns._team).

Every pattern is shown working, and failing inside one member, with what happens to the others.
"""

import asyncio
import threading
import time
from typing import Any

import pytest

from podium import (
    END,
    ConfigError,
    Conversation,
    Done,
    Handoff,
    Hooks,
    RoutingError,
    RunStatus,
    Send,
    StepFailedError,
    Turn,
    handoff,
    hierarchical,
    step,
    supervisor,
)


def failed_step_error(error: object) -> StepFailedError:
    assert isinstance(error, StepFailedError), f"expected StepFailedError, got {error!r}"
    return error


def said(state: Conversation) -> list[tuple[str, Any]]:
    return [(t.speaker, t.content) for t in state.turns]


class StepPaths(Hooks):
    """Records the path of every step that starts, e.g. ``research/researcher``."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def on_step_start(self, *, run_id: str, step: str, task_id: str, attempt: int, item: Any) -> None:
        self.paths.append(step)


# ---------------------------------------------------------------------------------------------- supervisor


async def test_supervisor_routes_in_parallel_with_instructions_until_done() -> None:
    decisions: list[list[tuple[str, Any]]] = []

    def router(state: Conversation) -> Any:
        decisions.append(said(state))
        if state.round == 0:
            return ["writer", "researcher"]
        if state.round == 1:
            return Send("editor", "tighten it")
        return Done("final")

    def writer(state: Conversation) -> str:
        return f"draft of {state.task}"

    async def researcher(state: Conversation) -> str:
        return "facts"

    def editor(state: Conversation, instruction: str) -> str:
        return f"edited ({instruction})"

    result = await supervisor(router, [writer, researcher, editor]).run({"task": "tides"})

    assert result.status is RunStatus.COMPLETED
    assert result.output == "final"
    assert said(result.state) == [
        ("router", ["writer", "researcher"]),
        ("writer", "draft of tides"),
        ("researcher", "facts"),
        ("router", ["editor"]),
        ("editor", "edited (tighten it)"),
    ]
    assert [t.kind for t in result.state.turns] == ["route", "message", "message", "route", "message"]
    editor_turn = result.state.last("editor")
    assert editor_turn is not None
    assert editor_turn.about == "tighten it"
    assert editor_turn.round == 2
    # the router read the conversation so far before each decision
    assert decisions[0] == []
    assert decisions[2][-1] == ("editor", "edited (tighten it)")
    assert result.state.round == 2


@pytest.mark.parametrize("finish", [Done(), END, None])
async def test_supervisor_finishing_without_a_result_answers_with_the_last_turn(finish: Any) -> None:
    def router(state: Conversation) -> Any:
        return "writer" if state.round == 0 else finish

    def writer(state: Conversation) -> str:
        return "the post"

    result = await supervisor(router, [writer]).run({"task": "tides"})

    assert result.status is RunStatus.COMPLETED
    assert result.output == "the post"
    assert result.state.result == "the post"


async def test_supervisor_router_naming_an_unknown_worker_fails_with_a_routing_error() -> None:
    ran: list[str] = []

    def writer(state: Conversation) -> str:
        ran.append("writer")
        return "x"

    def router(state: Conversation) -> str:
        return "nobody"

    result = await supervisor(router, [writer]).run({"task": "task"})

    assert result.status is RunStatus.FAILED
    assert isinstance(result.error, RoutingError)
    assert result.error.step == "router"
    assert "'nobody'" in str(result.error)
    assert ran == []


async def test_supervisor_sending_an_instruction_to_an_unknown_worker_fails_naming_it() -> None:
    def writer(state: Conversation) -> str:
        return "x"

    result = await supervisor(lambda s: [Send("writer", "a"), Send("ghost", "b")], [writer]).run({"task": "task"})

    assert result.status is RunStatus.FAILED
    assert isinstance(result.error, RoutingError)
    assert "'ghost'" in str(result.error)


async def test_supervisor_that_never_says_done_is_limited_after_max_rounds() -> None:
    calls: list[int] = []

    def writer(state: Conversation) -> str:
        calls.append(state.round)
        return "again"

    def router(state: Conversation) -> str:
        return "writer"

    result = await supervisor(router, [writer], max_rounds=3).run({"task": "task"})

    assert result.status is RunStatus.LIMITED
    assert result.limit == "max_rounds"
    assert result.reason is not None
    assert "'router'" in result.reason
    assert "max_rounds=3" in result.reason
    assert calls == [1, 2, 3]
    assert result.state.round == 3
    assert result.output is None


async def test_supervisor_done_in_the_last_allowed_round_completes() -> None:
    def writer(state: Conversation) -> str:
        return f"v{state.round}"

    def router(state: Conversation) -> Any:
        return "writer" if state.round < 3 else Done("shipped")

    result = await supervisor(router, [writer], max_rounds=3).run({"task": "task"})

    assert result.status is RunStatus.COMPLETED
    assert result.output == "shipped"
    assert [t.content for t in result.state.by("writer")] == ["v1", "v2", "v3"]


async def test_supervisor_failing_worker_cancels_its_parallel_siblings_and_fails_the_run() -> None:
    cancelled: list[str] = []
    effects: list[str] = []
    original = ConnectionError("search API down")

    async def researcher(state: Conversation) -> str:
        await asyncio.sleep(0.01)
        raise original

    async def writer(state: Conversation) -> str:
        try:
            await asyncio.sleep(3)
        except asyncio.CancelledError:
            cancelled.append("writer")
            raise
        effects.append("writer")
        return "draft"

    routed: list[int] = []

    def router(state: Conversation) -> Any:
        routed.append(state.round)
        return ["researcher", "writer"] if state.round == 0 else Done()

    started = time.perf_counter()
    result = await supervisor(router, [researcher, writer]).run({"task": "task"})

    assert result.status is RunStatus.FAILED
    assert time.perf_counter() - started < 1.5
    assert cancelled == ["writer"]
    assert effects == []
    assert routed == [0]  # the router is not asked again after a failure
    error = failed_step_error(result.error)
    assert error.step == "researcher"
    assert error.__cause__ is original
    assert said(result.state) == [("router", ["researcher", "writer"])]


async def test_supervisor_worker_with_on_error_reports_and_the_router_reroutes() -> None:
    def researcher(state: Conversation) -> str:
        raise TimeoutError("slow source")

    def report(state: Conversation, error: Exception) -> dict[str, Any]:
        return {"turns": Turn(speaker="researcher", content=str(error.__cause__), kind="error")}

    def backup(state: Conversation) -> str:
        return "cached facts"

    def router(state: Conversation) -> Any:
        last = state.last()
        if last is None:
            return "researcher"
        if last.kind == "error":
            return "backup"
        return Done()

    result = await supervisor(router, [step(researcher, on_error=report), backup]).run({"task": "task"})

    assert result.status is RunStatus.COMPLETED
    assert result.output == "cached facts"
    assert said(result.state)[1] == ("researcher", "slow source")


async def test_supervisor_sync_members_run_in_threads_and_named_specs_are_workers() -> None:
    threads: dict[str, int] = {}

    def router(state: Conversation) -> Any:
        threads["router"] = threading.get_ident()
        return "w" if state.round == 0 else Done()

    def worker(state: Conversation) -> str:
        threads["worker"] = threading.get_ident()
        return "done"

    result = await supervisor(router, [step(worker, name="w")]).run({"task": "task"})

    assert result.status is RunStatus.COMPLETED
    assert said(result.state) == [("router", ["w"]), ("w", "done")]
    assert threads["router"] != threading.get_ident()
    assert threads["worker"] != threading.get_ident()


async def test_supervisor_mapping_workers_and_router_names() -> None:
    def writer(state: Conversation) -> str:
        return "x"

    def lead(state: Conversation) -> Any:
        return "writer" if state.round == 0 else Done()

    named = await supervisor(lead, {"writer": writer}).run({"task": "t"})
    assert [t.speaker for t in named.state.turns] == ["lead", "writer"]

    # a lambda router, or one named like a worker, is called "router"
    anonymous = await supervisor(lambda s: "writer" if s.round == 0 else Done(), [writer]).run({"task": "t"})
    assert [t.speaker for t in anonymous.state.turns] == ["router", "writer"]

    def clash(state: Conversation) -> Any:
        return "clash" if state.round == 0 else Done()

    clashing = await supervisor(clash, [clash]).run({"task": "t"})
    assert clashing.status is RunStatus.COMPLETED
    assert [t.speaker for t in clashing.state.turns] == ["router", "clash"]


def test_supervisor_run_sync_takes_the_task_as_input() -> None:
    def echo(state: Conversation) -> str:
        return f"echo {state.task}"

    task: Any = "hello"  # the documented bare-task input; Workflow.run is annotated S | Mapping only
    result = supervisor(lambda s: "echo" if s.round == 0 else Done(), [echo]).run_sync(task)

    assert result.unwrap() == "echo hello"
    assert result.state.task == "hello"


def test_team_builders_reject_unusable_arguments() -> None:
    def writer(state: Conversation) -> str:
        return "x"

    def two_args(state: Conversation, extra: Any) -> str:
        return "writer"

    with pytest.raises(ConfigError, match="at least one worker"):
        supervisor(lambda s: Done(), [])
    with pytest.raises(ConfigError, match="max_rounds must be at least 1"):
        supervisor(lambda s: Done(), [writer], max_rounds=0)
    with pytest.raises(ConfigError, match="must take"):
        supervisor(two_args, [writer])
    with pytest.raises(TypeError, match="name="):
        supervisor(lambda s: Done(), [lambda s: "x"])
    with pytest.raises(ConfigError, match="'nobody'"):
        handoff([writer], start="nobody")


# ---------------------------------------------------------------------------------------------- hierarchical


def team_router(state: Conversation) -> Any:
    return "researcher" if state.round == 0 else Done()


async def test_hierarchical_lead_sends_instructions_to_teams_and_reads_their_results() -> None:
    tasks_seen: list[Any] = []

    def researcher(state: Conversation) -> str:
        tasks_seen.append(state.task)
        return f"facts on {state.task}"

    def writer(state: Conversation) -> str:
        tasks_seen.append(state.task)
        return "post"

    def writing_router(state: Conversation) -> Any:
        return "writer" if state.round == 0 else Done()

    def lead(state: Conversation) -> Any:
        if state.round == 0:
            return Send("research", "dig into tides")
        if state.round == 1:
            return "writing"
        return Done(f"{state.by('research')[0].content} -> {state.by('writing')[0].content}")

    wf = hierarchical(lead, {"research": (team_router, [researcher]), "writing": (writing_router, [writer])})
    result = await wf.run({"task": "blog about tides"})

    assert result.status is RunStatus.COMPLETED
    assert result.output == "facts on dig into tides -> post"
    assert tasks_seen == ["dig into tides", "blog about tides"]  # the instruction, else the lead's own task
    assert said(result.state) == [
        ("lead", ["research"]),
        ("research", "facts on dig into tides"),
        ("lead", ["writing"]),
        ("writing", "post"),
    ]
    research_turn = result.state.last("research")
    assert research_turn is not None
    assert research_turn.about == "dig into tides"


async def test_hierarchical_nested_steps_appear_with_team_paths_in_hooks() -> None:
    def researcher(state: Conversation) -> str:
        return "facts"

    def lead(state: Conversation) -> Any:
        return "research" if state.round == 0 else Done()

    hooks = StepPaths()
    result = await hierarchical(lead, {"research": (team_router, [researcher])}).run({"task": "t"}, hooks=[hooks])

    assert result.status is RunStatus.COMPLETED
    assert hooks.paths == [
        "lead",
        "research",
        "research/team_router",
        "research/researcher",
        "research/team_router",
        "lead",
    ]


async def test_hierarchical_teams_can_be_workflows_nesting_three_levels() -> None:
    def researcher(state: Conversation) -> str:
        return "deep facts"

    def dept_lead(state: Conversation) -> Any:
        return "research" if state.round == 0 else Done()

    def ceo(state: Conversation) -> Any:
        return "dept" if state.round == 0 else Done()

    dept = hierarchical(dept_lead, {"research": (team_router, [researcher])}, name="dept")
    hooks = StepPaths()
    result = await hierarchical(ceo, {"dept": dept}).run({"task": "t"}, hooks=[hooks])

    assert result.status is RunStatus.COMPLETED
    assert result.output == "deep facts"
    assert "dept/research/researcher" in hooks.paths


async def test_hierarchical_failing_worker_fails_the_run_naming_the_nested_path_and_cancels_other_teams() -> None:
    cancelled: list[str] = []
    effects: list[str] = []
    original = PermissionError("no access to the archive")

    async def researcher(state: Conversation) -> str:
        await asyncio.sleep(0.01)
        raise original

    async def writer(state: Conversation) -> str:
        try:
            await asyncio.sleep(3)
        except asyncio.CancelledError:
            cancelled.append("writer")
            raise
        effects.append("writer")
        return "post"

    def writing_router(state: Conversation) -> Any:
        return "writer" if state.round == 0 else Done()

    def lead(state: Conversation) -> Any:
        return ["research", "writing"] if state.round == 0 else Done()

    wf = hierarchical(lead, {"research": (team_router, [researcher]), "writing": (writing_router, [writer])})
    started = time.perf_counter()
    result = await wf.run({"task": "t"})

    assert result.status is RunStatus.FAILED
    assert time.perf_counter() - started < 1.5
    error = failed_step_error(result.error)
    assert error.step == "research/researcher"
    assert "'research/researcher'" in str(error)
    assert error.__cause__ is original
    assert cancelled == ["writer"]
    assert effects == []
    assert said(result.state) == [("lead", ["research", "writing"])]


async def test_hierarchical_team_that_never_finishes_limits_the_whole_run() -> None:
    def researcher(state: Conversation) -> str:
        return "more"

    def endless(state: Conversation) -> str:
        return "researcher"

    def lead(state: Conversation) -> Any:
        return "research" if state.round == 0 else Done()

    result = await hierarchical(lead, {"research": (endless, [researcher])}, max_rounds=2).run({"task": "t"})

    assert result.status is RunStatus.LIMITED
    assert result.limit == "max_rounds"
    assert result.reason is not None
    assert "'research/endless'" in result.reason


async def test_hierarchical_team_task_is_a_mapping_instruction() -> None:
    tasks_seen: list[Any] = []

    def researcher(state: Conversation) -> str:
        tasks_seen.append(state.task)
        return "facts"

    def lead(state: Conversation) -> Any:
        return Send("research", {"topic": "tides", "depth": 2}) if state.round == 0 else Done()

    result = await hierarchical(lead, {"research": (team_router, [researcher])}).run({"task": "t"})

    assert result.status is RunStatus.COMPLETED
    assert tasks_seen == [{"topic": "tides", "depth": 2}]


# ---------------------------------------------------------------------------------------------- handoff


async def test_handoff_passes_control_with_a_note_and_the_answer_is_the_result() -> None:
    seen_by_billing: list[tuple[str, Any, Any]] = []

    def triage(state: Conversation) -> Any:
        return Handoff("billing", "customer wants a refund")

    def billing(state: Conversation) -> str:
        seen_by_billing.extend((t.speaker, t.content, t.about) for t in state.turns)
        return f"refunded ({state.task})"

    def support(state: Conversation) -> str:
        return "never"

    result = await handoff([triage, billing, support], start="triage").run({"task": "order 42"})

    assert result.status is RunStatus.COMPLETED
    assert result.output == "refunded (order 42)"
    assert seen_by_billing == [("triage", "customer wants a refund", "billing")]
    assert [(t.speaker, t.kind) for t in result.state.turns] == [("triage", "handoff"), ("billing", "message")]
    assert result.state.round == 1


async def test_handoff_agents_passing_the_task_back_and_forth_are_limited() -> None:
    calls: list[str] = []

    def ping(state: Conversation) -> Handoff:
        calls.append("ping")
        return Handoff("pong")

    def pong(state: Conversation) -> Handoff:
        calls.append("pong")
        return Handoff("ping")

    result = await handoff([ping, pong], start="ping", max_handoffs=4).run({"task": "x"})

    assert result.status is RunStatus.LIMITED
    assert result.limit == "max_handoffs"
    assert result.reason is not None
    assert "max_handoffs=4" in result.reason
    assert calls == ["ping", "pong", "ping", "pong", "ping"]  # four handoffs made, the fifth refused
    assert len(result.state.turns) == 4
    assert result.state.round == 4


@pytest.mark.parametrize(("max_handoffs", "status"), [(2, RunStatus.COMPLETED), (1, RunStatus.LIMITED)])
async def test_handoff_chain_of_exactly_max_handoffs_completes(max_handoffs: int, status: RunStatus) -> None:
    def first(state: Conversation) -> Any:
        return Handoff("second", "over to you") if state.round == 0 else "answered by first"

    def second(state: Conversation) -> Handoff:
        return Handoff("first", "back to you")

    result = await handoff([first, second], start="first", max_handoffs=max_handoffs).run({"task": "x"})

    assert result.status is status
    if status is RunStatus.COMPLETED:
        assert result.output == "answered by first"
        assert said(result.state) == [
            ("first", "over to you"),
            ("second", "back to you"),
            ("first", "answered by first"),
        ]
    else:
        assert result.limit == "max_handoffs"
        assert said(result.state) == [("first", "over to you")]


async def test_handoff_to_an_unknown_agent_fails_with_a_routing_error() -> None:
    def triage(state: Conversation) -> Handoff:
        return Handoff("legal", "lawsuit")

    def billing(state: Conversation) -> str:
        return "x"

    result = await handoff([triage, billing], start="triage").run({"task": "help"})

    assert result.status is RunStatus.FAILED
    assert isinstance(result.error, RoutingError)
    assert result.error.step == "triage"
    assert "'legal'" in str(result.error)


async def test_handoff_failing_agent_fails_the_run_keeping_the_handoff_trail() -> None:
    original = RuntimeError("billing system offline")

    def triage(state: Conversation) -> Handoff:
        return Handoff("billing", "refund")

    async def billing(state: Conversation) -> str:
        raise original

    result = await handoff([triage, billing], start="triage").run({"task": "help"})

    assert result.status is RunStatus.FAILED
    error = failed_step_error(result.error)
    assert error.step == "billing"
    assert error.__cause__ is original
    assert said(result.state) == [("triage", "refund")]
    assert result.state.result is None


async def test_handoff_accepts_named_specs_in_a_mapping() -> None:
    def front(state: Conversation) -> Handoff:
        return Handoff("expert", "hard one")

    def answer(state: Conversation) -> str:
        last = state.last()
        assert last is not None
        return f"answer to {last.content}"

    result = await handoff({"front": front, "expert": step(answer)}, start="front").run({"task": "q"})

    assert result.output == "answer to hard one"


async def test_supervisor_router_that_picks_no_worker_fails_instead_of_ending_silently() -> None:
    def writer(state: Conversation) -> str:
        return "draft"

    result = await supervisor(lambda state: [], [writer]).run({"task": "t"})
    assert result.status == RunStatus.FAILED
    assert isinstance(result.error, RoutingError)
    assert "chose no worker" in str(result.error)


async def test_supervisor_on_max_stop_ends_with_the_last_answer() -> None:
    def writer(state: Conversation) -> str:
        return f"draft {state.round}"

    result = await supervisor(lambda state: "writer", [writer], max_rounds=2, on_max="stop").run({"task": "t"})
    assert result.status == RunStatus.COMPLETED
    assert result.output == "draft 2"
    assert [t.speaker for t in result.state.turns].count("writer") == 2
