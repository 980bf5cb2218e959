"""The planner pattern: decompose a goal into subtasks, run them as a dynamic fan-out, synthesize."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from podium.errors import ConfigError, StepOutputError
from podium.flow._graph import Graph
from podium.flow._step import START, Command, Send
from podium.flow._workflow import Workflow
from podium.flow.patterns._common import Conversation, StepLike, Turn, add_member, describe_failure, name_of
from podium.runtime._context import context
from podium.runtime._limits import Limits

__all__ = ["planner"]


def planner(
    plan: StepLike,
    worker: StepLike,
    synthesize: StepLike,
    *,
    max_subtasks: int = 20,
    on_subtask_failure: str = "fail",
    name: str = "planner",
    limits: Limits | None = None,
) -> Workflow[Conversation]:
    """Plan → one worker task per subtask, all at once → synthesize.

    ``plan(state)`` returns a list of subtasks. Each runs as ``worker(state, subtask)`` (a workflow worker
    runs as a sub-workflow per subtask, so a long subtask does not hold the others back), and each answer is
    a turn ``about`` its subtask, in plan order whatever order they finish in. ``synthesize(state)`` reads
    them and its answer is the result. An empty plan goes straight to synthesis.

    Args:
        max_subtasks: a plan with more subtasks fails the run, naming the planner and the count.
        on_subtask_failure: ``"fail"`` cancels the other subtasks and fails the run; ``"skip"`` records the
            failure as an ``error`` turn about that subtask, lets the others finish, and synthesizes anyway.
    """
    if on_subtask_failure not in ("fail", "skip"):
        raise ConfigError(f"on_subtask_failure must be 'fail' or 'skip', not {on_subtask_failure!r}")
    graph: Graph[Conversation] = Graph(Conversation, name=name)
    plan_name, worker_name, synth_name = name_of(plan), name_of(worker), name_of(synthesize)

    def planned(state: Conversation, item: Any, subtasks: Any) -> Command:
        if not isinstance(subtasks, Sequence) or isinstance(subtasks, str | bytes):
            ctx = context()
            raise StepOutputError(
                f"the plan must be a list of subtasks, not {type(subtasks).__name__}",
                run_id=ctx.run_id,
                step=ctx.step,
            )
        if len(subtasks) > max_subtasks:
            ctx = context()
            raise StepOutputError(
                f"planned {len(subtasks)} subtasks; max_subtasks={max_subtasks}",
                run_id=ctx.run_id,
                step=ctx.step,
            )
        turn = Turn(speaker=plan_name, content=list(subtasks), kind="plan")
        goto: list[str | Send] = [Send(worker_name, s) for s in subtasks] or [synth_name]
        return Command(update={"turns": turn}, goto=goto)

    def done(state: Conversation, subtask: Any, answer: Any) -> Any:
        return {"turns": Turn(speaker=worker_name, content=answer, kind="subtask", about=subtask)}

    def failed(state: Conversation, error: Exception, subtask: Any) -> Any:
        return {"turns": Turn(speaker=worker_name, content=describe_failure(error), kind="error", about=subtask)}

    add_member(graph, plan_name, plan, planned, routes=(worker_name, synth_name))
    worker_options: dict[str, Any] = {"on_error": failed} if on_subtask_failure == "skip" else {}
    add_member(graph, worker_name, worker, done, **worker_options)
    add_member(graph, synth_name, synthesize, _synthesis(synth_name))
    graph.edge(START, plan_name).edge(worker_name, synth_name)
    return graph.build(
        output="result",
        input="task",
        limits=limits,
    )


def _synthesis(speaker: str) -> Callable[[Conversation, Any, Any], Any]:
    def turn(state: Conversation, item: Any, answer: Any) -> Any:
        return {"turns": Turn(speaker=speaker, content=answer), "result": answer}

    return turn
