"""Escalation: a step that fails for good asks a person; the run waits, and the answer becomes the step's output
(or the step is tried again, or the failure stands)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from podium import (
    END,
    START,
    Escalation,
    Failure,
    Graph,
    InterruptError,
    RunStatus,
    SQLiteStore,
    Store,
    answer,
    escalate,
    parallel,
    reducers,
    step,
)
from podium.journal import StepCompleted, StepFailed


class Draft(BaseModel):
    title: str
    words: int


class Post(BaseModel):
    draft: Draft | None = None
    summary: str = ""
    log: Annotated[list[str], reducers.append] = []


class Writer:
    """A step that fails while ``failures`` last (one per call), then writes a draft."""

    def __init__(self, failures: int = 1_000) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self, state: Post) -> Draft:
        self.calls += 1
        if self.calls <= self.failures:
            raise ValueError(f"the model rambled (call {self.calls})")
        return Draft(title="own", words=1)


def writing(writer: Writer, **options: Any) -> Any:
    graph = Graph(Post, name="writing")
    graph.add(writer, name="write", into="draft", **options)
    graph.add(lambda state: {"log": f"published {state.draft.title}"}, name="publish")
    graph.chain(START, "write", "publish", END)
    return graph.build()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return SQLiteStore(tmp_path / "x.db")


async def test_a_failure_becomes_a_question_and_the_answer_becomes_the_steps_output(store: Store) -> None:
    writer = Writer()
    workflow = writing(writer, on_error=escalate("The writer is stuck. Write the draft?"))
    first = await workflow.run(run_id="r", store=store)
    assert first.status is RunStatus.WAITING
    assert first.waiting == ("1.0#escalation-1",)
    (question,) = await store.questions("r", pending=True)
    assert question.ask == "escalate"
    assert question.prompt.startswith("The writer is stuck. Write the draft?\n\nStep 'write' failed (ValueError):")
    assert "the model rambled (call 1)" in question.prompt
    assert question.json_schema is not None
    assert question.json_schema["$defs"]["Draft"]["required"] == ["title", "words"]  # the into field's type
    assert question.value["v"]["step"] == "write"
    events = [e.event for e in await store.read("r")]
    assert [(e.error_type, e.handled) for e in events if isinstance(e, StepFailed)] == [("ValueError", True)]

    await answer("r", question.interrupt_id, Escalation(value=Draft(title="by hand", words=3)), store=store)
    done = await workflow.resume("r", store=store)
    assert done.status is RunStatus.COMPLETED, done.reason
    assert done.state.draft == Draft(title="by hand", words=3)
    assert done.state.log == ["published by hand"]  # and the run went its usual way on
    assert writer.calls == 2  # the failing step ran once more on resume, failed again, and the answer was used
    completed = [e.event for e in await store.read("r") if isinstance(e.event, StepCompleted)]
    assert completed[0].recovered is not None
    assert "rambled (call 2)" in completed[0].recovered


async def test_if_the_step_succeeds_on_resume_its_own_output_is_used(store: Store) -> None:
    workflow = writing(Writer(failures=1), on_error=escalate())
    await workflow.run(run_id="r", store=store)
    await answer("r", "1.0#escalation-1", {"value": {"title": "by hand", "words": 3}}, store=store)
    done = await workflow.resume("r", store=store)
    assert done.state.draft == Draft(title="own", words=1)


async def test_an_answer_that_does_not_fit_is_refused_when_given(store: Store) -> None:
    await writing(Writer(), on_error=escalate()).run(run_id="r", store=store)
    with pytest.raises(InterruptError, match=r"value\.words: Input should be a valid integer"):
        await answer("r", "1.0#escalation-1", {"value": {"title": "t", "words": "many"}}, store=store)
    with pytest.raises(InterruptError, match="an answer needs a value"):
        await answer("r", "1.0#escalation-1", {"decision": "answer"}, store=store)
    with pytest.raises(InterruptError, match="decision: Input should be 'answer', 'retry' or 'abort'"):
        await answer("r", "1.0#escalation-1", {"decision": "skip"}, store=store)
    assert len(await store.questions("r", pending=True)) == 1  # nothing was written


async def test_retry_runs_the_step_again_and_asks_again_while_it_fails(store: Store) -> None:
    writer = Writer(failures=2)
    workflow = writing(writer, on_error=escalate())
    await workflow.run(run_id="r", store=store)
    await answer("r", "1.0#escalation-1", Escalation(decision="retry"), store=store)
    again = await workflow.resume("r", store=store)
    assert again.status is RunStatus.WAITING
    assert again.waiting == ("1.0#escalation-2",)
    (question,) = await store.questions("r", pending=True)
    assert "(call 2)" in question.prompt
    assert "failed again" in question.prompt
    await answer("r", "1.0#escalation-2", {"decision": "retry"}, store=store)
    done = await workflow.resume("r", store=store)
    assert done.status is RunStatus.COMPLETED
    assert done.state.draft == Draft(title="own", words=1)
    assert writer.calls == 3


async def test_abort_lets_the_failure_stand_with_the_persons_comment(store: Store) -> None:
    workflow = writing(Writer(), on_error=escalate())
    await workflow.run(run_id="r", store=store)
    await answer("r", "1.0#escalation-1", Escalation(decision="abort", comment="not worth it"), store=store)
    failed = await workflow.resume("r", store=store)
    assert failed.status is RunStatus.FAILED
    assert failed.error is not None
    assert failed.error.step == "write"
    assert "a person chose to abort it (not worth it) after it failed with ValueError" in str(failed.error)
    assert isinstance(failed.error.__cause__, ValueError)


class Summary(BaseModel):
    text: str


async def test_a_schema_and_a_step_without_into(store: Store) -> None:
    def summarize(state: Post) -> dict[str, Any]:
        raise KeyError("no notes")

    graph = Graph(Post, name="summing")
    graph.add(summarize, on_error=escalate("Summarize it?", schema=Summary))
    graph.edge(START, "summarize")
    workflow = graph.build()
    await workflow.run(run_id="s", store=store)
    with pytest.raises(InterruptError, match="value: Input should be a valid dictionary or instance of Summary"):
        await answer("s", "1.0#escalation-1", {"value": "just text"}, store=store)
    # a model's fields are the update of a step without into
    await answer("s", "1.0#escalation-1", {"value": {"text": "short"}}, store=store)
    result = await workflow.resume("s", store=store)
    assert result.status is RunStatus.FAILED  # Post has no field 'text'
    assert "unknown field 'text'" in str(result.error)

    graph = Graph(Post, name="summing2")
    graph.add(summarize, on_error=escalate())  # the update itself: a dict of fields
    graph.edge(START, "summarize")
    workflow = graph.build()
    await workflow.run(run_id="t", store=store)
    await answer("t", "1.0#escalation-1", {"value": {"summary": "short"}}, store=store)
    assert (await workflow.resume("t", store=store)).state.summary == "short"


async def test_escalation_when_a_parallel_branch_fails(store: Store) -> None:
    ran: list[str] = []

    def research(state: Post) -> dict[str, Any]:
        ran.append("research")
        raise TimeoutError("the source is down")

    def outline(state: Post) -> dict[str, Any]:
        ran.append("outline")
        return {"log": "outline"}

    def merge(state: Post) -> dict[str, Any]:
        return {"log": f"merged {sorted(state.log)}"}

    workflow = parallel(
        step(research, on_error=escalate("Research by hand?")), outline, merge=merge, state=Post, name="team"
    )
    first = await workflow.run(run_id="p", store=store)
    assert first.status is RunStatus.WAITING  # the other branch was not cancelled: it finished
    assert sorted(ran) == ["outline", "research"]
    (question,) = await store.questions("p", pending=True)
    assert (question.step, question.ask) == ("research", "escalate")
    assert "TimeoutError" in question.prompt
    await answer("p", question.interrupt_id, {"value": {"log": "notes by hand"}}, store=store)
    done = await workflow.resume("p", store=store)
    assert done.status is RunStatus.COMPLETED, done.reason
    assert done.state.log[-1] == "merged ['notes by hand', 'outline']"
    assert ran.count("outline") == 1  # its result was journaled: it did not run again


async def test_escalating_without_a_journal_is_a_clear_failure() -> None:
    result = await writing(Writer(), on_error=escalate()).run(store=False)
    assert result.status is RunStatus.FAILED
    assert "on_error handler raised ConfigError" in str(result.error)
    assert "no journal" in str(result.error)


async def test_an_on_error_handler_may_ask_a_person_itself(store: Store) -> None:
    from podium import ask

    def handler(state: Post, error: Exception) -> Draft:
        title = ask(f"Title for the draft? ({error})", schema=str)
        return Draft(title=title, words=0)

    workflow = writing(Writer(), on_error=handler)
    first = await workflow.run(run_id="h", store=store)
    assert first.status is RunStatus.WAITING
    await answer("h", first.waiting[0], "asked", store=store)
    assert (await workflow.resume("h", store=store)).state.draft == Draft(title="asked", words=0)


def test_failure_details_are_journal_values() -> None:
    from podium.journal import decode, encode

    failure = Failure(step="s", error_type="E", message="m", attempt=2, item={"k": 1})
    assert decode(encode(failure)) == failure


async def test_a_team_members_escalation_is_answered_in_its_place(store: Store) -> None:
    from podium import Conversation, Done, supervisor

    def researcher(state: Conversation) -> str:
        raise TimeoutError("the archive is down")

    def router(state: Conversation) -> Any:
        return "researcher" if state.last() is None else Done()

    team = supervisor(router, [step(researcher, on_error=escalate("Research it yourself?"))], name="desk")
    first = await team.run("tides", run_id="t", store=store)
    assert first.status is RunStatus.WAITING
    await answer("t", first.waiting[0], {"value": "three facts, by hand"}, store=store)
    done = await team.resume("t", store=store)
    assert done.status is RunStatus.COMPLETED, done.reason
    assert done.output == "three facts, by hand"  # a turn of the researcher's, as its own answer would have been
    assert [(t.speaker, t.content) for t in done.state.turns if t.kind == "message"] == [
        ("researcher", "three facts, by hand")
    ]


async def test_the_update_of_a_step_without_into_is_checked_when_given(store: Store) -> None:
    graph = Graph(Post, name="plain")
    graph.add(Writer(), name="write", on_error=escalate())
    graph.edge(START, "write")
    await graph.build().run(run_id="u", store=store)
    with pytest.raises(InterruptError, match="value: Input should be a valid dictionary"):
        await answer("u", "1.0#escalation-1", {"value": "not an update"}, store=store)
