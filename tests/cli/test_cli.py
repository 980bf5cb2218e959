"""The ``podium`` command, end to end: init, validate, run, runs, show, resume, approve, reject, replay, graph, schema.

Every test works in its own folder with its own SQLite store; one runs the real console script in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from podium.cli import app
from podium.crew import crew_schema

runner = CliRunner()

APPROVALS = """
name: approvals
model: test
agents:
  writer: {role: Writer}
  editor: {role: Editor, approval: "Publish this?"}
  checker: {role: Checker, approval: "Is this right?"}
flow:
  sequential: [writer, editor]
"""

FLAKY = '''
"""An output type that refuses every answer until a file named 'allow' is beside it."""
from pathlib import Path

from pydantic import BaseModel, field_validator


class Verdict(BaseModel):
    verdict: str

    @field_validator("verdict")
    @classmethod
    def allowed(cls, value: str) -> str:
        if not (Path(__file__).parent / "allow").exists():
            raise ValueError("not yet")
        return value
'''


def podium(*args: str | Path) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def one_json(result: Result) -> Any:
    return json.loads(result.stdout)


def crew_in(folder: Path, text: str, **files: str) -> Path:
    for name, content in files.items():
        (folder / name).write_text(textwrap.dedent(content).lstrip())
    path = folder / "crew.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


@pytest.fixture
def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'runs.db'}"


def test_init_validate_run_runs_show(tmp_path: Path, store: str) -> None:
    folder = tmp_path / "crew"
    created = podium("init", folder, "--name", "writers")
    assert created.exit_code == 0, created.output
    assert sorted(p.name for p in folder.rglob("*") if p.is_file()) == [
        "crew.yaml",
        "editor.md",
        "researcher.md",
        "tools.py",
        "writer.md",
    ]
    crew = folder / "crew.yaml"
    checked = podium("validate", crew)
    assert checked.exit_code == 0, checked.output
    assert "crew 'writers', 3 agents" in checked.stdout
    assert "sequential" in checked.stdout
    data = one_json(podium("validate", crew, "--json"))
    assert (data["ok"], list(data["agents"]), data["agents"]["writer"]["output"]) == (
        True,
        ["researcher", "writer", "editor"],
        "Draft",
    )

    ran = podium("run", crew, "--input", "tidal power", "--model", "test", "--store", store, "--json")
    assert ran.exit_code == 0, ran.output
    result = one_json(ran)
    assert (result["status"], result["output"], result["waiting"]) == (
        "completed",
        {"title": "test", "body": "test"},
        [],
    )
    assert set(result["usage"]) == {"input_tokens", "output_tokens", "cost_usd"}
    assert result["usage"]["input_tokens"] > 0
    run_id = result["run_id"]

    listed = podium("runs", "--store", store)
    assert run_id in listed.stdout
    assert "writers" in listed.stdout
    assert [r["run_id"] for r in one_json(podium("runs", "--store", store, "--json", "--status", "completed"))] == [
        run_id
    ]

    shown = podium("show", run_id, "--store", store)
    assert shown.exit_code == 0, shown.output
    assert "ended completed after 3 steps" in shown.stdout
    timeline = one_json(podium("show", run_id, "--store", store, "--json"))
    assert [(t["task_id"], t["step"], t["agents"], t["status"]) for t in timeline["tasks"]] == [
        ("1.0", "researcher", ["researcher"], "completed"),
        ("2.0", "writer", ["writer"], "completed"),
        ("3.0", "editor", ["editor"], "completed"),
    ]
    assert timeline["end"]["output"] == {"title": "test", "body": "test"}


def test_a_run_shows_progress_and_prints_its_output(tmp_path: Path, store: str) -> None:
    podium("init", tmp_path)
    ran = podium("run", tmp_path / "crew.yaml", "-i", "tides", "--model", "test", "--store", store)
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.stdout) == {"title": "test", "body": "test"}
    assert "✓ 1.0" in ran.stderr
    assert "researcher" in ran.stderr
    assert "completed run" in ran.stderr


def test_the_default_store_is_podium_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODIUM_STORE", f"sqlite:///{tmp_path / 'env.db'}")
    podium("init", tmp_path)
    run_id = one_json(podium("run", tmp_path / "crew.yaml", "-i", "x", "--model", "test", "--json"))["run_id"]
    assert run_id in podium("runs").stdout
    assert (tmp_path / "env.db").exists()


def test_a_malformed_crew_file_is_one_error_line(tmp_path: Path) -> None:
    crew = crew_in(tmp_path, "name: team\nagents:\n  writer: {role: Writer}\nflow:\n  sequential: [writer, editor]\n")
    commands: list[list[str | Path]] = [["validate", crew], ["run", crew, "-i", "x"], ["graph", crew]]
    for command in commands:
        result = podium(*command)
        assert result.exit_code == 1
        assert result.stderr.splitlines() == [
            f"error: {crew}:5:24: field 'flow.sequential[1]': no agent 'editor' is declared under 'agents'"
        ]
        assert "Traceback" not in result.output
    checked = one_json(podium("validate", crew, "--json"))
    assert (checked["ok"], checked["line"], checked["column"], checked["field"]) == (
        False,
        5,
        24,
        "flow.sequential[1]",
    )
    debug = podium("validate", crew, "--debug")
    assert debug.exit_code == 1
    assert "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.splitlines()[-1].startswith(f"error: {crew}:5:24:")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bogus"], "error: No such command 'bogus'."),
        (["run"], "error: Missing argument 'path'."),
        (["runs", "--status", "lost"], "error: unknown status 'lost'; use one of pending, running, waiting"),
        (["show", "no-such-run"], "error: no run 'no-such-run' in sqlite:///"),
        (["validate", "nowhere.yaml"], "error: nowhere.yaml: cannot read it: No such file or directory"),
    ],
)
def test_usage_and_input_errors(args: list[str], message: str, store: str) -> None:
    result = podium(*args, *(["--store", store] if args[0] in ("runs", "show") else []))
    assert result.exit_code == 1
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(message)


def test_an_unknown_model_is_an_error_before_anything_runs(tmp_path: Path, store: str) -> None:
    podium("init", tmp_path)
    result = podium("run", tmp_path / "crew.yaml", "-i", "x", "--model", "gpt-9", "--store", store)
    assert (result.exit_code, result.stderr.split(";")[0]) == (1, "error: unknown model 'gpt-9'")
    assert one_json(podium("runs", "--store", store, "--json")) == []


def test_schema_and_graph(tmp_path: Path) -> None:
    printed = podium("schema")
    assert printed.exit_code == 0
    assert json.loads(printed.stdout) == crew_schema()
    podium("init", tmp_path)
    chart = podium("graph", tmp_path / "crew.yaml")
    assert chart.stdout.splitlines()[:1] == ["flowchart TD"]
    assert "  researcher --> writer" in chart.stdout


def test_approve_and_reject_answer_the_question_and_resume(tmp_path: Path, store: str) -> None:
    crew = crew_in(tmp_path, APPROVALS)
    waiting = podium("run", crew, "-i", "tides", "--store", store, "--json")
    assert waiting.exit_code == 4
    data = one_json(waiting)
    assert (data["status"], data["waiting"]) == ("waiting", ["2.0#1"])
    assert data["questions"] == [{"id": "2.0#1", "prompt": "Publish this?", "kind": "approve"}]
    assert f"podium approve {data['run_id']} --crew {crew}" in waiting.stderr
    approved = podium("approve", data["run_id"], "--crew", crew, "--store", store, "--json")
    assert approved.exit_code == 0, approved.output
    assert one_json(approved)["output"].startswith("editor: Task: tides")

    edited = one_json(podium("run", crew, "-i", "tides", "--store", store, "--json"))["run_id"]
    result = podium("approve", edited, "2.0#1", "--value", '"my version"', "--crew", crew, "--store", store)
    assert (result.exit_code, result.stdout.strip()) == (0, "my version")

    rejected = one_json(podium("run", crew, "-i", "tides", "--store", store, "--json"))["run_id"]
    result = podium("reject", rejected, "--comment", "not now", "--crew", crew, "--store", store)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1].startswith(f"error: run {rejected} ended failed: step 'editor'")
    assert "a person rejected its answer: not now" in result.stderr
    shown = one_json(podium("show", rejected, "--store", store, "--json"))
    assert shown["questions"][0]["answer"] == {"decision": "reject", "value": None, "comment": "not now"}


def test_several_pending_questions_are_named(tmp_path: Path, store: str) -> None:
    crew = crew_in(
        tmp_path, APPROVALS.replace("sequential: [writer, editor]", "parallel: {branches: [editor, checker]}")
    )
    run_id = one_json(podium("run", crew, "-i", "tides", "--store", store, "--json"))["run_id"]
    unnamed = podium("approve", run_id, "--crew", crew, "--store", store)
    assert unnamed.exit_code == 1
    assert unnamed.stderr.startswith(f"error: run {run_id} has 2 pending questions: 1.0#1 (Publish this?); 1.1#1")
    assert podium("approve", run_id, "1.0#1", "--crew", crew, "--store", store).exit_code == 4  # one left
    missing = podium("reject", run_id, "9.9#1", "--crew", crew, "--store", store)
    assert missing.stderr.startswith(f"error: run {run_id} has no pending question '9.9#1': 1.1#1")
    last = podium("approve", run_id, "--crew", crew, "--store", store, "--json")
    assert (last.exit_code, len(one_json(last)["output"])) == (0, 2)


def test_a_run_that_failed_resumes_where_it_stopped(tmp_path: Path, store: str) -> None:
    crew = crew_in(
        tmp_path,
        """
        name: flaky
        model: test
        outputs: {Verdict: flaky_types:Verdict}
        agents:
          researcher: {role: Researcher}
          judge: {role: Judge, output: Verdict, max_reasks: 1}
        flow:
          sequential: [researcher, judge]
        """,
        **{"flaky_types.py": FLAKY},
    )
    failed = podium("run", crew, "-i", "tides", "--store", store, "--json")
    assert failed.exit_code == 2
    run_id = one_json(failed)["run_id"]
    assert "ended failed: step 'judge'" in failed.stderr
    (tmp_path / "allow").write_text("")
    (tmp_path / "other").mkdir()
    other = crew_in(tmp_path / "other", APPROVALS)
    wrong = podium("resume", run_id, "--crew", other, "--store", store)
    assert wrong.stderr.startswith(f"error: run {run_id} (failed): it is a run of 'flaky', and {other} is crew")
    resumed = podium("resume", run_id, "--crew", crew, "--store", store, "--json")
    assert resumed.exit_code == 0, resumed.output
    assert one_json(resumed)["output"] == {"verdict": "test"}
    tasks = one_json(podium("show", run_id, "--store", store, "--json"))["tasks"]
    assert [(t["step"], t["model_calls"], t["status"]) for t in tasks] == [
        ("researcher", 1, "completed"),  # not run again
        ("judge", 3, "completed"),  # two refused answers, then one that fits
    ]


def test_replay_compares_with_the_recorded_run(tmp_path: Path, store: str) -> None:
    podium("init", tmp_path)
    crew = tmp_path / "crew.yaml"
    run_id = one_json(podium("run", crew, "-i", "tides", "--model", "test", "--store", store, "--json"))["run_id"]
    same = podium("replay", run_id, "--crew", crew, "--store", store)
    assert same.exit_code == 0, same.output
    assert "same: replay" in same.stderr
    data = one_json(podium("replay", run_id, "--crew", crew, "--store", store, "--json"))
    assert (data["equal"], data["recorded_run_id"], data["model_calls_replayed"]) == (True, run_id, 3)
    assert data["run_id"] != run_id
    crew.write_text(crew.read_text().replace("[researcher, writer, editor]", "[researcher, editor, writer]"))
    differs = podium("replay", run_id, "--crew", crew, "--store", store)
    assert differs.exit_code == 5
    assert differs.stderr.splitlines()[-1].startswith("error: replay ")


def test_the_console_script_runs_a_crew(tmp_path: Path) -> None:
    podium("init", tmp_path)
    env = {**os.environ, "PODIUM_STORE": f"sqlite:///{tmp_path / 'sub.db'}"}
    done = subprocess.run(
        [sys.executable, "-m", "podium.cli", "run", "crew.yaml", "--input", "tides", "--model", "test", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["status"], result["output"]) == ("completed", {"title": "test", "body": "test"})
    broken = subprocess.run(
        [sys.executable, "-m", "podium.cli", "validate", "missing.yaml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (broken.returncode, broken.stderr) == (1, "error: missing.yaml: cannot read it: No such file or directory\n")


def test_looking_at_a_store_that_does_not_exist_creates_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'none' / 'runs.db'}"
    listed = podium("runs", "--store", url)
    assert (listed.exit_code, listed.stdout.strip()) == (0, f"no runs in {url}")
    assert podium("show", "abc", "--store", url).exit_code == 1
    assert not (tmp_path / "none").exists()


def test_init_refuses_to_overwrite_a_crew(tmp_path: Path) -> None:
    assert podium("init", tmp_path).exit_code == 0
    again = podium("init", tmp_path)
    assert again.exit_code == 1
    assert again.stderr.startswith(f"error: {tmp_path / 'crew.yaml'}, {tmp_path / 'tools.py'}")
    assert "exist(s) already; choose another folder" in again.stderr
