"""Fallbacks and alternative paths: an agent hands its task to another agent, a step to the next of its fallbacks,
and a failure can send the run down another path; every failure and every switch is journaled."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from podium import (
    END,
    START,
    Agent,
    Command,
    ConfigError,
    Failure,
    Graph,
    JournalOptions,
    ModelPermanentError,
    RetryPolicy,
    RunStatus,
    Send,
    SQLiteStore,
    StepFailedError,
    TestModel,
    WorkflowDefinitionError,
    context,
    divert,
    reducers,
    step,
)
from podium.journal import FallbackTaken, ModelCalled, StepCompleted, StepFailed
from podium.models import ModelRequest, ModelResponse

FAST = RetryPolicy(max_attempts=2, initial_interval=0.0, jitter=0.0)


class Draft(BaseModel):
    title: str
    words: int


class Box(BaseModel):
    draft: Draft | None = None
    value: str = ""
    log: Annotated[list[str], reducers.append] = []
    failure: Failure | None = None


def one_step(fn: Any, **options: Any) -> Any:
    graph = Graph(Box, name="one")
    graph.add(fn, name="work", **options)
    graph.chain(START, "work", END)
    return graph.build()


async def events_of(store: SQLiteStore, run_id: str) -> list[Any]:
    return [entry.event for entry in await store.read(run_id)]


# -- agents handing their task to another agent ---------------------------------------------------------------


async def test_an_agent_whose_answer_never_fits_hands_the_task_to_its_fallback_agent(tmp_path: Path) -> None:
    model = TestModel({"writer": ["not json", {"title": "T"}], "backup": [{"title": "Tides", "words": 300}]})
    backup = Agent("backup", model=model, output=Draft)
    writer = Agent("writer", model=model, output=Draft, max_reasks=1, fallbacks=[backup])
    store = SQLiteStore(tmp_path / "j.db")
    result = await one_step(writer, into="draft").run(store=store)
    assert result.status is RunStatus.COMPLETED, result.reason
    assert result.state.draft == Draft(title="Tides", words=300)
    events = await events_of(store, result.run_id)
    (taken,) = [e for e in events if isinstance(e, FallbackTaken)]
    assert (taken.step, taken.failed, taken.to, taken.error_type) == ("work", "writer", "backup", "AgentOutputError")
    assert "field 'words'" in taken.reason
    # the same task, word for word, went to the backup
    assert [e.agent for e in events if isinstance(e, ModelCalled)] == ["writer", "writer", "backup"]
    assert model.calls[2].messages[-1].content == model.calls[0].messages[-1].content


class Broken:
    name = "broken"

    async def complete(self, request: ModelRequest) -> ModelResponse:
        raise ModelPermanentError("unknown model", model=self.name, status=404)


async def test_an_agent_falls_back_when_every_model_failed_and_when_it_runs_out_of_turns() -> None:
    model = TestModel({"looper": [TestModel.call("search", q="x")] * 3})
    backup = Agent("backup", model=TestModel())
    no_model = Agent("no_model", model=Broken(), fallbacks=[backup], retry=None)
    looper = Agent("looper", model=model, max_turns=1, fallbacks=[backup])
    assert (await no_model.ask("hello")).startswith("backup: hello")
    assert (await looper.ask("hello")).startswith("backup: hello")


async def test_when_every_fallback_agent_fails_the_error_names_each_of_them() -> None:
    model = TestModel({"a": ["nope"] * 3, "b": ["still nope"] * 3})
    b = Agent("b", model=model, output=Draft, max_reasks=0, fallbacks=[Agent("c", model=Broken(), output=Draft)])
    a = Agent("a", model=model, output=Draft, max_reasks=0, fallbacks=[b])
    result = await one_step(a, into="draft").run(store=False)
    assert result.status is RunStatus.FAILED
    message = str(result.error)
    for part in ("'a'", "a (AgentOutputError", "b (AgentError", "c (ModelPermanentError", "unknown model"):
        assert part in message, part


def test_a_fallback_agent_must_answer_in_the_same_form() -> None:
    with pytest.raises(ConfigError, match="answers with text, not Draft"):
        Agent("a", output=Draft, fallbacks=[Agent("b")])
    with pytest.raises(ConfigError, match="its own fallback"):
        Agent("a", fallbacks=[Agent("a")])


# -- a step's fallbacks ------------------------------------------------------------------------------------------


class Calls:
    def __init__(self) -> None:
        self.seen: list[tuple[str, int, Any]] = []

    def failing(self, name: str, error: Exception) -> Any:
        async def fn(state: Box, item: Any = None) -> dict[str, Any]:
            self.seen.append((name, context().attempt, item))
            raise error

        fn.__name__ = name
        return fn

    def working(self, name: str) -> Any:
        async def fn(state: Box, item: Any = None) -> dict[str, Any]:
            self.seen.append((name, context().attempt, item))
            return {"value": f"{name} on {item}"}

        fn.__name__ = name
        return fn


async def test_a_step_falls_back_after_its_retries_and_the_first_success_is_its_outcome(tmp_path: Path) -> None:
    calls = Calls()
    primary = calls.failing("primary", TimeoutError("slow"))
    second = calls.failing("second", ValueError("a bug"))
    graph = Graph(Box, name="fan")
    graph.add(lambda state: [Send("work", "job-1")], name="send", routes=["work"])
    graph.add(primary, name="work", retry=FAST, fallbacks=[second, calls.working("third")])
    graph.edge(START, "send")
    store = SQLiteStore(tmp_path / "j.db")
    result = await graph.build().run(store=store)
    assert result.status is RunStatus.COMPLETED, result.reason
    assert result.state.value == "third on job-1"
    # the primary's two attempts (its retry policy), then each alternative with the same item
    assert calls.seen == [
        ("primary", 1, "job-1"),
        ("primary", 2, "job-1"),
        ("second", 3, "job-1"),
        ("third", 4, "job-1"),
    ]
    events = await events_of(store, result.run_id)
    failed = [(e.attempt, e.error_type, e.retry_in) for e in events if isinstance(e, StepFailed)]
    assert failed == [(1, "TimeoutError", 0.0), (2, "TimeoutError", 0.0), (3, "ValueError", 0.0)]
    taken = [(e.failed, e.to, e.error_type) for e in events if isinstance(e, FallbackTaken)]
    assert taken == [("work", "second", "TimeoutError"), ("second", "third", "ValueError")]
    (completed,) = [e for e in events if isinstance(e, StepCompleted) and e.step == "work"]
    assert completed.attempt == 4


async def test_each_alternative_gets_the_retry_policy_of_its_own() -> None:
    calls = Calls()
    flaky = iter([TimeoutError("once"), None])

    async def alternative(state: Box) -> dict[str, Any]:
        calls.seen.append(("alternative", context().attempt, None))
        error = next(flaky)
        if error is not None:
            raise error
        return {"value": "done"}

    result = await one_step(calls.failing("primary", KeyError("k")), retry=FAST, fallbacks=[alternative]).run()
    assert result.state.value == "done"
    assert [(name, attempt) for name, attempt, _ in calls.seen] == [
        ("primary", 1),
        ("alternative", 2),
        ("alternative", 3),
    ]


async def test_when_every_alternative_fails_the_error_names_each_and_on_error_gets_it() -> None:
    calls = Calls()
    seen: list[Exception] = []

    def report(state: Box, error: Exception) -> dict[str, Any]:
        seen.append(error)
        return {"value": "reported"}

    chain = [calls.failing("second", KeyError("missing")), calls.failing("third", RuntimeError("down"))]
    failing = one_step(calls.failing("primary", ValueError("bad")), fallbacks=chain)
    result = await failing.run(store=False)
    assert result.status is RunStatus.FAILED
    assert isinstance(result.error, StepFailedError)
    message = str(result.error)
    for part in ("work (ValueError: bad)", "second (KeyError: 'missing')", "third (RuntimeError: down)"):
        assert part in message
    assert isinstance(result.error.__cause__, RuntimeError)

    calls.seen.clear()
    recovered = await one_step(calls.failing("primary", ValueError("bad")), fallbacks=chain, on_error=report).run()
    assert recovered.state.value == "reported"
    assert "third (RuntimeError: down)" in str(seen[0])


async def test_a_cancelled_step_does_not_fall_back() -> None:
    started = asyncio.Event()
    used: list[str] = []

    async def slow(state: Box) -> None:
        started.set()
        await asyncio.sleep(60)

    async def alternative(state: Box) -> dict[str, Any]:
        used.append("alternative")
        return {}

    handle = one_step(slow, fallbacks=[alternative]).start(store=False)
    await started.wait()
    handle.cancel("enough")
    result = await handle.result()
    assert result.status is RunStatus.CANCELLED
    assert used == []


async def test_agents_can_be_a_steps_fallbacks() -> None:
    broken = Agent("broken", model=Broken(), retry=None)
    backup = Agent("backup", model=TestModel())
    result = await one_step(broken, into="value", fallbacks=[backup]).run({"value": "x"})
    assert result.status is RunStatus.COMPLETED, result.reason
    assert result.state.value.startswith("backup:")


def test_fallbacks_are_checked_when_the_graph_is_built() -> None:
    def takes_item(state: Box, item: str) -> None: ...
    def state_only(state: Box) -> None: ...
    def too_many(state: Box, item: str, extra: int) -> None: ...

    graph = Graph(Box)
    with pytest.raises(WorkflowDefinitionError, match="fallback 'state_only' takes no item"):
        graph.add(takes_item, fallbacks=[state_only])
    with pytest.raises(WorkflowDefinitionError, match="fallback 'too_many': takes 3 positional arguments"):
        graph.add(state_only, fallbacks=[too_many])
    with pytest.raises(WorkflowDefinitionError, match="must be a callable or an agent"):
        graph.add(state_only, fallbacks=[one_step(state_only)])
    with pytest.raises(WorkflowDefinitionError, match="must be a callable or an agent"):
        graph.add(state_only, fallbacks=["state_only"])  # type: ignore[list-item]
    graph.add(state_only, fallbacks=[takes_item])  # more than it needs is fine, as for the step itself


async def test_step_specs_carry_fallbacks_into_patterns() -> None:
    from podium import sequential

    calls = Calls()
    flow = sequential(step(calls.failing("first", ValueError("x")), fallbacks=[calls.working("spare")]), state=Box)
    result = await flow.run()
    assert result.state.value == "spare on None"


# -- another path -------------------------------------------------------------------------------------------------


def shop(*, review: bool = True, **options: Any) -> Graph[Box]:
    """charge → ship → END, and (with ``review``) manual_review off to the side."""

    def charge(state: Box) -> dict[str, Any]:
        raise ValueError("card declined")

    def ship(state: Box) -> dict[str, Any]:
        return {"log": "shipped"}

    def manual_review(state: Box, failure: Failure) -> dict[str, Any]:
        return {"log": f"review: {failure.step} {failure.error_type} {failure.message}"}

    graph = Graph(Box, name="shop")
    graph.add(charge, **options).add(ship)
    if review:
        graph.add(manual_review)
    graph.chain(START, "charge", "ship", END)
    return graph


@pytest.mark.parametrize("on_error", ["manual_review", divert("manual_review")])
async def test_a_failure_takes_the_other_path_with_its_details(on_error: Any) -> None:
    result = await shop(on_error=on_error).build().run(store=False)
    assert result.status is RunStatus.COMPLETED, result.reason
    (line,) = result.state.log  # ship did not run: the failure went to the review instead
    assert line.startswith("review: charge ValueError step 'charge' (run ")
    assert line.endswith("raised ValueError: card declined")


async def test_a_divert_can_put_the_failure_into_a_field() -> None:
    graph = shop(review=False, on_error=divert("report", into="failure"))
    graph.add(lambda state: {"log": f"report on {state.failure.step}"}, name="report")
    result = await graph.build().run(store=False)
    assert result.state.log == ["report on charge"]
    assert result.state.failure is not None
    assert result.state.failure.error_type == "ValueError"


async def test_an_on_error_handler_that_chooses_a_route_replaces_the_steps_own_way() -> None:
    def to_review(state: Box, error: Exception) -> Command:
        return Command(update={"log": "charge failed"}, goto="audit")

    graph = shop(review=False, on_error=to_review, routes=["audit"])
    graph.add(lambda state: {"log": "audited"}, name="audit")
    result = await graph.build().run(store=False)
    assert result.state.log == ["charge failed", "audited"]


async def test_a_diverted_task_replayed_from_the_journal_still_takes_the_other_path(tmp_path: Path) -> None:
    from podium import answer, approve

    def manual_review(state: Box, failure: Failure) -> dict[str, Any]:
        verdict = approve(f"Refund after {failure.error_type}?")
        return {"log": f"refund: {verdict.decision}"}

    graph = shop(review=False, on_error="manual_review")
    graph.add(manual_review)
    workflow = graph.build()
    store = SQLiteStore(tmp_path / "j.db")
    first = await workflow.run(run_id="r", store=store, journal=JournalOptions(snapshot_every=100))
    assert first.status is RunStatus.WAITING
    await answer("r", first.waiting[0], {"decision": "approve"}, store=store)
    second = await workflow.resume("r", store=store)
    assert second.status is RunStatus.COMPLETED, second.reason
    assert second.state.log == ["refund: approve"]  # charge's result was replayed, and ship still did not run


def test_the_other_path_is_checked_when_the_graph_is_built() -> None:
    with pytest.raises(WorkflowDefinitionError, match="unknown step 'manual_reveiw'; did you mean 'manual_review'"):
        shop(on_error="manual_reveiw").build()
    with pytest.raises(WorkflowDefinitionError, match="diverts to 'ship', which takes no item"):
        shop(review=False, on_error="ship").build()
    with pytest.raises(WorkflowDefinitionError, match="field 'nope', which Box does not have"):
        shop(review=False, on_error=divert("ship", into="nope")).build()
    with pytest.raises(WorkflowDefinitionError, match="on_error must be"):
        shop(on_error=42)
