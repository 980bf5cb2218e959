"""``KnowledgeBase``: documents and facts in namespaces, in the journal's database, searchable by keyword and meaning.

This is the trusted API (a person's code, a crew loading its sources): it reads and writes any namespace. Agents
use :class:`~podium.knowledge.AgentKnowledge`, which enforces their :class:`~podium.knowledge.Access`, usually
through :func:`~podium.knowledge.knowledge_tools`.

**Provenance and the journal.** Every write records who wrote (``agent``), and, inside a run's step, the run, step
and task (from ``podium.context()``) and when. A write inside a run is also journaled (``knowledge_written``), so
the run's journal shows what it wrote.

**Idempotent writes.** A record's id is given, or derived: inside a step from the step's deterministic ids
(``context().new_id()``), through a tool from the call's idempotency key. So a step that runs again after a crash,
or a retried attempt, writes the same ids again, and a write whose content is what is stored already changes
nothing (``unchanged``): nothing is duplicated.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from pydantic_core import PydanticSerializationError, to_json

from podium.errors import ConfigError, KnowledgeError
from podium.journal._events import KnowledgeWritten
from podium.knowledge._backend import (
    Action,
    Backend,
    ChunkRow,
    KnowledgeStats,
    RecordFilter,
    Scope,
    backend_for,
    query_terms,
)
from podium.knowledge._chunks import Chunk, Chunking, chunk_text
from podium.knowledge._embedder import Embedder, check_embedder, embed
from podium.knowledge._records import Hit, Namespace, Provenance, Record, RecordKind, content_hash
from podium.knowledge._vectors import Vectors, fuse
from podium.runtime._context import _current

if TYPE_CHECKING:
    from podium.journal._store import Store
    from podium.knowledge._sources import LoadReport

__all__ = ["KnowledgeBase", "SearchMode", "derived_id"]

SearchMode: TypeAlias = Literal["keyword", "semantic", "hybrid"]
MAX_FACT_CHARS = 2000


class KnowledgeBase:
    """Documents and facts, namespaced, in the database of a journal store. Open one with :meth:`open`.

    Args:
        backend: the tables (see :meth:`open`).
        embedder: computes chunk vectors when records are written, and query vectors for semantic search.
        chunking: how documents are split, unless a write says otherwise.
    """

    def __init__(self, backend: Backend, *, embedder: Embedder | None = None, chunking: Chunking | None = None) -> None:
        self.backend = backend
        self.embedder = check_embedder(embedder) if embedder is not None else None
        self.chunking = chunking or Chunking()
        self._vectors = Vectors(backend)

    @property
    def url(self) -> str:
        """The store's URL (passwords removed)."""
        return self.backend.url

    def __repr__(self) -> str:
        return f"<KnowledgeBase {self.url}>"

    @classmethod
    async def open(
        cls,
        store: Store | str | Path | None = None,
        *,
        embedder: Embedder | None = None,
        chunking: Chunking | None = None,
    ) -> KnowledgeBase:
        """The knowledge base in a journal store's database, its tables created if absent.

        Args:
            store: a store, a store URL (``sqlite:///.podium/podium.db``, ``postgresql://...``, ``memory://``) or a
                SQLite file's path; None: the default store (``$PODIUM_STORE`` or ``.podium/podium.db``). A
                SQLite journal keeps the knowledge tables in its file, PostgreSQL in its database (through the
                store's pool); a store in memory gets an in-memory knowledge base that lives as long as the store.

        Raises:
            StoreError: the store cannot be opened, or is not a podium journal.
            KnowledgeError: a kind of store that cannot hold a knowledge base.
        """
        from podium.journal import default_store, open_store

        opened = default_store() if store is None else open_store(store) if isinstance(store, str | Path) else store
        await opened.open()  # the journal's schema first: it refuses a database that already has other tables
        kb = cls(backend_for(opened), embedder=embedder, chunking=chunking)
        await kb.backend.open()
        return kb

    async def close(self) -> None:
        """Close the connection (a SQLite file's); the store's own is left alone."""
        await self.backend.close()

    async def __aenter__(self) -> KnowledgeBase:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- writing ----------------------------------------------------------------------------------------

    async def write_document(
        self,
        namespace: str | Namespace,
        text: str,
        *,
        title: str = "",
        source: str | None = None,
        metadata: dict[str, Any] | None = None,
        id: str | None = None,
        agent: str | None = None,
        chunking: Chunking | None = None,
    ) -> Record:
        """Write a document (chunked for search), or replace the record with this ``id``.

        Args:
            namespace: ``kind:name``.
            id: the record's id; derived when None (see the module docstring).
            agent: who writes, for the provenance.

        Raises:
            ConfigError: empty text, a bad namespace, metadata that is not JSON.
        """
        written = await self.put(
            "document", namespace, text, title=title, source=source, metadata=metadata, id=id, agent=agent,
            chunks=chunk_text(text, chunking or self.chunking),
        )  # fmt: skip
        return written[1]

    async def write_fact(
        self,
        namespace: str | Namespace,
        text: str,
        *,
        metadata: dict[str, Any] | None = None,
        id: str | None = None,
        agent: str | None = None,
    ) -> Record:
        """Write a fact: a short statement (one chunk) with key/value ``metadata``. See :meth:`write_document`."""
        if len(text) > MAX_FACT_CHARS:
            raise ConfigError(f"a fact is a short statement (at most {MAX_FACT_CHARS} characters); write a document")
        written = await self.put(
            "fact", namespace, text, metadata=metadata, id=id, agent=agent, chunks=[Chunk(text.strip(), "", 1)]
        )
        return written[1]

    async def put(
        self,
        kind: RecordKind,
        namespace: str | Namespace,
        text: str,
        *,
        chunks: Sequence[Chunk],
        title: str = "",
        source: str | None = None,
        metadata: dict[str, Any] | None = None,
        id: str | None = None,
        agent: str | None = None,
    ) -> tuple[Action, Record]:
        """Write a record already split into ``chunks``; returns what happened and the stored record."""
        space = str(Namespace.parse(namespace))
        if not text.strip():
            raise ConfigError("a record needs some text")
        meta = dict(metadata or {})
        try:
            to_json(meta)
        except PydanticSerializationError as exc:
            raise ConfigError(f"metadata must be JSON values: {exc}") from exc
        digest = content_hash(kind, title, text, source, meta)
        record_id = id or derived_id()
        if self.embedder is None or await self._unchanged(record_id, space, digest):
            vectors: list[bytes | None] = [None] * len(chunks)
        else:
            vectors = list(await asyncio.to_thread(embed, self.embedder, [_embedded_text(c, title) for c in chunks]))
        record = Record(
            id=record_id,
            namespace=space,
            kind=kind,
            title=title,
            text=text,
            source=source,
            metadata=meta,
            content_hash=digest,
            provenance=_provenance(agent),
            chunks=len(chunks),
        )
        rows = [ChunkRow(n, c.text, c.heading, c.line, v) for n, (c, v) in enumerate(zip(chunks, vectors, strict=True))]
        action, stored = await self.backend.put(record, rows, self.embedder.name if self.embedder else None)
        await _journal(action, stored, agent)
        return action, stored

    async def _unchanged(self, record_id: str, namespace: str, digest: str) -> bool:
        """Whether writing this would change nothing (so its chunks need not be embedded)."""
        found = await self.backend.get(record_id)
        if found is None:
            return False
        record, embedder = found
        return record.namespace == namespace and record.content_hash == digest and embedder == _name(self.embedder)

    async def delete(self, record_id: str, *, agent: str | None = None) -> bool:
        """Delete a record and its chunks (journaled inside a run); False if there was none."""
        gone = await self.backend.delete([record_id])
        for record in gone:
            await _journal("deleted", record, agent)
        return bool(gone)

    async def delete_many(self, record_ids: Sequence[str]) -> list[Record]:
        """Delete records in one transaction; returns those that existed (not journaled: for sources)."""
        return await self.backend.delete(record_ids)

    async def load(
        self,
        path: str | Path,
        *,
        namespace: str | Namespace,
        glob: str | Sequence[str] = ("**/*.md", "**/*.txt"),
        base: str | Path | None = None,
        chunking: Chunking | None = None,
    ) -> LoadReport:
        """Load a file, or a folder's files that match ``glob``, as documents (one per file), chunked.

        Idempotent: an unchanged file (by content hash) writes nothing; a changed one replaces its record; a file
        that is gone (or no longer matches) has its record deleted. Each record's ``source`` is the file's path
        relative to ``base`` (default: the working folder), and its id ``source:<namespace>:<source>``.

        Raises:
            KnowledgeError: the path does not exist, or a file is not UTF-8 text.
        """
        from podium.knowledge._sources import Source, load_source

        source = Source(path=Path(path), namespace=str(Namespace.parse(namespace)), glob=glob, chunking=chunking)
        return await load_source(self, source, base=Path(base) if base is not None else Path.cwd())

    # -- reading ----------------------------------------------------------------------------------------

    async def read(self, record_id: str) -> Record:
        """The record with this id.

        Raises:
            KnowledgeError: there is none.
        """
        found = await self.backend.get(record_id)
        if found is None:
            raise KnowledgeError(f"no record {record_id!r} in the knowledge base at {self.url}")
        return found[0]

    async def find(self, record_id: str) -> Record | None:
        """The record with this id, or None."""
        found = await self.backend.get(record_id)
        return found[0] if found is not None else None

    async def search(
        self,
        query: str,
        *,
        namespaces: Sequence[str | Namespace] | None = None,
        k: int = 5,
        mode: SearchMode | None = None,
    ) -> list[Hit]:
        """The ``k`` chunks that best match ``query``, best first.

        Args:
            namespaces: where to look (``kind:name``, or ``kind:*`` for a whole kind); None: everywhere.
            mode: ``keyword`` (full-text: bm25 in SQLite, ts_rank in PostgreSQL; any of the query's words may
                match), ``semantic`` (cosine similarity of the embedder's vectors) or ``hybrid`` (both, fused by
                reciprocal rank). Default: hybrid with an embedder, else keyword.

        Raises:
            ConfigError: a semantic or hybrid search without an embedder (or without numpy), a bad namespace.
        """
        if k < 1:
            raise ConfigError(f"k must be at least 1, not {k}")
        chosen = mode or ("hybrid" if self.embedder is not None else "keyword")
        scope = _scope(namespaces)
        if scope is not None and scope.empty:
            return []
        if chosen == "keyword":
            return await self.backend.keyword(query_terms(query), scope, k)
        if chosen not in ("semantic", "hybrid"):
            raise ConfigError(f"mode must be 'keyword', 'semantic' or 'hybrid', not {chosen!r}")
        if self.embedder is None:
            raise ConfigError(
                f"a {chosen} search needs an embedder: KnowledgeBase.open(..., embedder=...) (or mode='keyword')"
            )
        if chosen == "semantic":
            return await self._vectors.search(query, scope, k, self.embedder)
        wide = max(k * 4, 20)
        keyword, semantic = await asyncio.gather(
            self.backend.keyword(query_terms(query), scope, wide),
            self._vectors.search(query, scope, wide, self.embedder),
        )
        return fuse(keyword, semantic, k)

    async def records(
        self,
        *,
        namespace: str | Namespace | None = None,
        kind: RecordKind | None = None,
        agent: str | None = None,
        run_id: str | None = None,
        limit: int = 100,
    ) -> list[Record]:
        """Records, most recently written first: the audit trail (``agent=``, ``run_id=``: who wrote what)."""
        scope = _scope([namespace]) if namespace is not None else None
        where = RecordFilter(scope=scope, kind=kind, agent=agent, run_id=run_id)
        return await self.backend.records(where, limit)

    async def stats(self) -> KnowledgeStats:
        """How many records and chunks it holds, and how big its tables are."""
        return await self.backend.stats()


def derived_id() -> str:
    """A new record id: from the step's deterministic ids inside a run (the same on a re-run), else random."""
    ctx = _current.get()
    if ctx is None:
        return uuid.uuid4().hex
    return uuid.uuid5(uuid.NAMESPACE_URL, f"podium-knowledge:{ctx.new_id()}").hex


def _provenance(agent: str | None) -> Provenance:
    ctx = _current.get()
    if ctx is None:
        return Provenance(agent=agent, at=time.time())
    # the wall clock, not the step's deterministic one: this is when it was written, for the audit trail
    return Provenance(agent=agent, run_id=ctx.run_id, step=ctx.step, task_id=ctx.task_id, at=time.time())


async def _journal(action: Action, record: Record, agent: str | None) -> None:
    ctx = _current.get()
    if ctx is not None:
        await ctx.record(
            KnowledgeWritten(
                task_id=ctx.task_id,
                agent=agent,
                namespace=record.namespace,
                record_id=record.id,
                record_kind=record.kind,
                title=record.title,
                action=action,
                content_hash=record.content_hash,
            )
        )


def _scope(namespaces: Sequence[str | Namespace | None] | None) -> Scope | None:
    if namespaces is None:
        return None
    entries = []
    for entry in namespaces:
        text = str(entry)
        if not text.endswith(":*"):
            text = str(Namespace.parse(text))
        entries.append(text)
    return Scope.of(entries)


def _embedded_text(chunk: Chunk, title: str) -> str:
    """What a chunk's vector is computed from: its title and headings give its text its context."""
    head = " > ".join(part for part in (title, chunk.heading) if part)
    return f"{head}\n\n{chunk.text}" if head else chunk.text


def _name(embedder: Embedder | None) -> str | None:
    return embedder.name if embedder is not None else None
