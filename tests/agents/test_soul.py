"""SOUL.md files: a persona with front matter; every mistake named by file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from podium.agents._agent import Agent
from podium.agents._soul import load_soul, parse_soul
from podium.agents._tool import tool
from podium.errors import CrewFileError

WRITER = """---
name: writer
role: Senior writer
goal: Turn research notes into a clear blog post
tools: [lookup]
output: Draft
rules:
  - Short sentences
max_reasks: 1
---
You write for busy engineers.

Every claim traceable to the notes.
"""


class Draft(BaseModel):
    title: str


@tool
def lookup(term: str) -> str:
    """Look a term up."""
    return term


def test_a_soul_file_gives_an_agent(tmp_path: Path) -> None:
    path = tmp_path / "writer.md"
    path.write_text(WRITER)
    agent = Agent.from_soul(path, toolbox=[lookup], outputs={"Draft": Draft}, model="test")
    assert (agent.name, agent.role, agent.max_reasks) == ("writer", "Senior writer", 1)
    assert agent.instructions == "You write for busy engineers.\n\nEvery claim traceable to the notes."
    assert agent.output is Draft
    assert list(agent.tools) == ["lookup"]
    prompt = agent.system_prompt()
    assert "You are writer, Senior writer." in prompt
    assert "- Short sentences" in prompt
    assert '"title"' in prompt  # the answer's schema


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        ("---\nname: w\nrole: x\ncolour: blue\n---\n", 4, "colour", "is not a field of an agent"),
        ("---\nname: w\nmax_reasks: many\n---\n", 3, "max_reasks", "valid integer"),
        ("---\nrole: x\n---\n", None, "name", "Field required"),
        ("---\nname: two words\n---\n", 2, "name", "should match pattern"),
        ("---\nname: w\ntools: [a, b\n---\n", 3, None, "is not valid YAML"),
        ("name: w\n", 1, None, "must start with '---'"),
        ("---\nname: w\n", 1, None, "not closed"),
        ("---\nname: w\ninstructions: hi\n---\n", 3, "instructions", "text after the front matter"),
    ],
)
def test_a_malformed_soul_names_file_line_and_field(
    text: str, line: int | None, field: str | None, message: str
) -> None:
    with pytest.raises(CrewFileError) as failure:
        parse_soul(text, path="agents/w.md")
    error = failure.value
    assert (error.path, error.line, error.field) == ("agents/w.md", line, field)
    assert message in str(error)
    assert str(error).startswith("agents/w.md")


def test_unknown_tools_and_outputs_are_named(tmp_path: Path) -> None:
    path = tmp_path / "writer.md"
    path.write_text(WRITER)
    with pytest.raises(CrewFileError, match=r"names tools \['lookup'\] that are not provided"):
        Agent.from_soul(path, outputs={"Draft": Draft})
    with pytest.raises(CrewFileError, match="output type 'Draft'") as failure:
        Agent.from_soul(path, toolbox=[lookup])
    assert failure.value.line == 6


def test_overrides_win_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "writer.md"
    path.write_text(WRITER)
    agent = Agent.from_soul(path, outputs={"Draft": Draft}, name="editor", tools=[], model="test")
    assert (agent.name, agent.tools) == ("editor", {})


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CrewFileError, match="cannot read it"):
        load_soul(tmp_path / "nobody.md")
