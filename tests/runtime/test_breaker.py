"""Circuit breakers and fallbacks: a failing model is left alone for a while, and the agent asks the next one."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from podium import END, START, Agent, Graph, ModelPermanentError, ModelTransientError, RetryPolicy, RunStatus
from podium.journal import BreakerChanged, ModelCalled, ModelFailed, SQLiteStore
from podium.models import Message, ModelRequest, ModelResponse, Usage
from podium.runtime._breaker import CircuitBreaker, breaker_for

NO_RETRY = RetryPolicy(max_attempts=1)
FAST = RetryPolicy(max_attempts=3, initial_interval=0.0, jitter=0.0)


class Box(BaseModel):
    value: str = ""


class Endpoint:
    """A model that fails with ``error`` while ``down``, else answers with its name."""

    def __init__(self, name: str, error: Exception | None = None) -> None:
        self.name = name
        self.error = error
        self.calls = 0

    async def complete(self, request: ModelRequest) -> ModelResponse:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return ModelResponse(message=Message(role="assistant", content=self.name), usage=Usage(), model=self.name)


def one_agent(agent: Agent) -> Any:
    graph = Graph(Box, name="ask")
    graph.add(agent, name="ask", into="value")
    graph.chain(START, "ask", END)
    return graph.build()


def down(name: str) -> Endpoint:
    return Endpoint(name, ModelTransientError("service unavailable", model=name, status=503))


async def test_a_model_that_keeps_failing_hands_over_to_the_fallback(tmp_path: Path) -> None:
    primary, backup = down("primary"), Endpoint("backup")
    store = SQLiteStore(tmp_path / "j.db")
    result = await one_agent(Agent("a", model=primary, fallbacks=[backup], retry=FAST)).run(store=store)
    assert result.state.value == "backup"
    assert primary.calls == 3  # its retries first
    events = [e.event for e in await store.read(result.run_id)]
    assert [e.model for e in events if isinstance(e, ModelFailed)] == ["primary"] * 3
    assert [e.model for e in events if isinstance(e, ModelCalled)] == ["backup"]


async def test_a_permanent_failure_goes_to_the_fallback_without_retrying() -> None:
    primary = Endpoint("primary", ModelPermanentError("model not found", model="primary", status=404))
    backup = Endpoint("backup")
    result = await one_agent(Agent("a", model=primary, fallbacks=[backup], retry=FAST)).run(store=False)
    assert result.state.value == "backup"
    assert primary.calls == 1


async def test_a_provider_bug_is_a_journaled_permanent_failure_that_goes_to_the_fallback(tmp_path: Path) -> None:
    primary, backup = Endpoint("primary", KeyError("choices")), Endpoint("backup")
    store = SQLiteStore(tmp_path / "j.db")
    result = await one_agent(Agent("a", model=primary, fallbacks=[backup], retry=FAST)).run(store=store)
    assert result.state.value == "backup"
    assert primary.calls == 1  # permanent: not retried
    (failed,) = [e.event for e in await store.read(result.run_id) if isinstance(e.event, ModelFailed)]
    assert failed.error_type == "ModelPermanentError"
    assert "KeyError" in failed.message


async def test_when_every_model_fails_the_last_error_fails_the_step() -> None:
    result = await one_agent(Agent("a", model=down("p"), fallbacks=[down("q")], retry=NO_RETRY)).run(store=False)
    assert result.status is RunStatus.FAILED
    assert "model q" in str(result.error)


async def test_an_open_breaker_sends_calls_straight_to_the_fallback(tmp_path: Path) -> None:
    primary, backup = down("flaky-endpoint"), Endpoint("backup")
    breaker = breaker_for("flaky-endpoint", failure_threshold=3, reset_after=60.0)
    store = SQLiteStore(tmp_path / "j.db")
    agent = Agent("a", model=primary, fallbacks=[backup], retry=NO_RETRY)
    for _ in range(3):
        assert (await one_agent(agent).run(store=store)).state.value == "backup"
    assert breaker.state == "open"
    assert primary.calls == 3
    result = await one_agent(agent).run(store=store)  # another run, same process: the breaker is shared
    assert result.state.value == "backup"
    assert primary.calls == 3  # not called at all
    changes = [
        e.event
        for run in await store.list_runs()
        for e in await store.read(run.run_id)
        if isinstance(e.event, BreakerChanged)
    ]
    assert [(c.model, c.state) for c in changes] == [("flaky-endpoint", "open")]


async def test_a_half_open_breaker_lets_one_trial_through_and_closes_on_success() -> None:
    breaker = breaker_for("recovering", failure_threshold=1, reset_after=0.05)
    primary, backup = down("recovering"), Endpoint("backup")
    agent = Agent("a", model=primary, fallbacks=[backup], retry=NO_RETRY)
    await one_agent(agent).run(store=False)
    assert breaker.state == "open"
    await asyncio.sleep(0.06)
    primary.error = None  # the endpoint is back
    assert (await one_agent(agent).run(store=False)).state.value == "recovering"
    assert str(breaker.state) == "closed"  # (str: mypy narrowed the state to "open" above)


def test_the_breakers_states() -> None:
    breaker = CircuitBreaker(name="m", failure_threshold=2, reset_after=10.0)
    assert breaker.allows(0.0)
    assert breaker.failed(0.0) is None
    assert breaker.failed(1.0) == "open"
    assert not breaker.allows(5.0)
    assert breaker.allows(11.0)
    assert breaker.allows(11.0)  # asking takes nothing
    assert breaker.admit(11.0) == "trial"  # half-open: one trial
    assert breaker.state == "half-open"
    assert breaker.admit(11.5) is None  # only one
    assert not breaker.allows(11.5)
    assert breaker.failed(12.0) == "open"  # the trial failed
    assert breaker.admit(22.5) == "trial"
    assert breaker.succeeded(trial=False) is None  # a call from before it opened closes nothing
    assert breaker.succeeded(trial=True) == "closed"
    assert breaker.failures == 0


def test_a_trial_that_ends_without_a_verdict_lets_the_next_call_try() -> None:
    breaker = CircuitBreaker(name="m", failure_threshold=1, reset_after=10.0)
    assert breaker.failed(0.0) == "open"
    assert breaker.admit(11.0) == "trial"
    breaker.release()  # a permanent error or a cancellation
    assert breaker.admit(11.5) == "trial"
