"""Smoke test of ``python -m bench.knowledge``: it runs on a small corpus and prints one well-formed JSON line.

Timings never decide pass/fail here; the figures are in bench/README.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_knowledge_bench_prints_its_figures() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.knowledge", "--chunks", "500", "--queries", "20", "--no-postgres"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    record = json.loads(line)
    assert record["backend"] == "sqlite"
    assert record["chunks"] == 500
    for mode in ("keyword", "semantic", "hybrid"):
        assert record[f"{mode}_queries"] == 20
        assert 0 < record[f"{mode}_p50_ms"] <= record[f"{mode}_p95_ms"] <= record[f"{mode}_max_ms"]
    assert record["db_file_bytes"] > 0
