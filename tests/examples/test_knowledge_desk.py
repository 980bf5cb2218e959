"""The knowledge desk example: the handbook is loaded into the run's store once, the librarian finds the passages
that answer, and the recorder's fact carries its provenance and is journaled."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from podium.journal import KnowledgeWritten, SQLiteStore, StepCompleted
from podium.knowledge import KnowledgeBase, Record
from tests.examples.test_crews import ROOT, podium

CREW = ROOT / "examples" / "knowledge_desk" / "crew.yaml"


async def _inspect(path: Path, run_id: str) -> tuple[list[str], list[KnowledgeWritten], list[Record], Any]:
    store = SQLiteStore(path)
    kb = await KnowledgeBase.open(store)
    handbook = sorted(r.source or "" for r in await kb.records(namespace="crew:knowledge-desk"))
    events = [e.event for e in await store.read(run_id)]
    written = [e for e in events if isinstance(e, KnowledgeWritten)]
    librarian = next(e for e in events if isinstance(e, StepCompleted))
    facts = await kb.records(run_id=run_id)
    await kb.close()
    await store.close()
    assert librarian.update is not None
    return handbook, written, facts, librarian.update["turns"]["v"]["content"]


def test_the_knowledge_desk_answers_from_its_handbook(tmp_path: Path) -> None:
    runs = []
    for _ in range(2):
        done = podium("run", str(CREW), "--input", "How long does a refund take?", "--model", "test", "--json",
                      cwd=tmp_path)  # fmt: skip
        assert done.returncode == 0, done.stderr
        runs.append(json.loads(done.stdout))
    run_id = runs[1]["run_id"]
    handbook, written, facts, passages = asyncio.run(_inspect(tmp_path / ".podium" / "podium.db", run_id))
    assert handbook == [f"handbook/{name}.md" for name in ("accounts", "plans", "refunds", "shipping")]  # once
    assert (passages[0]["cite"], passages[0]["section"]) == ("handbook/refunds.md:8", "Refunds > Processing time")
    assert [(w.agent, w.record_kind, w.action) for w in written] == [("recorder", "fact", "created")]
    (fact,) = facts
    assert fact.namespace == f"run:{run_id}"
    assert (fact.provenance.agent, fact.provenance.step) == ("recorder", "recorder")
    assert fact.metadata["question"] == "How long does a refund take?"
