"""The Graph builder: adding steps, edges, routes, build options and the Mermaid view (podium.flow._graph)."""

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

from podium import END, START, Graph, RunStatus, Workflow, WorkflowDefinitionError


class State(BaseModel):
    text: str = ""
    count: int = 0
    done: bool = False


def first(state: State) -> dict[str, Any]:
    return {"text": state.text + "1"}


def second(state: State) -> dict[str, Any]:
    return {"text": state.text + "2"}


def third(state: State) -> dict[str, Any]:
    return {"text": state.text + "3"}


def test_adding_two_steps_with_one_name_is_an_error_naming_the_step() -> None:
    graph = Graph(State, name="dup")
    graph.add(first)
    with pytest.raises(WorkflowDefinitionError, match="already added") as exc_info:
        graph.add(second, name="first")
    assert exc_info.value.where == "step 'first'"
    assert exc_info.value.workflow == "dup"
    assert "'dup'" in str(exc_info.value)


@pytest.mark.parametrize("bad_name", [START, END, "team/write"])
def test_reserved_or_nested_step_names_are_rejected(bad_name: str) -> None:
    graph = Graph(State)
    with pytest.raises(WorkflowDefinitionError, match="cannot name a step"):
        graph.add(first, name=bad_name)


def test_name_overrides_the_function_name() -> None:
    graph = Graph(State)
    graph.add(lambda state: None, name="noop")
    graph.edge(START, "noop")
    assert set(graph.build().steps) == {"noop"}


def test_a_step_with_three_required_parameters_is_rejected() -> None:
    def three(state: State, item: Any, extra: Any) -> None:
        return None

    graph = Graph(State, name="arity")
    with pytest.raises(WorkflowDefinitionError, match="3 positional") as exc_info:
        graph.add(three)
    assert exc_info.value.where == "step 'three'"


def test_a_step_with_a_required_keyword_only_parameter_is_rejected() -> None:
    def keyword(state: State, *, config: str) -> None:
        return None

    graph = Graph(State)
    with pytest.raises(WorkflowDefinitionError, match="'config'"):
        graph.add(keyword)


async def test_optional_extra_parameters_are_fine() -> None:
    def flexible(state: State, item: Any = None, extra: int = 3, *, flag: bool = False) -> dict[str, Any]:
        return {"count": extra}

    graph = Graph(State)
    graph.add(flexible)
    graph.edge(START, "flexible")
    result = await graph.build().run()
    assert result.state.count == 3


async def test_zero_argument_steps_are_called_without_the_state() -> None:
    def nothing() -> dict[str, Any]:
        return {"text": "called"}

    graph = Graph(State)
    graph.add(nothing)
    graph.edge(START, "nothing")
    assert (await graph.build().run()).state.text == "called"


async def test_the_step_decorator_registers_and_returns_the_function() -> None:
    graph = Graph(State)

    @graph.step
    def plain(state: State) -> dict[str, Any]:
        return {"text": "plain"}

    @graph.step(into="count")
    def counted(state: State) -> int:
        return 41 + 1

    graph.chain(START, "plain", "counted")
    assert plain(State()) == {"text": "plain"}
    assert counted(State()) == 42
    result = await graph.build().run()
    assert result.state.text == "plain"
    assert result.state.count == 42


async def test_chain_connects_consecutive_names_in_order() -> None:
    graph = Graph(State)
    graph.add(first).add(second).add(third)
    graph.chain(START, "first", "second", "third", END)
    result = await graph.build().run()
    assert result.state.text == "123"


def test_a_second_route_from_one_step_is_an_error() -> None:
    graph = Graph(State)
    graph.add(first).add(second)
    graph.route("first", lambda s: "second", ["second"])
    with pytest.raises(WorkflowDefinitionError, match="already has a route") as exc_info:
        graph.route("first", lambda s: END, ["second", END])
    assert exc_info.value.where == "step 'first'"


def test_an_unknown_on_branch_failure_mode_is_an_error() -> None:
    graph = Graph(State)
    graph.add(first)
    graph.edge(START, "first")
    with pytest.raises(WorkflowDefinitionError, match="on_branch_failure"):
        graph.build(on_branch_failure="ignore")


async def test_build_output_as_field_or_function_becomes_the_run_output() -> None:
    graph = Graph(State)
    graph.add(first)
    graph.edge(START, "first")
    by_field = graph.build(output="text")
    by_fn = graph.build(output=lambda s: len(s.text))
    default = graph.build()
    assert (await by_field.run({"text": "a"})).output == "a1"
    assert (await by_fn.run({"text": "ab"})).output == 3
    plain = await default.run()
    assert plain.output == plain.state
    assert not default.has_output
    assert by_field.has_output


async def test_build_input_field_accepts_a_bare_value() -> None:
    graph = Graph(State)
    graph.add(first)
    graph.edge(START, "first")
    workflow = graph.build(input="text", output="text")
    assert (await workflow.run("tides")).output == "tides1"


def test_build_input_naming_an_unknown_field_is_an_error() -> None:
    graph = Graph(State)
    graph.add(first)
    graph.edge(START, "first")
    with pytest.raises(WorkflowDefinitionError, match="'txt'"):
        graph.build(input="txt")


def test_a_built_workflow_describes_itself() -> None:
    graph = Graph(State, name="described")
    graph.add(first).add(second)
    graph.chain(START, "first", "second")
    workflow = graph.build()
    assert isinstance(workflow, Workflow)
    assert workflow.name == "described"
    assert workflow.state_type is State
    assert list(workflow.steps) == ["first", "second"]
    assert "described" in repr(workflow)


def test_a_sub_workflow_with_no_output_and_no_into_is_rejected() -> None:
    child_graph = Graph(State, name="child")
    child_graph.add(first)
    child_graph.edge(START, "first")
    child = child_graph.build()
    parent = Graph(State, name="parent")
    with pytest.raises(WorkflowDefinitionError, match="no output") as exc_info:
        parent.add(child, name="team")
    assert exc_info.value.where == "step 'team'"


# -- mermaid ----------------------------------------------------------------------------------------------


def _loop_graph() -> Graph[State]:
    def join(state: State) -> None:
        return None

    graph = Graph(State)
    graph.add(first).add(second).add(third).add(join)
    graph.edge(START, "first").edge(START, "second")
    graph.join(["first", "second"], "join")
    graph.edge("join", "third")
    route: Callable[[State], str] = lambda s: END if s.done else "first"  # noqa: E731
    graph.route("third", route, ["first", END])
    return graph


def test_mermaid_shows_static_edges_routes_joins_and_ends() -> None:
    text = _loop_graph().build().mermaid()
    lines = {line.strip() for line in text.splitlines()}
    assert text.startswith("flowchart")
    assert f"{START} --> first" in lines
    assert f"{START} --> second" in lines
    assert "join --> third" in lines
    assert "first ==> join" in lines
    assert "second ==> join" in lines
    assert "third -.-> first" in lines
    assert f"third -.-> {END}" in lines
    for name in ("first", "second", "third", "join"):
        assert any(line.startswith(name + "[") for line in lines), name


def test_mermaid_ends_a_step_without_successors_at_end() -> None:
    graph = Graph(State)
    graph.add(first).add(second)
    graph.chain(START, "first", "second")
    lines = {line.strip() for line in graph.build().mermaid().splitlines()}
    assert "first --> second" in lines
    assert f"second --> {END}" in lines
    assert f"first --> {END}" not in lines


def test_mermaid_shows_command_routes_as_dotted_edges() -> None:
    graph = Graph(State)
    graph.add(first, routes=["second", END]).add(second)
    graph.edge(START, "first")
    lines = {line.strip() for line in graph.build().mermaid().splitlines()}
    assert "first -.-> second" in lines
    assert f"first -.-> {END}" in lines


def test_mermaid_keeps_an_explicit_edge_to_end_beside_other_edges() -> None:
    graph = Graph(State)
    graph.add(first).add(second)
    graph.edge(START, "first").edge("first", "second").edge("first", END)
    lines = {line.strip() for line in graph.build().mermaid().splitlines()}
    assert "first --> second" in lines
    assert f"first --> {END}" in lines


async def test_an_explicit_edge_to_end_schedules_nothing() -> None:
    graph = Graph(State)
    graph.add(first).add(second)
    graph.edge(START, "first").edge("first", END).edge("first", "second")
    result = await graph.build().run()
    assert result.status == RunStatus.COMPLETED
    assert result.state.text == "12"
