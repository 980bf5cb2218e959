"""The benchmark workloads W1-W3 (the runtime alone, ``store=False``); W4 (journaled) is in :mod:`bench.journaled`.

Each ``run_wN`` measures in this process and returns one result record.

This module imports podium; the driver (``bench.run``) imports it only in the per-workload subprocess, so the
parent process never pays for podium and each workload's peak RSS is its own.

GC stays enabled throughout (allocation-driven collections are part of the real cost of a run); each timed
measurement starts from a ``gc.collect()`` so that garbage left by an earlier measurement is not charged to
it.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, Field

from bench.common import Counter, Record, Settings, build_chain, check, inc, peak_rss_mb, progress, record, summary
from podium import END, START, Graph, RunStatus, Workflow, reducers

__all__ = ["WORKLOADS", "Settings", "build_chain", "build_fanout"]

S = TypeVar("S")

NO_JOURNAL: Literal[False] = False
"""``store=`` for W1-W3: they measure the runtime alone. A run journals to the default store unless told not to."""


# ---------------------------------------------------------------------------------------------------- states


@dataclass(frozen=True, slots=True)
class DataCounter:
    """W1 variant state: the same as ``Counter``, as a dataclass."""

    n: int = 0


class FanState(BaseModel):
    """W2 state: each branch appends its name to ``results``; the merge step counts them."""

    results: Annotated[list[str], reducers.append] = Field(default_factory=list)
    merged: int = 0


# ---------------------------------------------------------------------------------------------------- steps


def inc_sync(state: Counter) -> dict[str, int]:
    return {"n": state.n + 1}


async def inc_data(state: DataCounter) -> dict[str, int]:
    return {"n": state.n + 1}


def make_branch(label: str, sleep_s: float) -> Callable[[FanState], Awaitable[str]]:
    async def branch(state: FanState) -> str:
        await asyncio.sleep(sleep_s)
        return label

    return branch


async def merge(state: FanState) -> dict[str, int]:
    return {"merged": len(state.results)}


# ---------------------------------------------------------------------------------------------------- graphs


def build_fanout(branches: int, sleep_s: float) -> Workflow[FanState]:
    """``START`` to ``branches`` parallel sleeping branches, joined into one ``merge`` step."""
    graph = Graph(FanState, name="w2_fanout")
    names = [f"branch{i}" for i in range(branches)]
    for step_name in names:
        graph.add(make_branch(step_name, sleep_s), name=step_name, into="results")
        graph.edge(START, step_name)
    graph.add(merge, name="merge")
    graph.join(names, "merge")
    graph.edge("merge", END)
    return graph.build(output="merged")


# ---------------------------------------------------------------------------------------------------- W1

W1_STEPS = 100
W1_TARGET_US = 10.0


async def _time_chain(workflow: Workflow[S], start: S, runs: int) -> float:
    """Seconds for ``runs`` sequential runs of a ``W1_STEPS``-step chain, each checked."""
    gc.collect()  # start clean; GC stays enabled while timing
    began = time.perf_counter()
    for _ in range(runs):
        result = await workflow.run(start, store=NO_JOURNAL)
        if result.status is not RunStatus.COMPLETED or result.output != W1_STEPS:
            check(result, W1_STEPS, "W1")
    return time.perf_counter() - began


async def _w1(settings: Settings) -> Record:
    runs = 30 if settings.quick else 300
    warmup = 10 if settings.quick else 100
    variants: dict[str, tuple[Workflow[Any], Any]] = {
        "us_per_step": (build_chain(Counter, inc, W1_STEPS, name="w1_async"), Counter()),
        "us_per_step_sync_inline": (
            build_chain(Counter, inc_sync, W1_STEPS, name="w1_sync_inline", thread=False),
            Counter(),
        ),
        "us_per_step_dataclass": (
            build_chain(DataCounter, inc_data, W1_STEPS, name="w1_dataclass"),
            DataCounter(),
        ),
    }
    for workflow, start in variants.values():
        await _time_chain(workflow, start, warmup)
    samples: dict[str, list[float]] = {key: [] for key in variants}
    for repeat in range(settings.repeats):
        # the variants are interleaved so that drift (thermal, other load) hits them alike
        for key, (workflow, start) in variants.items():
            seconds = await _time_chain(workflow, start, runs)
            samples[key].append(seconds / (runs * W1_STEPS) * 1e6)
        shown = ", ".join(f"{key}={values[-1]:.2f}" for key, values in samples.items())
        progress(f"W1 repeat {repeat + 1}/{settings.repeats}: {shown}")
    main = samples["us_per_step"]
    median = statistics.median(main)
    line = record("W1", "us_per_step", main, W1_TARGET_US, "µs/step", median <= W1_TARGET_US, settings)
    for key in ("us_per_step_sync_inline", "us_per_step_dataclass"):
        stats = summary(samples[key])
        line[key] = stats["median"]
        line[f"{key}_min"] = stats["min"]
    line.update(steps_per_run=W1_STEPS, runs_per_repeat=runs, warmup_runs=warmup, store=NO_JOURNAL)
    return line


def run_w1(settings: Settings) -> Record:
    # one event loop around the warm-up and every repeat, not one per run
    return asyncio.run(_w1(settings))


# ---------------------------------------------------------------------------------------------------- W2

W2_BRANCHES = 20
W2_SLEEP_S = 0.1
W2_TARGET_S = 0.103


async def _bare_fanout() -> int:
    """W2's shape without podium: the floor that asyncio and the OS timer set on this machine."""
    results = await asyncio.gather(*(asyncio.sleep(W2_SLEEP_S, f"branch{i}") for i in range(W2_BRANCHES)))
    return len(results)


async def _w2(settings: Settings) -> Record:
    workflow = build_fanout(W2_BRANCHES, W2_SLEEP_S)
    start = FanState()
    check(await workflow.run(start, store=NO_JOURNAL), W2_BRANCHES, "W2")  # warm-up
    await _bare_fanout()
    samples: list[float] = []
    baseline: list[float] = []
    for repeat in range(settings.repeats):
        gc.collect()  # start clean; GC stays enabled while timing
        began = time.perf_counter()
        result = await workflow.run(start, store=NO_JOURNAL)
        seconds = time.perf_counter() - began
        check(result, W2_BRANCHES, "W2")
        samples.append(seconds)
        gc.collect()
        began = time.perf_counter()
        await _bare_fanout()
        baseline.append(time.perf_counter() - began)
        progress(f"W2 repeat {repeat + 1}/{settings.repeats}: {seconds:.4f} s (bare asyncio {baseline[-1]:.4f} s)")
    median = statistics.median(samples)
    line = record("W2", "s_per_run", samples, W2_TARGET_S, "s", median <= W2_TARGET_S, settings)
    line.update(
        branches=W2_BRANCHES,
        branch_sleep_s=W2_SLEEP_S,
        overhead_ms=(median - W2_SLEEP_S) * 1e3,
        bare_asyncio_s=statistics.median(baseline),
        runs_per_repeat=1,
        warmup_runs=1,
        store=NO_JOURNAL,
    )
    return line


def run_w2(settings: Settings) -> Record:
    return asyncio.run(_w2(settings))


# ---------------------------------------------------------------------------------------------------- W3

W3_RUNS = 1_000
W3_STEPS = 5
W3_TARGET_RUNS_PER_S = 10_000.0
W3_TARGET_RSS_MB = 40.0


async def _time_concurrent(workflow: Workflow[Counter], start: Counter) -> float:
    gc.collect()  # start clean; GC stays enabled while timing
    began = time.perf_counter()
    results = await asyncio.gather(*(workflow.run(start, store=NO_JOURNAL) for _ in range(W3_RUNS)))
    seconds = time.perf_counter() - began
    for result in results:
        check(result, W3_STEPS, "W3")
    return seconds


async def _w3(settings: Settings) -> Record:
    workflow = build_chain(Counter, inc, W3_STEPS, name="w3_chain")
    start = Counter()
    rss_before_mb = peak_rss_mb()
    await _time_concurrent(workflow, start)  # warm-up: one untimed batch
    samples: list[float] = []
    for repeat in range(settings.repeats):
        rate = W3_RUNS / await _time_concurrent(workflow, start)
        samples.append(rate)
        progress(f"W3 repeat {repeat + 1}/{settings.repeats}: {rate:,.0f} runs/s")
    peak_mb = peak_rss_mb()
    median = statistics.median(samples)
    ok_rate = median >= W3_TARGET_RUNS_PER_S
    ok_rss = peak_mb <= W3_TARGET_RSS_MB
    line = record("W3", "runs_per_s", samples, W3_TARGET_RUNS_PER_S, "runs/s", ok_rate and ok_rss, settings)
    line.update(
        ok_runs_per_s=ok_rate,
        peak_rss_mb=round(peak_mb, 1),
        target_peak_rss_mb=W3_TARGET_RSS_MB,
        ok_peak_rss=ok_rss,
        rss_before_runs_mb=round(rss_before_mb, 1),
        concurrent_runs=W3_RUNS,
        steps_per_run=W3_STEPS,
        warmup_batches=1,
        store=NO_JOURNAL,
    )
    return line


def run_w3(settings: Settings) -> Record:
    return asyncio.run(_w3(settings))


# ---------------------------------------------------------------------------------------------------- W4


def run_w4(settings: Settings) -> Record:
    from bench.journaled import run_w4 as run  # imported here: W1-W3's subprocesses (and peak RSS) never pay for it

    return run(settings)


WORKLOADS: Mapping[str, Callable[[Settings], Record]] = {"W1": run_w1, "W2": run_w2, "W3": run_w3, "W4": run_w4}
