"""Smoke test of the benchmark harness: it runs and prints well-formed JSON lines.

Timings never decide pass/fail here: a slow machine must not fail the test suite, so ``ok`` is only checked
to be a bool, never to be true. PostgreSQL is never needed (``--no-postgres``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
COMMON_KEYS = {"workload", "metric", "value", "target", "unit", "ok", "python", "repeats", "min"}
EXTRA_KEYS = {
    "W1": {"us_per_step_sync_inline", "us_per_step_dataclass"},
    "W2": {"branches"},
    "W4": {
        "us_per_step_power",
        "us_per_step_postgres",
        "bytes_per_step",
        "bytes_per_step_compacted",
        "bytes_per_step_compacted_vacuumed",
        "events_per_run",
        "events_per_run_compacted",
        "snapshot_every",
        "postgres_note",
    },
}


@pytest.fixture(scope="module")
def quick_run() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--only", "W1,W2,W4", "--no-postgres"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def records(quick_run: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    assert quick_run.returncode == 0, quick_run.stderr
    lines = [json.loads(line) for line in quick_run.stdout.splitlines()]
    assert [r["workload"] for r in lines] == ["W1", "W2", "W4"], quick_run.stdout
    return {r["workload"]: r for r in lines}


def test_quick_run_prints_one_json_line_per_workload(records: dict[str, dict[str, Any]]) -> None:
    for name, record in records.items():
        missing = (COMMON_KEYS | EXTRA_KEYS[name]) - record.keys()
        assert not missing, f"{name} lacks {sorted(missing)}"
        assert isinstance(record["value"], int | float)
        assert record["value"] > 0
        assert isinstance(record["ok"], bool)
        assert record["repeats"] == 1


def test_runtime_workloads_run_without_a_journal(records: dict[str, dict[str, Any]]) -> None:
    assert records["W1"]["store"] is False
    assert records["W2"]["store"] is False


def test_w4_line_describes_the_journal_it_measured(records: dict[str, dict[str, Any]]) -> None:
    """W4's fields agree with each other whatever the timings: a 100-step run journals at least one event per
    step, compaction keeps fewer, and PostgreSQL is reported as not measured, with a note, when it is off."""
    record = records["W4"]
    assert record["steps_per_run"] == 100
    assert record["events_per_run"] >= record["steps_per_run"]
    assert 0 < record["events_per_run_compacted"] < record["events_per_run"]
    assert record["bytes_per_step"] > record["payload_bytes_per_step"] > 0
    assert record["bytes_per_step_compacted_vacuumed"] < record["bytes_per_step"]
    assert record["us_per_step_power"] > 0
    assert record["us_per_step_postgres"] is None
    assert "--no-postgres" in record["postgres_note"]
