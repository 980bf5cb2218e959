"""The knowledge base inside runs: provenance from the run context, writes journaled, nothing duplicated when a step
runs again after a crash; and concurrent writers (asyncio tasks, and two processes on one SQLite file)."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import podium
from podium import END, START, Agent, Graph, RunStatus, SQLiteStore, Workflow
from podium.journal import KnowledgeWritten, ToolCalled
from podium.knowledge import Access, AgentKnowledge, KnowledgeBase, knowledge_tools
from podium.knowledge import _base as base_module
from podium.models import TestModel
from tests.knowledge.flows import answering

REPO_ROOT = Path(__file__).resolve().parents[2]


class Crash(BaseException):
    """Leaves ``run()`` at once with the journal as it is, as a crash would (a BaseException is not a failed step)."""


class Notes(BaseModel):
    topic: str = ""


def noting(kb: KnowledgeBase, crash: list[bool]) -> Workflow[Notes]:
    """A step that writes a fact and a document with derived ids, then crashes while ``crash`` says so."""

    async def note(state: Notes) -> None:
        view = AgentKnowledge(kb, "noter", Access(write=["run"]))
        await view.write_fact(f"{state.topic} is renewable", metadata={"topic": state.topic})
        await view.write_document(f"# {state.topic}\n\nTides move water twice a day.", title=state.topic)
        if crash[0]:
            crash[0] = False
            raise Crash

    graph = Graph(Notes, name="noting")
    graph.add(note)
    graph.chain(START, "note", END)
    return graph.build()


async def _written(store: SQLiteStore, run_id: str) -> list[KnowledgeWritten]:
    return [e.event for e in await store.read(run_id) if isinstance(e.event, KnowledgeWritten)]


async def test_writes_in_a_run_carry_its_provenance_and_are_journaled(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "journal.db")
    kb = await KnowledgeBase.open(store)
    result = await noting(kb, [False]).run(Notes(topic="tides"), store=store)
    assert result.status is RunStatus.COMPLETED
    records = await kb.records(run_id=result.run_id)
    assert {r.kind for r in records} == {"fact", "document"}
    for record in records:
        assert record.namespace == f"run:{result.run_id}"
        p = record.provenance
        assert (p.agent, p.run_id, p.step) == ("noter", result.run_id, "note")
        assert p.task_id
    written = await _written(store, result.run_id)
    assert [(w.record_kind, w.action, w.agent) for w in written] == [
        ("fact", "created", "noter"),
        ("document", "created", "noter"),
    ]
    assert {w.record_id for w in written} == {r.id for r in records}
    assert await kb.records(agent="noter") == records  # the audit trail: who wrote what, from the records too


async def test_a_step_that_runs_again_after_a_crash_writes_nothing_twice(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "journal.db")
    kb = await KnowledgeBase.open(store)
    crash = [True]
    flow = noting(kb, crash)
    with pytest.raises(Crash):
        await flow.run(Notes(topic="tides"), store=store, run_id="r1")
    first = await kb.records(run_id="r1")
    assert len(first) == 2  # written before the crash
    result = await flow.resume("r1", store=store)
    assert result.status is RunStatus.COMPLETED
    assert sorted(await kb.records(run_id="r1"), key=lambda r: r.id) == sorted(first, key=lambda r: r.id)
    assert [w.action for w in await _written(store, "r1")] == ["created", "created", "unchanged", "unchanged"]


def _scripted() -> TestModel:
    return TestModel(
        {
            "writer": [
                [
                    TestModel.call("kb_write", text="Tidal power is predictable"),
                    TestModel.call("kb_write", text="Tidal barrages harm estuaries", kind="document", title="Risks"),
                ],
                "Tides are predictable, barrages have costs.",
            ]
        }
    )


async def test_a_tool_write_cut_off_by_a_crash_is_not_duplicated_on_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process dies after the knowledge base committed a write and before the run journaled it: the resumed
    step's same call (same idempotency key, so the same record id) finds it written and changes nothing."""
    store = SQLiteStore(tmp_path / "journal.db")
    kb = await KnowledgeBase.open(store)
    tools = knowledge_tools(kb, "writer", Access(read=["run"], write=["run"]))
    journal = base_module._journal

    async def dies_once(action: Any, record: Any, agent: Any) -> None:
        if record.title == "Risks":
            monkeypatch.setattr(base_module, "_journal", journal)
            raise Crash
        await journal(action, record, agent)

    monkeypatch.setattr(base_module, "_journal", dies_once)
    with pytest.raises(Crash):
        await answering(Agent("writer", model=_scripted(), tools=tools)).run("tides", store=store, run_id="r1")
    assert len(await kb.records(run_id="r1")) == 2  # both committed; the second was never journaled
    result = await answering(Agent("writer", model=_scripted(), tools=tools)).resume("r1", store=store)
    assert result.status is RunStatus.COMPLETED
    records = await kb.records(run_id="r1")
    assert sorted(r.text for r in records) == ["Tidal barrages harm estuaries", "Tidal power is predictable"]
    assert [w.action for w in await _written(store, "r1")] == ["created", "unchanged"]
    calls = [e.event for e in await store.read("r1") if isinstance(e.event, ToolCalled)]
    assert len(calls) == 2  # the first call's journaled result was reused, not called again


async def test_knowledge_context_needs_a_run_with_a_store() -> None:
    from podium.knowledge import run_knowledge

    with pytest.raises(podium.ConfigError, match="inside a running step"):
        await run_knowledge()
    tools = knowledge_tools(None, "writer", Access(read=["run"], write=["run"]))
    agent = Agent("writer", model=TestModel({"writer": [TestModel.call("kb_search", query="x"), "done"]}), tools=tools)
    result = await answering(agent).run("x", store=False)
    assert result.status is RunStatus.COMPLETED  # the model read the error


async def test_tools_without_a_knowledge_base_use_the_runs_store(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "journal.db")
    tools = knowledge_tools(None, "writer", Access(read=["run"], write=["run"]))
    result = await answering(Agent("writer", model=_scripted(), tools=tools)).run("tides", store=store)
    kb = await KnowledgeBase.open(store)
    assert len(await kb.records(namespace=f"run:{result.run_id}")) == 2


async def test_concurrent_writers_of_one_knowledge_base(kb: KnowledgeBase) -> None:
    """Tasks writing at once, through one object and through several, new ids and the same ids."""
    others = [KnowledgeBase(kb.backend) for _ in range(3)]

    async def writer(n: int) -> None:
        target = others[n % 3] if n % 2 else kb
        for i in range(15):
            await target.write_fact("crew:c", f"fact {i} of writer {n}", id=f"w{n}-{i}")
            await target.write_document("crew:c", f"# Shared\n\nlast by {n}\n\n## Part\n\nround {i}", id="shared")

    await asyncio.gather(*(writer(n) for n in range(8)))
    stats = await kb.stats()
    assert (stats.records, stats.chunks) == (8 * 15 + 1, 8 * 15 + 2)
    assert len(await kb.search("writer", k=500)) == 8 * 15
    assert len(await kb.search("shared", k=10)) == 2  # one record's two chunks, never doubled


def test_two_processes_writing_one_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    count = 40
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.knowledge.writer_proc", str(path), tag, str(count)],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("left", "right")
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert out.strip() == "done"
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO podium_kb_fts (podium_kb_fts) VALUES ('integrity-check')")  # raises if out of step
        records, chunks = db.execute(
            "SELECT (SELECT count(*) FROM podium_kb_records), (SELECT count(*) FROM podium_kb_chunks)"
        ).fetchone()
        assert records == 2 * 2 * count + 1
        assert chunks == 2 * count * (1 + 2) + 1
        found = {
            tag: db.execute("SELECT count(*) FROM podium_kb_fts WHERE podium_kb_fts MATCH ?", (tag,)).fetchone()[0]
            for tag in ("left", "right")
        }
        # each: its facts and both chunks of each of its documents; one of them also wrote 'shared' last
        assert sorted(found.values()) == [3 * count, 3 * count + 1]
