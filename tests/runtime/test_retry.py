"""Retry policies: transient failures are tried again with backoff, permanent ones are not; every attempt is
journaled, and the waits are the same on a replay."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from podium import (
    END,
    START,
    Agent,
    ConfigError,
    Graph,
    ModelPermanentError,
    ModelTransientError,
    RetryPolicy,
    RunStatus,
    SQLiteStore,
    context,
)
from podium.journal import ModelFailed, StepCompleted, StepFailed
from podium.models import Message, ModelRequest, ModelResponse, Usage

FAST = RetryPolicy(max_attempts=3, initial_interval=0.01, backoff=2.0, jitter=0.0)


class Box(BaseModel):
    value: str = ""
    attempts: list[int] = []


class Flaky:
    """Fails with the given errors, one per call, then succeeds."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.attempts: list[int] = []

    async def __call__(self, state: Box) -> dict[str, Any]:
        self.attempts.append(context().attempt)
        if self.errors:
            raise self.errors.pop(0)
        return {"value": "done"}


def one_step(fn: Any, **options: Any) -> Any:
    graph = Graph(Box, name="retrying")
    graph.add(fn, name="flaky", **options)
    graph.chain(START, "flaky", END)
    return graph.build()


async def test_transient_failures_are_retried_and_every_attempt_journaled(tmp_path: Path) -> None:
    flaky = Flaky(TimeoutError("slow"), ConnectionResetError("reset"))
    store = SQLiteStore(tmp_path / "j.db")
    result = await one_step(flaky, retry=FAST).run(store=store)
    assert result.status is RunStatus.COMPLETED
    assert flaky.attempts == [1, 2, 3]
    events = [e.event for e in await store.read(result.run_id)]
    failed = [e for e in events if isinstance(e, StepFailed)]
    assert [(f.attempt, f.error_type, f.retry_in) for f in failed] == [
        (1, "TimeoutError", 0.01),
        (2, "ConnectionResetError", 0.02),
    ]
    (completed,) = [e for e in events if isinstance(e, StepCompleted)]
    assert completed.attempt == 3


async def test_permanent_failures_are_not_retried() -> None:
    flaky = Flaky(ValueError("a bug"))
    result = await one_step(flaky, retry=FAST).run(store=False)
    assert result.status is RunStatus.FAILED
    assert flaky.attempts == [1]


async def test_the_last_attempt_fails_the_run_naming_its_number() -> None:
    flaky = Flaky(*[TimeoutError("slow")] * 5)
    result = await one_step(flaky, retry=FAST).run(store=False)
    assert result.status is RunStatus.FAILED
    assert flaky.attempts == [1, 2, 3]
    assert result.error is not None
    assert result.error.attempt == 3
    assert "attempt 3" in str(result.error)


class Flaked(Exception):
    pass


async def test_retry_on_and_non_retryable_adjust_the_classification() -> None:
    own = Flaky(Flaked("try again"))
    assert (await one_step(own, retry=RetryPolicy(initial_interval=0, retry_on=(Flaked,))).run(store=False)).ok
    never = Flaky(TimeoutError("give up"))
    policy = RetryPolicy(initial_interval=0, non_retryable=(TimeoutError,))
    assert (await one_step(never, retry=policy).run(store=False)).status is RunStatus.FAILED
    assert never.attempts == [1]


def test_backoff_caps_honours_retry_after_and_jitters_the_same_way_twice() -> None:
    policy = RetryPolicy(initial_interval=1.0, backoff=3.0, max_interval=5.0, jitter=0.0)
    assert [policy.delay(n, "t") for n in (1, 2, 3, 4)] == [1.0, 3.0, 5.0, 5.0]
    busy = ModelTransientError("busy", model="m", status=429, retry_after=7.5)
    assert policy.delay(1, "t", busy) == 7.5
    jittered = RetryPolicy(initial_interval=10.0, jitter=0.2)
    waits = {jittered.delay(1, f"task-{n}") for n in range(50)}
    assert all(8.0 <= w <= 12.0 for w in waits)
    assert len(waits) > 40  # spread out
    assert jittered.delay(1, "task-7") == jittered.delay(1, "task-7")  # and the same on a replay
    with pytest.raises(ConfigError):
        RetryPolicy(max_attempts=0)


async def test_a_cancel_during_a_retry_wait_ends_the_run_at_once() -> None:
    slow = RetryPolicy(max_attempts=5, initial_interval=30.0, jitter=0.0)
    handle = one_step(Flaky(*[TimeoutError()] * 5), retry=slow).start(store=False)
    await asyncio.sleep(0.1)
    handle.cancel("enough")
    result = await asyncio.wait_for(handle.result(), 2.0)
    assert result.status is RunStatus.CANCELLED


class Stuttering:
    """A model that fails with the given errors, then answers."""

    def __init__(self, *errors: Exception) -> None:
        self.name = "stuttering"
        self.errors = list(errors)
        self.calls = 0

    async def complete(self, request: ModelRequest) -> ModelResponse:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return ModelResponse(message=Message(role="assistant", content="hello"), usage=Usage(), model=self.name)


async def test_an_agent_retries_transient_model_failures_and_journals_them(tmp_path: Path) -> None:
    model = Stuttering(
        ModelTransientError("overloaded", model="stuttering", status=529),
        ModelTransientError("slow down", model="stuttering", status=429, retry_after=0.02),
    )
    agent = Agent("greeter", model=model, retry=FAST)
    store = SQLiteStore(tmp_path / "j.db")
    result = await one_step(agent, into="value").run(store=store)
    assert result.state.value == "hello"
    assert model.calls == 3
    failed = [e.event for e in await store.read(result.run_id) if isinstance(e.event, ModelFailed)]
    assert [(f.attempt, f.transient, f.retry_in) for f in failed] == [(1, True, 0.01), (2, True, 0.02)]


async def test_an_agent_does_not_retry_a_permanent_model_failure(tmp_path: Path) -> None:
    model = Stuttering(ModelPermanentError("bad request", model="stuttering", status=400))
    store = SQLiteStore(tmp_path / "j.db")
    result = await one_step(Agent("greeter", model=model, retry=FAST), into="value").run(store=store)
    assert result.status is RunStatus.FAILED
    assert model.calls == 1
    (failed,) = [e.event for e in await store.read(result.run_id) if isinstance(e.event, ModelFailed)]
    assert (failed.transient, failed.retry_in) == (False, None)


def test_a_server_asking_for_a_longer_wait_than_the_policy_allows_is_not_retried() -> None:
    from podium.errors import ModelTransientError

    policy = RetryPolicy(max_attempts=5, max_interval=30.0)
    assert policy.retries(ModelTransientError("slow down", model="m", status=429, retry_after=10.0), 1)
    assert not policy.retries(ModelTransientError("come back tomorrow", model="m", status=429, retry_after=86_400), 1)
