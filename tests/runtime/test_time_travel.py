"""Reading a run's past (history) and branching from it (fork), leaving the original untouched."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from podium import END, START, ConfigError, Graph, RunStatus, SQLiteStore, Store, reducers


class Tally(BaseModel):
    n: int = 0
    log: Annotated[list[str], reducers.append] = []


def counting() -> Any:
    def add(state: Tally) -> dict[str, Any]:
        return {"n": state.n + 1, "log": f"add{state.n + 1}"}

    def double(state: Tally) -> dict[str, Any]:
        return {"n": state.n * 2, "log": "double"}

    def left(state: Tally) -> dict[str, Any]:
        return {"log": "left"}

    def right(state: Tally) -> dict[str, Any]:
        return {"log": "right"}

    graph = Graph(Tally, name="counting")
    graph.add(add).add(double).add(left).add(right)
    graph.chain(START, "add", "double")
    graph.edge("double", "left").edge("double", "right")
    graph.route("left", lambda s: END if s.n >= 10 else "add", ["add", END])
    return graph.build(output="n")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return SQLiteStore(tmp_path / "j.db")


async def test_history_gives_the_state_after_every_superstep(store: Store) -> None:
    workflow = counting()
    result = await workflow.run(run_id="r", store=store)
    assert result.output == 14  # 1, 2 -> 3, 6 -> 7, 14
    points = await workflow.history("r", store=store)
    assert [p.superstep for p in points] == list(range(1, len(points) + 1))
    assert [p.tasks for p in points[:4]] == [["add"], ["double"], ["left", "right"], ["add"]]
    assert [p.state.n for p in points] == [1, 2, 2, 3, 6, 6, 7, 14, 14]
    assert points[-1].state == result.state
    assert points[1].next == ["left", "right"]


async def test_fork_continues_from_a_point_with_edited_state_and_leaves_the_original(store: Store) -> None:
    workflow = counting()
    await workflow.run(run_id="r", store=store)
    before = await store.read("r")
    forked = await workflow.fork("r", at=2, update={"n": 50}, store=store)
    info = await store.get_run(forked)
    assert info.parent_run_id == "r"
    assert info.status == "pending"
    result = await workflow.resume(forked, store=store)
    assert result.status is RunStatus.COMPLETED
    assert result.output == 50  # left sees 50 >= 10 and ends
    assert result.state.log == ["add1", "double", "left", "right"]
    assert await store.read("r") == before


async def test_fork_at_a_step_name_or_task_id(store: Store) -> None:
    workflow = counting()
    await workflow.run(run_id="r", store=store)
    by_name = await workflow.fork("r", at="add", store=store)  # the latest run of "add": superstep 7
    (start,) = await workflow.history(by_name, store=store)
    assert (start.superstep, start.tasks, start.state.n) == (7, [], 7)
    by_id = await workflow.fork("r", at="4.0", store=store)
    result = await workflow.resume(by_id, store=store)
    assert result.output == 14
    with pytest.raises(ConfigError, match="no point 'publish'"):
        await workflow.fork("r", at="publish", store=store)


async def test_forking_with_an_invalid_edit_writes_nothing(store: Store) -> None:
    workflow = counting()
    await workflow.run(run_id="r", store=store)
    with pytest.raises(ConfigError, match=r"Tally\.n cannot be 'many'"):
        await workflow.fork("r", at=1, update={"n": "many"}, store=store)
    with pytest.raises(ConfigError, match="no field 'm'"):
        await workflow.fork("r", at=1, update={"m": 1}, store=store)
    assert [r.run_id for r in await store.list_runs()] == ["r"]


async def test_history_of_a_run_cut_short_stops_where_its_journal_does(store: Store) -> None:
    class Crash(BaseException):
        pass

    calls = {"boom": 0}

    def fine(state: Tally) -> dict[str, Any]:
        return {"n": 1}

    def boom(state: Tally) -> dict[str, Any]:
        calls["boom"] += 1
        if calls["boom"] == 1:
            raise Crash  # propagates out of run(), like a crash
        return {"n": 2}

    graph = Graph(Tally, name="crashy")
    graph.add(fine).add(boom)
    graph.chain(START, "fine", "boom", END)
    workflow = graph.build()
    with pytest.raises(Crash):
        await workflow.run(run_id="c", store=store)
    assert [p.superstep for p in await workflow.history("c", store=store)] == [1]
    resumed = await workflow.resume("c", store=store)
    assert resumed.state.n == 2
    assert [p.state.n for p in await workflow.history("c", store=store)] == [1, 2]
