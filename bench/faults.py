"""Fault-injection figures: many runs of real agent workflows against a flaky OpenAI-compatible server on loopback.

    python -m bench.faults                        # 500 runs, 20% of requests faulty, a fallback model, a burst
    python -m bench.faults --runs 2000 --rate 0.3 --concurrency 32
    python -m bench.faults --json                 # one JSON line instead of the table

The runs are the fault suite's four workflow shapes (``tests/faults/workflows.py``: an agent step, a pipeline with a
tool, a parallel fan-out with a merge, a supervisor team), in turn, every other one streamed, journaled in a SQLite
file in a temporary folder. Their agents use podium's OpenAI-compatible client on the flaky server
(``tests/faults/server.py``: 429s with and without ``Retry-After``, 5xx, 400s, hangs past the client's timeout,
dropped and truncated connections, malformed bodies, answers that do not fit the schema), with a second flaky server
as their fallback. In the middle of the batch the primary has a burst of 503s (``--burst``), so that its circuit
breaker opens and the fallback takes over. Then a budget race: parallel branches whose agents never stop calling
tools, under ``max_model_calls``, to measure how far the calls in flight overshoot it.

Every figure comes from the journal, except the requests and faults (from the servers). The exit status is 1 if a
run hung, ended with an unclassified error or an invalid output, or if the journal's failed attempts do not match
the faults the servers injected; the timings never decide it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import progress

__all__ = ["main"]


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=500, help="runs in all, over the four shapes (%(default)s)")
    parser.add_argument("--rate", type=float, default=0.2, help="share of requests answered with a fault (%(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="the servers' seed (%(default)s)")
    parser.add_argument("--concurrency", type=int, default=16, help="runs at a time (%(default)s)")
    parser.add_argument("--timeout", type=float, default=0.5, help="the client's timeout, s (%(default)s)")
    parser.add_argument("--attempts", type=int, default=3, help="attempts per model call (%(default)s)")
    parser.add_argument(
        "--burst",
        type=int,
        default=50,
        help="runs, a third of the way in, during whose start the primary answers only 503s (%(default)s)",
    )
    parser.add_argument("--breaker-threshold", type=int, default=5, help="failures that open a breaker (%(default)s)")
    parser.add_argument("--breaker-reset", type=float, default=0.5, help="s an open breaker waits (%(default)s)")
    parser.add_argument("--no-fallback", action="store_true", help="agents have no fallback model")
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of the table")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.concurrency < 1 or not 0 <= args.rate <= 1:
        parser.error("--runs and --concurrency must be positive, --rate in [0, 1]")
    return args


async def _soak(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    from podium import RetryPolicy, SQLiteStore
    from podium.journal import BreakerChanged
    from podium.models._openai import OpenAICompatible
    from podium.runtime._breaker import breaker_for
    from tests.faults.plan import Fault, observed
    from tests.faults.server import FlakyServer
    from tests.faults.workflows import SHAPES, Crew, audit, outcome, run_all

    retry = RetryPolicy(max_attempts=args.attempts, initial_interval=0.001, backoff=2.0, max_interval=0.05)
    with (
        FlakyServer(rate=args.rate, seed=args.seed) as server,
        FlakyServer(rate=args.rate, seed=args.seed + 1) as spare,
    ):
        primary = OpenAICompatible(base_url=server.base_url, model="flaky-1", name="primary", timeout=args.timeout)
        backup = OpenAICompatible(base_url=spare.base_url, model="flaky-1", name="fallback", timeout=args.timeout)
        for model in (primary, backup):
            breaker_for(model.name, failure_threshold=args.breaker_threshold, reset_after=args.breaker_reset)
        burst = range(args.runs // 3, args.runs // 3 + args.burst)

        def outage(started: int) -> None:  # the primary answers 503 to everything while these runs start
            if started == burst.start:
                server.outage(Fault.UNAVAILABLE)
            elif started == burst.stop:
                server.heal()

        crew = Crew(model=primary, retry=retry, fallbacks=() if args.no_fallback else (backup,))
        shapes = [make(crew) for make in SHAPES.values()]
        jobs = [(shapes[n % len(shapes)], n, n % 2 == 1) for n in range(args.runs)]
        store = SQLiteStore(folder / "faults.db")
        started, epoch = time.perf_counter(), time.time()
        results = await run_all(jobs, store, concurrency=args.concurrency, deadline=120.0, on_start=outage)
        server.heal()
        wall = time.perf_counter() - started
        outcomes = Counter(outcome(result, shape.output) for shape, result in results)
        run_ids = [result.run_id for _, result in results if result is not None]
        found = await audit(store, run_ids)
        timeline: list[tuple[float, str, str]] = []
        for run_id in run_ids:
            for entry in await store.read(run_id):
                if isinstance(entry.event, BreakerChanged):
                    timeline.append((entry.at, entry.event.model, entry.event.state))
        timeline.sort()
        await store.close()
        for model in (primary, backup):
            await model.aclose()
        matches = True
        for each, model in ((server, primary), (spare, backup)):
            injected = Counter(observed(k) for k, n in each.injected.items() for _ in range(n) if k != Fault.OFF_SCHEMA)
            answered = each.count("ok") + each.count(Fault.OFF_SCHEMA)
            matches &= found.failed.get(model.name, Counter()) == injected and found.called[model.name] == answered
        breaker = Counter(f"{model}:{state}" for model, state in found.breaker)
        return {
            "runs": args.runs,
            "wall_s": round(wall, 3),
            "runs_per_s": round(args.runs / wall, 1),
            "fault_rate": args.rate,
            "seed": args.seed,
            "concurrency": args.concurrency,
            "requests": {"primary": server.requests, "fallback": spare.requests},
            "faults_injected": {
                "primary": dict(sorted(Counter({str(k): n for k, n in server.injected.items()}).items())),
                "fallback": dict(sorted(Counter({str(k): n for k, n in spare.injected.items()}).items())),
                "primary_outage_503s": sum(1 for served in server.served if served.cause == "outage"),
            },
            "model_calls_answered": dict(found.called),
            "failed_attempts_journaled": {model: sum(groups.values()) for model, groups in found.failed.items()},
            "retries": found.retries,
            "breaker_skips": dict(found.skipped),
            "breaker_changes": dict(sorted(breaker.items())),
            "breaker_timeline": [f"{at - epoch:.2f}s {model} {state}" for at, model, state in timeline],
            "breaker_states_at_end": {m.name: breaker_for(m.name).state for m in (primary, backup)},
            "burst_runs": len(burst),
            "fallback_calls": found.called[backup.name],
            "outcomes": dict(sorted(outcomes.items())),
            "step_failures": dict(found.step_failures),
            "journal_matches_servers": matches,
        }


async def _budget_race(branches: int, limit: int) -> dict[str, Any]:
    """``branches`` agents that never stop calling a tool, in parallel, under ``max_model_calls=limit``."""
    from podium import Limits
    from podium.models._openai import OpenAICompatible
    from tests.faults.server import FlakyServer
    from tests.faults.workflows import always_a_tool_call, race

    with FlakyServer(answer=always_a_tool_call, usage=(1, 0)) as server:  # one token a call: tokens count calls
        model = OpenAICompatible(base_url=server.base_url, model="m", name=f"race-{branches}")
        result = await race(model, branches, None).run({}, store=False, limits=Limits(max_model_calls=limit))
        await model.aclose()
        return {
            "branches": branches,
            "max_model_calls": limit,
            "status": f"{result.status.value}:{result.limit}",
            "requests": server.requests,
            "answered": result.usage.input_tokens,
            "bound": limit + branches - 1,
        }


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="podium-bench-faults-") as folder:
        progress(f"bench.faults: {args.runs} runs, {args.rate:.0%} faults, {args.concurrency} at a time")
        figures = await _soak(args, Path(folder))
    progress("bench.faults: budget races")
    figures["budget_races"] = [await _budget_race(n, 10) for n in (2, 4, 8, 16)]
    return figures


def _table(figures: dict[str, Any]) -> str:
    lines = [
        f"runs                     {figures['runs']} ({figures['concurrency']} at a time, seed {figures['seed']})",
        f"wall time                {figures['wall_s']:.2f} s ({figures['runs_per_s']} runs/s)",
        f"requests                 {_pairs(figures['requests'])}",
        f"model calls answered     {_pairs(figures['model_calls_answered'])}",
        f"failed attempts          {_pairs(figures['failed_attempts_journaled'])} (journaled)",
        f"retries                  {figures['retries']}",
        f"breaker changes          {_pairs(figures['breaker_changes']) or 'none'}",
        f"calls skipped (open)     {_pairs(figures['breaker_skips']) or 'none'}",
        f"breaker timeline         {', '.join(figures['breaker_timeline']) or 'no change'}",
        f"breakers at the end      {_pairs(figures['breaker_states_at_end'])}",
        f"fallback calls answered  {figures['fallback_calls']}",
        f"outcomes                 {_pairs(figures['outcomes'])}",
        f"journal = servers        {'yes' if figures['journal_matches_servers'] else 'NO'}",
        "faults injected:",
    ]
    injected = figures["faults_injected"]
    for where in ("primary", "fallback"):
        total = sum(injected[where].values())
        lines.append(f"  {where:<9} {total:>5}  {_pairs(injected[where])}")
    lines.append(
        f"  (the primary's include {injected['primary_outage_503s']} 503s of the outage while "
        f"{figures['burst_runs']} runs started)"
    )
    lines.append("budget races (max_model_calls=10, agents that never stop):")
    for race in figures["budget_races"]:
        lines.append(
            f"  {race['branches']:>2} branches: {race['requests']:>3} requests, {race['answered']:>3} answered "
            f"(bound {race['bound']}), {race['status']}"
        )
    return "\n".join(lines)


def _pairs(counts: dict[str, Any]) -> str:
    return ", ".join(f"{key} {value}" for key, value in counts.items())


def _bad(figures: dict[str, Any]) -> list[str]:
    problems = [o for o in figures["outcomes"] if o.startswith(("hung", "unclassified", "invalid-output"))]
    if not figures["journal_matches_servers"]:
        problems.append("the journal's failed attempts do not match the servers' faults")
    problems += [
        f"budget race {r['branches']}: {r['requests']} > {r['bound']}"
        for r in figures["budget_races"]
        if r["requests"] > r["bound"]
    ]
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    figures = asyncio.run(_main(args))
    sys.stdout.write((json.dumps(figures) if args.json else _table(figures)) + "\n")
    problems = _bad(figures)
    for problem in problems:
        progress(f"bench.faults: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
