"""Many runs of real workflows against a flaky model server: every run completes with a valid output or fails with a
classified error, none hangs, every failed attempt is journaled, and the circuit breaker sends calls to a fallback
when the model keeps failing (and says so in the journal)."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from podium import END, START, Agent, Graph, ModelTransientError, RetryPolicy, RunStatus, SQLiteStore
from podium.journal import BreakerChanged, ModelCalled, ModelFailed
from podium.models import Message, ModelRequest, ModelResponse, Usage
from podium.models._openai import OpenAICompatible
from podium.runtime._breaker import breaker_for
from tests.faults.conftest import Models, Servers
from tests.faults.plan import Fault, observed
from tests.faults.server import FlakyServer
from tests.faults.workflows import SHAPES, Audit, Crew, Job, Summary, agent_step, audit, outcome, run_all

FAST = RetryPolicy(max_attempts=2, initial_interval=0.001, backoff=2.0, max_interval=0.05, jitter=0.1)
"""Short waits, so that the suite is quick; two attempts, so that some calls fail for good."""
CLASSIFIED_NAMES = {"ModelTransientError", "ModelPermanentError", "AgentOutputError", "AgentError"}


def expected_failures(server: FlakyServer) -> Counter[str]:
    """The journal's failed attempts that the server's faults must have caused, grouped as the client sees them."""
    return Counter(observed(k) for k, n in server.injected.items() for _ in range(n) if k is not Fault.OFF_SCHEMA)


def expected_calls(server: FlakyServer) -> int:
    """Answered calls: healthy answers and those that did not fit (the agent re-asks, as a new call)."""
    return server.count("ok") + server.count(Fault.OFF_SCHEMA)


@dataclass(frozen=True, kw_only=True)
class Soak:
    """What a batch of runs ended with, what their journal says, and the servers and models they used."""

    outcomes: Counter[str]
    found: Audit
    server: FlakyServer
    model: OpenAICompatible
    backup_server: FlakyServer | None
    backup: OpenAICompatible | None


async def soak(
    tmp_path: Path,
    servers: Servers,
    models: Models,
    *,
    runs_per_shape: int,
    seed: int,
    fallback: bool,
    concurrency: int = 8,
    cover: bool = True,
) -> Soak:
    """``runs_per_shape`` runs of every workflow shape (every other one streamed) at a 20% fault rate; with
    ``cover``, the first requests get one fault of each kind (so every kind is seen whatever the draws)."""
    server = servers(rate=0.2, seed=seed)
    if cover:
        server.force(*Fault)
    model = models(server, name="primary", timeout=0.5)
    backup_server = servers(rate=0.2, seed=seed + 1000) if fallback else None
    backup = models(backup_server, name="backup", timeout=0.5) if backup_server is not None else None
    for each in (model, backup):
        if each is not None:  # the breakers are the subject of the tests below; here they only keep out of the way
            breaker_for(each.name, failure_threshold=1_000)
    crew = Crew(model=model, retry=FAST, fallbacks=(backup,) if backup is not None else ())
    shapes = [make(crew) for make in SHAPES.values()]
    store = SQLiteStore(tmp_path / "faults.db")
    jobs = [(shape, n, n % 2 == 1) for n in range(runs_per_shape) for shape in shapes]
    results = await run_all(jobs, store, concurrency=concurrency)
    outcomes = Counter(outcome(result, shape.output) for shape, result in results)
    found = await audit(store, [result.run_id for _, result in results if result is not None])
    await store.close()
    return Soak(outcomes=outcomes, found=found, server=server, model=model, backup_server=backup_server, backup=backup)


def check_soak(batch: Soak, runs: int) -> None:
    outcomes, found = batch.outcomes, batch.found
    # every run completed with a valid output or failed with a classified error: no hang, no unclassified crash
    assert sum(outcomes.values()) == runs
    allowed = {"completed"} | {f"failed:{name}" for name in CLASSIFIED_NAMES}
    assert set(outcomes) <= allowed, outcomes
    # every failed attempt that reached a model is journaled, as the kind of failure its server injected
    for server, model in ((batch.server, batch.model), (batch.backup_server, batch.backup)):
        if server is not None and model is not None:
            assert found.failed.get(model.name, Counter()) == expected_failures(server)
            assert found.called[model.name] == expected_calls(server)
    assert found.step_failures.keys() <= CLASSIFIED_NAMES
    failed_runs = sum(n for o, n in outcomes.items() if o.startswith("failed:"))
    assert sum(found.step_failures.values()) >= failed_runs  # (a fan-out may lose several branches in one run)
    # a 429 that said how long to wait was waited on at least that long
    assert found.waits
    assert all(waited >= asked for asked, waited in found.waits)


async def test_runs_of_every_shape_complete_or_fail_classified_and_every_fault_is_journaled(
    tmp_path: Path, servers: Servers, models: Models
) -> None:
    batch = await soak(tmp_path, servers, models, runs_per_shape=24, seed=3, fallback=False)
    check_soak(batch, runs=96)
    assert set(batch.server.injected) == set(Fault)
    assert sum(batch.server.injected.values()) >= 0.15 * batch.server.requests
    # with two attempts per call and one re-ask most runs still complete; a refused request fails its run
    assert batch.outcomes["completed"] >= 0.6 * 96
    assert batch.outcomes["failed:ModelPermanentError"] > 0
    assert batch.found.retries > 0


async def test_with_a_fallback_model_the_runs_survive_the_faults_of_both(
    tmp_path: Path, servers: Servers, models: Models
) -> None:
    batch = await soak(tmp_path, servers, models, runs_per_shape=12, seed=2, fallback=True)
    check_soak(batch, runs=48)
    assert batch.backup is not None
    assert batch.found.called[batch.backup.name] > 0  # the fallback answered some calls
    assert batch.outcomes["completed"] >= 0.8 * 48


@pytest.mark.slow
async def test_soak(tmp_path: Path, servers: Servers, models: Models) -> None:
    """A longer soak (CI runs it too): 480 runs, with fallbacks, 16 at a time."""
    batch = await soak(tmp_path, servers, models, runs_per_shape=120, seed=3, fallback=True, concurrency=16)
    check_soak(batch, runs=480)


async def test_the_same_seed_gives_the_same_faults_and_outcomes(
    tmp_path: Path, servers: Servers, models: Models
) -> None:
    async def batch(seed: int, folder: str) -> Soak:
        (tmp_path / folder).mkdir()
        return await soak(tmp_path / folder, servers, models, runs_per_shape=3, seed=seed, fallback=False, cover=False)

    first, again = await batch(11, "a"), await batch(11, "b")
    assert first.server.injected  # (concurrent runs: the faults follow the requests, not the order they arrive in)
    assert (first.outcomes, first.server.injected, first.server.requests) == (
        again.outcomes,
        again.server.injected,
        again.server.requests,
    )


@pytest.mark.parametrize(
    ("shape", "forced", "expected", "steps"),
    [
        ("agent_step", [Fault.OFF_SCHEMA], "AgentOutputError", 1),  # its agent has no re-ask
        ("pipeline", ["ok", Fault.OFF_SCHEMA, Fault.NOT_JSON, Fault.OFF_SCHEMA], "AgentOutputError", 1),  # one re-ask
        ("agent_step", [Fault.RATE_LIMITED, Fault.HANG], "ModelTransientError", 1),  # two attempts
        ("fan_out", Fault.TRUNCATED, "ModelTransientError", 3),  # an outage: every branch fails, none is cancelled
        ("team", [Fault.BAD_REQUEST], "ModelPermanentError", 1),  # never retried
    ],
)
async def test_each_way_a_run_fails_is_classified_and_journaled(
    shape: str,
    forced: list[Fault | str] | Fault,
    expected: str,
    steps: int,
    tmp_path: Path,
    servers: Servers,
    models: Models,
) -> None:
    server = servers()
    if isinstance(forced, Fault):
        server.outage(forced)
    else:
        server.force(*forced)
    made = SHAPES[shape](Crew(model=models(server, timeout=0.3), retry=FAST))
    store = SQLiteStore(tmp_path / "one.db")
    result = await made.workflow.run(made.input(0), store=store)
    assert outcome(result, made.output) == f"failed:{expected}"
    found = await audit(store, [result.run_id])
    await store.close()
    assert found.step_failures == Counter({expected: steps})
    assert found.failed.get("flaky", Counter()) == expected_failures(server)


# -- the circuit breaker and the fallback -----------------------------------------------------------------------


async def test_a_burst_of_failures_opens_the_breaker_and_sends_calls_to_the_fallback(
    tmp_path: Path, servers: Servers, models: Models
) -> None:
    flaky, healthy = servers(), servers()
    primary, backup = models(flaky, name="primary"), models(healthy, name="backup")
    breaker = breaker_for(primary.name, failure_threshold=3, reset_after=3_600)
    shape = agent_step(Crew(model=primary, retry=FAST, fallbacks=(backup,)))
    store = SQLiteStore(tmp_path / "breaker.db")
    flaky.outage(Fault.UNAVAILABLE)

    burst = [await shape.workflow.run(shape.input(n), store=store) for n in range(6)]
    assert [r.status for r in burst] == [RunStatus.COMPLETED] * 6  # every run answered by the fallback
    # run 0: two attempts fail (breaker at 2 failures); run 1: the third opens it, so no second attempt;
    # runs 2-5: the primary is not called at all
    assert flaky.requests == 3
    assert healthy.requests == 6
    journals = [[e.event for e in await store.read(r.run_id)] for r in burst]
    failed = [[(e.model, e.attempt) for e in events if isinstance(e, ModelFailed)] for events in journals]
    assert failed == [
        [("primary", 1), ("primary", 2)],
        [("primary", 1)],
        *[[("primary", 0)]] * 4,  # attempt 0: skipped, its breaker open
    ]
    changes = [[(e.model, e.state) for e in events if isinstance(e, BreakerChanged)] for events in journals]
    assert changes == [[], [("primary", "open")], [], [], [], []]
    called = [[e.model for e in events if isinstance(e, ModelCalled)] for events in journals]
    assert called == [["backup"]] * 6

    # the endpoint recovers; once the breaker's wait is over, one trial call closes it again
    flaky.heal()
    breaker.opened_at -= 3_600
    recovered = await shape.workflow.run(shape.input(6), store=store)
    events = [e.event for e in await store.read(recovered.run_id)]
    assert [(e.model, e.state) for e in events if isinstance(e, BreakerChanged)] == [("primary", "closed")]
    assert [e.model for e in events if isinstance(e, ModelCalled)] == ["primary"]
    assert (flaky.requests, healthy.requests) == (4, 6)
    await store.close()


async def test_a_failed_trial_call_opens_the_breaker_again(tmp_path: Path, servers: Servers, models: Models) -> None:
    flaky, healthy = servers(), servers()
    primary, backup = models(flaky, name="primary", timeout=0.3), models(healthy, name="backup")
    breaker = breaker_for(primary.name, failure_threshold=1, reset_after=3_600)
    shape = agent_step(Crew(model=primary, retry=FAST, fallbacks=(backup,)))
    store = SQLiteStore(tmp_path / "breaker.db")
    flaky.force(Fault.RATE_LIMITED, Fault.HANG)
    first = await shape.workflow.run(shape.input(0), store=store)
    breaker.opened_at -= 3_600
    trial = await shape.workflow.run(shape.input(1), store=store)
    assert (first.status, trial.status) == (RunStatus.COMPLETED, RunStatus.COMPLETED)
    events = [e.event for e in await store.read(trial.run_id)]
    assert [(e.model, e.state) for e in events if isinstance(e, BreakerChanged)] == [("primary", "open")]
    assert [(e.model, e.attempt, e.retry_in) for e in events if isinstance(e, ModelFailed)] == [("primary", 1, None)]
    assert breaker.state == "open"
    await store.close()


@pytest.mark.parametrize("trial", ["permanent", "cancelled"])
async def test_a_trial_call_that_ends_without_a_transient_failure_does_not_wedge_the_breaker(
    trial: str, tmp_path: Path, servers: Servers, models: Models
) -> None:
    flaky, healthy = servers(), servers()
    primary, backup = models(flaky, name="primary", timeout=5.0), models(healthy, name="backup")
    breaker = breaker_for(primary.name, failure_threshold=1, reset_after=3_600)
    crew = Crew(model=primary, retry=FAST, fallbacks=(backup,))
    shape = agent_step(crew)
    store = SQLiteStore(tmp_path / "breaker.db")
    flaky.force(Fault.UNAVAILABLE)
    await shape.workflow.run(shape.input(0), store=store)  # opens the breaker
    breaker.opened_at -= 3_600
    if trial == "permanent":
        flaky.force(Fault.BAD_REQUEST)  # the trial: a request the server refuses (too long), not a sign of ill health
        await shape.workflow.run(shape.input(1), store=store)
    else:
        flaky.force(Fault.HANG)  # the trial hangs, and its run is cancelled while it waits
        handle = shape.workflow.start(shape.input(1), store=store)
        for _ in range(500):  # until the trial request reaches the server (5 s at most)
            if flaky.requests == 2:
                break
            await asyncio.sleep(0.01)
        handle.cancel("enough")
        assert (await handle).status is RunStatus.CANCELLED
    # the endpoint is healthy again: the breaker must let a call through, now or after its wait
    breaker.opened_at -= 3_600
    later = await shape.workflow.run(shape.input(2), store=store)
    await store.close()
    assert later.status is RunStatus.COMPLETED
    assert flaky.requests == 3, f"the healthy primary was not called again: its breaker stayed {breaker.state}"


class SlowOrDown:
    """A model whose agent ``slow`` gets an answer after ``delay`` s, and every other agent a 503 at once."""

    name = "slow-or-down"

    def __init__(self, delay: float) -> None:
        self.delay = delay

    async def complete(self, request: ModelRequest) -> ModelResponse:
        if request.agent != "slow":
            raise ModelTransientError("service unavailable", model=self.name, status=503)
        await asyncio.sleep(self.delay)
        return ModelResponse(message=Message(role="assistant", content="late"), usage=Usage(), model=self.name)


async def test_a_success_that_was_in_flight_when_the_breaker_opened_does_not_close_it() -> None:
    model = SlowOrDown(delay=0.2)
    breaker = breaker_for(model.name, failure_threshold=1, reset_after=3_600)
    slow = Agent("slow", model=model, retry=None)
    in_flight = asyncio.create_task(slow.ask("a long answer"))
    await asyncio.sleep(0.05)  # the slow call is under way
    with pytest.raises(ModelTransientError):
        await Agent("fast", model=model, retry=None).ask("a quick one")
    assert breaker.state == "open"
    assert await in_flight == "late"
    assert breaker.state == "open"  # an hour to wait, whatever the calls admitted before had to say


# -- agents that name their model by a spec string -------------------------------------------------------------


@pytest.mark.parametrize("spec", ["url", "openai"])
async def test_agents_named_by_a_spec_string_retry_through_the_faults(
    spec: str, tmp_path: Path, servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = servers()
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    name = f"{server.base_url}#flaky-1" if spec == "url" else "openai:flaky-1"
    agent = Agent("summarizer", model=name, output=Summary, retry=FAST)
    graph = Graph(Job, name="spec")
    graph.add(agent, name="summarizer", into="summary")
    graph.chain(START, "summarizer", END)
    server.force(Fault.RATE_LIMITED_BARE, "ok", Fault.NOT_JSON, Fault.MISSING_FIELDS)
    store = SQLiteStore(tmp_path / "spec.db")
    first, second = [await graph.build(output="summary").run({"topic": f"t{n}"}, store=store) for n in range(2)]
    assert outcome(first, Summary) == "completed"
    assert outcome(second, Summary) == "failed:ModelTransientError"
    found = await audit(store, [first.run_id, second.run_id])
    await store.close()
    assert found.failed == {name: Counter({"http-429": 1, "malformed": 2})}
    assert found.called == Counter({name: 1})


async def test_an_agent_named_by_a_spec_string_keeps_one_client(servers: Servers) -> None:
    server = servers()
    agent = Agent("summarizer", model=f"{server.base_url}#flaky-1", output=Summary, retry=FAST)
    for n in range(10):
        await agent.ask(f"topic {n}")
    assert server.requests == 10
    assert server.connections == 1  # one keep-alive connection, as with a model object or use_model()
