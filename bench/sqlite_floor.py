"""SQLite's own floor under W4: the statements of one journaled step, in plain ``sqlite3``, with no podium code.

    python -m bench.sqlite_floor                 # synchronous=NORMAL (podium's durability="process")
    python -m bench.sqlite_floor --synchronous FULL

For each step of a 100-step run, the transaction ``SQLiteStore.append`` commits (as of 2026-11-21): ``BEGIN
IMMEDIATE``; the run row's ``UPDATE ... RETURNING last_seq`` (owner fence, seq reservation, lease); an
``executemany`` INSERT of the step's two events (tasks_scheduled, step_completed; typical JSON); ``COMMIT``. Each
statement is timed, so the cost of the transaction can be read apart from podium's Python. The ``no-run-update``
variant fences with a SELECT and takes the next seq from the events' primary key instead of updating the run's row:
the rewrite of that row's page in every commit is what it saves.

The schema is copied from ``podium/journal/_sqlite.py``; if that changes, this copy must follow.
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]

SCHEMA = """
CREATE TABLE podium_runs (
    run_id TEXT PRIMARY KEY, workflow TEXT NOT NULL, status TEXT NOT NULL,
    created_at REAL NOT NULL, updated_at REAL NOT NULL, owner TEXT, lease_until REAL,
    last_seq INTEGER NOT NULL DEFAULT 0, parent_run_id TEXT, reason TEXT);
CREATE INDEX podium_runs_by_status ON podium_runs (status, created_at);
CREATE TABLE podium_events (
    run_id TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, at REAL NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)) WITHOUT ROWID;
"""
UPDATE_RUN = (
    "UPDATE podium_runs SET last_seq = last_seq + ?, updated_at = ?, status = coalesce(?, status),"
    " reason = CASE WHEN ? IS NULL THEN reason ELSE ? END,"
    " owner = CASE WHEN ? THEN NULL ELSE owner END,"
    " lease_until = CASE WHEN ? THEN NULL ELSE ? END"
    " WHERE run_id = ? AND owner = ? RETURNING last_seq"
)
SCHEDULED = '{"kind":"tasks_scheduled","scope":"","superstep":17,"tasks":[{"id":"17.0","step":"s16"}]}'
COMPLETED = (
    '{"kind":"step_completed","task_id":"17.0","step":"s16","attempt":1,"update":{"n":17},"goto":[],'
    '"emitted":[],"duration":1.1920928955078125e-05,"recovered":null}'
)
STEPS = 100
PARTS = ("begin", "fence+seq", "insert", "commit")


def _measure(path: Path, synchronous: str, variant: str, runs: int) -> dict[str, float]:
    seconds = dict.fromkeys(PARTS, 0.0)
    owner = "host:1:abcdef12"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.executescript(SCHEMA)
        for _ in range(runs):
            run_id, now = str(uuid.uuid4()), time.time()
            db.execute(
                "INSERT INTO podium_runs (run_id, workflow, status, created_at, updated_at, owner, lease_until)"
                " VALUES (?, 'w4_chain', 'running', ?, ?, ?, ?)",
                (run_id, now, now, owner, now + 30),
            )
            for _ in range(STEPS):
                t0 = time.perf_counter()
                db.execute("BEGIN IMMEDIATE")
                t1 = time.perf_counter()
                if variant == "current":
                    args = (2, now, None, None, None, False, False, now + 30, run_id, owner)
                    (last,) = db.execute(UPDATE_RUN, args).fetchone()
                else:
                    (holder,) = db.execute("SELECT owner FROM podium_runs WHERE run_id = ?", (run_id,)).fetchone()
                    assert holder == owner
                    (top,) = db.execute(
                        "SELECT coalesce(max(seq), 0) FROM podium_events WHERE run_id = ?", (run_id,)
                    ).fetchone()
                    last = top + 2
                t2 = time.perf_counter()
                db.executemany(
                    "INSERT INTO podium_events (run_id, seq, kind, at, data) VALUES (?, ?, ?, ?, ?)",
                    [
                        (run_id, last - 1, "tasks_scheduled", now, SCHEDULED),
                        (run_id, last, "step_completed", now, COMPLETED),
                    ],
                )
                t3 = time.perf_counter()
                db.execute("COMMIT")
                t4 = time.perf_counter()
                for part, spent in zip(PARTS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                    seconds[part] += spent
    return {part: spent / (runs * STEPS) * 1e6 for part, spent in seconds.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sqlite_floor", description=__doc__.split("\n")[0])
    parser.add_argument("--synchronous", choices=("NORMAL", "FULL"), default="NORMAL")
    parser.add_argument("--runs", type=int, default=100, help="runs of 100 steps per variant and repeat")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    for variant in ("current", "no-run-update"):
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory(prefix="podium-bench-floor-") as tmp:
                parts = _measure(Path(tmp) / "floor.db", args.synchronous, variant, args.runs)
            shown = ", ".join(f"{part} {us:.1f}" for part, us in parts.items())
            print(f"synchronous={args.synchronous} {variant:>13}: {sum(parts.values()):6.1f} µs/step ({shown})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
