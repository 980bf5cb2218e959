"""Per-agent permissions: resolved where the agent works, enforced directly and through the tools (where a denial
is the message the model reads)."""

from __future__ import annotations

from pathlib import Path

import pytest

from podium import Agent, KnowledgeAccessError, MemoryStore
from podium.errors import ConfigError, KnowledgeError
from podium.journal import ToolCalled
from podium.knowledge import Access, AgentKnowledge, KnowledgeBase, knowledge_tools
from podium.models import TestModel
from tests.knowledge.flows import answering


@pytest.fixture
async def kb(tmp_path: Path) -> KnowledgeBase:
    opened = await KnowledgeBase.open(tmp_path / "journal.db")
    await opened.write_fact("crew:desk", "Refunds take five business days", id="refund-time")
    await opened.write_fact("agent:researcher", "The researcher's private refund notes", id="private")
    return opened


def test_access_entries_are_checked() -> None:
    Access(read=["crew", "run", "agent", "agent:researcher", "run:*"], write=["run"])
    for bad in ["team", "agent:", "crew:a b", "*", "board:x"]:
        with pytest.raises(ConfigError, match="is not a namespace"):
            Access(read=[bad])
    with pytest.raises(ConfigError, match="lists"):
        Access(read="crew")


def test_shorthands_resolve_where_the_agent_works() -> None:
    access = Access(read=["crew", "agent:researcher", "run:*"], write=["run", "agent"])
    grant = access.grant(agent="writer", crew="desk", run_id="r1")
    assert grant.write == ("run:r1", "agent:writer")
    assert grant.read == ("crew:desk", "agent:researcher", "run:*", "run:r1", "agent:writer")  # write implies read
    assert grant.allows("read", "run:another")  # run:*
    assert not grant.allows("write", "run:another")
    outside = access.grant(agent="writer", crew="desk", run_id=None)
    assert outside.write == ("agent:writer",)  # no run, no run namespace
    with pytest.raises(ConfigError, match="crew's name"):
        AgentKnowledge(None, "writer", Access(read=["crew"]))


async def test_a_denied_read_or_write_raises_and_writes_nothing(kb: KnowledgeBase) -> None:
    writer = AgentKnowledge(kb, "writer", Access(read=["crew"], write=["agent"]), crew="desk")
    with pytest.raises(KnowledgeAccessError) as denied:
        await writer.write_fact("Refunds are instant", namespace="crew")
    assert (denied.value.agent, denied.value.action, denied.value.namespace) == ("writer", "write", "crew:desk")
    assert denied.value.allowed == ["agent:writer"]
    assert str(denied.value) == (
        "agent 'writer' may not write to namespace 'crew:desk'; it may write to: 'agent:writer'"
    )
    with pytest.raises(KnowledgeAccessError, match="may not read namespace 'agent:researcher'"):
        await writer.read("private")
    with pytest.raises(KnowledgeAccessError, match="may not read"):
        await writer.search("refund", namespace="agent:researcher")
    with pytest.raises(KnowledgeAccessError, match="may not write"):  # replacing someone else's record by its id
        await writer.write_fact("mine now", id="refund-time")
    assert [h.record_id for h in await writer.search("refund")] == ["refund-time"]  # its own view only
    assert (await kb.read("refund-time")).text == "Refunds take five business days"
    assert (await kb.stats()).records == 2


async def test_an_allowed_write_records_the_agent(kb: KnowledgeBase) -> None:
    writer = AgentKnowledge(kb, "writer", Access(read=["crew"], write=["agent"]), crew="desk")
    record = await writer.write_fact("Customers like short answers", metadata={"source": "survey"})
    assert record.namespace == "agent:writer"  # the first it may write
    assert record.provenance.agent == "writer"
    assert await writer.read(record.id) == record
    with pytest.raises(KnowledgeError, match="no record"):
        await writer.read("nothing")


def test_tools_follow_the_access() -> None:
    names = [t.name for t in knowledge_tools(None, "w", Access(read=["crew"], write=["run"]), crew="desk")]
    assert names == ["kb_search", "kb_read", "kb_write"]
    assert [t.name for t in knowledge_tools(None, "w", Access(read=["crew"]), crew="desk")] == ["kb_search", "kb_read"]
    assert knowledge_tools(None, "w", Access()) == []
    tools = {t.name: t for t in knowledge_tools(None, "w", Access(read=["crew"], write=["run"]), crew="desk")}
    assert all(t.idempotent for t in tools.values())
    assert "idempotency_key" not in tools["kb_write"].spec.parameters["properties"]  # podium passes it
    assert tools["kb_write"].spec.parameters["properties"]["namespace"]["default"] == "run"


async def test_the_model_reads_a_denial_and_the_tool_call_is_journaled(kb: KnowledgeBase) -> None:
    """An agent asks to write where it may not: the tool's answer is the error, and the run goes on."""
    model = TestModel(
        {
            "writer": [
                TestModel.call("kb_write", text="Refunds are instant", namespace="crew"),
                TestModel.call("kb_search", query="refund"),
                "Refunds take five business days.",
            ]
        }
    )
    tools = knowledge_tools(kb, "writer", Access(read=["crew"], write=["run"]), crew="desk")
    writer = Agent("writer", model=model, tools=tools)
    store = MemoryStore()
    result = await answering(writer).run("How long do refunds take?", store=store)
    assert result.status.value == "completed"
    denial = model.calls[1].messages[-1]
    assert denial.role == "tool"
    assert denial.content == (
        "error: KnowledgeAccessError: agent 'writer' may not write to namespace 'crew:desk'; it may write to: "
        f"'run:{result.run_id}'"
    )
    found = model.calls[2].messages[-1].content
    assert "Refunds take five business days" in found
    assert "refund-time" in found
    calls = [e.event for e in await store.read(result.run_id) if isinstance(e.event, ToolCalled)]
    assert [(c.tool, c.error is not None) for c in calls] == [("kb_write", True), ("kb_search", False)]
    assert (await kb.stats()).records == 2  # nothing was written
