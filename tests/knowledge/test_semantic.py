"""Semantic search in the knowledge base with the real local embedder (all-MiniLM-L6-v2, run by numpy).

Keyword search cannot find these passages: the questions share no content word with them. The embedder must.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from podium.knowledge import KnowledgeBase, MiniLM

PASSAGES = {
    "refunds": "Customers get their money back within five business days after we receive the returned item.",
    "shipping": "Parcels leave our warehouse every weekday and usually arrive two or three days later.",
    "passwords": "To regain access to an account, use the link on the sign-in page to choose a new secret.",
    "warranty": "Hardware defects are repaired free of charge during the first two years after purchase.",
}
QUESTIONS = {
    "how long until I am reimbursed?": "refunds",
    "when will my order be delivered": "shipping",
    "I forgot my login credentials": "passwords",
    "my laptop stopped working, must I pay for the fix?": "warranty",
}


@pytest.fixture(scope="module")
def minilm() -> MiniLM:
    model = MiniLM()
    model.load()
    return model


async def _shelf(tmp_path: Path, embedder: MiniLM) -> KnowledgeBase:
    kb = await KnowledgeBase.open(tmp_path / "kb.db", embedder=embedder)
    for topic, text in PASSAGES.items():
        await kb.write_document("crew:desk", text, title=topic)
    return kb


@pytest.mark.parametrize(("question", "topic"), QUESTIONS.items())
async def test_a_question_finds_its_passage_by_meaning(
    tmp_path: Path, minilm: MiniLM, question: str, topic: str
) -> None:
    kb = await _shelf(tmp_path, minilm)
    try:
        keyword = await kb.search(question, namespaces=["crew:desk"], k=1, mode="keyword")
        semantic = await kb.search(question, namespaces=["crew:desk"], k=1, mode="semantic")
        hybrid = await kb.search(question, namespaces=["crew:desk"], k=1, mode="hybrid")
    finally:
        await kb.close()
    assert [hit.title for hit in keyword] != [topic]  # no shared words: keyword search misses it
    assert [hit.title for hit in semantic] == [topic]
    assert [hit.title for hit in hybrid] == [topic]


async def test_cached_vectors_survive_journal_writes_but_not_knowledge_writes(tmp_path: Path) -> None:
    """The journal shares the file: its commits (every step of every run) must not make each search re-read all
    the vectors; a knowledge write, by anyone, must."""
    import time
    import uuid

    from podium import SQLiteStore
    from podium.journal import RunAccepted
    from tests.knowledge.embedder import HashEmbedder

    store = SQLiteStore(tmp_path / "j.db")
    await store.open()
    kb = await KnowledgeBase.open(store, embedder=HashEmbedder())
    reads = []
    original = kb.backend.vectors

    async def counted(*args: object, **kwargs: object) -> object:
        reads.append(1)
        return await original(*args, **kwargs)  # type: ignore[arg-type]

    kb.backend.vectors = counted  # type: ignore[method-assign,assignment]
    try:
        await kb.write_document("crew:x", "refunds take five days", title="refunds")
        await kb.search("refunds", namespaces=["crew:x"], mode="semantic")
        for _ in range(3):
            event = RunAccepted(workflow="wf", state=None, fingerprint="x", steps=[])
            await store.create_run(uuid.uuid4().hex, "wf", [event], owner=None, lease_seconds=0, at=time.time())
            await kb.search("refunds", namespaces=["crew:x"], mode="semantic")
        assert len(reads) == 1
        other = await KnowledgeBase.open(SQLiteStore(tmp_path / "j.db"))  # another connection writes
        await other.write_fact("crew:x", "shipping takes two days")
        await other.close()
        await kb.search("refunds", namespaces=["crew:x"], mode="semantic")
        assert len(reads) == 2
    finally:
        await kb.close()
        await store.close()
