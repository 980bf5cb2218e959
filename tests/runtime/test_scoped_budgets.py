"""Budgets below the run: each agent's (``Agent(budget=...)``, ``Limits.agents``), and each sub-workflow
invocation's (``Graph.add(child, limits=...)``, the child's ``build(limits=...)``)."""

from __future__ import annotations

import asyncio
import pickle
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from podium import (
    END,
    START,
    Agent,
    Budget,
    ConfigError,
    Conversation,
    Graph,
    Limits,
    RunStatus,
    Send,
    SQLiteStore,
    WorkflowDefinitionError,
    planner,
    reducers,
    sequential,
    step,
)
from podium.models import PRICES, Message, ModelRequest, ModelResponse, Price, ToolCall, Usage

UNBOUNDED = Limits(max_steps=None, max_iterations=None, max_seconds=30)  # 30 s: a bug fails, never hangs


class Notes(BaseModel):
    answers: Annotated[list[str], reducers.append] = []


class Work(BaseModel):
    task: str = ""
    answers: Annotated[list[str], reducers.append] = []


class Count(BaseModel):
    n: int = 0


class Priced:
    """Every call costs 1,000 input tokens ($0.01); an agent's first ``tool_rounds`` calls ask for a tool.

    With ``barrier``, each call waits until that many calls are in flight, so parallel branches call in lockstep
    whatever the machine's timing.
    """

    def __init__(self, *, tool_rounds: int | dict[str, int] = 0, barrier: int = 0) -> None:
        self.name = "priced-test-model"
        self.calls = 0
        self.tool_rounds = tool_rounds
        self.by_task: dict[str, int] = {}
        self.barrier = asyncio.Barrier(barrier) if barrier else None

    async def complete(self, request: ModelRequest) -> ModelResponse:
        self.calls += 1
        if self.barrier is not None:
            await self.barrier.wait()
        else:
            await asyncio.sleep(0)
        asked = sum(1 for m in request.messages if m.role == "tool")
        task = request.messages[1].content  # the user's message: what the agent was asked
        rounds = self.tool_rounds if isinstance(self.tool_rounds, int) else self.tool_rounds[task]
        if asked < rounds:
            message = Message(role="assistant", tool_calls=(ToolCall(id=f"c{asked}", name="nothing", arguments={}),))
        else:
            message = Message(role="assistant", content=f"answer {self.calls}")
        return ModelResponse(message=message, usage=Usage(input_tokens=1000, output_tokens=0), model=self.name)


@pytest.fixture(autouse=True)
def priced() -> Any:
    PRICES["priced-test-model"] = Price(10.0, 0.0)
    yield
    del PRICES["priced-test-model"]


def in_a_row(model: Priced, count: int, *, agent: str | None = None, budget: Budget | None = None) -> Graph[Notes]:
    """``count`` agent steps one after another (all named ``agent`` if given, else a0, a1...)."""
    graph = Graph(Notes, name="row")
    names = []
    for n in range(count):
        who = Agent(agent or f"a{n}", model=model, max_turns=20, budget=budget)
        graph.add(who, name=f"s{n}", into="answers")
        names.append(f"s{n}")
    graph.chain(START, *names, END)
    return graph


# -- the values ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("options", [{"max_tokens": 0}, {"max_cost_usd": -1.0}, {"max_model_calls": 0}])
def test_a_budget_must_be_positive(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=next(iter(options))):
        Budget(**options)


def test_limits_take_budgets_by_agent_name() -> None:
    given = {"writer": Budget(max_tokens=10)}
    limits = Limits(agents=given)
    given["editor"] = Budget(max_tokens=1)  # Limits keeps its own copy
    assert dict(limits.agents) == {"writer": Budget(max_tokens=10)}
    assert pickle.loads(pickle.dumps(limits)) == limits  # plain values: it can cross to another process
    with pytest.raises(ConfigError, match=r"agents\['writer'\] must be a Budget"):
        Limits(agents={"writer": {"max_tokens": 10}})  # type: ignore[dict-item]
    assert hash(limits) == hash(Limits(agents={"other": Budget()}))  # still hashable


def test_an_agent_budget_must_be_a_budget() -> None:
    with pytest.raises(ConfigError, match=r"budget must be a podium\.Budget"):
        Agent("writer", budget={"max_tokens": 10})  # type: ignore[arg-type]


def test_limits_on_a_function_step_are_refused() -> None:
    with pytest.raises(WorkflowDefinitionError, match="sub-workflow"):
        Graph(Notes).add(lambda state: None, name="f", limits=Limits(max_steps=3))


# -- an agent's budget ----------------------------------------------------------------------------------------


async def test_an_agents_own_budget_stops_its_next_call_and_names_it() -> None:
    model = Priced(tool_rounds=10)
    graph = in_a_row(model, 1, agent="writer", budget=Budget(max_model_calls=3))
    result = await graph.build().run(limits=UNBOUNDED, store=False)
    assert (result.status, result.limit) == (RunStatus.LIMITED, "max_model_calls")
    assert result.reason == "agent 'writer' reached its max_model_calls=3: 3 calls made"
    assert model.calls == 3


@pytest.mark.parametrize(
    ("budget", "limit", "reason"),
    [
        (Budget(max_tokens=2500), "max_tokens", "agent 'w' reached its max_tokens=2500: 3000 tokens used"),
        (Budget(max_cost_usd=0.025), "max_cost_usd", "agent 'w' reached its max_cost_usd=0.025: $0.0300 spent"),
        (Budget(max_model_calls=3), "max_model_calls", "agent 'w' reached its max_model_calls=3: 3 calls made"),
    ],
)
async def test_a_run_level_budget_for_a_named_agent_covers_every_step_it_runs(
    budget: Budget, limit: str, reason: str
) -> None:
    model = Priced()
    graph = in_a_row(model, 5, agent="w")  # five steps, one agent: its budget covers them all
    result = await graph.build().run(limits=Limits(agents={"w": budget}), store=False)
    assert (result.status, result.limit, result.reason) == (RunStatus.LIMITED, limit, reason)
    assert model.calls == 3
    assert result.state.answers == ["answer 1", "answer 2", "answer 3"]  # the best partial result


async def test_another_agents_budget_does_not_stop_this_one() -> None:
    model = Priced()
    result = await in_a_row(model, 4).build().run(limits=Limits(agents={"nobody": Budget(max_model_calls=1)}))
    assert result.status is RunStatus.COMPLETED, result.reason
    assert model.calls == 4


@pytest.mark.parametrize(("own", "named"), [(2, 4), (4, 2)])
async def test_an_agents_own_budget_and_the_runs_entry_for_it_both_apply(own: int, named: int) -> None:
    model = Priced(tool_rounds=10)
    graph = in_a_row(model, 1, agent="w", budget=Budget(max_model_calls=own))
    result = await graph.build().run(limits=Limits(agents={"w": Budget(max_model_calls=named)}), store=False)
    assert result.status is RunStatus.LIMITED
    assert model.calls == 2
    assert result.reason == "agent 'w' reached its max_model_calls=2: 2 calls made"


async def test_parallel_branches_share_an_agents_budget_and_overshoot_by_at_most_the_calls_in_flight() -> None:
    model = Priced(tool_rounds=10, barrier=4)  # four branches call in lockstep, three tool rounds and more each
    graph = Graph(Notes, name="fan")
    for n in range(4):
        graph.add(Agent("p", model=model, max_turns=20), name=f"p{n}", into="answers")
        graph.edge(START, f"p{n}")
    graph.add(Agent("p", model=model), name="after", into="answers")
    graph.join([f"p{n}" for n in range(4)], "after")
    limits = Limits(max_seconds=30, agents={"p": Budget(max_model_calls=5)})
    result = await graph.build().run(limits=limits, store=False)
    assert (result.status, result.limit) == (RunStatus.LIMITED, "max_model_calls")
    assert result.reason is not None
    assert result.reason.startswith("agent 'p' reached its max_model_calls=5")
    # round 1: four calls checked at 0; round 2: checked at 1, 2, 3, 4 (each call's usage counts when it ends);
    # round 3: the first check sees 5. Eight calls: the budget, overshot by the three calls already in flight.
    assert model.calls == 8
    assert result.usage_by_agent["p"].input_tokens == 8000


# -- a sub-workflow's limits, per invocation ------------------------------------------------------------------


def child_of(model: Priced, count: int, *, limits: Limits | None = None, name: str = "team") -> Any:
    graph = in_a_row(model, count, agent="w")
    graph.name = name
    return graph.build(output="answers", limits=limits)


def parent_of(child: Any, *, limits: Limits | None = None) -> Graph[Notes]:
    graph = Graph(Notes, name="parent")
    graph.add(child, name="team", output=lambda final: {"answers": final.answers}, limits=limits)
    graph.edge(START, "team")
    return graph


async def test_graph_add_limits_bound_each_invocation_and_the_reason_names_it() -> None:
    model = Priced()
    workflow = parent_of(child_of(model, 5), limits=Limits(max_model_calls=2)).build()
    result = await workflow.run(limits=UNBOUNDED, store=False)
    assert (result.status, result.limit) == (RunStatus.LIMITED, "max_model_calls")
    assert result.reason == "sub-workflow 'team' (task 1.0) reached its max_model_calls=2: 2 calls made"
    assert model.calls == 2
    assert result.usage.input_tokens == 2000  # what ran inside still counts for the run


async def test_a_childs_own_build_limits_apply_when_it_runs_nested_and_graph_add_overrides_them() -> None:
    model = Priced()
    nested = await parent_of(child_of(model, 5, limits=Limits(max_tokens=3000))).build().run(store=False)
    assert (nested.status, nested.limit) == (RunStatus.LIMITED, "max_tokens")
    assert nested.reason == "sub-workflow 'team' (task 1.0) reached its max_tokens=3000: 3000 tokens used"
    model = Priced()
    child = child_of(model, 5, limits=Limits(max_tokens=3000))
    overridden = await parent_of(child, limits=Limits(max_tokens=10_000)).build().run(store=False)
    assert overridden.status is RunStatus.COMPLETED, overridden.reason
    assert model.calls == 5


async def test_a_sub_workflow_budget_hit_inside_a_fan_out_counts_each_invocation_alone() -> None:
    model = Priced(tool_rounds={"one": 0, "two": 1, "many": 9})

    inner = Graph(Work, name="work")
    inner.add(Agent("w", model=model, max_turns=20, prompt=lambda state, item: state.task), name="w", into="answers")
    inner.edge(START, "w")
    child = inner.build(output="answers")

    graph = Graph(Notes, name="fan")
    graph.add(lambda state: [Send("work", t) for t in ("one", "two", "many")], name="plan", routes=["work"])
    graph.add(
        child, name="work", input=lambda state, item: {"task": item}, into="answers", limits=Limits(max_model_calls=3)
    )
    graph.add(lambda state: None, name="done")
    graph.edge(START, "plan").edge("work", "done")
    result = await graph.build().run(limits=UNBOUNDED, store=False)
    assert (result.status, result.limit) == (RunStatus.LIMITED, "max_model_calls"), result.reason
    assert result.reason == "sub-workflow 'work' (task 2.2) reached its max_model_calls=3: 3 calls made"
    assert model.calls == 1 + 2 + 3  # six calls in all: each invocation had its own three
    assert result.usage.input_tokens == 6000


async def test_a_pattern_gives_a_members_limits_to_each_of_its_invocations() -> None:
    model = Priced(tool_rounds=5)
    agent = Agent("w", model=model, max_turns=20)
    work = sequential(step(agent, into="result"), state=Conversation, name="work", input="task", output="result")

    def plan(state: Conversation) -> list[str]:
        return ["tides", "waves"]

    def write_up(state: Conversation) -> str:
        return "done"

    workflow = planner(plan, step(work, limits=Limits(max_model_calls=2)), write_up)
    result = await workflow.run("the sea", limits=UNBOUNDED, store=False)
    assert (result.status, result.limit) == (RunStatus.LIMITED, "max_model_calls")
    assert (result.reason or "").startswith("sub-workflow 'work' (task 2.")
    assert model.calls == 4  # two subtasks, two calls each: every invocation had a budget of its own


async def test_an_enclosing_scope_counts_what_its_nested_sub_workflows_spend() -> None:
    model = Priced()
    inner = child_of(model, 2, name="inner", limits=Limits(max_model_calls=10))
    middle = Graph(Notes, name="middle")
    middle.add(inner, name="a", into="answers").add(inner, name="b", into="answers")
    middle.chain(START, "a", "b", END)
    workflow = parent_of(middle.build(output="answers"), limits=Limits(max_model_calls=3)).build()
    result = await workflow.run(limits=UNBOUNDED, store=False)
    assert result.status is RunStatus.LIMITED
    assert result.reason == "sub-workflow 'team' (task 1.0) reached its max_model_calls=3: 3 calls made"
    assert model.calls == 3


async def test_a_scope_can_budget_an_agent_inside_it() -> None:
    model = Priced()
    workflow = parent_of(child_of(model, 3), limits=Limits(agents={"w": Budget(max_model_calls=1)})).build()
    result = await workflow.run(limits=UNBOUNDED, store=False)
    assert result.status is RunStatus.LIMITED
    assert result.reason == "agent 'w' reached its max_model_calls=1 in sub-workflow 'team' (task 1.0): 1 call made"


async def test_a_scopes_max_steps_and_max_iterations_count_inside_the_invocation() -> None:
    model = Priced()
    steps = await parent_of(child_of(model, 5), limits=Limits(max_steps=3)).build().run(limits=UNBOUNDED)
    assert (steps.status, steps.limit) == (RunStatus.LIMITED, "max_steps")
    assert steps.reason == "sub-workflow 'team' (task 1.0) reached its max_steps=3: 3 steps ran and 1 more were due"
    assert model.calls == 3

    spin = Graph(Count, name="spin")
    spin.add(lambda state: {"n": state.n + 1}, name="inc", thread=False)
    spin.edge(START, "inc").route("inc", lambda state: "inc", ["inc", END])
    looped = Graph(Count, name="parent")
    looped.add(spin.build(output="n"), name="team", into="n", limits=Limits(max_iterations=4))
    looped.edge(START, "team")
    result = await looped.build().run(limits=Limits(max_iterations=100))
    assert (result.status, result.limit) == (RunStatus.LIMITED, "max_iterations")
    assert result.reason == "step 'team/inc' reached its max_iterations=4 (the bound of sub-workflow 'team' (task 1.0))"


async def test_a_scopes_max_seconds_is_the_invocations_wall_time() -> None:
    async def hang(state: Notes) -> None:
        await asyncio.Event().wait()

    inner = Graph(Notes, name="slow")
    inner.add(hang).edge(START, "hang")
    workflow = parent_of(inner.build(output="answers"), limits=Limits(max_seconds=0.05)).build()
    result = await workflow.run(limits=UNBOUNDED, store=False)
    assert (result.status, result.limit) == (RunStatus.LIMITED, "max_seconds")
    reason = "sub-workflow 'team' (task 1.0) reached its max_seconds=0.05; steps still running: 'team/hang'"
    assert result.reason == reason


# -- a resumed run keeps counting -----------------------------------------------------------------------------


async def test_a_resumed_run_counts_each_agents_calls_from_its_journal(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "j.db")
    workflow = in_a_row(Priced(), 5, agent="w").build()
    first = await workflow.run(run_id="r", limits=Limits(max_model_calls=2), store=store)
    assert first.status is RunStatus.LIMITED
    model = Priced()
    budget = Limits(agents={"w": Budget(max_model_calls=3)})
    resumed = await in_a_row(model, 5, agent="w").build().resume("r", limits=budget, store=store)
    assert resumed.status is RunStatus.LIMITED
    assert resumed.reason == "agent 'w' reached its max_model_calls=3: 3 calls made"
    assert model.calls == 1  # 2 before + 1 now


async def test_a_resumed_sub_workflow_invocation_counts_what_ran_inside_it_before(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "j.db")

    def workflow(model: Priced) -> Any:
        return parent_of(child_of(model, 5), limits=Limits(max_model_calls=3)).build()

    first = await workflow(Priced()).run(run_id="r", limits=Limits(max_model_calls=2), store=store)
    assert (first.status, first.reason) == (RunStatus.LIMITED, "max_model_calls=2 reached")  # the run's, inside
    model = Priced()
    resumed = await workflow(model).resume("r", limits=UNBOUNDED, store=store)
    assert resumed.status is RunStatus.LIMITED
    assert resumed.reason == "sub-workflow 'team' (task 1.0) reached its max_model_calls=3: 3 calls made"
    assert model.calls == 1  # the invocation's two journaled calls still count
