"""The main job, run as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from examples import main

ROOT = Path(__file__).resolve().parents[2]


def test_main_job_revises_until_the_board_approves(capsys: pytest.CaptureFixture[str]) -> None:
    assert main.main(["--topic", "wind power", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "completed"
    assert out["output"].startswith("# Wind Power")
    assert out["output"].count("sources agree") == 4  # three findings and the summary line
    assert out["log"][1:] == ["revision 1", "approved"]


def test_main_job_as_a_command_prints_one_json_object() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "examples.main", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert set(out) >= {"run_id", "status", "output"}
    assert out["status"] == "completed"
