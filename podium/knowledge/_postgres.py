"""The knowledge tables in a PostgreSQL journal's database: records, chunks with a generated ``tsvector`` column
under a GIN index, ranked by ``ts_rank``.

The backend uses the journal store's connection pool (one pool per store and event loop). Each chunk's
``tsvector`` weighs its title and headings (``A``, ``B``) above its text, in the ``english`` configuration
(stemming, stop words). Vectors are ``bytea`` (float32), compared in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic_core import to_json

from podium.errors import StoreError
from podium.knowledge._backend import (
    HIT_COLUMNS,
    RECORD_COLUMNS,
    VERSION,
    Action,
    ChunkRow,
    KnowledgeStats,
    RecordFilter,
    Scope,
    hit_from_row,
    record_from_row,
)
from podium.knowledge._records import Hit, Record

if TYPE_CHECKING:
    from podium.journal._postgres import Cursor, PostgresStore

__all__ = ["PostgresBackend"]

_LOCK_KEY = 0x706F6469756D2D6B  # b"podium-k": serialises creating the tables by processes opening at once
_TABLES = """
CREATE TABLE IF NOT EXISTS podium_kb_records (
    id TEXT PRIMARY KEY, namespace TEXT NOT NULL, kind TEXT NOT NULL, title TEXT NOT NULL, text TEXT NOT NULL,
    source TEXT, metadata TEXT NOT NULL, content_hash TEXT NOT NULL, agent TEXT, run_id TEXT, step TEXT,
    task_id TEXT, written_at DOUBLE PRECISION NOT NULL, chunks INTEGER NOT NULL, embedder TEXT);
CREATE INDEX IF NOT EXISTS podium_kb_records_by_namespace ON podium_kb_records (namespace, written_at);
CREATE INDEX IF NOT EXISTS podium_kb_records_by_run ON podium_kb_records (run_id) WHERE run_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS podium_kb_records_by_agent ON podium_kb_records (agent) WHERE agent IS NOT NULL;
CREATE TABLE IF NOT EXISTS podium_kb_chunks (
    record_id TEXT NOT NULL, seq INTEGER NOT NULL, namespace TEXT NOT NULL, title TEXT NOT NULL,
    heading TEXT NOT NULL, text TEXT NOT NULL, line INTEGER NOT NULL, vector BYTEA,
    chunk_id BIGINT GENERATED ALWAYS AS IDENTITY,
    tsv TSVECTOR GENERATED ALWAYS AS (
        setweight(to_tsvector('english', title), 'A') || setweight(to_tsvector('english', heading), 'B')
        || to_tsvector('english', text)) STORED,
    PRIMARY KEY (record_id, seq));
CREATE INDEX IF NOT EXISTS podium_kb_chunks_by_namespace ON podium_kb_chunks (namespace);
CREATE INDEX IF NOT EXISTS podium_kb_chunks_tsv ON podium_kb_chunks USING GIN (tsv);
CREATE TABLE IF NOT EXISTS podium_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_TABLE_NAMES = ("podium_kb_records", "podium_kb_chunks")


class PostgresBackend:
    """Knowledge tables beside a :class:`~podium.journal.PostgresStore`'s journal, through its pool."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store
        self.url = store.url

    async def open(self) -> None:
        import psycopg

        await self.store.open()
        try:
            async with self.store.transaction() as cur:
                await cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                await cur.execute(_TABLES)
                await cur.execute(
                    "INSERT INTO podium_meta VALUES ('knowledge_version', %s) ON CONFLICT DO NOTHING", (VERSION,)
                )
                await cur.execute("SELECT value FROM podium_meta WHERE key = 'knowledge_version'")
                row = await cur.fetchone()
        except psycopg.Error as exc:
            raise StoreError(f"cannot prepare the knowledge base: {self.store.scrub(exc)}", url=self.url) from exc
        if row is None or row[0] != VERSION:
            raise StoreError(
                f"holds knowledge tables version {row[0] if row else None}; this podium reads version {VERSION}",
                url=self.url,
            )

    async def close(self) -> None:
        return None  # the pool is the journal store's

    # -- writing ----------------------------------------------------------------------------------------

    async def put(self, record: Record, chunks: Sequence[ChunkRow], embedder: str | None) -> tuple[Action, Record]:
        p = record.provenance
        async with self.store.transaction() as cur:
            # the row lock serialises writers of one id: the second sees the first's content and may stop here
            await cur.execute(
                "SELECT namespace, content_hash, embedder FROM podium_kb_records WHERE id = %s FOR UPDATE", (record.id,)
            )
            row = await cur.fetchone()
            same = row is not None and (row[0], row[1]) == (record.namespace, record.content_hash)
            if row is not None and same and embedder in (None, row[2]):
                stored = await _get(cur, record.id)
                assert stored is not None
                return "unchanged", stored[0]
            await cur.execute(
                f"INSERT INTO podium_kb_records ({RECORD_COLUMNS}, embedder)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (id) DO UPDATE SET namespace = excluded.namespace, kind = excluded.kind,"
                " title = excluded.title, text = excluded.text, source = excluded.source,"
                " metadata = excluded.metadata, content_hash = excluded.content_hash, agent = excluded.agent,"
                " run_id = excluded.run_id, step = excluded.step, task_id = excluded.task_id,"
                " written_at = excluded.written_at, chunks = excluded.chunks, embedder = excluded.embedder",
                (record.id, record.namespace, record.kind, record.title, record.text, record.source,
                 to_json(record.metadata).decode(), record.content_hash, p.agent, p.run_id, p.step, p.task_id, p.at,
                 len(chunks), embedder if any(c.vector is not None for c in chunks) else None),
            )  # fmt: skip
            # after the upsert, which holds the row's lock: a writer of the same new id that got there first has
            # committed its chunks by now, and they are replaced, not collided with
            await cur.execute("DELETE FROM podium_kb_chunks WHERE record_id = %s", (record.id,))
            if chunks:
                await cur.executemany(
                    "INSERT INTO podium_kb_chunks (record_id, seq, namespace, title, heading, text, line, vector)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    [
                        (record.id, c.seq, record.namespace, record.title, c.heading, c.text, c.line, c.vector)
                        for c in chunks
                    ],
                )
            return ("updated" if row is not None else "created"), record

    async def delete(self, record_ids: Sequence[str]) -> list[Record]:
        ids = list(record_ids)
        if not ids:
            return []
        async with self.store.transaction() as cur:
            await cur.execute(f"DELETE FROM podium_kb_records WHERE id = ANY(%s) RETURNING {RECORD_COLUMNS}", (ids,))
            gone = [record_from_row(row) for row in await cur.fetchall()]
            await cur.execute("DELETE FROM podium_kb_chunks WHERE record_id = ANY(%s)", (ids,))
        return gone

    # -- reading ----------------------------------------------------------------------------------------

    async def get(self, record_id: str) -> tuple[Record, str | None] | None:
        async with self.store.transaction() as cur:
            return await _get(cur, record_id)

    async def keyword(self, terms: Sequence[str], scope: Scope | None, k: int) -> list[Hit]:
        if not terms:
            return []
        where, params = _scope_sql(scope, "c.namespace")
        async with self.store.transaction() as cur:
            # to_tsquery of words joined by '|': any may match; stop words drop out, stems match stems
            await cur.execute(
                f"SELECT {HIT_COLUMNS}, ts_rank(c.tsv, q) AS score"
                " FROM podium_kb_chunks c JOIN podium_kb_records r ON r.id = c.record_id,"
                " to_tsquery('english', %s) q"
                f" WHERE c.tsv @@ q AND {where} ORDER BY score DESC, r.id, c.seq LIMIT %s",
                (" | ".join(terms), *params, k),
            )
            rows = await cur.fetchall()
        return [hit_from_row(row, float(row[-1])) for row in rows]

    async def vectors(self, scope: Scope | None, embedder: str) -> list[tuple[tuple[str, int], bytes]]:
        where, params = _scope_sql(scope, "c.namespace")
        async with self.store.transaction() as cur:
            await cur.execute(
                "SELECT c.record_id, c.seq, c.vector FROM podium_kb_chunks c"
                " JOIN podium_kb_records r ON r.id = c.record_id"
                f" WHERE r.embedder = %s AND c.vector IS NOT NULL AND {where}",
                (embedder, *params),
            )
            rows = await cur.fetchall()
        return [((record_id, seq), bytes(vector)) for record_id, seq, vector in rows]

    async def hits(self, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], Hit]:
        if not keys:
            return {}
        async with self.store.transaction() as cur:
            await cur.execute(
                f"SELECT {HIT_COLUMNS} FROM podium_kb_chunks c JOIN podium_kb_records r ON r.id = c.record_id"
                " JOIN unnest(%s::text[], %s::int[]) AS k(record_id, seq) ON k.record_id = c.record_id"
                " AND k.seq = c.seq",
                ([key[0] for key in keys], [key[1] for key in keys]),
            )
            rows = await cur.fetchall()
        return {(row[0], row[8]): hit_from_row(row, 0.0) for row in rows}

    async def version(self) -> tuple[int, int]:
        async with self.store.transaction() as cur:
            await cur.execute("SELECT count(*), coalesce(max(chunk_id), 0) FROM podium_kb_chunks")
            row = await cur.fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    async def records(self, where: RecordFilter, limit: int) -> list[Record]:
        clauses, params = _filter_sql(where)
        async with self.store.transaction() as cur:
            await cur.execute(
                f"SELECT {RECORD_COLUMNS} FROM podium_kb_records WHERE {clauses} ORDER BY written_at DESC, id LIMIT %s",
                (*params, limit),
            )
            rows = await cur.fetchall()
        return [record_from_row(row) for row in rows]

    async def stats(self) -> KnowledgeStats:
        sizes = " + ".join(f"pg_total_relation_size('{name}')" for name in _TABLE_NAMES)
        async with self.store.transaction() as cur:
            await cur.execute(
                "SELECT (SELECT count(*) FROM podium_kb_records), (SELECT count(*) FROM podium_kb_chunks),"
                f" (SELECT count(*) FROM podium_kb_chunks WHERE vector IS NOT NULL), {sizes}"
            )
            row = await cur.fetchone()
        assert row is not None
        records, chunks, embedded, size = row
        return KnowledgeStats(records=records, chunks=chunks, embedded=embedded, bytes=int(size))


async def _get(cur: Cursor, record_id: str) -> tuple[Record, str | None] | None:
    await cur.execute(f"SELECT {RECORD_COLUMNS}, embedder FROM podium_kb_records WHERE id = %s", (record_id,))
    row = await cur.fetchone()
    return None if row is None else (record_from_row(row[:-1]), row[-1])


def _scope_sql(scope: Scope | None, column: str) -> tuple[str, list[Any]]:
    if scope is None:
        return "TRUE", []
    parts: list[str] = []
    params: list[Any] = []
    if scope.namespaces:
        parts.append(f"{column} = ANY(%s)")
        params.append(list(scope.namespaces))
    for kind in scope.kinds:
        parts.append(f"starts_with({column}, %s)")  # not a range: a linguistic collation may ignore the ':'
        params.append(f"{kind}:")
    return (f"({' OR '.join(parts)})" if parts else "FALSE"), params


def _filter_sql(where: RecordFilter) -> tuple[str, list[Any]]:
    clauses, params = _scope_sql(where.scope, "namespace")
    conditions = [clauses]
    for column, value in (("kind", where.kind), ("agent", where.agent), ("run_id", where.run_id)):
        if value is not None:
            conditions.append(f"{column} = %s")
            params.append(value)
    for column, prefix in (("source", where.source_prefix), ("id", where.id_prefix)):
        if prefix is not None:
            conditions.append(f"starts_with({column}, %s)")
            params.append(prefix)
    return " AND ".join(conditions), params
