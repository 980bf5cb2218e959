"""Adversarial agents end within their limits: a critic that never approves, two agents handing a task to each other
forever, a supervisor that never says done, a planner that plans a storm of subtasks, and parallel branches racing
for one budget. Each run ends ``limited``, names the limit, keeps its partial state, and stays within its caps.

The limit that ends a loop may be its own cap (``max_iterations``, ``max_handoffs``, ``max_rounds``) or podium's
no-progress detection (``no_progress``, which may stop a loop that repeats itself earlier): either passes.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel

from podium import (
    Agent,
    Conversation,
    Done,
    Handoff,
    Limits,
    RetryPolicy,
    RunStatus,
    SQLiteStore,
    handoff,
    loop,
    planner,
    reducers,
    step,
    supervisor,
)
from podium.journal import ModelCalled, RunFinished
from podium.models import PRICES, Model, Price, TestModel
from tests.faults.answers import Chat, schema_answer
from tests.faults.conftest import Models, Servers
from tests.faults.workflows import CLASSIFIED, always_a_tool_call, outcome, race, root_cause

FAST = RetryPolicy(max_attempts=2, initial_interval=0.001, backoff=2.0, max_interval=0.05, jitter=0.1)
FOREVER = 200
"""Scripted answers enough for any run below: the scripts never run out before a limit ends the run."""


class Review(BaseModel):
    approved: bool
    notes: str


class Doc(BaseModel):
    task: str = ""
    drafts: Annotated[list[str], reducers.append] = []
    reviews: Annotated[list[Review], reducers.append] = []


class Pass(BaseModel):
    handoff_to: Literal["none", "billing", "tech"]
    note: str = ""
    answer: str | None = None


class Decision(BaseModel):
    next: Literal["writer", "editor", "done"]


class Plan(BaseModel):
    subtasks: list[str]


async def limited_run(store: SQLiteStore, run_id: str) -> RunFinished:
    """The journal's last word on the run."""
    [finished] = [e.event for e in await store.read(run_id) if isinstance(e.event, RunFinished)]
    return finished


# -- a critique loop whose critic never approves --------------------------------------------------------------


def critique_loop(model: Model, *, max_iterations: int, max_reasks: int = 1) -> Any:
    writer = Agent("writer", role="Writer", model=model, retry=FAST, max_reasks=max_reasks)
    critic = Agent("critic", role="Critic", model=model, output=Review, retry=FAST, max_reasks=max_reasks)
    return loop(
        step(writer, into="drafts"),
        step(critic, into="reviews"),
        until=lambda state: bool(state.reviews) and state.reviews[-1].approved,
        max_iterations=max_iterations,
        on_max="limit",
        state=Doc,
        input="task",
        name="critique",
    )


async def test_a_critic_that_never_approves_ends_the_loop_at_its_limit(tmp_path: Path) -> None:
    model = TestModel({"critic": [{"approved": False, "notes": "not yet"}] * FOREVER})
    store = SQLiteStore(tmp_path / "loop.db")
    result = await critique_loop(model, max_iterations=5).run("a post about tides", store=store)
    assert result.status is RunStatus.LIMITED
    assert result.limit in ("max_iterations", "no_progress")
    assert result.reason
    calls = Counter(request.agent for request in model.calls)
    assert 1 <= calls["critic"] <= 5
    assert 1 <= calls["writer"] <= 5
    assert result.state.drafts  # the partial state is kept
    assert result.state.reviews
    assert not any(review.approved for review in result.state.reviews)
    finished = await limited_run(store, result.run_id)
    assert (finished.status, finished.limit) == ("limited", result.limit)
    await store.close()


async def test_a_critic_that_never_approves_on_a_flaky_server_ends_limited_or_failed_classified(
    tmp_path: Path, servers: Servers, models: Models
) -> None:
    def never(chat: Chat) -> dict[str, Any]:
        if chat.agent == "critic":
            return {"content": json.dumps({"approved": False, "notes": "again"})}
        return schema_answer(chat)

    server = servers(rate=0.2, seed=4, answer=never)
    workflow = critique_loop(models(server, timeout=0.5), max_iterations=4)
    store = SQLiteStore(tmp_path / "loop.db")
    results = await asyncio.gather(*(workflow.run(f"post {n}", store=store) for n in range(12)))
    for result in results:
        answered = [e.event for e in await store.read(result.run_id) if isinstance(e.event, ModelCalled)]
        assert len(answered) <= 4 * 2 * 2  # iterations x agents x (1 + max_reasks)
        if result.status is RunStatus.FAILED:
            assert result.error is not None
            assert isinstance(root_cause(result.error), CLASSIFIED)
        else:
            assert result.status is RunStatus.LIMITED
            assert result.limit in ("max_iterations", "no_progress")
    await store.close()
    outcomes = Counter(outcome(result) for result in results)
    assert outcomes["completed"] == 0
    assert sum(n for o, n in outcomes.items() if o.startswith("limited:")) >= 6
    assert sum(server.injected.values()) > 0


# -- two agents handing off to each other forever -------------------------------------------------------------


def ping_pong(model: Model, *, max_handoffs: int) -> Any:
    def member(name: str) -> Any:
        agent = Agent(name, role=name.capitalize(), model=model, output=Pass, retry=FAST)

        async def answer(state: Conversation, item: Any = None) -> Any:
            decision = await agent(state, item)
            return Handoff(decision.handoff_to, decision.note) if decision.handoff_to != "none" else decision.answer

        answer.__name__ = name
        return answer

    return handoff([member("billing"), member("tech")], start="billing", max_handoffs=max_handoffs)


async def test_two_agents_handing_off_to_each_other_forever_end_at_the_handoff_limit(tmp_path: Path) -> None:
    model = TestModel(
        {
            "billing": [{"handoff_to": "tech", "note": "a technical question"}] * FOREVER,
            "tech": [{"handoff_to": "billing", "note": "a billing question"}] * FOREVER,
        }
    )
    store = SQLiteStore(tmp_path / "handoff.db")
    result = await ping_pong(model, max_handoffs=6).run("my invoice is wrong", store=store)
    assert result.status is RunStatus.LIMITED
    assert result.limit in ("max_handoffs", "max_iterations", "no_progress")
    assert len(model.calls) <= 6 + 1  # each handoff is one call, and one more that tried to hand off again
    assert result.steps <= 6 + 1
    handoffs = [t for t in result.state.turns if t.kind == "handoff"]
    assert 1 <= len(handoffs) <= 6
    assert result.state.result is None
    assert (await limited_run(store, result.run_id)).limit == result.limit
    await store.close()


# -- a supervisor that never says done ------------------------------------------------------------------------


async def test_a_supervisor_that_never_says_done_ends_at_its_round_limit(tmp_path: Path) -> None:
    model = TestModel({"lead": [{"next": "writer"}] * FOREVER})
    lead = Agent("lead", role="Lead", model=model, output=Decision, retry=FAST)

    async def route(state: Conversation) -> Any:
        decision = await lead(state)
        return Done() if decision.next == "done" else decision.next

    route.__name__ = "lead"
    writer = Agent("writer", role="Writer", model=model, retry=FAST)
    editor = Agent("editor", role="Editor", model=model, retry=FAST)
    store = SQLiteStore(tmp_path / "team.db")
    result = await supervisor(route, [writer, editor], max_rounds=5).run("a post about tides", store=store)
    assert result.status is RunStatus.LIMITED
    assert result.limit in ("max_rounds", "max_iterations", "no_progress")
    calls = Counter(request.agent for request in model.calls)
    assert calls["lead"] <= 5 + 1
    assert calls["writer"] <= 5
    assert calls["editor"] == 0
    assert result.state.by("writer")  # the work done so far is kept
    assert (await limited_run(store, result.run_id)).limit == result.limit
    await store.close()


# -- a planner's storm of subtasks ----------------------------------------------------------------------------


def storm(model: Model) -> Any:
    plan = Agent("plan", role="Planner", model=model, output=Plan, retry=FAST)
    worker = Agent("worker", role="Worker", model=model, retry=FAST)
    synthesize = Agent("synthesize", role="Editor", model=model, retry=FAST)

    async def subtasks(state: Conversation) -> list[str]:
        return list((await plan(state)).subtasks)

    subtasks.__name__ = "plan"
    return planner(subtasks, worker, synthesize, max_subtasks=1_000)


async def test_a_storm_of_subtasks_is_stopped_before_it_starts_by_max_steps(tmp_path: Path) -> None:
    model = TestModel({"plan": [{"subtasks": [f"part {n}" for n in range(300)]}]})
    store = SQLiteStore(tmp_path / "storm.db")
    result = await storm(model).run("everything", store=store, limits=Limits(max_steps=50))
    assert (result.status, result.limit) == (RunStatus.LIMITED, "max_steps")
    assert Counter(request.agent for request in model.calls) == Counter({"plan": 1})  # no worker started
    assert result.steps <= 50
    assert result.state.turns[0].kind == "plan"  # the plan is kept
    await store.close()


# -- parallel branches racing for one budget ------------------------------------------------------------------


BRANCHES = 4


@pytest.mark.parametrize(
    ("limits", "limit", "calls_to_reach"),
    [
        (Limits(max_model_calls=10), "max_model_calls", 10),
        (Limits(max_tokens=1_000), "max_tokens", 10),  # 100 tokens a call
        (Limits(max_cost_usd=0.10), "max_cost_usd", 10),  # $0.01 a call
    ],
    ids=["calls", "tokens", "cost"],
)
async def test_parallel_branches_overshoot_a_budget_by_at_most_the_calls_in_flight(
    limits: Limits,
    limit: str,
    calls_to_reach: int,
    tmp_path: Path,
    servers: Servers,
    models: Models,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = servers(answer=always_a_tool_call, usage=(80, 20))
    model = models(server, name="budget")
    monkeypatch.setitem(PRICES, "budget", Price(100.0, 100.0))  # 100 tokens: $0.01
    workflow = race(model, BRANCHES, FAST)
    store = SQLiteStore(tmp_path / "budget.db")
    result = await workflow.run({}, store=store, limits=limits)
    assert (result.status, result.limit) == (RunStatus.LIMITED, limit)
    # each call is checked against the budget before it starts, never stopped once started: with N branches the
    # calls already in flight when the budget is reached (at most N - 1 besides the one that reaches it) overshoot
    assert calls_to_reach <= server.requests <= calls_to_reach + BRANCHES - 1
    answered = [e.event for e in await store.read(result.run_id) if isinstance(e.event, ModelCalled)]
    assert calls_to_reach <= len(answered) <= server.requests  # calls cut short by the limit are not journaled
    assert result.usage.input_tokens + result.usage.output_tokens == 100 * len(answered)
    await store.close()


async def test_a_fan_out_storm_under_a_call_budget(tmp_path: Path, servers: Servers, models: Models) -> None:
    subtasks = [f"part {n}" for n in range(30)]

    def answer(chat: Chat) -> dict[str, Any]:
        if chat.agent == "plan":
            return {"content": json.dumps({"subtasks": subtasks})}
        return schema_answer(chat)

    server = servers(answer=answer)
    store = SQLiteStore(tmp_path / "storm.db")
    result = await storm(models(server)).run("everything", store=store, limits=Limits(max_model_calls=10))
    assert (result.status, result.limit) == (RunStatus.LIMITED, "max_model_calls")
    # the planner's call, then 30 workers checked the budget at once (1 call spent of 10): all 30 were let through
    assert 10 <= server.requests <= 10 + len(subtasks) - 1
    assert not any(t.speaker == "synthesize" for t in result.state.turns)
    await store.close()
