"""People in the loop: a step asks, the run waits (journaled), an answer resumes it, exactly once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from podium import (
    END,
    START,
    Approval,
    ConfigError,
    Graph,
    InterruptError,
    RunNotFoundError,
    RunStatus,
    SQLiteStore,
    Store,
    answer,
    approve,
    ask,
    reducers,
)


class Budget(BaseModel):
    amount: int
    currency: str = "EUR"


class Review(BaseModel):
    log: Annotated[list[str], reducers.append] = []


class Counter:
    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def hit(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1


def review_workflow(counter: Counter) -> Any:
    """prep → (legal asks for approval, finance asks for a budget) in parallel → done."""

    def prep(state: Review) -> dict[str, Any]:
        counter.hit("prep")
        return {"log": "prep"}

    def legal(state: Review) -> dict[str, Any]:
        counter.hit("legal")
        verdict = approve("Is the contract fine?", value="contract v1")
        return {"log": f"legal:{verdict.decision}:{verdict.value}"}

    def finance(state: Review) -> dict[str, Any]:
        counter.hit("finance")
        budget = ask("What is the budget?", schema=Budget)
        return {"log": f"finance:{budget.amount}{budget.currency}"}

    def done(state: Review) -> dict[str, Any]:
        counter.hit("done")
        return {"log": "done"}

    graph = Graph(Review, name="review")
    graph.add(prep).add(legal).add(finance).add(done)
    graph.edge(START, "prep").edge("prep", "legal").edge("prep", "finance").join(["legal", "finance"], "done")
    return graph.build()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return SQLiteStore(tmp_path / "journal.db")


async def test_a_run_waits_for_its_questions_and_resumes_when_they_are_answered(store: Store) -> None:
    counter = Counter()
    workflow = review_workflow(counter)
    first = await workflow.run(run_id="r", store=store)
    assert first.status is RunStatus.WAITING
    assert first.waiting == ("2.0#1", "2.1#1")
    info = await store.get_run("r")
    assert info.status == "waiting"
    assert info.owner is None  # the process may exit: nobody holds the run
    # asked by two parallel branches: journaled in the order they asked, which timing decides; sort by id
    questions = sorted(await store.questions("r", pending=True), key=lambda q: q.interrupt_id)
    assert [(q.step, q.prompt, q.ask) for q in questions] == [
        ("legal", "Is the contract fine?", "approve"),
        ("finance", "What is the budget?", "answer"),
    ]
    assert questions[1].json_schema is not None
    assert questions[1].json_schema["required"] == ["amount"]

    await answer("r", "2.0#1", {"decision": "edit", "value": "contract v2"}, store=store)
    assert (await store.get_run("r")).status == "waiting"  # one question is still open
    second = await workflow.resume("r", store=store)
    assert second.status is RunStatus.WAITING
    assert second.waiting == ("2.1#1",)
    assert second.state.log == ["prep"]  # a superstep applies nothing until all its tasks have finished

    await answer("r", "2.1#1", {"amount": 5000}, store=store)
    assert (await store.get_run("r")).status == "pending"  # every question answered
    third = await workflow.resume("r", store=store)
    assert third.status is RunStatus.COMPLETED
    assert third.state.log == ["prep", "legal:edit:contract v2", "finance:5000EUR", "done"]
    # prep ran once; legal asked, then answered (2); finance asked twice, then answered (3)
    assert counter.calls == {"prep": 1, "legal": 2, "finance": 3, "done": 1}


async def test_a_question_is_answered_once_and_a_bad_answer_writes_nothing(store: Store) -> None:
    workflow = review_workflow(Counter())
    await workflow.run(run_id="r", store=store)
    before = await store.read("r")
    with pytest.raises(InterruptError, match=r"does not fit Budget: amount: Input should be a valid integer"):
        await answer("r", "2.1#1", {"amount": "a lot"}, store=store)
    with pytest.raises(InterruptError, match="no such question"):
        await answer("r", "9.9#1", True, store=store)
    with pytest.raises(RunNotFoundError):
        await answer("nope", "2.1#1", True, store=store)
    assert await store.read("r") == before
    await answer("r", "2.1#1", Budget(amount=3), store=store)
    with pytest.raises(InterruptError, match="answered already"):
        await answer("r", "2.1#1", {"amount": 4}, store=store)
    answered = [e.event for e in await store.read("r") if e.event.kind == "interrupt_answered"]
    assert len(answered) == 1


async def test_approval_decisions(store: Store) -> None:
    def publish(state: Review) -> dict[str, Any]:
        verdict = approve("Publish?", value="draft")
        return {"log": "published" if verdict.approved else f"rejected: {verdict.comment}"}

    graph = Graph(Review, name="publish")
    graph.add(publish)
    graph.chain(START, "publish", END)
    workflow = graph.build()
    await workflow.run(run_id="a", store=store)
    await answer("a", "1.0#1", Approval(decision="reject", comment="too long"), store=store)
    assert (await workflow.resume("a", store=store)).state.log == ["rejected: too long"]


async def test_asking_without_a_journal_is_a_clear_failure() -> None:
    def needy(state: Review) -> dict[str, Any]:
        ask("anyone?")
        return {}

    graph = Graph(Review, name="needy")
    graph.add(needy)
    graph.chain(START, "needy", END)
    result = await graph.build().run(store=False)
    assert result.status is RunStatus.FAILED
    assert isinstance(result.error.__cause__ if result.error else None, ConfigError)
    assert "no journal" in str(result.error)


async def test_a_question_inside_a_sub_workflow_suspends_the_whole_run(store: Store) -> None:
    def inner(state: Review) -> dict[str, Any]:
        budget = ask("Budget for the team?", schema=Budget)
        return {"log": f"team:{budget.amount}"}

    team = Graph(Review, name="team")
    team.add(inner)
    team.chain(START, "inner", END)
    graph = Graph(Review, name="org")
    graph.add(team.build(output="log"), name="team", into="log")
    graph.chain(START, "team", END)
    workflow = graph.build()
    first = await workflow.run(run_id="o", store=store)
    assert first.status is RunStatus.WAITING
    assert first.waiting == ("1.0/1.0#1",)
    (question,) = await store.questions("o", pending=True)
    assert question.step == "team/inner"
    await answer("o", question.interrupt_id, {"amount": 7}, store=store)
    assert (await workflow.resume("o", store=store)).state.log == ["team:7"]


def test_a_schema_must_be_importable() -> None:
    class Local(BaseModel):
        x: int

    def asker(state: Review) -> dict[str, Any]:
        ask("?", schema=Local)
        return {}

    graph = Graph(Review, name="local")
    graph.add(asker, thread=False)
    graph.chain(START, "asker", END)
    result = graph.build().run_sync(store="memory://interrupt-local")
    assert result.status is RunStatus.FAILED
    assert "module's top level" in str(result.error)
