"""Budgets: a run's model calls, tokens and money are checked before every model call, across branches."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from podium import END, START, Agent, Graph, Limits, RunStatus, SQLiteStore, reducers
from podium.models import PRICES, Message, ModelRequest, ModelResponse, Price, ToolCall, Usage


class Notes(BaseModel):
    answers: Annotated[list[str], reducers.append] = []


class Priced:
    """A model whose every call costs 1,000 input tokens (priced by the test) and answers after ``delay``."""

    def __init__(self, *, tool_rounds: int = 0, delay: float = 0.0) -> None:
        self.name = "priced-test-model"
        self.calls = 0
        self.tool_rounds = tool_rounds
        self.delay = delay

    async def complete(self, request: ModelRequest) -> ModelResponse:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.calls <= self.tool_rounds:
            call = ToolCall(id=f"c{self.calls}", name="nothing", arguments={})
            message = Message(role="assistant", tool_calls=(call,))
        else:
            message = Message(role="assistant", content=f"answer {self.calls}")
        return ModelResponse(message=message, usage=Usage(input_tokens=1000, output_tokens=0), model=self.name)


@pytest.fixture(autouse=True)
def priced() -> Any:
    PRICES["priced-test-model"] = Price(10.0, 0.0)  # $0.01 a call
    yield
    del PRICES["priced-test-model"]


def agents_in_a_row(model: Priced, count: int) -> Any:
    graph = Graph(Notes, name="row")
    names = []
    for n in range(count):
        graph.add(Agent(f"a{n}", model=model, max_turns=20), name=f"a{n}", into="answers")
        names.append(f"a{n}")
    graph.chain(START, *names, END)
    return graph.build()


@pytest.mark.parametrize(
    ("limits", "calls", "limit", "reason"),
    [
        (Limits(max_model_calls=3), 3, "max_model_calls", "max_model_calls=3 reached"),
        (Limits(max_tokens=2500), 3, "max_tokens", "max_tokens=2500 reached: 3000 tokens used"),
        (Limits(max_cost_usd=0.025), 3, "max_cost_usd", "max_cost_usd=0.025 reached: $0.0300 spent"),
    ],
)
async def test_a_spent_budget_stops_the_next_model_call(limits: Limits, calls: int, limit: str, reason: str) -> None:
    model = Priced()
    result = await agents_in_a_row(model, 5).run(limits=limits, store=False)
    assert (result.status, result.limit, result.reason) == (RunStatus.LIMITED, limit, reason)
    assert model.calls == calls  # never a call after the budget was spent
    assert result.state.answers == ["answer 1", "answer 2", "answer 3"]  # the best partial result
    assert result.usage.input_tokens == 3000


async def test_the_budget_counts_every_call_inside_an_agents_loop() -> None:
    model = Priced(tool_rounds=10)
    result = await agents_in_a_row(model, 1).run(limits=Limits(max_model_calls=4), store=False)
    assert (result.status, result.limit) == (RunStatus.LIMITED, "max_model_calls")
    assert model.calls == 4


async def test_parallel_branches_share_one_budget_and_overshoot_by_at_most_the_calls_in_flight() -> None:
    model = Priced(delay=0.05)
    graph = Graph(Notes, name="fan")
    for n in range(4):
        graph.add(Agent(f"p{n}", model=model), name=f"p{n}", into="answers")
        graph.edge(START, f"p{n}")
    graph.add(Agent("after", model=model), name="after", into="answers")
    graph.join([f"p{n}" for n in range(4)], "after")
    result = await graph.build().run(limits=Limits(max_model_calls=2), store=False)
    assert (result.status, result.limit) == (RunStatus.LIMITED, "max_model_calls")
    assert model.calls == 4  # the four branches started together, each checked before its call: an overshoot of 2
    assert len(result.state.answers) == 4
    # and nothing started once the budget was seen spent: "after" never called the model


async def test_a_resumed_run_keeps_counting_from_its_journal(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "j.db")
    first = await agents_in_a_row(Priced(), 5).run(run_id="r", limits=Limits(max_model_calls=2), store=store)
    assert first.status is RunStatus.LIMITED
    model = Priced()
    resumed = await agents_in_a_row(model, 5).resume("r", limits=Limits(max_model_calls=4), store=store)
    assert (resumed.status, resumed.limit) == (RunStatus.LIMITED, "max_model_calls")
    assert model.calls == 2  # 2 before + 2 now = the new budget of 4
    assert resumed.usage.input_tokens == 4000
