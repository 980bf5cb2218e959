"""The main job, run as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from examples import main

ROOT = Path(__file__).resolve().parents[2]


def test_main_job_revises_until_the_board_approves(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    journal = f"sqlite:///{tmp_path / 'journal.db'}"
    assert main.main(["--topic", "wind power", "--json", "--store", journal]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["journal"] == journal
    assert out["events"] > out["steps"]  # every step journaled, and the run's start and end
    assert out["status"] == "completed"
    assert out["output"].startswith("# Wind Power")
    assert out["output"].count("sources agree") == 4  # three findings and the summary line
    assert out["log"][1:] == ["revision 1", "approved"]


def test_main_job_as_a_command_prints_one_json_object(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "examples.main", "--json"],
        cwd=tmp_path,  # the default journal goes to .podium/ in the working folder
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert set(out) >= {"run_id", "status", "output"}
    assert out["status"] == "completed"
    assert (tmp_path / ".podium" / "podium.db").exists()
