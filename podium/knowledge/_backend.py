"""What a knowledge base needs from the database its journal lives in: the ``Backend`` protocol, and the parts the
SQLite and PostgreSQL backends share (scopes, query terms, rows made into records)."""

from __future__ import annotations

import re
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias

from pydantic_core import from_json

from podium.errors import KnowledgeError
from podium.knowledge._records import Hit, Provenance, Record

if TYPE_CHECKING:
    from podium.journal._store import Store

__all__ = [
    "RECORD_COLUMNS",
    "Action",
    "Backend",
    "ChunkRow",
    "KnowledgeStats",
    "RecordFilter",
    "Scope",
    "backend_for",
    "hit_from_row",
    "query_terms",
    "record_from_row",
]

Action: TypeAlias = Literal["created", "updated", "unchanged", "deleted"]
VERSION = "1"
"""The knowledge tables' version, kept as ``knowledge_version`` in the journal's ``podium_meta``."""

RECORD_COLUMNS = (
    "id, namespace, kind, title, text, source, metadata, content_hash, agent, run_id, step, task_id, written_at, chunks"
)
"""The records table's columns in the order :func:`record_from_row` reads them."""
HIT_COLUMNS = (
    "r.id, r.namespace, r.kind, r.title, c.heading, c.text, r.source, c.line, c.seq, r.agent, r.run_id, r.step,"
    " r.task_id, r.written_at"
)
"""A chunk's and its record's columns in the order :func:`hit_from_row` reads them (the score follows)."""
_TERM = re.compile(r"[^\W_]+")
MAX_TERMS = 32
_STOP = """
a about above after again against all am an and any are as at be because been before being below between both but by
can could did do does doing down during each few for from further had has have having he her here hers him his how i
if in into is it its itself just me more most my no nor not now of off on once only or other our out over own same
she should so some such than that the their them then there these they this those through to too under until up very
was we were what when where which while who whom why will with would you your
"""
STOP_WORDS = frozenset(_STOP.split())
"""Words too common to say what a query is about (PostgreSQL's ``english`` configuration drops much the same)."""


@dataclass(frozen=True, slots=True)
class Scope:
    """The namespaces a search or listing covers: exact ones, and whole kinds (``run:*``). None: everything."""

    namespaces: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()

    @classmethod
    def of(cls, entries: Sequence[str]) -> Scope:
        exact = tuple(e for e in entries if not e.endswith(":*"))
        kinds = tuple(e[:-2] for e in entries if e.endswith(":*"))
        return cls(exact, kinds)

    @property
    def empty(self) -> bool:
        return not self.namespaces and not self.kinds


@dataclass(frozen=True, slots=True)
class ChunkRow:
    """A chunk as stored: its place, text, heading, first line, and vector (float32 bytes) if embedded."""

    seq: int
    text: str
    heading: str
    line: int
    vector: bytes | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordFilter:
    """Which records :meth:`Backend.records` lists (every given field must match)."""

    scope: Scope | None = None
    kind: str | None = None
    agent: str | None = None
    run_id: str | None = None
    source_prefix: str | None = None
    id_prefix: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class KnowledgeStats:
    """How much the knowledge base holds.

    Attributes:
        records: documents and facts.
        chunks: their chunks (what a search ranks).
        embedded: chunks that have a vector.
        bytes: the knowledge tables' and indexes' size on disk, when the database can tell (else None).
    """

    records: int
    chunks: int
    embedded: int
    bytes: int | None


class Backend(Protocol):
    """The knowledge tables in one database. Every method is one transaction."""

    url: str

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def put(self, record: Record, chunks: Sequence[ChunkRow], embedder: str | None) -> tuple[Action, Record]:
        """Insert or replace ``record`` and its chunks. When a record with its id is stored in the same namespace
        with the same content hash (and, given ``embedder``, vectors of it), nothing is written: ``unchanged`` and
        the stored record (with its first writer's provenance)."""
        ...

    async def get(self, record_id: str) -> tuple[Record, str | None] | None:
        """The record and the name of the embedder of its vectors, or None."""
        ...

    async def delete(self, record_ids: Sequence[str]) -> list[Record]:
        """Delete these records and their chunks; returns those that existed."""
        ...

    async def keyword(self, terms: Sequence[str], scope: Scope | None, k: int) -> list[Hit]:
        """The ``k`` chunks that match any of ``terms`` best, best first."""
        ...

    async def vectors(self, scope: Scope | None, embedder: str) -> list[tuple[tuple[str, int], bytes]]:
        """Every chunk vector of ``embedder`` in scope, keyed by (record id, chunk)."""
        ...

    async def hits(self, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], Hit]:
        """The chunks with these keys (score 0), by key."""
        ...

    async def version(self) -> tuple[int, int]:
        """A value that any write (by anyone) changes: vectors read when it had the same value are still what is
        stored."""
        ...

    async def records(self, where: RecordFilter, limit: int) -> list[Record]:
        """Records that match, most recently written first."""
        ...

    async def stats(self) -> KnowledgeStats: ...


def query_terms(query: str) -> list[str]:
    """The words of a query (letters and digits; at most 32, each once), lowercased, without stop words unless it
    has nothing else: every search backend ORs them together and ranks by how well a chunk matches, so a model's
    free text never breaks a query's syntax, and "how long does a refund take" is about refunds, not about "a"."""
    words = list(dict.fromkeys(t.lower() for t in _TERM.findall(query)))
    return ([w for w in words if w not in STOP_WORDS] or words)[:MAX_TERMS]


def record_from_row(row: Sequence[Any]) -> Record:
    id_, namespace, kind, title, text, source, metadata, digest, agent, run_id, step, task_id, at, chunks = row
    return Record(
        id=id_,
        namespace=namespace,
        kind=kind,
        title=title,
        text=text,
        source=source,
        metadata=from_json(metadata) if metadata else {},
        content_hash=digest,
        provenance=Provenance(agent=agent, run_id=run_id, step=step, task_id=task_id, at=at),
        chunks=chunks,
    )


def hit_from_row(row: Sequence[Any], score: float) -> Hit:
    id_, namespace, kind, title, heading, text, source, line, seq, agent, run_id, step, task_id, at = row[:14]
    return Hit(
        record_id=id_,
        namespace=namespace,
        kind=kind,
        title=title,
        heading=heading,
        text=text,
        source=source,
        line=line,
        chunk=seq,
        score=score,
        provenance=Provenance(agent=agent, run_id=run_id, step=step, task_id=task_id, at=at),
    )


def backend_for(store: Store) -> Backend:
    """The knowledge tables for a journal store: in its SQLite file, its PostgreSQL database, or in memory."""
    from podium.journal._memory import MemoryStore
    from podium.journal._sqlite import SQLiteStore
    from podium.knowledge._sqlite import SQLiteBackend

    if isinstance(store, SQLiteStore) and store.path is not None:
        return SQLiteBackend(store.path, url=store.url, durability=store.durability)
    if isinstance(store, SQLiteStore | MemoryStore):
        backend = _IN_MEMORY.get(store)
        if backend is None:
            backend = _IN_MEMORY[store] = SQLiteBackend(None, url=store.url, shared=True)
        return backend
    if type(store).__name__ == "PostgresStore":
        from podium.knowledge._postgres import PostgresBackend

        return PostgresBackend(store)  # type: ignore[arg-type]
    raise KnowledgeError(
        f"a {type(store).__name__} cannot hold a knowledge base: use a SQLite, PostgreSQL or memory store"
    )


_IN_MEMORY: weakref.WeakKeyDictionary[Any, Backend] = weakref.WeakKeyDictionary()
"""The in-memory knowledge base of each in-memory store, gone with the store."""
