"""The knowledge tables in a SQLite journal's file: records, chunks, and an FTS5 index ranked by bm25.

The knowledge base has its own connection to the journal's file (WAL mode, like the journal's), used from a worker
thread so that no query blocks the event loop; one transaction at a time per connection, and every write is one
``BEGIN IMMEDIATE`` transaction, so writers in other processes wait (``busy_timeout``) rather than fail.

The FTS5 table indexes each chunk's title, headings and text (``porter`` stemming over ``unicode61``), kept in step
with the chunks table by triggers. A journal in memory (``memory://``, ``SQLiteStore(":memory:")``) gets a knowledge
base in an in-memory SQLite database, shared by everyone using that store object and gone with it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

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

__all__ = ["SQLiteBackend"]

T = TypeVar("T")

_TABLES = f"""
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS podium_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS podium_kb_records (
    id TEXT PRIMARY KEY, namespace TEXT NOT NULL, kind TEXT NOT NULL, title TEXT NOT NULL, text TEXT NOT NULL,
    source TEXT, metadata TEXT NOT NULL, content_hash TEXT NOT NULL, agent TEXT, run_id TEXT, step TEXT,
    task_id TEXT, written_at REAL NOT NULL, chunks INTEGER NOT NULL, embedder TEXT);
CREATE INDEX IF NOT EXISTS podium_kb_records_by_namespace ON podium_kb_records (namespace, written_at);
CREATE INDEX IF NOT EXISTS podium_kb_records_by_run ON podium_kb_records (run_id) WHERE run_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS podium_kb_records_by_agent ON podium_kb_records (agent) WHERE agent IS NOT NULL;
CREATE TABLE IF NOT EXISTS podium_kb_chunks (
    chunk_id INTEGER PRIMARY KEY, record_id TEXT NOT NULL, seq INTEGER NOT NULL, namespace TEXT NOT NULL,
    title TEXT NOT NULL, heading TEXT NOT NULL, text TEXT NOT NULL, line INTEGER NOT NULL, vector BLOB,
    UNIQUE (record_id, seq));
CREATE INDEX IF NOT EXISTS podium_kb_chunks_by_namespace ON podium_kb_chunks (namespace);
CREATE VIRTUAL TABLE IF NOT EXISTS podium_kb_fts USING fts5(
    title, heading, text, content='podium_kb_chunks', content_rowid='chunk_id',
    tokenize='porter unicode61 remove_diacritics 2');
CREATE TRIGGER IF NOT EXISTS podium_kb_chunks_indexed AFTER INSERT ON podium_kb_chunks BEGIN
    INSERT INTO podium_kb_fts (rowid, title, heading, text) VALUES (new.chunk_id, new.title, new.heading, new.text);
END;
CREATE TRIGGER IF NOT EXISTS podium_kb_chunks_unindexed AFTER DELETE ON podium_kb_chunks BEGIN
    INSERT INTO podium_kb_fts (podium_kb_fts, rowid, title, heading, text)
    VALUES ('delete', old.chunk_id, old.title, old.heading, old.text);
END;
INSERT OR IGNORE INTO podium_meta VALUES ('knowledge_version', '{VERSION}');
INSERT OR IGNORE INTO podium_meta VALUES ('knowledge_writes', '0');
COMMIT;
"""
_BUMP = "UPDATE podium_meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'knowledge_writes'"
_WRITES = "SELECT value FROM podium_meta WHERE key = 'knowledge_writes'"
_BM25 = "bm25(podium_kb_fts, 2.0, 2.0, 1.0)"
"""Title and headings weigh twice the text: a chunk under a heading that names the query is about it."""


class SQLiteBackend:
    """Knowledge tables in the SQLite file at ``path`` (None: a private in-memory database).

    Args:
        path: the journal's file.
        url: the journal's URL, for errors.
        durability: the journal's (``"power"``: every commit is fsynced).
        shared: closing does nothing (an in-memory database kept by its store; closing would lose it).
    """

    def __init__(
        self,
        path: Path | None,
        *,
        url: str,
        durability: str = "process",
        busy_timeout: float = 30.0,
        shared: bool = False,
    ) -> None:
        self.path = path
        self.url = url
        self.durability = durability
        self.busy_timeout = busy_timeout
        self.shared = shared
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    # -- connection -------------------------------------------------------------------------------------

    async def open(self) -> None:
        await asyncio.to_thread(self._open)

    def _open(self) -> None:
        with self._lock:  # a threading lock, not an asyncio one: a shared backend may serve several event loops
            if self._db is None:
                self._db = self._connect()

    def _connect(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(
                self.path if self.path is not None else ":memory:",
                isolation_level=None,
                check_same_thread=False,
                timeout=self.busy_timeout,
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the knowledge base: {exc}", url=self.url) from exc
        try:
            if self.path is not None:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(f"PRAGMA synchronous={'FULL' if self.durability == 'power' else 'NORMAL'}")
            db.executescript(_TABLES)
            row = db.execute("SELECT value FROM podium_meta WHERE key = 'knowledge_version'").fetchone()
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            db.close()
            raise StoreError(f"cannot prepare the knowledge base: {exc}", url=self.url) from exc
        if row[0] != VERSION:
            db.close()
            raise StoreError(
                f"holds knowledge tables version {row[0]}; this podium reads version {VERSION}", url=self.url
            )
        return db

    async def close(self) -> None:
        if self._db is not None and not self.shared:
            db, self._db = self._db, None
            await asyncio.to_thread(self._close, db)

    def _close(self, db: sqlite3.Connection) -> None:
        with self._lock:
            db.close()

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.to_thread(self._transaction, fn, "BEGIN IMMEDIATE")

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.to_thread(self._transaction, fn, "BEGIN")

    def _transaction(self, fn: Callable[[sqlite3.Connection], T], begin: str) -> T:
        with self._lock:  # one transaction at a time on this connection, whichever thread runs it
            db = self._db
            if db is None:
                raise StoreError("the knowledge base is not open; call 'await kb.open()' first", url=self.url)
            try:
                db.execute(begin)
            except sqlite3.OperationalError as exc:  # locked after busy_timeout, a read-only file...
                raise StoreError(f"cannot use the knowledge base: {exc}; nothing was written", url=self.url) from exc
            try:
                result = fn(db)
                if begin == "BEGIN IMMEDIATE":  # counted in the same transaction: what version() reads
                    db.execute(_BUMP)
                db.execute("COMMIT")
            except BaseException as exc:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.OperationalError):
                    message = f"cannot use the knowledge base: {exc}; nothing was written"
                    raise StoreError(message, url=self.url) from exc
                raise
            return result

    # -- writing ----------------------------------------------------------------------------------------

    async def put(self, record: Record, chunks: Sequence[ChunkRow], embedder: str | None) -> tuple[Action, Record]:
        def put(db: sqlite3.Connection) -> tuple[Action, Record]:
            row = db.execute(
                "SELECT namespace, content_hash, embedder FROM podium_kb_records WHERE id = ?", (record.id,)
            ).fetchone()
            if row is not None:
                if row[0] == record.namespace and row[1] == record.content_hash and embedder in (None, row[2]):
                    stored = _get(db, record.id)
                    assert stored is not None
                    return "unchanged", stored[0]
                db.execute("DELETE FROM podium_kb_chunks WHERE record_id = ?", (record.id,))
            p = record.provenance
            db.execute(
                f"INSERT OR REPLACE INTO podium_kb_records ({RECORD_COLUMNS}, embedder)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record.id, record.namespace, record.kind, record.title, record.text, record.source,
                 to_json(record.metadata).decode(), record.content_hash, p.agent, p.run_id, p.step, p.task_id, p.at,
                 len(chunks), embedder if any(c.vector is not None for c in chunks) else None),
            )  # fmt: skip
            db.executemany(
                "INSERT INTO podium_kb_chunks (record_id, seq, namespace, title, heading, text, line, vector)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (record.id, c.seq, record.namespace, record.title, c.heading, c.text, c.line, c.vector)
                    for c in chunks
                ],
            )
            return ("updated" if row is not None else "created"), record

        return await self._write(put)

    async def delete(self, record_ids: Sequence[str]) -> list[Record]:
        ids = list(record_ids)

        def delete(db: sqlite3.Connection) -> list[Record]:
            gone = []
            for record_id in ids:
                found = _get(db, record_id)
                if found is not None:
                    db.execute("DELETE FROM podium_kb_chunks WHERE record_id = ?", (record_id,))
                    db.execute("DELETE FROM podium_kb_records WHERE id = ?", (record_id,))
                    gone.append(found[0])
            return gone

        return await self._write(delete) if ids else []

    # -- reading ----------------------------------------------------------------------------------------

    async def get(self, record_id: str) -> tuple[Record, str | None] | None:
        return await self._read(lambda db: _get(db, record_id))

    async def keyword(self, terms: Sequence[str], scope: Scope | None, k: int) -> list[Hit]:
        if not terms:
            return []
        match = " OR ".join(f'"{term}"' for term in terms)  # terms are letters and digits: nothing to escape
        where, params = _scope_sql(scope, "c.namespace")
        rows = await self._read(
            lambda db: db.execute(
                f"SELECT {HIT_COLUMNS}, -{_BM25} FROM podium_kb_fts"
                " JOIN podium_kb_chunks c ON c.chunk_id = podium_kb_fts.rowid"
                " JOIN podium_kb_records r ON r.id = c.record_id"
                f" WHERE podium_kb_fts MATCH ? AND {where} ORDER BY {_BM25}, r.id, c.seq LIMIT ?",
                (match, *params, k),
            ).fetchall()
        )
        return [hit_from_row(row, row[-1]) for row in rows]

    async def vectors(self, scope: Scope | None, embedder: str) -> list[tuple[tuple[str, int], bytes]]:
        where, params = _scope_sql(scope, "c.namespace")
        rows = await self._read(
            lambda db: db.execute(
                "SELECT c.record_id, c.seq, c.vector FROM podium_kb_chunks c"
                " JOIN podium_kb_records r ON r.id = c.record_id"
                f" WHERE r.embedder = ? AND c.vector IS NOT NULL AND {where}",
                (embedder, *params),
            ).fetchall()
        )
        return [((record_id, seq), vector) for record_id, seq, vector in rows]

    async def hits(self, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], Hit]:
        if not keys:
            return {}
        values = ", ".join("(?, ?)" for _ in keys)
        rows = await self._read(
            lambda db: db.execute(  # the keys drive the join: one lookup in the (record_id, seq) index each
                f"WITH k (record_id, seq) AS (VALUES {values}) SELECT {HIT_COLUMNS} FROM k"
                " CROSS JOIN podium_kb_chunks c ON c.record_id = k.record_id AND c.seq = k.seq"
                " JOIN podium_kb_records r ON r.id = c.record_id",
                [part for key in keys for part in key],
            ).fetchall()
        )
        return {(row[0], row[8]): hit_from_row(row, 0.0) for row in rows}

    async def version(self) -> tuple[int, int]:
        # a counter only knowledge writes move (whichever process or connection makes them): the journal's own
        # commits to the same file, which PRAGMA data_version would count, leave cached vectors valid
        row = await self._read(lambda db: db.execute(_WRITES).fetchone())
        return int(row[0]) if row is not None else 0, 0

    async def records(self, where: RecordFilter, limit: int) -> list[Record]:
        clauses, params = _filter_sql(where)
        rows = await self._read(
            lambda db: db.execute(
                f"SELECT {RECORD_COLUMNS} FROM podium_kb_records WHERE {clauses} ORDER BY written_at DESC, id LIMIT ?",
                (*params, limit),
            ).fetchall()
        )
        return [record_from_row(row) for row in rows]

    async def stats(self) -> KnowledgeStats:
        def stats(db: sqlite3.Connection) -> KnowledgeStats:
            records, chunks, embedded = db.execute(
                "SELECT (SELECT count(*) FROM podium_kb_records), (SELECT count(*) FROM podium_kb_chunks),"
                " (SELECT count(*) FROM podium_kb_chunks WHERE vector IS NOT NULL)"
            ).fetchone()
            try:  # dbstat is compiled into most SQLite builds, not all
                size = db.execute(
                    "SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'podium\\_kb\\_%' ESCAPE '\\'"
                    " OR name LIKE 'sqlite_autoindex_podium\\_kb\\_%' ESCAPE '\\'"
                ).fetchone()[0]
            except sqlite3.OperationalError:
                size = None
            return KnowledgeStats(records=records, chunks=chunks, embedded=embedded, bytes=size)

        return await self._read(stats)


def _get(db: sqlite3.Connection, record_id: str) -> tuple[Record, str | None] | None:
    row = db.execute(f"SELECT {RECORD_COLUMNS}, embedder FROM podium_kb_records WHERE id = ?", (record_id,)).fetchone()
    return None if row is None else (record_from_row(row[:-1]), row[-1])


def _scope_sql(scope: Scope | None, column: str) -> tuple[str, list[Any]]:
    """A condition on ``column`` for the namespaces of ``scope`` (a kind as a range: ``'run:' <= ns < 'run;'``)."""
    if scope is None:
        return "1", []
    parts: list[str] = []
    params: list[Any] = []
    if scope.namespaces:
        parts.append(f"{column} IN ({', '.join('?' for _ in scope.namespaces)})")
        params += scope.namespaces
    for kind in scope.kinds:
        parts.append(f"({column} >= ? AND {column} < ?)")
        params += [f"{kind}:", f"{kind};"]
    return (f"({' OR '.join(parts)})" if parts else "0"), params


def _filter_sql(where: RecordFilter) -> tuple[str, list[Any]]:
    clauses, params = _scope_sql(where.scope, "namespace")
    conditions = [clauses]
    for column, value in (("kind", where.kind), ("agent", where.agent), ("run_id", where.run_id)):
        if value is not None:
            conditions.append(f"{column} = ?")
            params.append(value)
    for column, prefix in (("source", where.source_prefix), ("id", where.id_prefix)):
        if prefix is not None:
            conditions.append(f"substr({column}, 1, ?) = ?")
            params += [len(prefix), prefix]
    return " AND ".join(conditions), params
