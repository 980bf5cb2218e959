"""Smoke test of the benchmark harness: it runs and prints well-formed JSON lines.

Timings never decide pass/fail here: a slow machine must not fail the test suite, so ``ok`` is only checked
to be a bool, never to be true.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
COMMON_KEYS = {"workload", "metric", "value", "target", "unit", "ok", "python", "repeats", "min"}
EXTRA_KEYS = {
    "W1": {"us_per_step_sync_inline", "us_per_step_dataclass"},
    "W2": {"branches"},
}


def test_quick_run_prints_one_json_line_per_workload() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--only", "W1,W2"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["workload"] for r in records] == ["W1", "W2"], done.stdout
    for record in records:
        missing = (COMMON_KEYS | EXTRA_KEYS[record["workload"]]) - record.keys()
        assert not missing, f"{record['workload']} lacks {sorted(missing)}"
        assert isinstance(record["value"], int | float)
        assert record["value"] > 0
        assert isinstance(record["ok"], bool)
        assert record["repeats"] == 1
