"""Team patterns where several members answer one question: debate and vote (podium.flow.patterns._deliberate).

Every pattern is shown working, and failing inside one member, with what happens to the others.
"""

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from podium import (
    ConfigError,
    Conversation,
    RunStatus,
    StepFailedError,
    Tally,
    debate,
    step,
    vote,
)


def failed_step_error(error: object) -> StepFailedError:
    assert isinstance(error, StepFailedError), f"expected StepFailedError, got {error!r}"
    return error


def answers(*choices: Any) -> list[Any]:
    """One voter (a step named v1, v2, ...) per choice; a BaseException choice is raised instead."""

    def make(index: int, choice: Any) -> Any:
        def voter(state: Conversation) -> Any:
            if isinstance(choice, BaseException):
                raise choice
            return choice

        return step(voter, name=f"v{index}")

    return [make(i, c) for i, c in enumerate(choices, start=1)]


def tally_of(output: Any) -> Tally:
    assert isinstance(output, Tally), f"expected a Tally, got {output!r}"
    return output


# ---------------------------------------------------------------------------------------------- debate


async def test_debate_each_round_sees_only_earlier_rounds_and_the_judge_sees_all() -> None:
    seen: list[tuple[str, int, list[tuple[str, int]]]] = []

    def recorder(name: str) -> Callable[[Conversation], str]:
        def speak(state: Conversation) -> str:
            seen.append((name, state.round, [(t.speaker, t.round) for t in state.turns]))
            return f"{name} r{state.round}"

        speak.__name__ = name
        return speak

    judged: list[list[str]] = []

    def judge(state: Conversation) -> str:
        judged.append([str(t.content) for t in state.turns])
        return "pro wins"

    result = await debate([recorder("pro"), recorder("con")], judge, rounds=3).run({"task": "is the moon cheese?"})

    assert result.status is RunStatus.COMPLETED
    assert result.output == "pro wins"
    earlier = {
        0: [],
        1: [("pro", 0), ("con", 0)],
        2: [("pro", 0), ("con", 0), ("pro", 1), ("con", 1)],
    }
    assert sorted(seen) == sorted((name, r, earlier[r]) for name in ("pro", "con") for r in range(3))
    assert judged == [["pro r0", "con r0", "pro r1", "con r1", "pro r2", "con r2"]]
    verdict = result.state.turns[-1]
    assert (verdict.speaker, verdict.kind, verdict.round) == ("judge", "verdict", 3)
    assert result.state.round == 3


async def test_debate_speakers_of_a_round_run_concurrently() -> None:
    barrier = threading.Barrier(3, timeout=5)

    def make(name: str) -> Callable[[Conversation], str]:
        def speak(state: Conversation) -> str:
            barrier.wait()  # only passes when all three debaters of the round are running at once
            return name

        speak.__name__ = name
        return speak

    def judge(state: Conversation) -> int:
        return len(state.turns)

    result = await debate([make("a"), make("b"), make("c")], judge, rounds=2).run({"task": "t"})

    assert result.status is RunStatus.COMPLETED, result.error
    assert result.output == 6


async def test_debate_with_one_round_goes_to_the_judge_after_it() -> None:
    calls: list[str] = []

    def pro(state: Conversation) -> str:
        calls.append("pro")
        return "yes"

    def con(state: Conversation) -> str:
        calls.append("con")
        return "no"

    def judge(state: Conversation) -> str:
        calls.append("judge")
        return f"judged {len(state.turns)}"

    result = await debate({"pro": pro, "con": con}, step(judge, name="referee"), rounds=1).run({"task": "t"})

    assert result.output == "judged 2"
    assert sorted(calls[:2]) == ["con", "pro"]
    assert calls[2:] == ["judge"]
    assert [t.speaker for t in result.state.turns][-1] == "referee"


async def test_debate_failing_debater_cancels_its_rival_and_the_judge_never_runs() -> None:
    cancelled: list[int] = []
    effects: list[str] = []
    original = ValueError("con lost its notes")

    async def pro(state: Conversation) -> str:
        if state.round == 0:
            return "pro opening"
        try:
            await asyncio.sleep(3)
        except asyncio.CancelledError:
            cancelled.append(state.round)
            raise
        effects.append("pro rebuttal")
        return "pro rebuttal"

    async def con(state: Conversation) -> str:
        if state.round == 0:
            return "con opening"
        await asyncio.sleep(0.01)
        raise original

    def judge(state: Conversation) -> str:
        effects.append("judge")
        return "verdict"

    started = time.perf_counter()
    result = await debate([pro, con], judge, rounds=3).run({"task": "t"})

    assert result.status is RunStatus.FAILED
    assert time.perf_counter() - started < 1.5
    assert cancelled == [1]
    assert effects == []
    error = failed_step_error(result.error)
    assert error.step == "con"
    assert error.__cause__ is original
    assert [t.content for t in result.state.turns] == ["pro opening", "con opening"]
    assert result.state.result is None


async def test_debate_failing_judge_fails_the_run_after_all_rounds() -> None:
    def pro(state: Conversation) -> str:
        return "yes"

    def con(state: Conversation) -> str:
        return "no"

    def judge(state: Conversation) -> str:
        raise RuntimeError("undecided")

    result = await debate([pro, con], judge, rounds=2).run({"task": "t"})

    assert result.status is RunStatus.FAILED
    assert failed_step_error(result.error).step == "judge"
    assert len(result.state.turns) == 4


def test_debate_rejects_bad_options() -> None:
    def pro(state: Conversation) -> str:
        return "yes"

    def con(state: Conversation) -> str:
        return "no"

    def judge(state: Conversation) -> str:
        return "?"

    with pytest.raises(ConfigError, match="at least two debaters"):
        debate([pro], judge)
    with pytest.raises(ConfigError, match="rounds must be at least 1"):
        debate([pro, con], judge, rounds=0)


# ---------------------------------------------------------------------------------------------- vote: rules


async def test_vote_majority_decides_and_records_every_ballot() -> None:
    result = await vote(answers("yes", "no", "yes")).run({"task": "ship it?"})

    assert result.status is RunStatus.COMPLETED
    tally = tally_of(result.output)
    assert (tally.decision, tally.decided, tally.rule, tally.by_judge) == ("yes", True, "majority", False)
    assert tally.counts == {"yes": 2.0, "no": 1.0}
    assert tally.ballots == {"v1": "yes", "v2": "no", "v3": "yes"}
    assert tally.abstained == {}
    assert tally.tied == []
    assert [t.kind for t in result.state.turns] == ["ballot", "ballot", "ballot"]


async def test_vote_majority_needs_more_than_half_of_the_ballots() -> None:
    tally = tally_of((await vote(answers("yes", "yes", "no", "maybe")).run({"task": "q"})).output)

    assert tally.decided is False
    assert tally.decision is None
    assert tally.counts == {"yes": 2.0, "no": 1.0, "maybe": 1.0}
    assert tally.tied == []  # a clear leader, just not a majority


async def test_vote_plurality_takes_the_clear_leader() -> None:
    tally = tally_of((await vote(answers("yes", "yes", "no", "maybe"), rule="plurality").run({"task": "q"})).output)

    assert (tally.decision, tally.decided) == ("yes", True)


async def test_vote_plurality_tie_without_a_judge_is_undecided() -> None:
    result = await vote(answers("a", "b", "b", "a", "c"), rule="plurality").run({"task": "q"})

    assert result.status is RunStatus.COMPLETED
    tally = tally_of(result.output)
    assert (tally.decision, tally.decided, tally.by_judge) == (None, False, False)
    assert tally.tied == ["a", "b"]


async def test_vote_tie_with_a_judge_asks_it_among_the_tied_choices() -> None:
    given: list[Any] = []

    def judge(state: Conversation, candidates: list[str]) -> str:
        given.append(candidates)
        return candidates[-1]

    result = await vote(answers("a", "b", "b", "a", "c"), rule="plurality", judge=judge).run({"task": "q"})

    tally = tally_of(result.output)
    assert given == [["a", "b"]]
    assert (tally.decision, tally.decided, tally.by_judge) == ("b", True, True)
    assert tally.tied == ["a", "b"]
    assert tally.counts == {"a": 2.0, "b": 2.0, "c": 1.0}
    verdict = result.state.turns[-1]
    assert (verdict.speaker, verdict.kind, verdict.content, verdict.about) == ("judge", "verdict", "b", ["a", "b"])


async def test_vote_missing_majority_with_a_judge_offers_every_distinct_choice() -> None:
    given: list[Any] = []

    def judge(state: Conversation, candidates: list[str]) -> str:
        given.append(candidates)
        return "maybe"

    result = await vote(answers("yes", "no", "yes", "maybe"), judge=judge).run({"task": "q"})

    tally = tally_of(result.output)
    assert given == [["yes", "no", "maybe"]]
    assert (tally.decision, tally.by_judge) == ("maybe", True)


async def test_vote_decided_without_a_tie_never_calls_the_judge() -> None:
    def judge(state: Conversation, candidates: list[str]) -> str:
        raise AssertionError("the judge must not be asked")

    result = await vote(answers("yes", "yes", "no"), judge=judge).run({"task": "q"})

    assert result.status is RunStatus.COMPLETED
    assert tally_of(result.output).by_judge is False


@pytest.mark.parametrize(
    ("choices", "decision"),
    [(("yes", "yes", "yes"), "yes"), (("yes", "yes", "no"), None), (("yes", "yes", RuntimeError("down")), None)],
    ids=["all-agree", "one-dissents", "one-abstains"],
)
async def test_vote_unanimous_needs_every_voter(choices: tuple[Any, ...], decision: str | None) -> None:
    tally = tally_of((await vote(answers(*choices), rule="unanimous").run({"task": "q"})).output)

    assert tally.decision == decision
    assert tally.decided is (decision is not None)


@pytest.mark.parametrize(
    ("choices", "quorum", "decision"),
    [
        (("yes", "yes", "no"), 2, "yes"),
        (("yes", "yes", "no"), 3, None),
        (("yes", "yes", "no", "no"), 2, None),  # both reach the quorum: a tie
        (("yes", "yes", RuntimeError("down")), 3, None),  # an abstention is not a vote
    ],
    ids=["met", "not-met", "tie", "abstention-does-not-count"],
)
async def test_vote_quorum(choices: tuple[Any, ...], quorum: int, decision: str | None) -> None:
    result = await vote(answers(*choices), rule="quorum", quorum=quorum).run({"task": "q"})

    assert result.status is RunStatus.COMPLETED
    tally = tally_of(result.output)
    assert tally.decision == decision
    assert tally.decided is (decision is not None)


async def test_vote_weighted_counts_weights_not_heads() -> None:
    weights = {"v1": 3.0, "v2": 1.0, "v3": 1.0}
    tally = tally_of(
        (await vote(answers("yes", "no", "no"), rule="weighted", weights=weights).run({"task": "q"})).output
    )

    assert (tally.decision, tally.decided) == ("yes", True)
    assert tally.counts == {"yes": 3.0, "no": 2.0}


async def test_vote_weighted_tie_goes_to_the_judge() -> None:
    def judge(state: Conversation, candidates: list[str]) -> str:
        return "no"

    weights = {"v1": 2.0, "v2": 1.0, "v3": 1.0}
    result = await vote(answers("yes", "no", "no"), rule="weighted", weights=weights, judge=judge).run({"task": "q"})

    tally = tally_of(result.output)
    assert tally.tied == ["yes", "no"]
    assert (tally.decision, tally.by_judge) == ("no", True)


async def test_vote_choice_maps_answers_to_what_they_count_for() -> None:
    def score(answer: Any) -> Any:
        return answer["verdict"]

    voters = answers({"verdict": "ship", "why": "fast"}, {"verdict": "ship", "why": "cheap"}, {"verdict": "hold"})
    tally = tally_of((await vote(voters, choice=score).run({"task": "q"})).output)

    assert tally.decision == "ship"
    assert tally.ballots == {"v1": "ship", "v2": "ship", "v3": "hold"}


async def test_vote_a_false_choice_is_still_a_decision() -> None:
    tally = tally_of((await vote(answers(False, False, True)).run({"task": "q"})).output)

    assert tally.decision is False
    assert tally.decided is True


def test_vote_rejects_incomplete_rules() -> None:
    with pytest.raises(ConfigError, match="quorum"):
        vote(answers("a"), rule="quorum")
    with pytest.raises(ConfigError, match=r"missing \['v2'\]"):
        vote(answers("a", "b"), rule="weighted", weights={"v1": 1.0})
    with pytest.raises(ConfigError, match="at least one voter"):
        vote([])


# ---------------------------------------------------------------------------------------------- vote: failures


async def test_vote_failing_voter_abstains_and_the_others_finish_and_count() -> None:
    finished: list[str] = []

    def broken(state: Conversation) -> str:
        raise RuntimeError("model down")

    async def slow(state: Conversation) -> str:
        await asyncio.sleep(0.1)
        finished.append("slow")
        return "yes"

    def quick(state: Conversation) -> str:
        return "no"

    def late(state: Conversation) -> str:
        return "yes"

    result = await vote([broken, slow, quick, late]).run({"task": "q"})

    assert result.status is RunStatus.COMPLETED
    assert finished == ["slow"]  # not cancelled by its sibling's failure
    tally = tally_of(result.output)
    assert tally.abstained == {"broken": "RuntimeError: model down"}
    assert tally.ballots == {"slow": "yes", "quick": "no", "late": "yes"}
    assert (tally.decision, tally.decided) == ("yes", True)  # 2 of the 3 ballots cast
    error_turn = result.state.last("broken")
    assert error_turn is not None
    assert error_turn.kind == "error"


async def test_vote_where_everyone_abstains_is_undecided() -> None:
    result = await vote(answers(RuntimeError("a"), ValueError("b"))).run({"task": "q"})

    assert result.status is RunStatus.COMPLETED
    tally = tally_of(result.output)
    assert (tally.decided, tally.counts, tally.ballots) == (False, {}, {})
    assert tally.abstained == {"v1": "RuntimeError: a", "v2": "ValueError: b"}


async def test_vote_failing_judge_fails_the_run_keeping_the_tally() -> None:
    original = RuntimeError("judge offline")

    def judge(state: Conversation, candidates: list[str]) -> str:
        raise original

    result = await vote(answers("a", "b"), rule="plurality", judge=judge).run({"task": "q"})

    assert result.status is RunStatus.FAILED
    error = failed_step_error(result.error)
    assert error.step == "judge"
    assert error.__cause__ is original
    tally = tally_of(result.state.result)
    assert tally.tied == ["a", "b"]
    assert tally.decided is False


async def test_vote_voter_that_times_out_abstains_saying_so() -> None:
    async def slow(state: Conversation) -> str:
        await asyncio.sleep(3)
        return "yes"

    def quick(state: Conversation) -> str:
        return "yes"

    result = await vote([step(slow, timeout=0.05), quick]).run({"task": "q"})

    tally = tally_of(result.output)
    assert tally.decision == "yes"
    assert "timeout" in tally.abstained["slow"]


async def test_vote_where_everyone_abstains_does_not_ask_the_judge() -> None:
    asked: list[Any] = []

    def broken(state: Conversation) -> str:
        raise RuntimeError("model down")

    def judge(state: Conversation, candidates: list[Any]) -> str:
        asked.append(candidates)
        return "yes"

    result = await vote([step(broken, name="a"), step(broken, name="b")], judge=judge).run({"task": "q"})
    assert result.status == RunStatus.COMPLETED
    tally = result.output
    assert isinstance(tally, Tally)
    assert not tally.decided
    assert set(tally.abstained) == {"a", "b"}
    assert asked == []


async def test_vote_won_by_a_none_choice_is_decided() -> None:
    def nothing(state: Conversation) -> None:
        return None

    def something(state: Conversation) -> str:
        return "x"

    voters = [step(nothing, name="a"), step(nothing, name="b"), step(something, name="c")]
    tally = (await vote(voters).run({"task": "q"})).output
    assert isinstance(tally, Tally)
    assert tally.decided
    assert tally.decision is None
    assert tally.counts == {"None": 2.0, "x": 1.0}
