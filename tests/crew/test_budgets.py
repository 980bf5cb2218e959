"""Budgets and no-progress in crew files: an agent's ``budget:``, ``limits: agents:`` and ``limits: max_repeats:``."""

from __future__ import annotations

import pytest

from podium import Budget, RunStatus, TestModel
from podium.crew import crew_schema, load_crew
from podium.errors import CrewFileError
from tests.crew.conftest import WriteCrew

CREW = """\
name: team
model: test
limits: {limits}
agents:
  writer: {{role: Writer{budget}}}
  editor: {{role: Editor}}
flow:
  loop: {{body: [writer, editor], max_iterations: 5}}
"""


async def test_an_agents_budget_in_a_crew_file_ends_the_run_limited(write_crew: WriteCrew) -> None:
    path = write_crew(CREW.format(limits="{max_repeats: false}", budget=", budget: {max_model_calls: 2}"))
    crew = load_crew(path)
    assert crew.agents["writer"].budget == Budget(max_model_calls=2)
    assert crew.limits is not None
    assert crew.limits.max_repeats is None
    result = await crew.run("tides", model=TestModel({"writer": ["a", "b", "c"], "editor": ["x", "y", "z"]}))
    assert (result.status, result.limit) == (RunStatus.LIMITED, "max_model_calls")
    assert result.reason == "agent 'writer' reached its max_model_calls=2: 2 calls made"


async def test_limits_in_a_crew_file_budget_agents_by_name_and_bound_repeats(write_crew: WriteCrew) -> None:
    limits = "{max_repeats: 0, agents: {editor: {max_tokens: 100000, max_cost_usd: 1.5}}}"
    crew = load_crew(write_crew(CREW.format(limits=limits, budget="")))
    assert crew.limits is not None
    assert crew.limits.agents == {"editor": Budget(max_tokens=100_000, max_cost_usd=1.5)}
    result = await crew.run("tides", model=TestModel({"writer": ["same"] * 5, "editor": ["same"] * 5}))
    assert (result.status, result.limit) == (RunStatus.LIMITED, "no_progress")


@pytest.mark.parametrize(
    ("limits", "budget", "line", "field", "message"),
    [
        ("{agents: {writter: {max_tokens: 5}}}", "", 3, "limits.agents.writter", "no agent 'writter' is declared"),
        ("{agents: {writer: {max_tokens: 0}}}", "", 3, "limits.agents.writer.max_tokens", "greater than 0"),
        ("{max_repeats: -1}", "", 3, "limits.max_repeats", ""),
        ("{}", ", budget: {max_calls: 2}", 5, "agents.writer.budget.max_calls", "is not a known field"),
    ],
)
def test_a_wrong_budget_is_a_crew_file_error_with_its_place(
    write_crew: WriteCrew, limits: str, budget: str, line: int, field: str, message: str
) -> None:
    with pytest.raises(CrewFileError) as caught:
        load_crew(write_crew(CREW.format(limits=limits, budget=budget)))
    assert (caught.value.line, caught.value.field) == (line, field)
    assert message in str(caught.value)


def test_a_python_member_has_no_budget(write_crew: WriteCrew) -> None:
    text = CREW.format(limits="{}", budget="").replace(
        "{role: Editor}", "{call: tests.crew.outputs:word_count, budget: {max_tokens: 5}}"
    )
    with pytest.raises(CrewFileError, match="Python member") as caught:
        load_crew(write_crew(text))
    assert caught.value.field == "agents.editor.budget"


def test_the_schema_describes_budgets() -> None:
    defs = crew_schema()["$defs"]
    assert set(defs["BudgetSpec"]["properties"]) == {"max_tokens", "max_cost_usd", "max_model_calls"}
    assert defs["AgentSpec"]["properties"]["budget"]["description"]
    limits = defs["LimitsSpec"]["properties"]
    assert {"agents", "max_repeats"} <= set(limits)
