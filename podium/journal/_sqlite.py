"""``SQLiteStore``: the default journal, one file (``.podium/podium.db`` unless configured).

Durability. The file is in WAL mode. By default (``durability="process"``) a commit reaches the operating system
before ``append`` returns but is not forced to the disk (``synchronous=NORMAL``): a run survives its process being
killed at any moment (kill -9, an OOM kill, a crash), and the last commits before a power loss or kernel panic may
be lost, leaving an older but consistent journal. ``durability="power"`` (``synchronous=FULL``) forces every commit
to disk so it survives power loss too; each commit then costs an fsync and runs in a worker thread so the event
loop is not blocked.

Concurrency. One connection per store object; every write is one ``BEGIN IMMEDIATE`` transaction, so writers from
other processes wait (``busy_timeout``) instead of failing with "database is locked" on a lock upgrade. With the
default durability that wait happens on the event loop (a write takes tens of microseconds, so waits are short
unless another process holds a long transaction); a write that still cannot get the lock raises StoreError.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic_core import from_json, to_json

from podium.errors import InterruptError, LeaseLostError, RunNotFoundError, RunStateError, StoreError
from podium.journal._events import EVENTS, Event, InterruptAnswered, InterruptAsked
from podium.journal._memory import KEEP_WHEN_COMPACTING, claim_refusal
from podium.journal._store import FINISHED, Entry, Question, RunInfo, RunState, StoreStats

__all__ = ["SQLiteStore"]

T = TypeVar("T")

_SCHEMA = "podium-journal"
_VERSION = "1"
_TABLES = """
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS podium_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS podium_runs (
    run_id TEXT PRIMARY KEY, workflow TEXT NOT NULL, status TEXT NOT NULL,
    created_at REAL NOT NULL, updated_at REAL NOT NULL, owner TEXT, lease_until REAL,
    parent_run_id TEXT, reason TEXT);
CREATE INDEX IF NOT EXISTS podium_runs_by_status ON podium_runs (status, created_at);
CREATE TABLE IF NOT EXISTS podium_events (
    run_id TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, at REAL NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS podium_questions (
    run_id TEXT NOT NULL, interrupt_id TEXT NOT NULL, task_id TEXT NOT NULL, step TEXT NOT NULL,
    prompt TEXT NOT NULL, ask TEXT NOT NULL, schema TEXT, json_schema TEXT, value TEXT,
    asked_at REAL NOT NULL, answered INTEGER NOT NULL DEFAULT 0, answer TEXT, answered_at REAL,
    PRIMARY KEY (run_id, interrupt_id));
INSERT OR IGNORE INTO podium_meta VALUES ('schema', 'podium-journal'), ('version', '1');
COMMIT;
"""
# A run's row changes only when its status or owner does; its last event gives its last seq and latest time, so an
# append writes no more than its events (rewriting the row on every step cost a third of a journaled step).
_RUN_SELECT = (
    "SELECT r.run_id, r.workflow, r.status, r.created_at, max(r.updated_at, coalesce(e.at, r.updated_at)),"
    " r.owner, r.lease_until, coalesce(e.seq, 0), r.parent_run_id, r.reason"
    " FROM podium_runs r LEFT JOIN podium_events e"
    " ON e.run_id = r.run_id AND e.seq = (SELECT max(seq) FROM podium_events WHERE run_id = r.run_id)"
)


class SQLiteStore:
    """A :class:`~podium.journal.Store` in one SQLite file.

    Args:
        path: the file; its folder is created if needed. ``":memory:"`` keeps it in memory.
        durability: ``"process"`` (survives kill -9) or ``"power"`` (survives power loss; slower).
        busy_timeout: seconds a write waits for another process's transaction before it fails.
    """

    def __init__(
        self,
        path: str | Path = ".podium/podium.db",
        *,
        durability: Literal["process", "power"] = "process",
        busy_timeout: float = 30.0,
    ) -> None:
        self.path = Path(path) if str(path) != ":memory:" else None
        self.url = f"sqlite:///{path}"
        self.durability = durability
        self._busy_timeout = busy_timeout
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    # -- connection -------------------------------------------------------------------------------------

    async def open(self) -> None:
        if self._db is not None:
            return
        if self.path is not None and self.path.exists():
            _check_header(self.path, self.url)
        elif self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = sqlite3.connect(
                self.path if self.path is not None else ":memory:",
                isolation_level=None,
                check_same_thread=False,
                timeout=self._busy_timeout,
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open: {exc}", url=self.url) from exc
        try:
            _prepare(db, self.url)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={'FULL' if self.durability == 'power' else 'NORMAL'}")
        except BaseException:
            db.close()
            raise
        self._db = db

    async def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError("the store is not open; call 'await store.open()' first", url=self.url)
        return self._db

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one IMMEDIATE transaction: on the event loop, or in a thread when commits fsync."""
        if self.durability == "power":
            return await asyncio.to_thread(self._transaction, fn)
        return self._transaction(fn)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` between transactions: in power mode a write may be under way in a thread on this same
        connection, and a read in the middle of it would see its uncommitted rows."""
        if self.durability == "power":
            return await asyncio.to_thread(self._locked_read, fn)
        return fn(self.db)

    def _locked_read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            return fn(self.db)

    def _transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:  # one transaction at a time on this connection, whichever thread runs it
            return self._locked_transaction(fn)

    def _locked_transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        db = self.db
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:  # "database is locked" after busy_timeout, a read-only file...
            raise StoreError(f"cannot write: {exc}; nothing was written", url=self.url) from exc
        try:
            result = fn(db)
            db.execute("COMMIT")
        except BaseException as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError):  # a full disk, an I/O error: the journal is as it was
                raise StoreError(f"cannot write: {exc}; nothing was written", url=self.url) from exc
            raise
        return result

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
        def create(db: sqlite3.Connection) -> None:
            try:
                db.execute(
                    "INSERT INTO podium_runs (run_id, workflow, status, created_at, updated_at, owner, lease_until,"
                    " parent_run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        run_id,
                        workflow,
                        "running" if owner else "pending",
                        at,
                        at,
                        owner,
                        at + lease_seconds if owner else None,
                        parent_run_id,
                    ),
                )
            except sqlite3.IntegrityError:
                status = db.execute("SELECT status FROM podium_runs WHERE run_id = ?", (run_id,)).fetchone()[0]
                raise RunStateError("a run with this id exists already", run_id=run_id, status=status) from None
            _insert_events(db, run_id, 0, events, at)

        await self._write(create)

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
        def append(db: sqlite3.Connection) -> int:
            row = db.execute("SELECT owner FROM podium_runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                raise RunNotFoundError(run_id, url=self.url)
            if row[0] != owner:
                raise LeaseLostError(run_id=run_id, owner=owner)
            last = _insert_events(db, run_id, _last_seq(db, run_id), events, at)
            if status is not None or release:  # the lease itself is kept by renew(), not by every append
                db.execute(
                    "UPDATE podium_runs SET updated_at = ?, status = coalesce(?, status),"
                    " reason = CASE WHEN ? IS NULL THEN reason ELSE ? END,"
                    " owner = CASE WHEN ? THEN NULL ELSE owner END,"
                    " lease_until = CASE WHEN ? THEN NULL ELSE lease_until END WHERE run_id = ?",
                    (at, status, status, reason, release, release, run_id),
                )
            return last

        return await self._write(append)

    async def claim(self, run_id: str, owner: str, *, lease_seconds: float, at: float) -> RunInfo:
        def claim(db: sqlite3.Connection) -> RunInfo:
            info = self._get(db, run_id)
            refusal = claim_refusal(info, owner, at)
            if refusal:
                raise RunStateError(refusal, run_id=run_id, status=info.status)
            db.execute(
                "UPDATE podium_runs SET owner = ?, lease_until = ?, updated_at = ? WHERE run_id = ?",
                (owner, at + lease_seconds, at, run_id),
            )
            return self._get(db, run_id)

        return await self._write(claim)

    async def claim_next(
        self, owner: str, *, workflows: Collection[str], lease_seconds: float, at: float
    ) -> RunInfo | None:
        names = list(workflows)
        if not names:
            return None

        def claim_next(db: sqlite3.Connection) -> RunInfo | None:
            marks = ", ".join("?" for _ in names)
            rows = db.execute(
                f"{_RUN_SELECT} WHERE r.workflow IN ({marks}) AND r.status IN ('pending', 'running')"
                " ORDER BY r.created_at",
                names,
            )
            # claim_refusal also frees runs whose owner was a process on this machine that has died
            # (asked as a stranger: a live lease, even the caller's own, is never handed out again)
            found = next((info for info in map(_run_info, rows) if claim_refusal(info, "", at) is None), None)
            if found is None:
                return None
            db.execute(
                "UPDATE podium_runs SET owner = ?, lease_until = ?, updated_at = ? WHERE run_id = ?",
                (owner, at + lease_seconds, at, found.run_id),
            )
            return self._get(db, found.run_id)

        return await self._write(claim_next)

    async def renew(self, owner: str, run_ids: Collection[str], *, lease_seconds: float, at: float) -> set[str]:
        ids = list(run_ids)
        if not ids:
            return set()

        def renew(db: sqlite3.Connection) -> set[str]:
            marks = ", ".join("?" for _ in ids)
            rows = db.execute(
                f"UPDATE podium_runs SET lease_until = ? WHERE owner = ? AND run_id IN ({marks}) RETURNING run_id",
                (at + lease_seconds, owner, *ids),
            ).fetchall()
            return {r[0] for r in rows}

        return await self._write(renew)

    async def release(self, run_id: str, owner: str, *, at: float) -> None:
        await self._write(
            lambda db: db.execute(
                "UPDATE podium_runs SET owner = NULL, lease_until = NULL, updated_at = ?"
                " WHERE run_id = ? AND owner = ?",
                (at, run_id, owner),
            )
        )

    async def answer(self, run_id: str, interrupt_id: str, answer: Any, *, at: float) -> None:
        def record(db: sqlite3.Connection) -> None:
            self._get(db, run_id)
            row = db.execute(
                "SELECT answered FROM podium_questions WHERE run_id = ? AND interrupt_id = ?", (run_id, interrupt_id)
            ).fetchone()
            if row is None:
                raise InterruptError("no such question in this run", run_id=run_id, interrupt_id=interrupt_id)
            if row[0]:
                raise InterruptError("was answered already", run_id=run_id, interrupt_id=interrupt_id)
            db.execute(
                "UPDATE podium_questions SET answered = 1, answer = ?, answered_at = ?"
                " WHERE run_id = ? AND interrupt_id = ?",
                (to_json(answer).decode(), at, run_id, interrupt_id),
            )
            _insert_events(
                db, run_id, _last_seq(db, run_id), [InterruptAnswered(interrupt_id=interrupt_id, answer=answer)], at
            )
            db.execute(
                "UPDATE podium_runs SET status = 'pending' WHERE run_id = ? AND status = 'waiting' AND NOT EXISTS"
                " (SELECT 1 FROM podium_questions WHERE run_id = ? AND answered = 0)",
                (run_id, run_id),
            )

        await self._write(record)

    async def delete_runs(self, *, finished_before: float) -> int:
        def delete(db: sqlite3.Connection) -> int:
            marks = ", ".join("?" for _ in FINISHED)
            doomed = [
                r[0]
                for r in db.execute(
                    f"SELECT run_id FROM podium_runs WHERE status IN ({marks}) AND updated_at < ?",
                    (*sorted(FINISHED), finished_before),
                )
            ]
            for table in ("podium_events", "podium_questions", "podium_runs"):
                db.executemany(f"DELETE FROM {table} WHERE run_id = ?", [(r,) for r in doomed])
            return len(doomed)

        return await self._write(delete)

    async def compact(self, run_id: str) -> int:
        def compact(db: sqlite3.Connection) -> int:
            self._get(db, run_id)
            row = db.execute(
                "SELECT max(seq) FROM podium_events WHERE run_id = ? AND kind = 'snapshot'", (run_id,)
            ).fetchone()
            if row[0] is None:
                return 0
            marks = ", ".join("?" for _ in KEEP_WHEN_COMPACTING)
            cursor = db.execute(
                f"DELETE FROM podium_events WHERE run_id = ? AND seq < ? AND kind NOT IN ({marks})",
                (run_id, row[0], *sorted(KEEP_WHEN_COMPACTING)),
            )
            return cursor.rowcount

        return await self._write(compact)

    # -- reading ----------------------------------------------------------------------------------------

    def _get(self, db: sqlite3.Connection, run_id: str) -> RunInfo:
        row = db.execute(f"{_RUN_SELECT} WHERE r.run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise RunNotFoundError(run_id, url=self.url)
        return _run_info(row)

    async def get_run(self, run_id: str) -> RunInfo:
        return await self._read(lambda db: self._get(db, run_id))

    async def list_runs(
        self, *, status: RunState | None = None, workflow: str | None = None, limit: int = 100
    ) -> list[RunInfo]:
        rows = await self._read(
            lambda db: db.execute(
                f"{_RUN_SELECT} WHERE (? IS NULL OR r.status = ?)"
                " AND (? IS NULL OR r.workflow = ?) ORDER BY r.created_at DESC LIMIT ?",
                (status, status, workflow, workflow, limit),
            ).fetchall()
        )
        return [_run_info(row) for row in rows]

    async def read(self, run_id: str, *, after: int = 0) -> list[Entry]:
        def read(db: sqlite3.Connection) -> list[Any]:
            self._get(db, run_id)
            return db.execute(
                "SELECT seq, at, data FROM podium_events WHERE run_id = ? AND seq > ? ORDER BY seq", (run_id, after)
            ).fetchall()

        rows = await self._read(read)
        return [Entry(seq=seq, at=at, event=EVENTS.validate_json(data)) for seq, at, data in rows]

    async def questions(self, run_id: str, *, pending: bool = False) -> list[Question]:
        def questions(db: sqlite3.Connection) -> list[Any]:
            self._get(db, run_id)
            return db.execute(
                "SELECT run_id, interrupt_id, task_id, step, prompt, ask, schema, json_schema, value, asked_at,"
                " answered, answer, answered_at FROM podium_questions WHERE run_id = ? AND (answered = 0 OR NOT ?)"
                " ORDER BY rowid",  # rowid: the order the questions were asked in, even within one append
                (run_id, pending),
            ).fetchall()

        rows = await self._read(questions)
        return [_question(row) for row in rows]

    async def stats(self) -> StoreStats:
        runs, events = await self._read(
            lambda db: db.execute(
                "SELECT (SELECT count(*) FROM podium_runs), (SELECT count(*) FROM podium_events)"
            ).fetchone()
        )
        size = 0
        if self.path is not None:
            for suffix in ("", "-wal"):
                file = self.path.with_name(self.path.name + suffix)
                size += file.stat().st_size if file.exists() else 0
        return StoreStats(runs=runs, events=events, bytes=size)


def _check_header(path: Path, url: str) -> None:
    """Refuse a file that is not a SQLite database before SQLite (or WAL mode) touches it."""
    try:
        with path.open("rb") as file:
            header = file.read(16)
    except OSError as exc:
        raise StoreError(f"cannot read the file: {exc}", url=url) from exc
    if header and header != b"SQLite format 3\x00":
        raise StoreError("is not a SQLite database (podium journals are SQLite files); nothing was changed", url=url)


def _prepare(db: sqlite3.Connection, url: str) -> None:
    """Create the schema in an empty database; refuse a foreign or newer one without writing to it."""
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.OperationalError as exc:  # locked by another process's schema change, say: not a bad file
        raise StoreError(f"cannot be opened now ({exc}); nothing was changed", url=url) from exc
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot be read as a SQLite database ({exc}); nothing was changed", url=url) from exc
    if not tables:
        db.executescript(_TABLES)  # idempotent, so two processes creating one file at once both succeed
        return
    if "podium_meta" not in tables:
        raise StoreError(
            f"is a SQLite database but not a podium journal (its tables: {', '.join(sorted(tables)[:8])}); "
            f"nothing was changed",
            url=url,
        )
    meta = dict(db.execute("SELECT key, value FROM podium_meta").fetchall())
    if meta.get("schema") != _SCHEMA or meta.get("version") != _VERSION:
        raise StoreError(
            f"holds journal {meta.get('schema')} version {meta.get('version')}; this podium reads version {_VERSION}",
            url=url,
        )


def _insert_events(db: sqlite3.Connection, run_id: str, before: int, events: Sequence[Event], at: float) -> int:
    rows = []
    seq = before
    for event in events:
        seq += 1
        rows.append((run_id, seq, event.kind, at, EVENTS.dump_json(event).decode()))
        if isinstance(event, InterruptAsked):
            db.execute(
                "INSERT INTO podium_questions (run_id, interrupt_id, task_id, step, prompt, ask, schema, json_schema,"
                " value, asked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    event.interrupt_id,
                    event.task_id,
                    event.step,
                    event.prompt,
                    event.ask,
                    event.schema,
                    to_json(event.json_schema).decode(),
                    to_json(event.value).decode(),
                    at,
                ),
            )
    db.executemany("INSERT INTO podium_events (run_id, seq, kind, at, data) VALUES (?, ?, ?, ?, ?)", rows)
    return seq


def _last_seq(db: sqlite3.Connection, run_id: str) -> int:
    seq: int = db.execute("SELECT coalesce(max(seq), 0) FROM podium_events WHERE run_id = ?", (run_id,)).fetchone()[0]
    return seq


def _run_info(row: Sequence[Any]) -> RunInfo:
    run_id, workflow, status, created_at, updated_at, owner, lease_until, last_seq, parent_run_id, reason = row
    return RunInfo(
        run_id=run_id,
        workflow=workflow,
        status=status,
        created_at=created_at,
        updated_at=updated_at,
        owner=owner,
        lease_until=lease_until,
        last_seq=last_seq,
        parent_run_id=parent_run_id,
        reason=reason,
    )


def _question(row: Sequence[Any]) -> Question:
    run_id, interrupt_id, task_id, step, prompt, ask, schema, json_schema, value, asked_at, answered, answer, at = row
    return Question(
        run_id=run_id,
        interrupt_id=interrupt_id,
        task_id=task_id,
        step=step,
        prompt=prompt,
        ask=ask,
        schema=schema,
        json_schema=from_json(json_schema) if json_schema else None,
        value=from_json(value) if value else None,
        asked_at=asked_at,
        answered=bool(answered),
        answer=from_json(answer) if answer is not None else None,
        answered_at=at,
    )
