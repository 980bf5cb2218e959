"""``PostgresStore``: journals in PostgreSQL, for several processes or machines sharing work (``podium[postgres]``).

Same tables and semantics as :class:`~podium.journal.SQLiteStore`, prefixed ``podium_`` because a PostgreSQL
database is often shared: other tables may live beside them. Journal data is JSON *text*, not JSONB, so what is
written is read back byte for byte.

Leases are measured on the database's clock, not the caller's ``at`` (used only for ``created_at``, ``updated_at``
and each event's time), so processes on machines whose clocks disagree still agree on whose lease is live.

Concurrency. Every method is one transaction on a pooled connection. ``append`` fences by owner in the same
``UPDATE`` that reserves the events' ``seq`` numbers; ``claim_next`` picks with ``FOR UPDATE SKIP LOCKED`` so
workers competing for runs never block each other or take the same run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import re
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeAlias

from pydantic_core import from_json, to_json

from podium.errors import InterruptError, LeaseLostError, RunNotFoundError, RunStateError, StoreError
from podium.journal._events import EVENTS, Event, InterruptAnswered, InterruptAsked
from podium.journal._memory import KEEP_WHEN_COMPACTING, claim_refusal
from podium.journal._store import FINISHED, Entry, Question, RunInfo, RunState, StoreStats

_missing: ImportError | None = None
try:
    import psycopg
    from psycopg_pool import AsyncConnectionPool
except ImportError as exc:  # the extra is not installed: PostgresStore() says how to install it
    _missing = exc

__all__ = ["PostgresStore"]

Cursor: TypeAlias = "psycopg.AsyncCursor[tuple[Any, ...]]"

_SCHEMA = "podium-journal"
_VERSION = "1"
_LOCK_KEY = 0x706F6469756D2D6A  # b"podium-j": serialises schema creation by processes opening at once
_NOW = "extract(epoch FROM clock_timestamp())::float8"  # the database's clock, for leases
_TABLES = """
CREATE TABLE IF NOT EXISTS podium_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS podium_runs (
    run_id TEXT PRIMARY KEY, workflow TEXT NOT NULL, status TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL, owner TEXT,
    lease_until DOUBLE PRECISION, last_seq BIGINT NOT NULL DEFAULT 0, parent_run_id TEXT, reason TEXT);
CREATE INDEX IF NOT EXISTS podium_runs_by_status ON podium_runs (status, created_at);
CREATE TABLE IF NOT EXISTS podium_events (
    run_id TEXT NOT NULL, seq BIGINT NOT NULL, kind TEXT NOT NULL, at DOUBLE PRECISION NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (run_id, seq));
CREATE TABLE IF NOT EXISTS podium_questions (
    run_id TEXT NOT NULL, interrupt_id TEXT NOT NULL, seq BIGINT NOT NULL, task_id TEXT NOT NULL,
    step TEXT NOT NULL, prompt TEXT NOT NULL, ask TEXT NOT NULL, schema TEXT, json_schema TEXT, value TEXT,
    asked_at DOUBLE PRECISION NOT NULL, answered BOOLEAN NOT NULL DEFAULT FALSE, answer TEXT,
    answered_at DOUBLE PRECISION, PRIMARY KEY (run_id, interrupt_id));
INSERT INTO podium_meta VALUES ('schema', 'podium-journal'), ('version', '1') ON CONFLICT DO NOTHING;
"""
_TABLE_NAMES = ("podium_meta", "podium_runs", "podium_events", "podium_questions")
_RUN_FIELDS = [field.name for field in dataclasses.fields(RunInfo)]  # column names and order as RunInfo's
_RUN_COLUMNS = ", ".join(_RUN_FIELDS)
_RUN_COLUMNS_OF_R = ", ".join(f"r.{name}" for name in _RUN_FIELDS)
_QUESTION_FIELDS = [field.name for field in dataclasses.fields(Question)]
_QUESTION_COLUMNS = ", ".join(_QUESTION_FIELDS)
_INSTALL_HINT = "PostgreSQL support needs the extra: pip install 'podium[postgres]'"


class PostgresStore:
    """A :class:`~podium.journal.Store` in a PostgreSQL database.

    Args:
        url: a libpq connection URL or string, e.g. ``postgresql://user:password@host:5432/db``.
        max_connections: the most connections this store object holds open at once.
        connect_timeout: seconds ``open()`` waits for the server before it fails.

    Raises:
        StoreError: psycopg is not installed (the ``podium[postgres]`` extra).
    """

    def __init__(self, url: str, *, max_connections: int = 10, connect_timeout: float = 10.0) -> None:
        self.url, self._secrets = _mask(url)
        if _missing is not None:
            raise StoreError(_INSTALL_HINT, url=self.url) from _missing
        self._conninfo = url
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[tuple[Any, ...]]] | None = None
        self._opening = asyncio.Lock()

    # -- connection -------------------------------------------------------------------------------------

    async def open(self) -> None:
        async with self._opening:  # runs that start at once may all open the store they share: one pool
            if self._pool is None:
                self._pool = await self._connect()

    async def _connect(self) -> AsyncConnectionPool[psycopg.AsyncConnection[tuple[Any, ...]]]:
        # One direct connection first: it fails fast with libpq's reason, where a pool would retry until its
        # timeout and only say that it timed out.
        try:
            conn = await psycopg.AsyncConnection.connect(
                self._conninfo, autocommit=True, connect_timeout=max(2, math.ceil(self.connect_timeout))
            )
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect: {self._scrub(exc)}", url=self.url) from exc
        try:
            await self._prepare(conn)
        finally:
            await conn.close()
        pool: AsyncConnectionPool[psycopg.AsyncConnection[tuple[Any, ...]]] = AsyncConnectionPool(
            self._conninfo,
            min_size=1,
            max_size=self.max_connections,
            open=False,
            kwargs={"autocommit": True},
            name="podium",
        )
        try:
            await pool.open(wait=True, timeout=self.connect_timeout)
        except Exception as exc:
            await pool.close()
            raise StoreError(f"cannot connect: {self._scrub(exc)}", url=self.url) from exc
        return pool

    async def _prepare(self, conn: psycopg.AsyncConnection[tuple[Any, ...]]) -> None:
        """Create the tables if absent; refuse a podium_meta of another schema or version without writing."""
        try:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                cur = await conn.execute(
                    "SELECT relname FROM pg_class WHERE relname = ANY(%s) AND relkind IN ('r', 'p')"
                    " AND pg_table_is_visible(oid)",
                    (list(_TABLE_NAMES),),
                )
                tables = {row[0] for row in await cur.fetchall()}
                if "podium_meta" not in tables:
                    if tables:
                        raise StoreError(
                            f"has tables {sorted(tables)} but no podium_meta: they are not a podium journal; "
                            f"nothing was changed",
                            url=self.url,
                        )
                    await conn.execute(_TABLES)
                    return
                cur = await conn.execute("SELECT key, value FROM podium_meta")
                meta = {str(k): str(v) for k, v in await cur.fetchall()}
        except psycopg.Error as exc:
            raise StoreError(f"cannot prepare the journal: {self._scrub(exc)}", url=self.url) from exc
        if meta.get("schema") != _SCHEMA or meta.get("version") != _VERSION:
            raise StoreError(
                f"holds journal {meta.get('schema')} version {meta.get('version')}; this podium reads version "
                f"{_VERSION}; nothing was changed",
                url=self.url,
            )

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[Cursor]:
        """A cursor in one transaction: committed when the block ends, rolled back if it raises."""
        if self._pool is None:
            raise StoreError("the store is not open; call 'await store.open()' first", url=self.url)
        async with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            yield cur

    def transaction(self) -> AbstractAsyncContextManager[Cursor]:
        """A cursor in one transaction on one of the store's pooled connections (committed when the block ends,
        rolled back if it raises), for podium's other tables in this database: the knowledge base keeps its tables
        beside the journal's and shares the pool."""
        return self._tx()

    def scrub(self, exc: BaseException) -> str:
        """An error's text with this store's passwords removed."""
        return self._scrub(exc)

    def _scrub(self, exc: BaseException) -> str:
        text = str(exc).strip()
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    # -- writing ----------------------------------------------------------------------------------------

    async def create_run(
        self,
        run_id: str,
        workflow: str,
        events: Sequence[Event],
        *,
        owner: str | None,
        lease_seconds: float,
        at: float,
        parent_run_id: str | None = None,
    ) -> None:
        async with self._tx() as cur:
            await cur.execute(
                f"INSERT INTO podium_runs ({_RUN_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s,"
                f" CASE WHEN %s THEN {_NOW} + %s END, %s, %s, NULL) ON CONFLICT (run_id) DO NOTHING RETURNING 1",
                (run_id, workflow, "running" if owner else "pending", at, at, owner, bool(owner), lease_seconds,
                 len(events), parent_run_id),
            )  # fmt: skip
            if await cur.fetchone() is None:
                await cur.execute("SELECT status FROM podium_runs WHERE run_id = %s", (run_id,))
                row = await cur.fetchone()
                status = row[0] if row else "unknown"
                raise RunStateError("a run with this id exists already", run_id=run_id, status=status)
            await _insert_events(cur, run_id, 0, events, at)

    async def append(
        self,
        run_id: str,
        events: Sequence[Event],
        *,
        owner: str,
        lease_seconds: float,
        at: float,
        status: RunState | None = None,
        reason: str | None = None,
        release: bool = False,
    ) -> int:
        async with self._tx() as cur:
            await cur.execute(
                "UPDATE podium_runs SET last_seq = last_seq + %s, updated_at = %s, status = coalesce(%s::text, status),"
                " reason = CASE WHEN %s::text IS NULL THEN reason ELSE %s::text END,"
                " owner = CASE WHEN %s THEN NULL ELSE owner END,"
                f" lease_until = CASE WHEN %s THEN NULL ELSE {_NOW} + %s END"
                " WHERE run_id = %s AND owner = %s RETURNING last_seq",
                (len(events), at, status, status, reason, release, release, lease_seconds, run_id, owner),
            )
            row = await cur.fetchone()
            if row is None:
                await cur.execute("SELECT 1 FROM podium_runs WHERE run_id = %s", (run_id,))
                if await cur.fetchone() is None:
                    raise RunNotFoundError(run_id, url=self.url)
                raise LeaseLostError(run_id=run_id, owner=owner)
            last: int = row[0]
            await _insert_events(cur, run_id, last - len(events), events, at)
            return last

    async def claim(self, run_id: str, owner: str, *, lease_seconds: float, at: float) -> RunInfo:
        async with self._tx() as cur:
            await cur.execute(f"SELECT {_RUN_COLUMNS}, {_NOW} FROM podium_runs WHERE run_id = %s FOR UPDATE", (run_id,))
            row = await cur.fetchone()
            if row is None:
                raise RunNotFoundError(run_id, url=self.url)
            info = _run_info(row[:-1])
            refusal = claim_refusal(info, owner, row[-1])
            if refusal:
                raise RunStateError(refusal, run_id=run_id, status=info.status)
            await cur.execute(
                f"UPDATE podium_runs SET owner = %s, lease_until = {_NOW} + %s, updated_at = %s WHERE run_id = %s"
                f" RETURNING {_RUN_COLUMNS}",
                (owner, lease_seconds, at, run_id),
            )
            return _run_info(await _one(cur))

    async def claim_next(
        self, owner: str, *, workflows: Collection[str], lease_seconds: float, at: float
    ) -> RunInfo | None:
        names = list(workflows)
        if not names:
            return None
        async with self._tx() as cur:
            # SKIP LOCKED: a run another worker is claiming right now is passed over, not waited for; the row
            # lock is then held until this transaction commits the new owner.
            await cur.execute(
                f"WITH next AS (SELECT run_id FROM podium_runs WHERE workflow = ANY(%s)"
                f" AND status IN ('pending', 'running') AND (owner IS NULL OR lease_until <= {_NOW})"
                f" ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED)"
                f" UPDATE podium_runs AS r SET owner = %s, lease_until = {_NOW} + %s, updated_at = %s"
                f" FROM next WHERE r.run_id = next.run_id RETURNING {_RUN_COLUMNS_OF_R}",
                (names, owner, lease_seconds, at),
            )
            row = await cur.fetchone()
            return _run_info(row) if row is not None else None

    async def renew(self, owner: str, run_ids: Collection[str], *, lease_seconds: float, at: float) -> set[str]:
        ids = list(run_ids)
        if not ids:
            return set()
        async with self._tx() as cur:
            await cur.execute(
                f"UPDATE podium_runs SET lease_until = {_NOW} + %s WHERE owner = %s AND run_id = ANY(%s)"
                " RETURNING run_id",
                (lease_seconds, owner, ids),
            )
            return {row[0] for row in await cur.fetchall()}

    async def release(self, run_id: str, owner: str, *, at: float) -> None:
        async with self._tx() as cur:
            await cur.execute(
                "UPDATE podium_runs SET owner = NULL, lease_until = NULL, updated_at = %s"
                " WHERE run_id = %s AND owner = %s",
                (at, run_id, owner),
            )

    async def answer(self, run_id: str, interrupt_id: str, answer: Any, *, at: float) -> None:
        async with self._tx() as cur:
            # The run's row lock first: answers to one run's questions take turns, so the last of two answers
            # given at once sees the other and flips the run to pending.
            await cur.execute("SELECT 1 FROM podium_runs WHERE run_id = %s FOR UPDATE", (run_id,))
            if await cur.fetchone() is None:
                raise RunNotFoundError(run_id, url=self.url)
            await cur.execute(
                "SELECT answered FROM podium_questions WHERE run_id = %s AND interrupt_id = %s FOR UPDATE",
                (run_id, interrupt_id),
            )
            row = await cur.fetchone()
            if row is None:
                raise InterruptError("no such question in this run", run_id=run_id, interrupt_id=interrupt_id)
            if row[0]:
                raise InterruptError("was answered already", run_id=run_id, interrupt_id=interrupt_id)
            await cur.execute(
                "UPDATE podium_questions SET answered = TRUE, answer = %s, answered_at = %s"
                " WHERE run_id = %s AND interrupt_id = %s",
                (to_json(answer).decode(), at, run_id, interrupt_id),
            )
            await cur.execute(
                "UPDATE podium_runs SET last_seq = last_seq + 1, updated_at = %s, status = CASE WHEN status = 'waiting'"
                " AND NOT EXISTS (SELECT 1 FROM podium_questions WHERE run_id = %s AND NOT answered) THEN 'pending'"
                " ELSE status END WHERE run_id = %s RETURNING last_seq",
                (at, run_id, run_id),
            )
            (last,) = await _one(cur)
            await _insert_events(
                cur, run_id, last - 1, [InterruptAnswered(interrupt_id=interrupt_id, answer=answer)], at
            )

    async def delete_runs(self, *, finished_before: float) -> int:
        async with self._tx() as cur:
            await cur.execute(
                "DELETE FROM podium_runs WHERE status = ANY(%s) AND updated_at < %s RETURNING run_id",
                (sorted(FINISHED), finished_before),
            )
            doomed = [row[0] for row in await cur.fetchall()]
            if doomed:
                await cur.execute("DELETE FROM podium_events WHERE run_id = ANY(%s)", (doomed,))
                await cur.execute("DELETE FROM podium_questions WHERE run_id = ANY(%s)", (doomed,))
            return len(doomed)

    async def compact(self, run_id: str) -> int:
        async with self._tx() as cur:
            await self._exists(cur, run_id)
            await cur.execute("SELECT max(seq) FROM podium_events WHERE run_id = %s AND kind = 'snapshot'", (run_id,))
            (cut,) = await _one(cur)
            if cut is None:
                return 0
            await cur.execute(
                "DELETE FROM podium_events WHERE run_id = %s AND seq < %s AND kind <> ALL(%s)",
                (run_id, cut, sorted(KEEP_WHEN_COMPACTING)),
            )
            dropped: int = cur.rowcount
            return dropped

    # -- reading ----------------------------------------------------------------------------------------

    async def _exists(self, cur: Cursor, run_id: str) -> None:
        await cur.execute("SELECT 1 FROM podium_runs WHERE run_id = %s", (run_id,))
        if await cur.fetchone() is None:
            raise RunNotFoundError(run_id, url=self.url)

    async def get_run(self, run_id: str) -> RunInfo:
        async with self._tx() as cur:
            await cur.execute(f"SELECT {_RUN_COLUMNS} FROM podium_runs WHERE run_id = %s", (run_id,))
            row = await cur.fetchone()
            if row is None:
                raise RunNotFoundError(run_id, url=self.url)
            return _run_info(row)

    async def list_runs(
        self, *, status: RunState | None = None, workflow: str | None = None, limit: int = 100
    ) -> list[RunInfo]:
        async with self._tx() as cur:
            await cur.execute(
                f"SELECT {_RUN_COLUMNS} FROM podium_runs WHERE (%s::text IS NULL OR status = %s::text)"
                " AND (%s::text IS NULL OR workflow = %s::text) ORDER BY created_at DESC LIMIT %s",
                (status, status, workflow, workflow, limit),
            )
            return [_run_info(row) for row in await cur.fetchall()]

    async def read(self, run_id: str, *, after: int = 0) -> list[Entry]:
        async with self._tx() as cur:
            await self._exists(cur, run_id)
            await cur.execute(
                "SELECT seq, at, data FROM podium_events WHERE run_id = %s AND seq > %s ORDER BY seq", (run_id, after)
            )
            rows = await cur.fetchall()
        return [Entry(seq=seq, at=at, event=EVENTS.validate_json(data)) for seq, at, data in rows]

    async def questions(self, run_id: str, *, pending: bool = False) -> list[Question]:
        async with self._tx() as cur:
            await self._exists(cur, run_id)
            await cur.execute(
                f"SELECT {_QUESTION_COLUMNS} FROM podium_questions WHERE run_id = %s AND (NOT answered OR NOT %s)"
                " ORDER BY seq",
                (run_id, pending),
            )
            return [_question(row) for row in await cur.fetchall()]

    async def stats(self) -> StoreStats:
        sizes = " + ".join(f"pg_total_relation_size('{name}')" for name in _TABLE_NAMES)
        async with self._tx() as cur:
            await cur.execute(
                f"SELECT (SELECT count(*) FROM podium_runs), (SELECT count(*) FROM podium_events), {sizes}"
            )
            runs, events, size = await _one(cur)
        return StoreStats(runs=runs, events=events, bytes=int(size))


async def _insert_events(cur: Cursor, run_id: str, before: int, events: Sequence[Event], at: float) -> None:
    rows = []
    questions = []
    for seq, event in enumerate(events, start=before + 1):
        rows.append((run_id, seq, event.kind, at, EVENTS.dump_json(event).decode()))
        if isinstance(event, InterruptAsked):
            questions.append(
                (run_id, event.interrupt_id, seq, event.task_id, event.step, event.prompt, event.ask, event.schema,
                 to_json(event.json_schema).decode(), to_json(event.value).decode(), at)
            )  # fmt: skip
    if rows:
        await cur.executemany(
            "INSERT INTO podium_events (run_id, seq, kind, at, data) VALUES (%s, %s, %s, %s, %s)", rows
        )
    if questions:
        await cur.executemany(
            "INSERT INTO podium_questions (run_id, interrupt_id, seq, task_id, step, prompt, ask, schema, json_schema,"
            " value, asked_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            questions,
        )


async def _one(cur: Cursor) -> tuple[Any, ...]:
    row = await cur.fetchone()
    if row is None:  # pragma: no cover - the statements that use this always return a row
        raise AssertionError("expected a row")
    return row


def _mask(url: str) -> tuple[str, list[str]]:
    """The URL with its password replaced by ``***``, and the passwords found (to scrub from error messages)."""
    secrets: list[str] = []

    def hide(match: re.Match[str]) -> str:
        if not match["secret"]:
            return match[0]
        secrets.append(match["secret"])
        return f"{match['head']}***{match['tail']}"

    masked = re.sub(r"(?P<head>^[a-z][a-z0-9+.-]*://[^:@/?#]*:)(?P<secret>[^@/?#]*)(?P<tail>@)", hide, url, flags=re.I)
    masked = re.sub(
        r"(?P<head>(?:^|[?&\s])password\s*=\s*)(?P<secret>'(?:[^'\\]|\\.)*'|[^&\s]*)(?P<tail>)", hide, masked
    )
    return masked, secrets


def _run_info(row: Sequence[Any]) -> RunInfo:
    return RunInfo(**dict(zip(_RUN_FIELDS, row, strict=True)))


def _question(row: Sequence[Any]) -> Question:
    data = dict(zip(_QUESTION_FIELDS, row, strict=True))
    for name in ("json_schema", "value", "answer"):  # JSON text
        data[name] = from_json(data[name]) if data[name] is not None else None
    return Question(**data)
