"""Every mistake in a crew file is a CrewFileError with the file, line, column and field: never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from podium.crew import load_crew
from podium.errors import CrewFileError
from tests.crew.conftest import WriteCrew

HEAD = """\
name: team
model: test
tools:
  count: tests.crew.outputs:word_count
outputs:
  Draft: tests.crew.outputs:Draft
agents:
  writer: {role: Writer, tools: [count], output: Draft}
  editor: {role: Editor}
  manager: {role: Manager}
"""
# HEAD is 10 lines: what a test appends starts on line 11


def error(path: Path) -> CrewFileError:
    with pytest.raises(CrewFileError) as caught:
        load_crew(path)
    return caught.value


def where(exc: CrewFileError) -> tuple[int | None, int | None, str | None]:
    return exc.line, exc.column, exc.field


@pytest.mark.parametrize(
    ("text", "line", "column", "field", "message"),
    [
        pytest.param(
            HEAD.replace("model: test", "modle: test") + "flow: {sequential: [writer]}\n",
            2,
            1,
            "modle",
            "is not a known field (did you mean 'model'?)",
            id="unknown top-level key",
        ),
        pytest.param(
            HEAD.replace("{role: Editor}", "{role: Editor, gaol: x}") + "flow: {sequential: [writer]}\n",
            9,
            26,
            "agents.editor.gaol",
            "is not a known field (did you mean 'goal'?)",
            id="unknown agent field",
        ),
        pytest.param(
            HEAD + "flow:\n  sequentail: [writer]\n",
            12,
            3,
            "flow.sequentail",
            "is not a pattern (did you mean 'sequential'?)",
            id="unknown pattern",
        ),
        pytest.param(
            HEAD + "flow:\n  sequential: [writer]\n  parallel: {branches: [editor]}\n",
            13,
            3,
            "flow.parallel",
            "a flow has one pattern",
            id="two patterns in one flow",
        ),
        pytest.param(
            HEAD + "flow:\n  supervisor:\n    router: manager\n    workers:\n"
            "      - writer\n      - editor\n      - edtior\n",
            17,
            9,
            "flow.supervisor.workers[2]",
            "no agent 'edtior' is declared under 'agents' (did you mean 'editor'?)",
            id="unknown agent in the flow",
        ),
        pytest.param(
            HEAD + "flow:\n  parallel:\n    branches: [writer, {sequential: [editor, ghost]}]\n",
            13,
            46,
            "flow.parallel.branches[1].sequential[1]",
            "no agent 'ghost' is declared",
            id="unknown agent in a nested flow",
        ),
        pytest.param(
            HEAD.replace("tools: [count]", "tools: [cuont]") + "flow: {sequential: [writer]}\n",
            8,
            34,
            "agents.writer.tools[0]",
            "no tool 'cuont' is declared under 'tools' (did you mean 'count'?)",
            id="unknown tool",
        ),
        pytest.param(
            HEAD.replace("output: Draft}", "output: Draught}") + "flow: {sequential: [writer]}\n",
            8,
            42,
            "agents.writer.output",
            "no output type 'Draught' is declared under 'outputs' (did you mean 'Draft'?)",
            id="unknown output type",
        ),
        pytest.param(
            HEAD + "flow:\n  supervisor: {router: manager, workers: [writer], max_rounds: many}\n",
            12,
            52,
            "flow.supervisor.max_rounds",
            "input should be a valid integer",
            id="a value of the wrong type",
        ),
        pytest.param(
            HEAD + "flow:\n  loop: {body: [writer]}\n",
            12,
            3,
            "flow.loop.max_iterations",
            "is required",
            id="a missing field",
        ),
        pytest.param(
            HEAD + "flow:\n  vote: {voters: [writer, editor], options: [yes, no]}\n",
            12,
            46,
            "flow.vote.options[0]",
            "YAML reads this as True, not as a word: quote it",
            id="a yes that YAML reads as true",
        ),
        pytest.param(
            HEAD.replace("  editor: {role: Editor}\n", "  editor: {role: Editor}\n  editor: {role: Again}\n")
            + "flow: {sequential: [writer]}\n",
            10,
            3,
            "agents.editor",
            "is given twice (first on line 9)",
            id="a key given twice",
        ),
        pytest.param(
            HEAD.replace("  manager:", "  9lives:") + "flow: {sequential: [writer]}\n",
            10,
            3,
            "agents.9lives",
            "'9lives' is not a name",
            id="an agent name that is not a name",
        ),
        pytest.param(
            HEAD.replace("{role: Manager}", "{role: Manager, output: Draft}")
            + "flow: {supervisor: {router: manager, workers: [writer]}}\n",
            10,
            28,
            "agents.manager.output",
            "'manager' is a router, so its answer is the decision: it cannot have an output type",
            id="a router with an output type",
        ),
        pytest.param(
            HEAD + "flow:\n  loop: {body: [writer], max_iterations: 2, until: {agent: writer, field: done}}\n",
            12,
            68,
            "flow.loop.until.field",
            "'writer' answers with Draft, which has no field 'done'",
            id="an until field the answer does not have",
        ),
        pytest.param(
            HEAD + "flow:\n  parallel: {branches: [writer, editor], merge: editor}\n",
            12,
            42,
            "flow.parallel.merge",
            "'editor' is a branch too",
            id="a merge that is also a branch",
        ),
        pytest.param(
            HEAD + "flow:\n  debate: {debaters: [writer, writer], judge: editor}\n",
            12,
            31,
            "flow.debate.debaters[1]",
            "'writer' appears twice here",
            id="a member twice",
        ),
        pytest.param(
            HEAD.replace("model: test", "model: gpt-4") + "flow: {sequential: [writer]}\n",
            2,
            1,
            "model",
            "'gpt-4' is not a model: use test, local, openai:<model>",
            id="a model that is not a model spec",
        ),
        pytest.param(
            HEAD + "flow: {name: other, sequential: [writer]}\n",
            11,
            8,
            "flow.name",
            "the crew's flow is named by the crew's name ('team')",
            id="a name for the top-level flow",
        ),
        pytest.param(
            HEAD + "flow: researcher\n",
            11,
            1,
            "flow",
            "a flow is a mapping with one pattern key",
            id="a flow that is not a mapping",
        ),
    ],
)
def test_mistakes_are_located(
    write_crew: WriteCrew, text: str, line: int, column: int, field: str, message: str
) -> None:
    path = write_crew(text)
    exc = error(path)
    assert (exc.path, *where(exc)) == (str(path), line, column, field)
    assert message in str(exc)
    assert str(exc).startswith(f"{path}:{line}:{column}: field {field!r}: ")


def test_yaml_syntax_errors_have_a_line_and_column(write_crew: WriteCrew) -> None:
    exc = error(write_crew("name: team\nagents:\n  writer: {role: Writer\nflow: {}\n"))
    assert where(exc) == (4, 5, None)
    assert "is not valid YAML" in str(exc)
    exc = error(write_crew("- just\n- a list\n"))
    assert (exc.line, "a crew file must be a mapping" in str(exc)) == (1, True)


def test_a_missing_soul_points_at_the_soul_key(write_crew: WriteCrew) -> None:
    path = write_crew(HEAD.replace("{role: Editor}", "{soul: agents/editor.md}") + "flow: {sequential: [editor]}\n")
    exc = error(path)
    assert where(exc) == (9, 12, "agents.editor.soul")
    assert f"no SOUL.md file at agents/editor.md (looked for {path.parent / 'agents/editor.md'})" in str(exc)


def test_a_malformed_soul_is_reported_in_its_own_file(write_crew: WriteCrew) -> None:
    soul = "---\nname: editor\nrole: Editor\ncolour: blue\n---\nEdit.\n"
    path = write_crew(
        HEAD.replace("{role: Editor}", "{soul: agents/editor.md}") + "flow: {sequential: [editor]}\n",
        files={"agents/editor.md": soul},
    )
    exc = error(path)
    assert (exc.path, exc.line, exc.field) == (str(path.parent / "agents/editor.md"), 4, "colour")


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nosuch.module:thing", "cannot import nosuch.module:thing: No module named 'nosuch'"),
        ("tests.crew.outputs:missing", "cannot import tests.crew.outputs:missing: 'tests.crew.outputs' has no attr"),
        ("tests.crew.outputs:NOT_A_MODEL", "tests.crew.outputs:NOT_A_MODEL is a int, not a podium Tool or a function"),
        ("not an import path", "'not an import path' is not an import path: write module:attribute"),
    ],
)
def test_tools_that_cannot_be_imported(write_crew: WriteCrew, target: str, message: str) -> None:
    exc = error(write_crew(HEAD.replace("tests.crew.outputs:word_count", target) + "flow: {sequential: [editor]}\n"))
    assert where(exc) == (4, 3, "tools.count")
    assert message in str(exc)


def test_outputs_must_be_pydantic_models(write_crew: WriteCrew) -> None:
    exc = error(write_crew(HEAD.replace("outputs:Draft", "outputs:word_count") + "flow: {sequential: [editor]}\n"))
    assert where(exc) == (6, 3, "outputs.Draft")
    assert "tests.crew.outputs:word_count is not a pydantic model class" in str(exc)


def test_a_module_that_fails_to_import_says_why(write_crew: WriteCrew) -> None:
    path = write_crew(
        HEAD.replace("tests.crew.outputs:word_count", "broken_tools:count") + "flow: {sequential: [editor]}\n",
        files={"broken_tools.py": "raise RuntimeError('no config')\n"},
    )
    assert "cannot import broken_tools:count: RuntimeError: no config" in str(error(path))


def test_an_unreadable_file(tmp_path: Path) -> None:
    exc = error(tmp_path / "nowhere.yaml")
    assert (exc.path, exc.line) == (str(tmp_path / "nowhere.yaml"), None)
    assert "cannot read it: No such file or directory" in str(exc)
