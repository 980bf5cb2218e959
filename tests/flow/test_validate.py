"""Build-time validation: mistakes seen before a run are WorkflowDefinitionErrors (podium.flow._validate)."""

from typing import Annotated, Any, TypedDict

import pytest
from pydantic import BaseModel

from podium import END, START, Graph, RunStatus, WorkflowDefinitionError, reducers


class State(BaseModel):
    draft: str = ""
    notes: Annotated[list[str], reducers.append] = []
    score: int = 0


class Event(BaseModel):
    text: str = ""


class DraftUpdate(TypedDict):
    draft: str


class NotesUpdate(TypedDict):
    notes: list[str]


class BogusUpdate(TypedDict):
    bogus: int


def research(state: State) -> None:
    return None


def write(state: State) -> None:
    return None


def review(state: State) -> None:
    return None


def handler(state: State, event: Event) -> None:
    return None


def draft_a(state: State) -> DraftUpdate:
    return {"draft": "a"}


def draft_b(state: State) -> DraftUpdate:
    return {"draft": "b"}


def notes_a(state: State) -> NotesUpdate:
    return {"notes": ["a"]}


def notes_b(state: State) -> NotesUpdate:
    return {"notes": ["b"]}


def bogus(state: State) -> BogusUpdate:
    return {"bogus": 1}


def graph_of(*steps: Any, name: str = "wf") -> Graph[State]:
    graph = Graph(State, name=name)
    for step in steps:
        graph.add(step)
    return graph


def build_error(graph: Graph[Any], **build: Any) -> WorkflowDefinitionError:
    with pytest.raises(WorkflowDefinitionError) as exc_info:
        graph.build(**build)
    return exc_info.value


# -- names ------------------------------------------------------------------------------------------------


def test_unknown_edge_target_suggests_the_closest_step() -> None:
    graph = graph_of(research, write, name="content")
    graph.edge(START, "research").edge("research", "wrtie")
    error = build_error(graph)
    assert error.where == "edge 'research' -> 'wrtie'"
    assert error.workflow == "content"
    assert "unknown step 'wrtie'" in str(error)
    assert "did you mean 'write'?" in str(error)


def test_unknown_edge_source_is_an_error() -> None:
    graph = graph_of(research, write)
    graph.edge(START, "research").edge("reserch", "write")
    error = build_error(graph)
    assert error.where == "edge 'reserch' -> 'write'"
    assert "did you mean 'research'?" in str(error)


def test_unknown_name_without_a_close_match_lists_the_steps() -> None:
    graph = graph_of(research, write)
    graph.edge(START, "research").edge("research", "zzz")
    error = build_error(graph)
    assert "'zzz'" in str(error)
    assert "['research', 'write']" in str(error)


def test_a_graph_without_steps_is_an_error() -> None:
    error = build_error(Graph(State))
    assert "has no steps" in str(error)


def test_a_graph_without_a_start_edge_is_an_error() -> None:
    graph = graph_of(research, write)
    graph.edge("research", "write")
    error = build_error(graph)
    assert "START" in str(error)


def test_an_edge_from_start_straight_to_end_is_an_error() -> None:
    graph = graph_of(research)
    graph.edge(START, "research").edge(START, END)
    error = build_error(graph)
    assert "straight from START to END" in str(error)


def test_an_unreachable_step_is_named() -> None:
    graph = graph_of(research, write, review)
    graph.edge(START, "research").edge("research", "write")
    error = build_error(graph)
    assert "['review']" in str(error)
    assert "'write'" not in str(error)


def test_a_step_only_reachable_from_an_unreachable_step_is_unreachable_too() -> None:
    graph = graph_of(research, write, review)
    graph.edge(START, "research").edge("write", "review")
    error = build_error(graph)
    assert "['review', 'write']" in str(error)


def test_steps_reachable_only_through_a_route_or_command_routes_are_reachable() -> None:
    graph = Graph(State)
    graph.add(research, routes=["review"]).add(write).add(review)
    graph.edge(START, "research")
    graph.route("research", lambda s: "write", ["write", END])
    assert set(graph.build().steps) == {"research", "write", "review"}


# -- joins ------------------------------------------------------------------------------------------------


def test_a_join_whose_source_is_only_reachable_through_its_target_can_never_fire() -> None:
    graph = graph_of(research, write, review)
    graph.edge(START, "research")
    graph.join(["research", "review"], "write")
    graph.edge("write", "review")
    error = build_error(graph)
    assert error.where is not None
    assert "join" in error.where
    assert "'write'" in error.where
    assert "can never fire" in str(error)
    assert "['review']" in str(error)


def test_a_join_with_an_unknown_source_is_an_error() -> None:
    graph = graph_of(research, write)
    graph.edge(START, "research")
    graph.join(["research", "reveiw"], "write")
    error = build_error(graph)
    assert error.where == "join ['research', 'reveiw'] -> 'write'"
    assert "'reveiw'" in str(error)


def test_a_join_with_an_unknown_target_is_an_error() -> None:
    graph = graph_of(research, write)
    graph.edge(START, "research").edge(START, "write")
    graph.join(["research", "write"], "merge")
    error = build_error(graph)
    assert "'merge'" in str(error)


def test_a_join_naming_a_source_twice_or_none_is_an_error() -> None:
    twice = graph_of(research, write)
    twice.edge(START, "research").join(["research", "research"], "write")
    assert "twice" in str(build_error(twice))
    empty = graph_of(research, write)
    empty.edge(START, "research").edge("research", "write").join([], "write")
    assert "no sources" in str(build_error(empty))


def test_a_reachable_join_is_fine() -> None:
    graph = graph_of(research, write, review)
    graph.edge(START, "research").edge(START, "write")
    graph.join(["research", "write"], "review")
    assert set(graph.build().steps) == {"research", "write", "review"}


# -- routes -----------------------------------------------------------------------------------------------


def test_a_route_to_an_unknown_target_is_an_error() -> None:
    graph = graph_of(research, write)
    graph.edge(START, "research")
    graph.route("research", lambda s: "write", ["write", "publish"])
    error = build_error(graph)
    assert error.where == "route from 'research'"
    assert "'publish'" in str(error)


def test_a_mapping_route_to_an_unknown_target_is_an_error() -> None:
    graph = graph_of(research, write)
    graph.edge(START, "research")
    graph.route("research", lambda s: "ok", {"ok": "write", "bad": "wirte"})
    error = build_error(graph)
    assert "did you mean 'write'?" in str(error)


def test_a_route_from_an_unknown_step_or_without_targets_is_an_error() -> None:
    unknown = graph_of(research)
    unknown.edge(START, "research").route("nowhere", lambda s: END, [END])
    assert "'nowhere'" in str(build_error(unknown))
    empty = graph_of(research)
    empty.edge(START, "research").route("research", lambda s: END, [])
    assert "no targets" in str(build_error(empty))


def test_declared_command_routes_must_name_known_steps() -> None:
    graph = Graph(State)
    graph.add(research, routes=["write", "revew"]).add(write)
    graph.edge(START, "research")
    error = build_error(graph)
    assert error.where == "routes of step 'research'"
    assert "'revew'" in str(error)


# -- subscriptions ----------------------------------------------------------------------------------------


def test_a_subscriber_that_takes_no_item_is_an_error() -> None:
    graph = graph_of(research, write)
    graph.edge(START, "research")
    graph.on(Event, "write")
    error = build_error(graph)
    assert error.where == "subscription of 'write' to Event"
    assert "(state, event)" in str(error)


def test_a_subscription_of_an_unknown_step_is_an_error() -> None:
    graph = graph_of(research)
    graph.edge(START, "research")
    graph.on(Event, "handlr")
    error = build_error(graph)
    assert "'handlr'" in str(error)


def test_a_subscriber_is_reachable_through_its_event() -> None:
    graph = graph_of(research, handler)
    graph.edge(START, "research")
    graph.on(Event, "handler")
    assert set(graph.build().steps) == {"research", "handler"}


# -- fields -----------------------------------------------------------------------------------------------


def test_into_naming_an_unknown_field_is_an_error_listing_the_fields() -> None:
    graph = Graph(State)
    graph.add(write, into="drafts")
    graph.edge(START, "write")
    error = build_error(graph)
    assert error.where == "step 'write'"
    assert "'drafts'" in str(error)
    assert "['draft', 'notes', 'score']" in str(error)


def test_writes_naming_an_unknown_field_is_an_error() -> None:
    graph = Graph(State)
    graph.add(write, writes=["draft", "scor"])
    graph.edge(START, "write")
    error = build_error(graph)
    assert "'scor'" in str(error)


def test_an_unknown_output_field_is_an_error() -> None:
    graph = graph_of(write)
    graph.edge(START, "write")
    error = build_error(graph, output="final")
    assert error.where == "build(output=...)"
    assert "'final'" in str(error)


# -- parallel writes --------------------------------------------------------------------------------------


def _fan_out(**options: dict[str, Any]) -> Graph[State]:
    graph = Graph(State, name="fan")
    graph.add(research, **options.get("research", {}))
    graph.add(write, **options.get("write", {}))
    graph.edge(START, "research").edge(START, "write")
    return graph


def test_parallel_branches_writing_one_plain_field_via_into_name_both_steps_and_the_field() -> None:
    error = build_error(_fan_out(research={"into": "draft"}, write={"into": "draft"}))
    message = str(error)
    assert "'research'" in message
    assert "'write'" in message
    assert "'draft'" in message
    assert error.where == "field State.draft"


def test_parallel_branches_writing_one_plain_field_via_writes_are_an_error() -> None:
    error = build_error(_fan_out(research={"writes": ["draft", "score"]}, write={"writes": ["draft"]}))
    assert "'draft'" in str(error)
    assert "'research'" in str(error)
    assert "'write'" in str(error)


def test_parallel_branches_inferred_from_typeddict_return_annotations_are_an_error() -> None:
    graph = graph_of(draft_a, draft_b)
    graph.edge(START, "draft_a").edge(START, "draft_b")
    error = build_error(graph)
    assert "'draft_a'" in str(error)
    assert "'draft_b'" in str(error)
    assert "'draft'" in str(error)


def test_parallel_branches_one_inferred_one_declared_are_an_error() -> None:
    graph = Graph(State)
    graph.add(draft_a).add(write, into="draft")
    graph.edge(START, "draft_a").edge(START, "write")
    assert "'draft'" in str(build_error(graph))


def test_a_conflict_deeper_in_a_branch_is_found() -> None:
    graph = Graph(State)
    graph.add(research).add(draft_a).add(draft_b)
    graph.edge(START, "research").edge(START, "draft_b").edge("research", "draft_a")
    error = build_error(graph)
    assert "'draft_a'" in str(error)
    assert "'draft_b'" in str(error)


def test_parallel_branches_writing_a_reducer_field_are_fine() -> None:
    graph = graph_of(notes_a, notes_b)
    graph.edge(START, "notes_a").edge(START, "notes_b")
    graph.build()
    declared = _fan_out(research={"into": "notes"}, write={"writes": ["notes"]})
    declared.build()


def test_parallel_branches_writing_different_fields_are_fine() -> None:
    _fan_out(research={"into": "draft"}, write={"into": "score"}).build()


def test_sequential_steps_writing_one_field_are_fine() -> None:
    graph = graph_of(draft_a, draft_b)
    graph.chain(START, "draft_a", "draft_b")
    graph.build()


def test_branches_that_meet_in_one_step_do_not_conflict_through_it() -> None:
    graph = Graph(State)
    graph.add(research).add(write).add(draft_a)
    graph.edge(START, "research").edge(START, "write")
    graph.edge("research", "draft_a").edge("write", "draft_a")
    graph.build()


async def test_a_typeddict_annotation_also_limits_what_the_step_may_write_at_run_time() -> None:
    def sneaky(state: State) -> DraftUpdate:
        return {"draft": "x", "score": 3}  # type: ignore[typeddict-unknown-key]

    graph = graph_of(sneaky)
    graph.edge(START, "sneaky")
    result = await graph.build().run()
    assert result.status == RunStatus.FAILED
    assert "'score'" in str(result.error)


def test_an_inferred_write_of_an_unknown_field_in_a_fan_out_is_a_definition_error() -> None:
    graph = graph_of(bogus, write)
    graph.edge(START, "bogus").edge(START, "write")
    error = build_error(graph)
    assert "'bogus'" in str(error)
