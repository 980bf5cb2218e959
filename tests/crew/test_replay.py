"""Replays: a crew run again offline, its models answering from a recorded run's journal."""

from __future__ import annotations

from pathlib import Path

import pytest

from podium import RunStatus, TestModel, answer, open_store
from podium.crew import load_crew, replay
from podium.errors import ModelPermanentError, RunStateError
from podium.models import Message, ModelRequest
from podium.models._replay import ReplayModel
from tests.crew.conftest import WriteCrew
from tests.crew.test_patterns import AGENTS

SUPERVISED = (
    AGENTS
    + "tools:\n  count: tests.crew.outputs:word_count\n"
    + ("flow:\n  supervisor: {router: manager, workers: [writer, editor]}\n")
)


@pytest.fixture
def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'runs.db'}"


async def test_a_replay_reproduces_a_recorded_run(write_crew: WriteCrew, store: str) -> None:
    path = write_crew(SUPERVISED.replace("writer: {role: Writer}", "writer: {role: Writer, tools: [count]}"))
    recorded = await load_crew(path).run(
        "tides",
        store=store,
        model=TestModel(
            {
                "manager": [{"next": "writer", "instruction": "draft"}, {"next": "editor"}, {"next": "done"}],
                "writer": [TestModel.call("count", text="a b c"), "a draft of 3 words"],
                "editor": ["the edited post"],
            }
        ),
    )
    assert (recorded.status, recorded.output) == (RunStatus.COMPLETED, "the edited post")
    outcome = await replay(path, recorded.run_id, store=store)
    assert outcome.equal
    assert outcome.result.run_id != recorded.run_id
    assert outcome.result.output == "the edited post"
    assert outcome.model_calls == 6  # three decisions, the writer's tool call and answer, the editor
    opened = open_store(store)
    assert {info.run_id for info in await opened.list_runs()} == {recorded.run_id, outcome.result.run_id}


async def test_a_replay_of_a_changed_crew_differs(write_crew: WriteCrew, store: str) -> None:
    path = write_crew(AGENTS + "flow:\n  sequential: [writer, editor]\n")
    recorded = await load_crew(path).run("tides", store=store)
    path.write_text(AGENTS + "flow:\n  sequential: [writer, judge]\n")
    outcome = await replay(path, recorded.run_id, store=store)
    assert not outcome.equal
    assert outcome.result.status is RunStatus.FAILED
    assert "no recorded answer for task 2.0 agent 'judge' call 0" in str(outcome.result.reason)


async def test_a_replay_answers_the_recorded_questions_again(write_crew: WriteCrew, store: str) -> None:
    text = AGENTS.replace("editor: {role: Editor}", "editor: {role: Editor, approval: 'Publish?'}")
    path = write_crew(text + "flow:\n  sequential: [writer, editor]\n")
    crew = load_crew(path)
    waiting = await crew.run("tides", store=store)
    await answer(waiting.run_id, "2.0#1", {"decision": "edit", "value": "the person's version"}, store=store)
    recorded = await crew.resume(waiting.run_id, store=store)
    assert recorded.output == "the person's version"
    outcome = await replay(path, recorded.run_id, store=store)
    assert outcome.equal
    assert outcome.result.output == "the person's version"


async def test_the_last_execution_of_a_task_is_what_a_replay_serves(write_crew: WriteCrew, store: str) -> None:
    path = write_crew(AGENTS + "flow:\n  sequential: [researcher, critic]\n")
    crew = load_crew(path)
    failed = await crew.run("tides", store=store, model=TestModel({"critic": ["not json"] * 3}))
    assert failed.status is RunStatus.FAILED
    recorded = await crew.resume(failed.run_id, store=store, model=TestModel())
    assert recorded.status is RunStatus.COMPLETED
    outcome = await replay(path, recorded.run_id, store=store)
    assert outcome.equal, outcome.result.reason


async def test_only_finished_runs_of_the_same_crew_can_be_replayed(write_crew: WriteCrew, store: str) -> None:
    text = AGENTS.replace("editor: {role: Editor}", "editor: {role: Editor, approval: 'Publish?'}")
    path = write_crew(text + "flow:\n  sequential: [editor]\n")
    waiting = await load_crew(path).run("tides", store=store)
    with pytest.raises(RunStateError, match="it has not finished"):
        await replay(path, waiting.run_id, store=store)
    other = write_crew(AGENTS.replace("name: team", "name: other") + "flow: {sequential: [writer]}\n", name="o.yaml")
    done = await load_crew(other).run("tides", store=store)
    with pytest.raises(RunStateError, match="it is a run of 'other', not of crew 'team'"):
        await replay(path, done.run_id, store=store)


async def test_the_replay_model_answers_only_inside_steps() -> None:
    model = ReplayModel([])
    request = ModelRequest(messages=[Message(role="user", content="hi")], agent="writer")
    with pytest.raises(ModelPermanentError, match="only inside a running step"):
        await model.complete(request)
    assert len(model) == 0
