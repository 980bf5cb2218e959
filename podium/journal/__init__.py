"""The journal: every run's events in a store, the source of truth for status, resume, audit and time-travel.

Stores are named by URL: ``sqlite:///.podium/podium.db`` (the default; ``?durability=power`` to survive power
loss), ``postgresql://user@host/db`` (extra ``podium[postgres]``), ``memory://`` (this process only).
``PODIUM_STORE`` sets the default.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from podium.errors import StoreError
from podium.journal._codec import decode, encode
from podium.journal._events import (
    EVENTS,
    BreakerChanged,
    Compensated,
    CompensationFailed,
    CompensationStarted,
    Event,
    FallbackTaken,
    InterruptAnswered,
    InterruptAsked,
    KnowledgeWritten,
    ModelCalled,
    ModelFailed,
    RunAccepted,
    RunFinished,
    RunStarted,
    RunSuspended,
    Snapshot,
    StepCompleted,
    StepFailed,
    TasksScheduled,
    ToolCalled,
    ToolStarted,
    TriggerFired,
)
from podium.journal._memory import MemoryStore
from podium.journal._store import FINISHED, Entry, Question, RunInfo, RunState, Store, StoreStats

if TYPE_CHECKING:
    from podium.journal._sqlite import SQLiteStore

__all__ = [
    "DEFAULT_STORE_URL",
    "EVENTS",
    "FINISHED",
    "BreakerChanged",
    "Compensated",
    "CompensationFailed",
    "CompensationStarted",
    "Entry",
    "Event",
    "FallbackTaken",
    "InterruptAnswered",
    "InterruptAsked",
    "KnowledgeWritten",
    "MemoryStore",
    "ModelCalled",
    "ModelFailed",
    "Question",
    "RunAccepted",
    "RunFinished",
    "RunInfo",
    "RunStarted",
    "RunState",
    "RunSuspended",
    "SQLiteStore",
    "Snapshot",
    "StepCompleted",
    "StepFailed",
    "Store",
    "StoreStats",
    "TasksScheduled",
    "ToolCalled",
    "ToolStarted",
    "TriggerFired",
    "decode",
    "default_store",
    "encode",
    "open_store",
]

DEFAULT_STORE_URL = "sqlite:///.podium/podium.db"
_stores: dict[tuple[str, int], Store] = {}


def __getattr__(name: str) -> Any:
    if name == "SQLiteStore":  # sqlite3 loads when a SQLite journal is used, not with every import of podium
        from podium.journal._sqlite import SQLiteStore

        return SQLiteStore
    raise AttributeError(f"module 'podium.journal' has no attribute {name!r}")


def default_store() -> Store:
    """The store runs use when none is given: ``$PODIUM_STORE``, else ``.podium/podium.db`` in the working folder."""
    return open_store(os.environ.get("PODIUM_STORE") or DEFAULT_STORE_URL)


def open_store(url: str | Path) -> Store:
    """The store for a URL (or a path to a SQLite file), shared by every caller in this process.

    The store is opened on first use by a run; call ``await store.open()`` to check it earlier.

    Raises:
        StoreError: the URL names no kind of store podium knows.
    """
    text = str(url)
    scheme = urlsplit(text).scheme if "://" in text else ""
    loop_bound = scheme.startswith("postgres")
    key = (text, id(_running_loop()) if loop_bound else 0)
    store = _stores.get(key)
    if store is None:
        store = _stores[key] = _make(text, scheme)
    return store


def _make(text: str, scheme: str) -> Store:
    if scheme == "memory":
        return MemoryStore()
    if scheme == "sqlite":
        from podium.journal._sqlite import SQLiteStore

        parts = urlsplit(text)
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        durability = parse_qs(parts.query).get("durability", ["process"])[0]
        if durability not in ("process", "power"):
            raise StoreError(f"durability must be 'process' or 'power', not {durability!r}", url=text)
        return SQLiteStore(path or ".podium/podium.db", durability=durability)  # type: ignore[arg-type]
    if scheme in ("postgres", "postgresql"):
        from podium.journal._postgres import PostgresStore  # type: ignore[import-untyped,unused-ignore]

        store: Store = PostgresStore(text)
        return store
    if not scheme:
        from podium.journal._sqlite import SQLiteStore

        return SQLiteStore(text)
    raise StoreError("unknown kind of store; use sqlite:///path, postgresql://..., or memory://", url=text)


def _running_loop() -> Any:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
