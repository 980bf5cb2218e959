"""Crew files: agents' fallbacks (models and other agents), and members' fallbacks and ``on_error`` (escalate to
a person, or go to another member), with errors that point into the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from podium import Agent, RunStatus, TestModel
from podium.cli import app
from podium.crew import crew_schema, load_crew
from podium.errors import CrewFileError
from tests.crew.conftest import WriteCrew
from tests.crew.outputs import Draft

HEAD = """\
name: team
model: test
outputs:
  Draft: tests.crew.outputs:Draft
agents:
  writer: {role: Writer, output: Draft, max_reasks: 0, fallbacks: [backup, "openai:gpt-4.1-mini"]}
  backup: {role: Backup writer}
  editor: {role: Editor}
  checker: {call: "members:check"}
"""
# HEAD is 9 lines: what a test appends starts on line 10

MEMBERS = {
    "members.py": '''
        """A member that fails until a file named 'allow' is beside it."""
        from pathlib import Path


        def check(state):
            if not (Path(__file__).parent / "allow").exists():
                raise ValueError("the checker is down")
            return "checked"
    '''
}


def said(result: Any) -> list[tuple[str, Any]]:
    return [(t.speaker, t.content) for t in result.state.turns]


async def test_an_agent_hands_its_task_to_the_agent_it_names_as_fallback(write_crew: WriteCrew) -> None:
    path = write_crew(HEAD + "flow:\n  sequential: [writer, editor]\n", MEMBERS)
    crew = load_crew(path)
    writer = crew.agents["writer"]
    backup, model = writer.fallbacks
    assert isinstance(backup, Agent)
    assert (backup.name, backup.output, model) == ("backup", Draft, "openai:gpt-4.1-mini")  # in the writer's form
    script = TestModel({"writer": ["no json"], "backup": [{"title": "T", "body": "B"}], "editor": ["ok"]})
    result = await crew.run("tides", model=script)
    assert result.status is RunStatus.COMPLETED, result.reason
    assert said(result) == [("writer", Draft(title="T", body="B")), ("editor", "ok")]
    # every agent on one model: the fallback models are dropped, the fallback agents kept
    (kept,) = load_crew(path, model="test").agents["writer"].fallbacks
    assert isinstance(kept, Agent)


async def test_a_members_fallbacks_take_its_part(write_crew: WriteCrew) -> None:
    flow = "flow:\n  sequential:\n    - {agent: checker, fallbacks: [editor]}\n    - writer\n"
    path = write_crew(HEAD + flow, MEMBERS)
    result = await load_crew(path).run("tides", model=TestModel({"editor": ["checked by hand"]}))
    assert result.status is RunStatus.COMPLETED, result.reason
    assert said(result)[0] == ("checker", "checked by hand")  # the member's part, said by its fallback


async def test_goto_runs_another_member_with_the_failure(write_crew: WriteCrew) -> None:
    flow = "flow:\n  sequential:\n    - {agent: checker, on_error: {goto: editor}}\n    - writer\n    - editor\n"
    path = write_crew(HEAD + flow, MEMBERS)
    model = TestModel({"editor": ["fixed it"]})
    result = await load_crew(path).run("tides", model=model)
    assert result.status is RunStatus.COMPLETED, result.reason
    assert said(result) == [("editor", "fixed it")]  # the writer was skipped
    (request,) = [r for r in model.calls if r.agent == "editor"]
    prompt = request.messages[-1].content
    assert "Your part now:" in prompt
    assert '"step":"checker"' in prompt
    assert '"error_type":"ValueError"' in prompt


def podium(*args: str | Path) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args])


def test_a_member_escalates_to_a_person_who_answers_retries_or_aborts_from_the_cli(
    write_crew: WriteCrew, tmp_path: Path
) -> None:
    flow = 'flow:\n  sequential:\n    - {agent: checker, on_error: {escalate: "Check it by hand?"}}\n    - editor\n'
    path = write_crew(HEAD + flow, MEMBERS)
    store = f"sqlite:///{tmp_path / 'runs.db'}"

    def start() -> str:
        waiting = podium("run", path, "-i", "tides", "--store", store, "--json")
        assert waiting.exit_code == 4, waiting.output
        data = json.loads(waiting.stdout)
        (question,) = data["questions"]
        assert question["kind"] == "escalate"
        assert question["prompt"].startswith("Check it by hand?\n\nStep 'checker' failed (ValueError):")
        return str(data["run_id"])

    answered = podium("approve", start(), "--value", '"checked by hand"', "--crew", path, "--store", store, "--json")
    assert answered.exit_code == 0, answered.output
    assert json.loads(answered.stdout)["output"].startswith("editor:")
    shown = json.loads(podium("show", json.loads(answered.stdout)["run_id"], "--store", store, "--json").stdout)
    assert shown["questions"][0]["answer"] == {"decision": "answer", "value": "checked by hand", "comment": None}

    aborted = podium("reject", start(), "--comment", "skip it", "--crew", path, "--store", store)
    assert aborted.exit_code == 2
    assert "a person chose to abort it (skip it)" in aborted.stderr

    run_id = start()
    (tmp_path / "allow").write_text("")  # the checker works again: run it again
    retried = podium("approve", run_id, "--crew", path, "--store", store, "--json")
    assert retried.exit_code == 0, retried.output


def test_the_outline_and_summary_show_the_failure_handling(write_crew: WriteCrew) -> None:
    flow = (
        "flow:\n  sequential:\n    - {agent: checker, fallbacks: [editor], on_error: {escalate: 'Check?'}}\n"
        "    - {agent: editor, on_error: {goto: checker}}\n"
    )
    crew = load_crew(write_crew(HEAD + flow, MEMBERS))
    assert crew.outline() == [
        "sequential",
        "  checker (fallbacks: editor; on error: escalate)",
        "  editor (on error: goto checker)",
    ]
    assert crew.summary()["agents"]["writer"]["fallbacks"] == ["backup", "openai:gpt-4.1-mini"]


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        pytest.param(
            HEAD.replace("fallbacks: [backup,", "fallbacks: [bakup,") + "flow: {sequential: [writer]}\n",
            6,
            "agents.writer.fallbacks[0]",
            "'bakup' is neither an agent declared under 'agents' (did you mean 'backup'?) nor a model",
            id="unknown fallback",
        ),
        pytest.param(
            HEAD.replace("{role: Backup writer}", "{role: Backup, fallbacks: [writer]}")
            + "flow: {sequential: [writer]}\n",
            7,
            "agents.backup.fallbacks[0]",
            "fallbacks go round in a circle: writer -> backup -> writer",
            id="fallbacks in a circle",
        ),
        pytest.param(
            HEAD.replace("fallbacks: [backup,", "fallbacks: [checker,") + "flow: {sequential: [writer]}\n",
            6,
            "agents.writer.fallbacks[0]",
            "'checker' is a Python member, not an agent",
            id="python member as an agent's fallback",
        ),
        pytest.param(
            HEAD.replace("{role: Backup writer}", "{role: Backup, output: Draft}").replace("output: Draft,", "")
            + "flow: {sequential: [writer]}\n",
            6,
            "agents.writer.fallbacks[0]",
            "'backup' answers with Draft, 'writer' with text",
            id="fallback in another form",
        ),
        pytest.param(
            HEAD + "flow:\n  sequential:\n    - {agent: writer, on_error: {goto: editr}}\n    - editor\n",
            12,
            "flow.sequential[0].on_error.goto",
            "'editr' is not another member here (did you mean 'editor'?)",
            id="goto to an unknown member",
        ),
        pytest.param(
            HEAD + "flow:\n  parallel:\n    branches:\n      - {agent: writer, on_error: {goto: editor}}\n"
            "      - editor\n",
            13,
            "flow.parallel.branches[0].on_error.goto",
            "goto is for members of sequential and loop flows and team workers",
            id="goto between parallel branches",
        ),
        pytest.param(
            HEAD + "flow:\n  sequential:\n    - {agent: writer, on_error: {goto: editor, escalate: 'Fix?'}}\n",
            12,
            "flow.sequential[0].on_error",
            "give one of 'escalate' or 'goto'",
            id="two ways at once",
        ),
        pytest.param(
            HEAD + "flow:\n  sequential:\n    - {agent: writer, fallbacks: [writer]}\n",
            12,
            "flow.sequential[0].fallbacks[0]",
            "'writer' is the member itself",
            id="a member as its own fallback",
        ),
        pytest.param(
            HEAD + "flow:\n  sequential:\n    - {agent: writer, fallback: [editor]}\n",
            12,
            "flow.sequential[0].fallback",
            "is not a known field (did you mean 'fallbacks'?)",
            id="a typo in a member's options",
        ),
    ],
)
def test_mistakes_point_into_the_file(write_crew: WriteCrew, text: str, line: int, field: str, message: str) -> None:
    with pytest.raises(CrewFileError) as caught:
        load_crew(write_crew(text, MEMBERS))
    assert (caught.value.line, caught.value.field) == (line, field), str(caught.value)
    assert message in str(caught.value)


def test_the_schema_has_the_failure_handling() -> None:
    defs = crew_schema()["$defs"]
    assert "fallbacks" in defs["AgentSpec"]["properties"]
    assert set(defs["MemberSpec"]["properties"]) == {"agent", "fallbacks", "on_error"}
    assert set(defs["OnErrorSpec"]["properties"]) == {"escalate", "goto"}
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    data = yaml.safe_load(
        HEAD + "flow:\n  sequential:\n    - {agent: writer, on_error: {goto: editor}}\n    - editor\n"
    )
    jsonschema.validate(data, crew_schema())
