"""State types, merge rules and how step updates are applied (podium.flow._state, podium.flow._reducers)."""

import asyncio
import dataclasses
import operator
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, TypedDict

import pydantic
import pytest
from pydantic import BaseModel

from podium import (
    START,
    Graph,
    Hooks,
    RunStatus,
    StateSchemaError,
    StepOutputError,
    WorkflowDefinitionError,
    reducers,
)

# -- state types ------------------------------------------------------------------------------------------


class Merged(BaseModel):
    count: int = 0
    items: Annotated[list[str], reducers.append] = []
    total: Annotated[float, reducers.add] = 0.0
    meta: Annotated[dict[str, int], reducers.merge] = {}
    tags: Annotated[set[str], reducers.merge] = set()
    latest: Annotated[str, reducers.last] = ""
    best: Annotated[int | None, reducers.maximum] = None
    low: Annotated[int | None, reducers.minimum] = None
    flags: Annotated[int, reducers.reducer(operator.or_)] = 0


@dataclasses.dataclass
class DataState:
    count: int = 0
    items: Annotated[list[str], reducers.append] = dataclasses.field(default_factory=list)


class TwoRules(BaseModel):
    items: Annotated[list[str], reducers.append, reducers.last] = []


@dataclasses.dataclass
class TwoRulesData:
    total: Annotated[int, reducers.add, reducers.maximum] = 0


@dataclasses.dataclass
class Unresolvable:
    thing: "NoSuchType"  # type: ignore[name-defined]  # noqa: F821


class PlainClass:
    count: int = 0


class DictState(TypedDict):
    count: int


# -- helpers ----------------------------------------------------------------------------------------------


def returning(update: Any, delay: float = 0.0) -> Callable[[Any], Awaitable[Any]]:
    """An async step that sleeps ``delay`` seconds, then returns ``update``."""

    async def step(state: Any) -> Any:
        await asyncio.sleep(delay)
        return update

    return step


def fan_out(state_type: type[Any], updates: Sequence[Any], delays: Sequence[float] = ()) -> Graph[Any]:
    """START fans out to one step per update (``w0``, ``w1``, ...), declared in that order."""
    graph: Graph[Any] = Graph(state_type, name="fan")
    for index, update in enumerate(updates):
        delay = delays[index] if index < len(delays) else 0.0
        graph.add(returning(update, delay), name=f"w{index}")
        graph.edge(START, f"w{index}")
    return graph


# -- merge rules, called directly -------------------------------------------------------------------------


def test_append_adds_a_single_item_and_extends_with_a_list_or_tuple() -> None:
    assert reducers.append(["a"], "b") == ["a", "b"]
    assert reducers.append(["a"], ["b", "c"]) == ["a", "b", "c"]
    assert reducers.append(["a"], ("b", "c")) == ["a", "b", "c"]
    assert reducers.append(None, "a") == ["a"]


def test_append_does_not_mutate_the_current_list() -> None:
    current = ["a"]
    result = reducers.append(current, ["b"])
    assert current == ["a"]
    assert result is not current


def test_merge_combines_dicts_with_later_keys_winning_and_unions_sets() -> None:
    current = {"a": 1, "b": 2}
    assert reducers.merge(current, {"b": 3, "c": 4}) == {"a": 1, "b": 3, "c": 4}
    assert current == {"a": 1, "b": 2}
    assert reducers.merge({"x"}, {"y"}) == {"x", "y"}
    assert reducers.merge(None, {"a": 1}) == {"a": 1}


def test_add_last_maximum_minimum() -> None:
    assert reducers.add(1.5, 2) == 3.5
    assert reducers.add(None, 2) == 2
    assert reducers.add([1], [2]) == [1, 2]
    assert reducers.last("old", "new") == "new"
    assert reducers.maximum(3, 5) == 5
    assert reducers.maximum(5, 3) == 5
    assert reducers.maximum(None, 3) == 3
    assert reducers.minimum(3, 5) == 3
    assert reducers.minimum(None, 5) == 5


def test_custom_reducer_takes_its_name_from_the_function_or_the_argument() -> None:
    rule = reducers.reducer(operator.or_)
    assert rule.name == "or_"
    assert rule(0b01, 0b10) == 0b11
    assert reducers.reducer(lambda a, b: a * b, name="product")(3, 4) == 12
    assert reducers.reducer(lambda a, b: a * b, name="product").name == "product"


# -- merge rules during a run -----------------------------------------------------------------------------


async def test_parallel_appends_merge_in_task_order_lists_and_single_items_alike() -> None:
    # w0 is the slowest, so completion order is w2, w1, w0; task order is w0, w1, w2
    updates = [{"items": ["a", "b"]}, {"items": "c"}, {"items": ("d",)}]
    workflow = fan_out(Merged, updates, [0.06, 0.03]).build()
    result = await workflow.run({"items": ["start"]})
    assert result.status == RunStatus.COMPLETED, result.reason
    assert result.state.items == ["start", "a", "b", "c", "d"]


async def test_parallel_add_sums_every_write() -> None:
    workflow = fan_out(Merged, [{"total": 1.5}, {"total": 2.5}, {"total": 1}]).build()
    result = await workflow.run({"total": 10})
    assert result.state.total == pytest.approx(15.0)


async def test_parallel_merge_of_dicts_lets_the_later_task_win_not_the_later_finisher() -> None:
    workflow = fan_out(Merged, [{"meta": {"k": 1, "a": 1}}, {"meta": {"k": 2, "b": 2}}], [0.05]).build()
    result = await workflow.run({"meta": {"k": 0, "z": 0}})
    assert result.state.meta == {"k": 2, "a": 1, "b": 2, "z": 0}


async def test_parallel_merge_of_sets_is_a_union() -> None:
    workflow = fan_out(Merged, [{"tags": {"x"}}, {"tags": {"y", "x"}}]).build()
    result = await workflow.run({"tags": {"w"}})
    assert result.state.tags == {"w", "x", "y"}


async def test_last_keeps_the_write_of_the_last_task_even_when_it_finishes_first() -> None:
    workflow = fan_out(Merged, [{"latest": "first"}, {"latest": "second"}], [0.0, 0.0]).build()
    slow_last = fan_out(Merged, [{"latest": "first"}, {"latest": "second"}], [0.0, 0.05]).build()
    assert (await workflow.run()).state.latest == "second"
    assert (await slow_last.run()).state.latest == "second"


async def test_maximum_and_minimum_fold_every_write_starting_from_none() -> None:
    workflow = fan_out(Merged, [{"best": 3, "low": 3}, {"best": 9, "low": 9}, {"best": 5, "low": 1}]).build()
    result = await workflow.run()
    assert result.state.best == 9
    assert result.state.low == 1


async def test_custom_reducer_folds_parallel_writes() -> None:
    workflow = fan_out(Merged, [{"flags": 0b001}, {"flags": 0b100}]).build()
    result = await workflow.run({"flags": 0b010})
    assert result.state.flags == 0b111


async def test_a_reducer_field_accumulates_across_sequential_steps() -> None:
    graph = Graph(Merged)
    graph.add(returning({"items": "a", "total": 1}), name="one")
    graph.add(returning({"items": ["b"], "total": 2}), name="two")
    graph.chain(START, "one", "two")
    result = await graph.build().run()
    assert result.state.items == ["a", "b"]
    assert result.state.total == 3


async def test_dataclass_state_applies_plain_and_reducer_writes() -> None:
    workflow = fan_out(DataState, [{"items": "a", "count": 2}, {"items": ["b", "c"]}]).build()
    result = await workflow.run(DataState(count=1, items=["z"]))
    assert result.status == RunStatus.COMPLETED, result.reason
    assert isinstance(result.state, DataState)
    assert result.state == DataState(count=2, items=["z", "a", "b", "c"])


# -- bad updates ------------------------------------------------------------------------------------------


async def test_wrong_typed_update_fails_with_an_error_naming_step_field_and_value() -> None:
    graph = Graph(Merged)
    graph.add(returning({"count": "many"}), name="counter")
    graph.edge(START, "counter")
    result = await graph.build().run()
    assert result.status == RunStatus.FAILED
    error = result.error
    assert isinstance(error, StepOutputError)
    assert error.step == "counter"
    assert "'count'" in str(error)
    assert "'many'" in str(error)
    assert result.state.count == 0


async def test_wrong_typed_update_to_a_reducer_field_fails_too() -> None:
    graph = Graph(Merged)
    graph.add(returning({"items": 5}), name="adder")
    graph.edge(START, "adder")
    result = await graph.build().run()
    assert isinstance(result.error, StepOutputError)
    assert "'items'" in str(result.error)
    assert "5" in str(result.error)
    assert result.state.items == []


async def test_wrong_typed_update_to_a_dataclass_field_fails() -> None:
    graph = Graph(DataState)
    graph.add(returning({"count": "lots"}), name="counter")
    graph.edge(START, "counter")
    result = await graph.build().run()
    assert isinstance(result.error, StepOutputError)
    assert "'lots'" in str(result.error)


async def test_unknown_field_fails_with_an_error_listing_the_fields() -> None:
    graph = Graph(DataState)
    graph.add(returning({"cuont": 1}), name="typo")
    graph.edge(START, "typo")
    result = await graph.build().run()
    assert result.status == RunStatus.FAILED
    assert isinstance(result.error, StepOutputError)
    assert result.error.step == "typo"
    message = str(result.error)
    assert "'cuont'" in message
    assert "'count'" in message
    assert "'items'" in message


async def test_values_are_validated_and_coerced_by_the_field_type() -> None:
    graph = Graph(Merged)
    graph.add(returning({"count": "7"}), name="counter")
    graph.edge(START, "counter")
    result = await graph.build().run()
    assert result.state.count == 7


# -- bad state types --------------------------------------------------------------------------------------


@pytest.mark.parametrize("state_type", [TwoRules, TwoRulesData])
def test_two_merge_rules_on_one_field_is_a_schema_error(state_type: type[Any]) -> None:
    graph: Graph[Any] = Graph(state_type, name="rules")
    graph.add(returning(None), name="noop")
    graph.edge(START, "noop")
    with pytest.raises(StateSchemaError, match="several merge rules") as exc_info:
        graph.build()
    assert exc_info.value.where is not None
    assert state_type.__name__ in exc_info.value.where
    assert isinstance(exc_info.value, WorkflowDefinitionError)


@pytest.mark.parametrize("state_type", [dict, DictState, PlainClass, int])
def test_a_state_type_that_is_not_a_model_or_dataclass_is_a_schema_error(state_type: type[Any]) -> None:
    graph: Graph[Any] = Graph(state_type, name="bad")
    graph.add(returning(None), name="noop")
    graph.edge(START, "noop")
    with pytest.raises(StateSchemaError, match="pydantic BaseModel or a dataclass"):
        graph.build()


def test_a_dataclass_with_an_unresolvable_hint_is_a_schema_error() -> None:
    graph = Graph(Unresolvable, name="unresolved")
    graph.add(returning(None), name="noop")
    graph.edge(START, "noop")
    with pytest.raises(StateSchemaError, match="NoSuchType"):
        graph.build()


# -- immutability and input -------------------------------------------------------------------------------


async def test_the_input_state_object_is_never_mutated() -> None:
    graph = Graph(Merged)
    graph.add(returning({"count": 5, "items": "new", "meta": {"b": 2}}), name="write")
    graph.edge(START, "write")
    given = Merged(count=1, items=["old"], meta={"a": 1})
    result = await graph.build().run(given)
    assert result.state.count == 5
    assert result.state.items == ["old", "new"]
    assert given.count == 1
    assert given.items == ["old"]
    assert given.meta == {"a": 1}


async def test_the_input_dataclass_is_never_mutated() -> None:
    graph = Graph(DataState)
    graph.add(returning({"count": 5, "items": "new"}), name="write")
    graph.edge(START, "write")
    given = DataState(count=1, items=["old"])
    result = await graph.build().run(given)
    assert result.state == DataState(count=5, items=["old", "new"])
    assert given == DataState(count=1, items=["old"])


async def test_each_superstep_makes_a_new_state_object_and_keeps_earlier_snapshots_intact() -> None:
    seen: list[Merged] = []

    def make(n: int) -> Callable[[Merged], dict[str, Any]]:
        def step(state: Merged) -> dict[str, Any]:
            seen.append(state)
            return {"count": n, "items": str(n)}

        return step

    graph = Graph(Merged)
    for n in (1, 2, 3):
        graph.add(make(n), name=f"s{n}", thread=False)
    graph.chain(START, "s1", "s2", "s3")
    given = Merged()
    result = await graph.build().run(given)
    assert seen[0] is given
    assert len({id(s) for s in [*seen, result.state]}) == 4
    assert [s.count for s in seen] == [0, 1, 2]
    assert [s.items for s in seen] == [[], ["1"], ["1", "2"]]
    assert result.state.items == ["1", "2", "3"]


async def test_a_superstep_that_writes_nothing_keeps_the_same_state_object() -> None:
    seen: list[Merged] = []

    def look(state: Merged) -> None:
        seen.append(state)

    graph = Graph(Merged)
    graph.add(look, name="one", thread=False)
    graph.add(look, name="two", thread=False)
    graph.chain(START, "one", "two")
    result = await graph.build().run()
    assert seen[0] is seen[1] is result.state


async def test_input_given_as_a_dict_is_validated_into_the_state_type() -> None:
    graph = Graph(Merged)
    graph.add(returning(None), name="noop")
    graph.edge(START, "noop")
    result = await graph.build().run({"count": "3", "tags": ["a", "a"]})
    assert isinstance(result.state, Merged)
    assert result.state.count == 3
    assert result.state.tags == {"a"}


async def test_input_given_as_a_dict_is_validated_into_a_dataclass() -> None:
    graph = Graph(DataState)
    graph.add(returning(None), name="noop")
    graph.edge(START, "noop")
    result = await graph.build().run({"count": "4"})
    assert result.state == DataState(count=4, items=[])


async def test_no_input_gives_the_state_defaults() -> None:
    graph = Graph(Merged)
    graph.add(returning(None), name="noop")
    graph.edge(START, "noop")
    result = await graph.build().run()
    assert result.state == Merged()


class _StartRecorder(Hooks):
    def __init__(self) -> None:
        self.started = False

    def on_run_start(self, *, run_id: str, workflow: str, state: Any) -> None:
        self.started = True


async def test_invalid_input_raises_validation_error_before_anything_runs() -> None:
    calls: list[str] = []

    def step(state: Merged) -> None:
        calls.append("ran")

    graph = Graph(Merged)
    graph.add(step, thread=False)
    graph.edge(START, "step")
    hooks = _StartRecorder()
    with pytest.raises(pydantic.ValidationError):
        await graph.build().run({"count": "not a number"}, hooks=[hooks])
    assert calls == []
    assert not hooks.started
