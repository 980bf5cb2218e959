"""Team patterns where several members answer the same question: debate, and vote."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from podium.errors import ConfigError
from podium.flow._graph import Graph
from podium.flow._step import END, START, Command, Send
from podium.flow._workflow import Workflow
from podium.flow.patterns._common import Conversation, StepLike, Turn, add_member, describe_failure, name_of, named
from podium.runtime._limits import Limits

__all__ = ["Tally", "debate", "vote"]

VoteRule = Literal["majority", "plurality", "unanimous", "quorum", "weighted"]


def debate(
    debaters: Mapping[str, StepLike] | Sequence[StepLike],
    judge: StepLike,
    *,
    rounds: int = 2,
    name: str = "debate",
    limits: Limits | None = None,
) -> Workflow[Conversation]:
    """Debaters answer each other for ``rounds`` rounds, then a judge decides.

    In each round every debater speaks at once, seeing all turns of the rounds before (never a rival's turn of
    the same round: they run against the same snapshot). After the last round the judge reads the whole
    conversation; its answer is the result. A debater that fails fails the run: a debate with a side missing is
    not the debate that was asked for.
    """
    members = named(debaters)
    if len(members) < 2:
        raise ConfigError("debate() needs at least two debaters")
    if rounds < 1:
        raise ConfigError("rounds must be at least 1")
    graph: Graph[Conversation] = Graph(Conversation, name=name)
    judge_name = name_of(judge)
    next_round = f"{name}_round"
    for debater, member in members.items():
        add_member(graph, debater, member, _said(debater), max_iterations=rounds)
        graph.edge(START, debater)

    def close_round(state: Conversation) -> Command:
        finished = state.round + 1
        return Command(update={"round": finished}, goto=judge_name if finished >= rounds else list(members))

    graph.add(close_round, name=next_round, routes=(*members, judge_name), thread=False, max_iterations=rounds)
    graph.join(list(members), next_round)
    add_member(graph, judge_name, judge, _verdict(judge_name))
    return graph.build(output="result", input="task", limits=limits)


class Tally(BaseModel):
    """The outcome of a vote.

    Attributes:
        decision: the winning choice, or None when the vote did not decide.
        decided: whether a choice won under the rule (or the judge chose).
        rule: the rule applied.
        counts: votes (or weights) per choice, as ``str(choice) -> total``.
        ballots: voter → choice, for the voters who voted.
        abstained: voters who failed to vote (their step failed), with the error.
        tied: the choices tied for first, when there was a tie.
        by_judge: True when the judge broke a tie or a missing majority.
    """

    model_config = ConfigDict(frozen=True)

    decision: Any = None
    decided: bool = False
    rule: str
    counts: dict[str, float]
    ballots: dict[str, Any]
    abstained: dict[str, str] = {}
    tied: list[Any] = []
    by_judge: bool = False


def vote(
    voters: Mapping[str, StepLike] | Sequence[StepLike],
    *,
    rule: VoteRule = "majority",
    quorum: int | None = None,
    weights: Mapping[str, float] | None = None,
    choice: Callable[[Any], Hashable] | None = None,
    judge: StepLike | None = None,
    name: str = "vote",
    limits: Limits | None = None,
) -> Workflow[Conversation]:
    """Every voter answers at once; a rule combines the ballots into a :class:`Tally` (the result).

    Rules: ``majority`` (more than half of the ballots cast), ``plurality`` (most votes), ``unanimous``,
    ``quorum`` (the first choice with at least ``quorum`` votes), ``weighted`` (most weight, from ``weights``).
    A voter that fails abstains: its error is kept in the tally and the others still count; a quorum still
    needs ``quorum`` real votes. When the rule does not decide (a tie, no majority), the ``judge``, if any,
    is called with ``(state, candidates)`` and its answer is the decision; without a judge the tally says
    ``decided=False``.

    Args:
        choice: maps a voter's answer to the choice it counts for (default: the answer itself).
    """
    members = named(voters)
    if not members:
        raise ConfigError("vote() needs at least one voter")
    if rule == "quorum" and (quorum is None or quorum < 1):
        raise ConfigError("rule='quorum' needs quorum=<votes needed>")
    if rule == "weighted":
        missing = sorted(set(members) - set(weights or {}))
        if missing:
            raise ConfigError(f"rule='weighted' needs a weight for every voter; missing {missing}")
    graph: Graph[Conversation] = Graph(Conversation, name=name)
    count = f"{name}_count"
    key = choice or (lambda answer: answer)
    judge_name = name_of(judge) if judge is not None else None
    for voter, member in members.items():
        add_member(graph, voter, member, _ballot(voter), on_error=_abstain(voter))
        graph.edge(START, voter)

    def tally(state: Conversation) -> Command:
        result = _tally(state, members, rule, quorum, weights or {}, key)
        if result.decided or judge_name is None or not result.ballots:  # nothing to judge when nobody voted
            return Command(update={"result": result}, goto=END)
        candidates = result.tied or [result.ballots[v] for v in result.ballots]
        return Command(update={"result": result}, goto=Send(judge_name, list(dict.fromkeys(candidates))))

    graph.add(tally, name=count, routes=(judge_name,) if judge_name else (), thread=False)
    graph.join(list(members), count)
    if judge is not None and judge_name is not None:
        add_member(graph, judge_name, judge, _ruling(judge_name))
    return graph.build(output="result", input="task", limits=limits)


def _tally(
    state: Conversation,
    members: Mapping[str, Any],
    rule: VoteRule,
    quorum: int | None,
    weights: Mapping[str, float],
    key: Callable[[Any], Hashable],
) -> Tally:
    ballots: dict[str, Any] = {}
    abstained: dict[str, str] = {}
    for turn in state.turns:
        if turn.kind == "ballot":
            ballots[turn.speaker] = key(turn.content)
        elif turn.kind == "error" and turn.speaker in members:
            abstained[turn.speaker] = str(turn.content)
    totals: dict[Hashable, float] = {}
    for voter, picked in ballots.items():
        totals[picked] = totals.get(picked, 0.0) + (weights[voter] if rule == "weighted" else 1.0)
    ranked = sorted(totals.items(), key=lambda kv: -kv[1])
    top = [c for c, n in ranked if ranked and n == ranked[0][1]]
    cast = len(ballots)
    decided = False
    best: Any = None
    if ranked:
        best, votes = ranked[0]
        if rule == "majority":
            decided = votes * 2 > cast
        elif rule == "unanimous":
            decided = len(totals) == 1 and not abstained
        elif rule == "quorum":
            assert quorum is not None
            decided = votes >= quorum and len(top) == 1
        else:  # plurality, weighted
            decided = len(top) == 1
    return Tally(
        decision=best if decided else None,
        decided=decided,
        rule=rule,
        counts={str(c): n for c, n in ranked},
        ballots=ballots,
        abstained=abstained,
        tied=top if len(top) > 1 else [],
    )


def _said(speaker: str) -> Callable[[Conversation, Any, Any], Any]:
    def turn(state: Conversation, item: Any, answer: Any) -> Any:
        return {"turns": Turn(speaker=speaker, content=answer, round=state.round)}

    return turn


def _verdict(speaker: str) -> Callable[[Conversation, Any, Any], Any]:
    def turn(state: Conversation, item: Any, answer: Any) -> Any:
        return {
            "turns": Turn(speaker=speaker, content=answer, round=state.round, kind="verdict"),
            "result": answer,
        }

    return turn


def _ballot(speaker: str) -> Callable[[Conversation, Any, Any], Any]:
    def turn(state: Conversation, item: Any, answer: Any) -> Any:
        return {"turns": Turn(speaker=speaker, content=answer, kind="ballot")}

    return turn


def _abstain(speaker: str) -> Callable[[Conversation, Exception], Any]:
    def on_error(state: Conversation, error: Exception) -> Any:
        return {"turns": Turn(speaker=speaker, content=describe_failure(error), kind="error")}

    return on_error


def _ruling(speaker: str) -> Callable[[Conversation, Any, Any], Any]:
    def turn(state: Conversation, candidates: Any, answer: Any) -> Any:
        assert isinstance(state.result, Tally)
        ruled = state.result.model_copy(update={"decision": answer, "decided": True, "by_judge": True})
        verdict = Turn(speaker=speaker, content=answer, kind="verdict", about=candidates)
        return {"turns": verdict, "result": ruled}

    return turn
