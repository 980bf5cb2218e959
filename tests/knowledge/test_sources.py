"""Sources: files and folders loaded (chunked) idempotently, directly and from a crew file's ``knowledge:`` section,
and that section's errors (file, line, field)."""

from __future__ import annotations

from pathlib import Path

import pytest

from podium import CrewFileError, KnowledgeError, RunStatus, SQLiteStore
from podium.crew import load_crew
from podium.knowledge import Chunking, KnowledgeBase
from tests.crew.conftest import write_files

DOCS = {
    "docs/refunds.md": """
        # Refunds

        A refund takes five business days to reach the bank.

        ## Gift cards

        Gift cards are never refunded.
    """,
    "docs/shipping.md": "# Shipping\n\nParcels have tracking.\n",
    "docs/faq/contact.txt": "Write to help@example.com; we answer within a day.\n",
    "docs/.hidden.md": "# Secret\n\nnot loaded\n",
    "docs/image.png": "not text, not matched",
}


async def test_a_folder_is_loaded_once_and_then_only_what_changed(tmp_path: Path) -> None:
    write_files(tmp_path, "", DOCS, name="unused.yaml")
    kb = await KnowledgeBase.open(tmp_path / "journal.db")
    report = await kb.load(tmp_path / "docs", namespace="crew:desk", base=tmp_path)
    assert report.created == ["docs/faq/contact.txt", "docs/refunds.md", "docs/shipping.md"]
    refunds = await kb.read("source:crew:desk:docs/refunds.md")
    assert (refunds.title, refunds.source, refunds.chunks) == ("Refunds", "docs/refunds.md", 2)
    assert refunds.provenance.agent is None
    assert refunds.provenance.run_id is None
    hit = (await kb.search("gift cards refunded"))[0]
    assert (hit.cite, hit.heading) == ("docs/refunds.md:7", "Refunds > Gift cards")

    again = await kb.load(tmp_path / "docs", namespace="crew:desk", base=tmp_path)
    assert not again.changed
    assert len(again.unchanged) == 3
    assert await kb.read("source:crew:desk:docs/refunds.md") == refunds  # not rewritten

    (tmp_path / "docs/shipping.md").write_text("# Shipping\n\nParcels have tracking and insurance.\n")
    (tmp_path / "docs/faq/contact.txt").unlink()
    (tmp_path / "docs/returns.md").write_text("# Returns\n\nReturns are free.\n")
    changed = await kb.load(tmp_path / "docs", namespace="crew:desk", base=tmp_path)
    assert (changed.created, changed.updated, changed.deleted) == (
        ["docs/returns.md"],
        ["docs/shipping.md"],
        ["docs/faq/contact.txt"],
    )
    assert (await kb.stats()).records == 3
    assert (await kb.search("insurance"))[0].source == "docs/shipping.md"


async def test_a_narrower_glob_removes_what_it_no_longer_matches_and_nothing_else(tmp_path: Path) -> None:
    write_files(tmp_path, "", DOCS, name="unused.yaml")
    kb = await KnowledgeBase.open(tmp_path / "journal.db")
    await kb.load(tmp_path / "docs", namespace="crew:desk", base=tmp_path)
    await kb.load(tmp_path / "docs/refunds.md", namespace="agent:writer", base=tmp_path)
    narrower = await kb.load(tmp_path / "docs", namespace="crew:desk", glob="*.md", base=tmp_path)
    assert narrower.deleted == ["docs/faq/contact.txt"]
    assert {r.source for r in await kb.records()} == {"docs/refunds.md", "docs/shipping.md"}
    assert len(await kb.records(namespace="agent:writer")) == 1


async def test_a_file_deleted_from_the_base_folder_itself_is_removed(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\nalpha refunds")
    (docs / "b.md").write_text("# B\nbeta shipping")
    elsewhere = tmp_path / "elsewhere.md"
    elsewhere.write_text("# C\ngamma invoices")
    kb = await KnowledgeBase.open(SQLiteStore(tmp_path / "j.db"))
    try:
        await kb.load(elsewhere, namespace="crew:x", base=docs)  # an absolute label in the same namespace
        assert sorted((await kb.load(docs, namespace="crew:x", base=docs)).created) == ["a.md", "b.md"]
        (docs / "b.md").unlink()
        report = await kb.load(docs, namespace="crew:x", base=docs)
        assert report.deleted == ["b.md"]
        assert not await kb.search("shipping", namespaces=["crew:x"])
        assert await kb.search("invoices", namespaces=["crew:x"])  # another source's record is left alone
    finally:
        await kb.close()


async def test_chunking_of_a_source_can_be_chosen(tmp_path: Path) -> None:
    (tmp_path / "long.md").write_text("# Long\n\n" + " ".join(f"Sentence {n} here." for n in range(200)))
    kb = await KnowledgeBase.open(tmp_path / "journal.db")
    await kb.load(tmp_path / "long.md", namespace="crew:c", chunking=Chunking(max_chars=200, overlap=40))
    record = (await kb.records())[0]
    assert record.chunks > 15


async def test_a_file_that_is_not_text_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/bad.md").write_bytes(b"# Bad\n\nlatin-1: caf\xe9\n")
    kb = await KnowledgeBase.open(tmp_path / "journal.db")
    with pytest.raises(KnowledgeError, match=r"docs/bad.md:3 is not UTF-8 text"):
        await kb.load(tmp_path / "docs", namespace="crew:c", base=tmp_path)
    with pytest.raises(KnowledgeError, match="no file or folder"):
        await kb.load(tmp_path / "nowhere", namespace="crew:c")


CREW = """
    name: desk
    model: test
    knowledge:
      sources:
        - {path: docs/}
        - {path: notes.md, namespace: agent:writer}
      access:
        writer: {read: [crew, run, agent], write: [run]}
        reader: {read: [crew]}
        librarian: {read: [crew]}
    agents:
      librarian: {call: desk_parts:lookup}
      reader: {role: Reader}
      writer: {role: Writer, tools: [kb_search]}
      other: {role: Other}
    flow:
      sequential: [librarian, reader, writer, other]
"""
PARTS = '''
    """The librarian: a Python member that searches with its own access."""
    import podium.knowledge


    async def lookup(state):
        found = await podium.knowledge.current().search(state.task, k=2)
        return [hit.cite for hit in found]
'''


async def test_a_crew_loads_its_sources_and_gives_its_agents_their_tools(tmp_path: Path) -> None:
    files = {**DOCS, "notes.md": "# Notes\n\nThe writer's own notes on refunds.\n", "desk_parts.py": PARTS}
    crew = load_crew(write_files(tmp_path, CREW, files))
    tools = {name: sorted(agent.tools) for name, agent in crew.agents.items()}
    assert tools == {
        "librarian": [],
        "reader": ["kb_read", "kb_search"],
        "writer": ["kb_read", "kb_search", "kb_write"],
        "other": [],
    }
    assert crew.summary()["knowledge"]["access"]["reader"] == {"read": ["crew"], "write": []}
    store = SQLiteStore(tmp_path / "journal.db")
    result = await crew.run("how long does a refund take", store=store)
    assert result.status is RunStatus.COMPLETED
    assert result.state.turns[0].content == ["docs/refunds.md:3", "docs/refunds.md:7"]  # crew namespace only
    kb = await KnowledgeBase.open(store)
    assert {r.namespace for r in await kb.records()} == {"crew:desk", "agent:writer"}
    assert all(not r.changed for r in await crew.load_knowledge(store))  # loaded again: nothing changed


async def test_a_crew_with_an_embedder_searches_semantically(tmp_path: Path) -> None:
    text = CREW.replace(
        "    access:", "    embedder: tests.knowledge.embedder:make\n      search: hybrid\n      access:"
    )
    files = {**DOCS, "notes.md": "# Notes\n", "desk_parts.py": PARTS}
    crew = load_crew(write_files(tmp_path, text, files))
    assert crew.knowledge is not None
    assert crew.knowledge.embedder is not None
    store = SQLiteStore(tmp_path / "journal.db")
    result = await crew.run("refnds bnk", store=store)  # typos: only the vectors can find it
    assert result.state.turns[0].content[0].startswith("docs/refunds.md")


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (("reader: {read: [crew]}", "readr: {read: [crew]}"), "knowledge.access.readr", "did you mean 'reader'"),
        (("reader: {read: [crew]}", "reader: {read: [crew, team]}"), "knowledge.access.reader.read[1]", "'team'"),
        (("{path: docs/}", "{path: dox/}"), "knowledge.sources[0].path", "no file or folder dox/"),
        (("{path: docs/}", '{path: docs/, glob: "*.rst"}'), "knowledge.sources[0].glob", "no file in docs/ matches"),
        (("{path: docs/}", "{path: docs/, namespace: run}"), "knowledge.sources[0].namespace", "run's namespace"),
        (("agent:writer}", "agent:writr}"), "knowledge.sources[1].namespace", "no agent 'writr'"),
        (("other: {role: Other}", "other: {role: Other, tools: [kb_read]}"), "agents.other.tools[0]", "knowledge"),
        (("    access:", "    search: semantic\n      access:"), "knowledge.search", "needs an embedder"),
        (("    sources:", "    soruces:"), "knowledge.soruces", "did you mean 'sources'"),
        (("    access:", "    chunking: {max_chars: 50}\n      access:"), "knowledge.chunking.max_chars", "100"),
        (("    access:", "    embedder: nowhere:thing\n      access:"), "knowledge.embedder", "cannot import"),
    ],
)
def test_knowledge_section_errors_name_the_file_line_and_field(
    tmp_path: Path, change: tuple[str, str], field: str, message: str
) -> None:
    files = {**DOCS, "notes.md": "# Notes\n", "desk_parts.py": PARTS}
    path = write_files(tmp_path, CREW.replace(*change), files)
    with pytest.raises(CrewFileError) as error:
        load_crew(path)
    assert error.value.field == field
    assert error.value.path == str(path)
    assert error.value.line is not None
    assert message in str(error.value)


async def test_a_source_that_became_unreadable_fails_the_run_before_it_starts(tmp_path: Path) -> None:
    files = {**DOCS, "notes.md": "# Notes\n", "desk_parts.py": PARTS}
    path = write_files(tmp_path, CREW, files)
    crew = load_crew(path)
    (tmp_path / "docs/shipping.md").write_bytes(b"caf\xe9")
    store = SQLiteStore(tmp_path / "journal.db")
    with pytest.raises(KnowledgeError, match=r"crew.yaml:5 \(knowledge.sources\[0\]\): docs/shipping.md:1 is not"):
        await crew.run("x", store=store)
    await store.open()
    assert await store.list_runs() == []
