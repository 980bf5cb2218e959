"""The agent loop: tools granted and refused, answers checked and re-asked, all journaled."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pytest
from pydantic import BaseModel, Field

from podium import END, START, Graph, RunStatus, SQLiteStore, reducers
from podium.agents._agent import Agent
from podium.agents._tool import tool
from podium.errors import AgentOutputError
from podium.models import Message, ModelRequest, ModelResponse, TestModel, ToolCall, Usage, use_model
from podium.models._types import INVALID_ARGUMENTS_KEY


class Draft(BaseModel):
    title: str = Field(min_length=3)
    words: int = Field(ge=1)


@tool(idempotent=True)
def search_notes(query: str, limit: int = 2) -> list[str]:
    """Search the team's notes.

    Args:
        query: words to look for.
        limit: at most this many notes.
    """
    return [f"note about {query} #{n}" for n in range(limit)]


@tool
def delete_everything() -> str:
    """Delete all the notes."""
    raise AssertionError("a refused tool must never run")


class Recording:
    """A model that answers from a fixed list and keeps every request it got."""

    def __init__(self, *answers: Message) -> None:
        self.name = "recording"
        self.answers = list(answers)
        self.requests: list[ModelRequest] = []

    async def complete(self, request: ModelRequest) -> ModelResponse:
        self.requests.append(request)
        return ModelResponse(
            message=self.answers.pop(0), usage=Usage(input_tokens=10, output_tokens=5), model=self.name
        )


def said(text: str) -> Message:
    return Message(role="assistant", content=text)


def test_a_tool_schema_comes_from_hints_and_docstring() -> None:
    params = search_notes.spec.parameters
    assert search_notes.spec.description == "Search the team's notes."
    assert params["required"] == ["query"]
    assert params["properties"]["query"] == {"type": "string", "title": "Query", "description": "words to look for."}
    assert params["properties"]["limit"]["default"] == 2
    assert params["additionalProperties"] is False


async def test_a_tool_call_with_bad_arguments_is_an_error_the_model_reads() -> None:
    result = await search_notes({"query": "tides", "limit": "many"})
    assert result.error is not None
    assert "limit: Input should be a valid integer" in result.error
    assert (await search_notes({"query": "tides"})).value == ["note about tides #0", "note about tides #1"]


async def test_the_loop_runs_granted_tools_and_refuses_others() -> None:
    model = TestModel(
        {"writer": [[TestModel.call("search_notes", query="tides"), TestModel.call("delete_everything")], "done"]}
    )
    agent = Agent("writer", tools=[search_notes], model=model)
    assert await agent.ask("Write about tides") == "done"
    second = model.calls[1].messages
    tool_messages = [m for m in second if m.role == "tool"]
    assert tool_messages[0].content == '["note about tides #0","note about tides #1"]'
    assert "not granted to agent 'writer'" in tool_messages[1].content


async def test_an_invalid_answer_is_re_asked_without_the_context_growing() -> None:
    model = Recording(
        said('{"title": "x", "words": 3}'),
        said('{"title": "Tides", "words": 0}'),
        said('{"title": "Tides", "words": 120}'),
    )
    agent = Agent("writer", output=Draft, model=model, max_reasks=2)
    assert await agent.ask("Write") == Draft(title="Tides", words=120)
    sizes = [len(r.messages) for r in model.requests]
    assert sizes == [2, 4, 4]  # system + user, then the latest bad answer and its correction only
    correction = model.requests[2].messages[-1].content
    assert "field 'words' got 0" in correction
    assert model.requests[2].messages[-2].content == '{"title": "Tides", "words": 0}'


async def test_an_answer_that_never_fits_names_agent_field_and_value() -> None:
    model = Recording(*[said('{"title": "ok title", "words": -5}')] * 3)
    agent = Agent("writer", output=Draft, model=model, max_reasks=2)
    with pytest.raises(AgentOutputError) as failure:
        await agent.ask("Write")
    assert (failure.value.agent, failure.value.field, failure.value.value) == ("writer", "words", -5)
    assert failure.value.attempts == 3
    assert "agent 'writer': answer field 'words' got -5" in str(failure.value)


async def test_text_that_is_not_json_is_reported_as_the_answer() -> None:
    model = Recording(said("I think the title is Tides"))
    agent = Agent("writer", output=Draft, model=model, max_reasks=0)
    with pytest.raises(AgentOutputError, match="answer field 'answer'") as failure:
        await agent.ask("Write")
    assert failure.value.value == '"I think the title is Tides"' or "Tides" in str(failure.value.value)


async def test_the_test_model_gives_schema_valid_answers() -> None:
    agent = Agent("writer", output=Draft, model="test")
    draft = await agent.ask("Write")
    assert isinstance(draft, Draft)


class Notes(BaseModel):
    topic: str = ""
    drafts: Annotated[list[Draft], reducers.append] = []


async def test_an_agent_is_a_step_and_its_calls_are_journaled(tmp_path: Path) -> None:
    model = TestModel({"writer": [TestModel.call("search_notes", query="x"), {"title": "Tides", "words": 9}]})
    writer = Agent("writer", output=Draft, tools=[search_notes], model=model)
    graph = Graph(Notes, name="notes")
    graph.add(writer, into="drafts")
    graph.chain(START, "writer", END)
    store = SQLiteStore(tmp_path / "j.db")
    result = await graph.build().run({"topic": "tides"}, store=store)
    assert result.status is RunStatus.COMPLETED
    assert result.state.drafts == [Draft(title="Tides", words=9)]
    kinds = [e.event.kind for e in await store.read(result.run_id)]
    assert kinds.count("model_called") == 2
    assert kinds.count("tool_called") == 1
    assert result.usage.input_tokens > 0
    assert set(result.usage_by_agent) == {"writer"}
    prompt = model.calls[0].messages[1].content
    assert '"topic": "tides"' in prompt


async def test_agents_take_the_crew_model_when_they_have_none() -> None:
    model = TestModel({"*": ["from the crew model"]})
    with use_model(model):
        assert await Agent("anyone").ask("hi") == "from the crew model"


async def test_a_tool_call_with_malformed_json_is_shown_to_the_model() -> None:
    broken = ToolCall(id="c1", name="search_notes", arguments={INVALID_ARGUMENTS_KEY: '{"query": "tid'})
    model = TestModel({"writer": [broken, "recovered"]})
    agent = Agent("writer", tools=[search_notes], model=model)
    assert await agent.ask("Write") == "recovered"
    (tool_message,) = [m for m in model.calls[1].messages if m.role == "tool"]
    assert tool_message.content == 'error: the arguments were not a JSON object: {"query": "tid'


async def test_streamed_tokens_reach_the_hooks() -> None:
    from podium import Hooks

    class Tokens(Hooks):
        def __init__(self) -> None:
            self.seen: list[tuple[str, str, str]] = []

        def on_token(self, *, run_id: str, step: str, agent: str, text: str) -> None:
            self.seen.append((step, agent, text))

    writer = Agent("writer", model=TestModel({"writer": ["tides are tidal"]}))
    graph = Graph(Notes, name="tokens")
    graph.add(writer, name="write", into="topic")
    graph.chain(START, "write", END)
    hooks = Tokens()
    result = await graph.build().run(hooks=[hooks], store=False)
    assert result.state.topic == "tides are tidal"
    assert [(s, a) for s, a, _ in hooks.seen] == [("write", "writer")] * 3
    assert "".join(t for _, _, t in hooks.seen).strip() == "tides are tidal"
