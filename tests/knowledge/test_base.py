"""The knowledge base against SQLite and PostgreSQL: records, upserts, provenance, namespaces, keyword ranking, semantic
and hybrid search with a real (hashed trigram) embedder."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest

from podium.errors import ConfigError, KnowledgeError, StoreError
from podium.journal import SQLiteStore
from podium.knowledge import KnowledgeBase, Namespace
from tests.knowledge.embedder import HashEmbedder

REFUNDS = """# Refunds

Customers can ask for a refund within 30 days of purchase. Refunds go back to the original card.

## Processing time

A refund takes five business days to reach the customer's bank.
"""
SHIPPING = """# Shipping

We ship to 40 countries. Every parcel has tracking, and customs fees are paid by the customer.
"""
SECURITY = """# Security

Passwords are hashed with argon2. Two-factor authentication is available for every plan.
"""


async def _desk(kb: KnowledgeBase) -> None:
    await kb.write_document("crew:desk", REFUNDS, title="Refunds", id="refunds")
    await kb.write_document("crew:desk", SHIPPING, title="Shipping", id="shipping")
    await kb.write_document("crew:desk", SECURITY, title="Security", id="security")


async def test_a_document_is_written_chunked_and_read_back_with_its_provenance(kb: KnowledgeBase) -> None:
    record = await kb.write_document(
        "crew:desk", REFUNDS, title="Refunds", source="docs/refunds.md", metadata={"team": "billing", "rev": 3},
        agent="librarian",
    )  # fmt: skip
    assert record.kind == "document"
    assert record.chunks == 2  # one per section
    again = await kb.read(record.id)
    assert again == record
    assert again.metadata == {"team": "billing", "rev": 3}
    assert again.provenance.agent == "librarian"
    assert again.provenance.run_id is None  # written outside a run
    assert again.provenance.at > 0


async def test_a_fact_is_one_chunk_with_key_value_metadata(kb: KnowledgeBase) -> None:
    fact = await kb.write_fact("run:r1", "The customer is on the Pro plan", metadata={"customer": "acme"})
    assert (fact.kind, fact.chunks, fact.title) == ("fact", 1, "")
    hits = await kb.search("pro plan", namespaces=["run:r1"])
    assert [h.record_id for h in hits] == [fact.id]
    with pytest.raises(ConfigError, match="short statement"):
        await kb.write_fact("run:r1", "word " * 1000)


async def test_writing_the_same_id_again_changes_nothing_or_replaces_it(kb: KnowledgeBase) -> None:
    first = await kb.write_fact("crew:desk", "Refunds take five days", id="refund-time", agent="a")
    same = await kb.write_fact("crew:desk", "Refunds take five days", id="refund-time", agent="b")
    assert same == first  # unchanged: the first writer's provenance is kept
    changed = await kb.write_fact("crew:desk", "Refunds take three days", id="refund-time", agent="b")
    assert changed.provenance.agent == "b"
    assert (await kb.read("refund-time")).text == "Refunds take three days"
    assert [h.text for h in await kb.search("refunds")] == ["Refunds take three days"]  # the old chunk is gone
    assert (await kb.stats()).records == 1


async def test_a_search_sees_only_the_namespaces_it_is_given(kb: KnowledgeBase) -> None:
    await kb.write_fact("crew:desk", "Refunds take five days")
    await kb.write_fact("run:r1", "This customer wants a refund")
    await kb.write_fact("run:r2", "That customer got a refund")
    await kb.write_fact("agent:writer", "Refund notes of the writer")
    assert len(await kb.search("refund")) == 4
    assert {h.namespace for h in await kb.search("refund", namespaces=["crew:desk"])} == {"crew:desk"}
    runs = await kb.search("refund", namespaces=["run:*"])
    assert {h.namespace for h in runs} == {"run:r1", "run:r2"}
    assert await kb.search("refund", namespaces=[]) == []
    assert await kb.search("refund", namespaces=[Namespace("agent", "other")]) == []
    with pytest.raises(ConfigError, match="namespace"):
        await kb.search("refund", namespaces=["desk"])


async def test_keyword_search_ranks_the_passage_that_answers_first(kb: KnowledgeBase) -> None:
    await _desk(kb)
    hits = await kb.search("how many days does a refund take to reach the bank?")
    assert hits[0].record_id == "refunds"
    assert hits[0].heading == "Refunds > Processing time"  # the section that answers, not just the document
    assert hits[0].line == 7
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert (await kb.search("tracking parcels"))[0].record_id == "shipping"  # stemmed: parcels ~ parcel
    assert (await kb.search("two-factor authentication"))[0].record_id == "security"
    assert await kb.search("quantum chromodynamics") == []
    assert await kb.search("?!") == []  # no words: nothing to find, no syntax error


async def test_a_query_cannot_break_the_search_syntax(kb: KnowledgeBase) -> None:
    await _desk(kb)
    for query in ['refund" OR *', "refund NOT (", "NEAR(refund card)", "refund:*", "'; DROP TABLE x; --", "\\"]:
        hits = await kb.search(query)
        assert all(h.record_id == "refunds" for h in hits), query


async def test_the_audit_trail_lists_who_wrote_what(kb: KnowledgeBase) -> None:
    await kb.write_fact("crew:desk", "one", agent="researcher")
    await kb.write_fact("crew:desk", "two", agent="writer")
    await kb.write_document("agent:writer", "three", agent="writer")
    assert {r.text for r in await kb.records(agent="writer")} == {"two", "three"}
    assert {r.text for r in await kb.records(namespace="crew:desk")} == {"one", "two"}
    assert [r.text for r in await kb.records(kind="document")] == ["three"]
    assert [r.text for r in await kb.records(limit=1)] == ["three"]  # most recent first


async def test_deleting_a_record_removes_it_from_searches(kb: KnowledgeBase) -> None:
    await _desk(kb)
    assert await kb.delete("refunds")
    assert not await kb.delete("refunds")
    assert await kb.search("refund") == []
    with pytest.raises(KnowledgeError, match="no record 'refunds'"):
        await kb.read("refunds")
    stats = await kb.stats()
    assert (stats.records, stats.chunks) == (2, 2)


async def test_bad_writes_are_refused(kb: KnowledgeBase) -> None:
    with pytest.raises(ConfigError, match="namespace"):
        await kb.write_fact("desk", "x")
    with pytest.raises(ConfigError, match="some text"):
        await kb.write_fact("crew:desk", "   ")
    with pytest.raises(ConfigError, match="JSON"):
        await kb.write_fact("crew:desk", "x", metadata={"when": object()})
    assert (await kb.stats()).records == 0


async def test_semantic_search_ranks_by_meaning_with_the_embedder(kb: KnowledgeBase) -> None:
    embedder = HashEmbedder()
    semantic = KnowledgeBase(kb.backend, embedder=embedder)
    await _desk(semantic)
    assert (await semantic.stats()).embedded == 4
    assert await semantic.search("refnds crd", mode="keyword") == []  # typos: no word matches
    hits = await semantic.search("refnds crd", mode="semantic", k=2)
    assert hits[0].record_id == "refunds"  # the trigrams still do
    assert 0 < hits[0].score <= 1.0
    hybrid = await semantic.search("authentication passwords")  # the default with an embedder: hybrid
    assert hybrid[0].record_id == "security"
    assert len(await semantic.search("refund", namespaces=["crew:other"], mode="semantic")) == 0


async def test_an_unchanged_write_is_not_embedded_again(kb: KnowledgeBase) -> None:
    embedder = HashEmbedder()
    semantic = KnowledgeBase(kb.backend, embedder=embedder)
    await semantic.write_document("crew:desk", REFUNDS, id="refunds")
    texts = embedder.texts
    await semantic.write_document("crew:desk", REFUNDS, id="refunds")
    assert embedder.texts == texts


async def test_vectors_of_another_embedder_are_not_compared(kb: KnowledgeBase) -> None:
    await KnowledgeBase(kb.backend, embedder=HashEmbedder(name="one")).write_fact("crew:desk", "refunds", id="f")
    other = KnowledgeBase(kb.backend, embedder=HashEmbedder(name="two"))
    assert await other.search("refunds", mode="semantic") == []
    await other.write_fact("crew:desk", "refunds", id="f")  # same content, new embedder: embedded again
    assert [h.record_id for h in await other.search("refunds", mode="semantic")] == ["f"]


async def test_semantic_search_without_an_embedder_is_a_clear_error(kb: KnowledgeBase) -> None:
    with pytest.raises(ConfigError, match="needs an embedder"):
        await kb.search("refunds", mode="semantic")
    with pytest.raises(ConfigError, match="mode must be"):
        await kb.search("refunds", mode="fuzzy")  # type: ignore[arg-type]


async def test_the_knowledge_tables_live_in_the_journal_file(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    async with await KnowledgeBase.open(f"sqlite:///{path}") as kb:
        await kb.write_fact("crew:desk", "x")
    tables = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"podium_events", "podium_runs", "podium_kb_records", "podium_kb_chunks", "podium_kb_fts"} <= tables
    store = SQLiteStore(path)  # the journal still opens it
    await store.open()
    await store.close()


async def test_a_file_that_is_not_a_journal_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    sqlite3.connect(path).execute("CREATE TABLE mine (x)").connection.commit()
    with pytest.raises(StoreError, match="not a podium journal"):
        await KnowledgeBase.open(path)
    tables = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"mine"}


async def test_knowledge_tables_of_a_newer_version_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    async with await KnowledgeBase.open(path):
        pass
    with sqlite3.connect(path) as db:
        db.execute("UPDATE podium_meta SET value = '99' WHERE key = 'knowledge_version'")
    with pytest.raises(StoreError, match="version 99"):
        await KnowledgeBase.open(path)


async def test_a_memory_store_has_a_knowledge_base_as_long_as_it_lives() -> None:
    from podium.journal import MemoryStore

    store = MemoryStore()
    async with await KnowledgeBase.open(store) as kb:
        await kb.write_fact("crew:desk", "kept in memory")
    async with await KnowledgeBase.open(store) as again:  # closing did not lose it
        assert [h.text for h in await again.search("memory")] == ["kept in memory"]
    async with await KnowledgeBase.open(MemoryStore()) as other:
        assert await other.search("memory") == []


async def test_a_semantic_search_sees_what_was_written_since_the_last_one(kb: KnowledgeBase) -> None:
    searcher = KnowledgeBase(kb.backend, embedder=HashEmbedder())
    writer = KnowledgeBase(kb.backend, embedder=HashEmbedder())  # another writer (its own object)
    await writer.write_fact("crew:desk", "tides rise twice a day", id="tides")
    assert [h.record_id for h in await searcher.search("tidal", mode="semantic")] == ["tides"]
    await writer.write_fact("crew:desk", "tidal barrages", id="barrages")
    assert {h.record_id for h in await searcher.search("tidal", mode="semantic")} == {"tides", "barrages"}
    await writer.delete("tides")
    assert [h.record_id for h in await searcher.search("tidal", mode="semantic")] == ["barrages"]


async def test_without_numpy_a_semantic_search_says_how_to_get_it(
    kb: KnowledgeBase, monkeypatch: pytest.MonkeyPatch
) -> None:
    semantic = KnowledgeBase(kb.backend, embedder=HashEmbedder())
    monkeypatch.setitem(sys.modules, "numpy", None)  # import numpy now fails, as where it is not installed
    with pytest.raises(ConfigError, match="pip install numpy"):
        await semantic.search("refunds", mode="semantic")
    assert len(await semantic.search("refunds", mode="keyword")) == 0  # keyword search does not need it
