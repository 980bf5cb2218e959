"""Team patterns where someone decides who works next: supervisor, hierarchical, handoff."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from podium.errors import ConfigError, RoutingError
from podium.flow._graph import Graph
from podium.flow._step import END, START, Command, Send, arity_of, is_async_callable
from podium.flow._workflow import Workflow
from podium.flow.patterns._common import Conversation, StepLike, Turn, add_member, named
from podium.runtime._context import context
from podium.runtime._limits import LimitReached, Limits

__all__ = ["Done", "Handoff", "handoff", "hierarchical", "supervisor"]


@dataclass(frozen=True, slots=True)
class Done:
    """A router's decision that the work is finished, with the team's result (default: the last turn's content)."""

    result: Any = None


@dataclass(frozen=True, slots=True)
class Handoff:
    """An agent's decision to pass control to ``to``, with a note (the context the next agent needs)."""

    to: str
    note: Any = None


def supervisor(
    router: Callable[..., Any],
    workers: Mapping[str, StepLike] | Sequence[StepLike],
    *,
    name: str = "supervisor",
    max_rounds: int = 10,
    on_max: str = "limit",
    limits: Limits | None = None,
) -> Workflow[Conversation]:
    """A router picks the next worker (or workers, in parallel) until it says it is done.

    The router is called with the :class:`Conversation` and returns a worker's name, a list of names (they run
    in parallel), ``Send(name, instruction)`` to give a worker an instruction, or :class:`Done` (or ``END``) to
    finish. Each decision and each worker's answer is a turn. A name that is not a worker fails the run with a
    :class:`~podium.errors.RoutingError` naming it. A router still undecided after ``max_rounds`` dispatches
    ends the run as ``limited`` (``on_max="limit"``), or finishes with the last answer as the result
    (``on_max="stop"``: a bounded consultation). A failing worker fails the run (give it ``on_error`` to report
    instead).

    Run it with the task as input: ``await supervisor(...).run("Write a post about tides")``.
    """
    members = named(workers)
    if not members:
        raise ConfigError("supervisor() needs at least one worker")
    if on_max not in ("limit", "stop"):
        raise ConfigError(f"on_max must be 'limit' or 'stop', not {on_max!r}")
    if max_rounds < 1:
        raise ConfigError("max_rounds must be at least 1")
    graph: Graph[Conversation] = Graph(Conversation, name=name)
    router_name = getattr(router, "__name__", "router")
    router_name = "router" if router_name in members or router_name == "<lambda>" else router_name
    decide = _call_with_state(router)

    async def route(state: Conversation) -> Command:
        decision = await decide(state)
        if decision is None or decision == END or isinstance(decision, Done):
            result = decision.result if isinstance(decision, Done) else None
            if result is None and state.turns:
                result = state.turns[-1].content
            return Command(update={"result": result}, goto=END)
        if state.round >= max_rounds:
            if on_max == "stop":
                return Command(update={"result": state.turns[-1].content if state.turns else None}, goto=END)
            raise LimitReached("max_rounds", f"{context().step!r} was not done after max_rounds={max_rounds}")
        picked = [decision] if isinstance(decision, str | Send) else list(decision)
        if not picked:
            ctx = context()
            raise RoutingError("chose no worker; return Done(result) to finish", run_id=ctx.run_id, step=ctx.step)
        labels = [p if isinstance(p, str) else p.to for p in picked]
        turn = Turn(speaker=router_name, content=labels, round=state.round + 1, kind="route")
        return Command(update={"turns": turn, "round": state.round + 1}, goto=picked)

    route.__name__ = router_name
    graph.add(route, name=router_name, routes=(*members, END), max_iterations=max_rounds + 1)
    graph.edge(START, router_name)
    for worker_name, worker in members.items():
        add_member(graph, worker_name, worker, _answer_turn(worker_name), max_iterations=max_rounds)
        graph.edge(worker_name, router_name)
    return graph.build(output="result", input="task", limits=limits)


def hierarchical(
    lead: Callable[..., Any],
    teams: Mapping[str, Workflow[Any] | tuple[Callable[..., Any], Mapping[str, StepLike] | Sequence[StepLike]]],
    *,
    name: str = "hierarchical",
    max_rounds: int = 10,
    limits: Limits | None = None,
) -> Workflow[Conversation]:
    """Supervisors of supervisors: a lead routes to teams, and each team is a supervisor of its own workers.

    A team is a ``(router, workers)`` pair (made into ``supervisor(router, workers, name=team)``) or any
    workflow whose input is a task and whose output is the team's answer, e.g. another ``hierarchical(...)``.
    A team runs as a sub-workflow: its task is the lead's instruction (``Send(team, instruction)``) or the
    lead's own task, and its result is one turn in the lead's conversation. Its steps appear in hooks and
    errors as ``team/step``.
    """
    built: dict[str, StepLike] = {}
    for team_name, team in teams.items():
        if isinstance(team, Workflow):
            built[team_name] = team
        else:
            team_router, team_workers = team
            built[team_name] = supervisor(team_router, team_workers, name=team_name, max_rounds=max_rounds)
    return supervisor(lead, built, name=name, max_rounds=max_rounds, limits=limits)


def handoff(
    agents: Mapping[str, StepLike] | Sequence[StepLike],
    *,
    start: str,
    name: str = "handoff",
    max_handoffs: int = 10,
    limits: Limits | None = None,
) -> Workflow[Conversation]:
    """An agent either answers (the answer is the result) or passes control to another with :class:`Handoff`.

    The handoff's note is recorded as a turn, so the next agent sees why it was called. A handoff to an unknown
    agent fails the run with a :class:`~podium.errors.RoutingError`; more than ``max_handoffs`` handoffs (two
    agents passing the task back and forth, say) end the run as ``limited``.
    """
    members = named(agents)
    if start not in members:
        raise ConfigError(f"handoff start {start!r} is not one of the agents {sorted(members)}")
    graph: Graph[Conversation] = Graph(Conversation, name=name)
    for agent_name, agent in members.items():
        others = tuple(n for n in members if n != agent_name)
        add_member(
            graph,
            agent_name,
            agent,
            _handoff_turn(agent_name, max_handoffs),
            routes=others,
            max_iterations=max_handoffs + 1,
        )
    graph.edge(START, start)
    return graph.build(output="result", input="task", limits=limits)


def _answer_turn(speaker: str) -> Callable[[Conversation, Any, Any], Any]:
    def turn(state: Conversation, item: Any, answer: Any) -> Any:
        return {"turns": Turn(speaker=speaker, content=answer, round=state.round, about=item)}

    return turn


def _handoff_turn(speaker: str, max_handoffs: int) -> Callable[[Conversation, Any, Any], Any]:
    def turn(state: Conversation, item: Any, answer: Any) -> Any:
        if isinstance(answer, Handoff):
            if state.round >= max_handoffs:
                raise LimitReached(
                    "max_handoffs",
                    f"{context().step!r} tried handoff number {state.round + 1} to {answer.to!r}; "
                    f"max_handoffs={max_handoffs}",
                )
            note = Turn(speaker=speaker, content=answer.note, round=state.round, kind="handoff", about=answer.to)
            return Command(update={"turns": note, "round": state.round + 1}, goto=answer.to)
        return {"turns": Turn(speaker=speaker, content=answer, round=state.round), "result": answer}

    return turn


def _call_with_state(fn: Callable[..., Any]) -> Callable[[Any], Any]:
    """An async ``call(state)`` for a sync or async callable taking ``()`` or ``(state)``."""
    arity = arity_of(fn)
    if arity > 1:
        raise ConfigError(f"{getattr(fn, '__name__', fn)!r} must take (state) or nothing")
    is_async = is_async_callable(fn)

    async def call(state: Any) -> Any:
        args = (state,)[:arity]
        return await fn(*args) if is_async else await asyncio.to_thread(fn, *args)

    return call
