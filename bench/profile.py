"""Profile W4: where a journaled step's time goes (cProfile, top functions by own time, and a summary by area).

    python -m bench.profile                      # durability="process", 200 runs of the 100-step chain
    python -m bench.profile --durability power --runs 20 --top 30

The chain, the state and the store are W4's (a fresh SQLite file in a temporary folder). The same runs are first
timed without the profiler, for scale: cProfile adds a cost to every Python call (not to time inside C calls such
as ``sqlite3.Connection.execute``), so it inflates the Python share.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from bench.common import Counter
from bench.journaled import W4_STEPS, build_w4_chain
from podium import RunStatus, SQLiteStore

__all__ = ["main"]

FuncKey = tuple[str, int, str]
AREAS: tuple[tuple[str, Callable[[str, str], bool]], ...] = (
    ("sqlite3 (C: execute, executemany, fetch)", lambda file, name: file == "~" and "sqlite3" in name),
    ("pydantic-core JSON (to_json: dump_json)", lambda file, name: file == "~" and "to_json" in name),
    ("pydantic-core validation", lambda file, name: file == "~" and "validate_" in name),
    ("pydantic TypeAdapter wrappers", lambda file, name: "pydantic/" in file),
    ("podium store (journal/_sqlite.py)", lambda file, name: file.endswith("journal/_sqlite.py")),
    ("podium codec (journal/_codec.py)", lambda file, name: file.endswith("journal/_codec.py")),
    ("podium runtime/_journal.py", lambda file, name: file.endswith("runtime/_journal.py")),
    ("event records (dataclass __init__)", lambda file, name: file == "<string>"),
    ("podium runtime, state (the W1 part)", lambda file, name: "/podium/" in file),
    ("asyncio", lambda file, name: "/asyncio/" in file),
)


async def _runs(store: SQLiteStore, runs: int, profiler: cProfile.Profile | None) -> float:
    workflow = build_w4_chain()
    began = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    for _ in range(runs):
        result = await workflow.run(Counter(), store=store)
        if result.status is not RunStatus.COMPLETED:
            raise RuntimeError(f"a run ended {result.status.value}: {result.reason}")
    if profiler is not None:
        profiler.disable()
    return time.perf_counter() - began


async def _profile(durability: Literal["process", "power"], runs: int) -> tuple[float, float, cProfile.Profile]:
    with tempfile.TemporaryDirectory(prefix="podium-bench-profile-") as tmp:
        store = SQLiteStore(Path(tmp) / "plain.db", durability=durability)
        await store.open()
        await _runs(store, 20, None)  # warm-up
        plain = await _runs(store, runs, None)
        await store.close()
        store = SQLiteStore(Path(tmp) / "profiled.db", durability=durability)
        await store.open()
        await _runs(store, 20, None)
        profiler = cProfile.Profile()
        profiled = await _runs(store, runs, profiler)
        await store.close()
    return plain, profiled, profiler


def _areas(stats: pstats.Stats, steps: int) -> list[tuple[str, float]]:
    """Own time (tottime) per step, summed by area, in µs."""
    totals: dict[str, float] = defaultdict(float)
    raw: dict[FuncKey, tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    for (file, _line, name), (_cc, _nc, tottime, _ct, _callers) in raw.items():
        area = next((label for label, match in AREAS if match(file, name)), "other")
        totals[area] += tottime
    return sorted(((area, seconds / steps * 1e6) for area, seconds in totals.items()), key=lambda x: -x[1])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n")[0])
    parser.add_argument("--durability", choices=("process", "power"), default="process")
    parser.add_argument("--runs", type=int, default=200, help="profiled runs of the 100-step chain")
    parser.add_argument("--top", type=int, default=20, help="functions to list, by own time")
    args = parser.parse_args(argv)
    plain, profiled, profiler = asyncio.run(_profile(args.durability, args.runs))
    steps = args.runs * W4_STEPS
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(args.top)
    print(f"W4 chain, SQLite durability={args.durability}, {args.runs} runs x {W4_STEPS} steps")
    print(f"without the profiler: {plain / steps * 1e6:.1f} µs/step; under it: {profiled / steps * 1e6:.1f} µs/step")
    print("\nown time per step by area, under the profiler (µs):")
    for area, us in _areas(stats, steps):
        print(f"  {us:7.2f}  {area}")
    print(out.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
