"""The example crews run end to end on the test model, as a user runs them: with the `podium` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def podium(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "podium.cli", *args],
        cwd=cwd,
        # the suite's PODIUM_STORE (an in-memory store) is left out: the command's default journal is checked here
        env={**{k: v for k, v in os.environ.items() if k != "PODIUM_STORE"}, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("example", "steps"),
    [
        ("content_team", 4),
        ("research_report", 3),
        ("support_triage", 6),
        ("review_board", 10),
        ("board_room", 8),
        ("knowledge_desk", 3),
    ],
)
def test_an_example_crew_runs_on_the_test_model(example: str, steps: int, tmp_path: Path) -> None:
    crew = ROOT / "examples" / example / "crew.yaml"
    assert podium("validate", str(crew), cwd=tmp_path).returncode == 0
    done = podium(
        "run", str(crew), "--input", "tidal power", "--model", "test", "--json",
        cwd=tmp_path, env={"PODIUM_OUTPUT": str(tmp_path / "out")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["status"] == "completed"
    assert out["steps"] == steps
    assert (tmp_path / ".podium" / "podium.db").exists()  # journaled in the working folder by default


def test_the_intake_desk_files_a_summary_of_a_posted_document(tmp_path: Path) -> None:
    """What its webhook does for each document, without serving (``podium serve`` is tested in tests/triggers)."""
    crew = ROOT / "examples" / "intake" / "crew.yaml"
    document = json.dumps({"title": "Pump leak", "text": "The pump in hall 2 leaks."})
    done = podium(
        "run", str(crew), "--input", document, "--model", "test", "--json",
        cwd=tmp_path, env={"PODIUM_OUTPUT": str(tmp_path / "out")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["status"], out["steps"]) == ("completed", 4)
    assert Path(out["output"]) == tmp_path / "out" / "pump-leak.md"
    assert Path(out["output"]).read_text().endswith("Source: webhook\n")


def test_the_content_team_publishes_markdown(tmp_path: Path) -> None:
    crew = ROOT / "examples" / "content_team" / "crew.yaml"
    done = podium(
        "run", str(crew), "--input", "Tidal Power!", "--model", "test", "--json",
        cwd=tmp_path, env={"PODIUM_OUTPUT": str(tmp_path / "out")},
    )  # fmt: skip
    out = json.loads(done.stdout)
    post = Path(out["output"])
    assert post == tmp_path / "out" / "tidal-power.md"
    text = post.read_text()
    assert text.startswith("# ")
    assert "## Sources" in text


async def test_the_board_room_routes_mentions_and_journals_the_thread(tmp_path: Path) -> None:
    crew = ROOT / "examples" / "board_room" / "crew.yaml"
    done = podium("run", str(crew), "--input", "a tidal power plant", "--model", "test", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["status"], out["output"]) == ("completed", {"title": "x", "body": "x"})  # the writer's memo

    from podium import Board, SQLiteStore
    from podium.crew import load_crew

    store = SQLiteStore(tmp_path / ".podium" / "podium.db")
    try:
        history = await load_crew(crew).workflow.history(out["run_id"], store=store)
    finally:
        await store.close()
    board = history[-1].state
    assert isinstance(board, Board)
    assert [(p.id, p.sender, p.reply_to, p.mentions) for p in board.posts] == [
        (1, "user", None, ["chair"]),  # the question mentions no one: it goes to the opener
        (2, "chair", 1, ["analyst", "engineer"]),  # a fan-out
        (3, "analyst", 2, ["writer"]),  # an answer that asks another member
        (4, "engineer", 2, []),
        (5, "writer", 3, []),
    ]


@pytest.mark.slow
def test_the_main_job_runs_on_the_embedded_model(tmp_path: Path) -> None:
    """What `bash scripts/main.sh` does: the content team on SmolLM2 through llama.cpp, journaled in SQLite."""
    crew = ROOT / "examples" / "content_team" / "crew.yaml"
    done = podium(
        "run", str(crew), "--input", "tidal power", "--json",
        cwd=tmp_path, env={"PODIUM_OUTPUT": str(tmp_path / "out")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["status"] == "completed"
    assert out["usage"]["output_tokens"] > 0  # a real model answered
    assert Path(out["output"]).read_text().startswith("# ")
    shown = podium("show", out["run_id"], "--json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "researcher" in shown.stdout
