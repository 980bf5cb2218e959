"""No-progress detection (``Limits.max_repeats``): loops that go round on the same state are stopped, loops that
change something that counts are not (podium.runtime._progress)."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from podium import (
    END,
    START,
    ConfigError,
    Conversation,
    Done,
    Graph,
    Handoff,
    Limits,
    MemoryStore,
    RunResult,
    RunStatus,
    Send,
    Turn,
    WorkflowDefinitionError,
    debate,
    handoff,
    loop,
    reducers,
    supervisor,
)
from podium.runtime._progress import looping_steps, progress_key


class Doc(BaseModel):
    draft: str = ""
    feedback: str = ""
    approved: bool = False


class Poll(BaseModel):
    status: str = "pending"
    attempt: int = 0
    log: Annotated[list[str], reducers.append] = []


class Counted(BaseModel):
    """A state whose ``attempt`` is a counter that does not count as progress."""

    status: str = "pending"
    attempt: int = 0

    def __progress__(self) -> Any:
        return {"status": self.status}


def no_progress(result: RunResult[Any], step: str) -> None:
    assert (result.status, result.limit) == (RunStatus.LIMITED, "no_progress"), result.reason
    assert result.reason is not None
    assert result.reason.startswith(f"step {step!r} made no progress")
    assert result.error is None


# -- adversarial loops: stopped before their caps -------------------------------------------------------------


async def test_a_critic_that_never_approves_a_resubmitted_draft_is_stopped() -> None:
    drafts = 0

    def write(state: Doc) -> dict[str, Any]:
        nonlocal drafts
        drafts += 1
        return {"draft": "Tides are caused by the moon."}

    def critique(state: Doc) -> dict[str, Any]:
        return {"feedback": "Not convincing yet."}

    workflow = loop(write, critique, until=lambda s: s.approved, max_iterations=50, state=Doc, on_max="limit")
    result = await workflow.run(Doc())
    no_progress(result, "loop_until")
    assert "'write' wrote {'draft': 'Tides are caused by the moon.'}" in (result.reason or "")
    assert "'critique' wrote {'feedback': 'Not convincing yet.'}" in (result.reason or "")
    assert "max_repeats=2" in (result.reason or "")
    assert drafts == 4  # the state stopped changing after the first round; three more rounds, not fifty
    assert result.state.draft == "Tides are caused by the moon."  # the best partial result


async def test_two_agents_handing_a_task_back_and_forth_are_stopped() -> None:
    def billing(state: Conversation) -> Handoff:
        return Handoff("technical", "this is a technical question")

    def technical(state: Conversation) -> Handoff:
        return Handoff("billing", "this is about an invoice")

    result = await handoff([billing, technical], start="billing", max_handoffs=50).run("my invoice is wrong")
    no_progress(result, "billing")
    assert "'technical' wrote {'turns': Turn(speaker='technical', content='this is about an invoice'" in (
        result.reason or ""
    )
    assert result.state.round < 10  # handoffs made before it was stopped, of the 50 allowed


async def test_a_supervisor_that_keeps_sending_a_worker_who_says_the_same_thing_is_stopped() -> None:
    def manager(state: Conversation) -> str:
        return "writer"

    def writer(state: Conversation) -> str:
        return "I need more details."

    result = await supervisor(manager, [writer], max_rounds=50).run("Write about tides")
    no_progress(result, "manager")
    assert result.state.round < 10


async def test_a_supervisor_alternating_between_two_workers_who_repeat_themselves_is_stopped() -> None:
    def manager(state: Conversation) -> str:
        return "a" if state.round % 2 == 0 else "b"

    def a(state: Conversation) -> str:
        return "yes"

    def b(state: Conversation) -> str:
        return "no"

    result = await supervisor(manager, [a, b], max_rounds=50).run("decide")
    assert (result.status, result.limit) == (RunStatus.LIMITED, "no_progress")
    assert result.state.round < 12


async def test_a_step_sent_the_same_item_on_the_same_state_is_stopped() -> None:
    graph = Graph(Poll, name="resend")
    graph.add(lambda state, item: Send("work", item), name="work", routes=["work"], thread=False)
    graph.add(lambda state: Send("work", "same"), name="start", routes=["work"], thread=False)
    graph.edge(START, "start")
    result = await graph.build().run(Poll(), limits=Limits(max_iterations=50))
    no_progress(result, "work")
    assert "with the same item 'same'" in (result.reason or "")


async def test_max_repeats_0_stops_the_first_repeat_and_a_step_can_override_it() -> None:
    def spin(**options: Any) -> Any:
        graph = Graph(Poll, name="spin")
        graph.add(lambda state: {"status": "pending"}, name="poll", thread=False, **options)
        graph.edge(START, "poll").route("poll", lambda state: "poll", ["poll", END])
        return graph.build()

    strict = await spin().run(Poll(), limits=Limits(max_repeats=0, max_iterations=50))
    assert "for the 2nd time (max_repeats=0)" in (strict.reason or "")
    patient = await spin(max_repeats=7).run(Poll(), limits=Limits(max_repeats=0, max_iterations=50))
    assert "for the 9th time (max_repeats=7)" in (patient.reason or "")


async def test_the_history_of_a_run_stopped_for_no_progress_replays_to_where_it_stopped() -> None:
    def write(state: Doc) -> dict[str, Any]:
        return {"draft": "same"}

    workflow = loop(write, until=lambda s: s.approved, max_iterations=50, state=Doc)
    store = MemoryStore()
    result = await workflow.run(Doc(), run_id="r", store=store)
    assert result.limit == "no_progress"
    points = await workflow.history("r", store=store)  # a replay that reads the journal enforces nothing
    assert [p.state.draft for p in points][-1] == "same"
    assert len(points) == result.steps


# -- legitimate loops: not stopped ----------------------------------------------------------------------------


async def test_a_poller_that_records_its_attempts_is_not_stopped() -> None:
    def poll(state: Poll) -> dict[str, Any]:
        attempt = state.attempt + 1
        return {"attempt": attempt, "status": "done" if attempt == 12 else "pending"}

    graph = Graph(Poll, name="poller")
    graph.add(poll, thread=False)
    graph.edge(START, "poll").route("poll", lambda s: END if s.status == "done" else "poll", ["poll", END])
    result = await graph.build().run(Poll())
    assert result.status is RunStatus.COMPLETED, result.reason
    assert result.state.attempt == 12


async def test_a_poller_that_changes_nothing_is_stopped_unless_it_may_repeat() -> None:
    polls = 0

    def poll(state: Poll) -> dict[str, Any] | None:
        nonlocal polls
        polls += 1
        return {"status": "done"} if polls == 12 else None  # the answer arrives from outside, eventually

    def poller(**options: Any) -> Any:
        graph = Graph(Poll, name="poller")
        graph.add(poll, thread=False, **options)
        graph.edge(START, "poll").route("poll", lambda s: END if s.status == "done" else "poll", ["poll", END])
        return graph.build()

    stopped = await poller().run(Poll())
    no_progress(stopped, "poll")
    assert "its last run and the steps after it wrote nothing" in (stopped.reason or "")
    assert polls == 3
    polls = 0
    assert (await poller(max_repeats=20).run(Poll())).status is RunStatus.COMPLETED
    polls = 0
    assert (await poller().run(Poll(), limits=Limits(max_repeats=None))).status is RunStatus.COMPLETED
    assert polls == 12


async def test_a_writer_who_improves_is_not_stopped_by_a_critic_who_repeats_himself() -> None:
    def write(state: Doc) -> dict[str, Any]:
        return {"draft": state.draft + "!"}

    def critique(state: Doc) -> dict[str, Any]:
        return {"feedback": "Better, not there yet.", "approved": len(state.draft) >= 10}

    workflow = loop(write, critique, until=lambda s: s.approved, max_iterations=50, state=Doc)
    result = await workflow.run(Doc())
    assert result.status is RunStatus.COMPLETED, result.reason
    assert result.state.draft == "!" * 10


async def test_a_loop_that_counts_is_progress_and_ends_at_its_iteration_cap() -> None:
    graph = Graph(Poll, name="count")
    graph.add(lambda state: {"attempt": state.attempt + 1}, name="inc", thread=False)
    graph.edge(START, "inc").route("inc", lambda state: "inc", ["inc", END])
    result = await graph.build().run(Poll(), limits=Limits(max_iterations=30))
    assert (result.status, result.limit) == (RunStatus.LIMITED, "max_iterations")


async def test_a_state_can_say_what_counts_as_progress() -> None:
    graph = Graph(Counted, name="count")
    graph.add(lambda state: {"attempt": state.attempt + 1}, name="inc", thread=False)
    graph.edge(START, "inc").route("inc", lambda state: "inc", ["inc", END])
    result = await graph.build().run(Counted(), limits=Limits(max_iterations=30))
    no_progress(result, "inc")  # its counter moves, but what counts (the status) never does
    assert result.state.attempt == 3  # three runs on the same view; the fourth never started


async def test_a_supervisor_whose_worker_says_something_new_each_round_goes_on() -> None:
    def manager(state: Conversation) -> str | Done:
        return Done() if state.round >= 9 else Send("writer", f"part {state.round + 1}")  # type: ignore[return-value]

    def writer(state: Conversation, instruction: str) -> str:
        return "ok"  # the same words, about a different part each time

    result = await supervisor(manager, [writer], max_rounds=50).run("Write about tides")
    assert result.status is RunStatus.COMPLETED, result.reason
    assert result.state.round == 9


async def test_a_debate_whose_debaters_repeat_themselves_still_reaches_its_judge() -> None:
    def pro(state: Conversation) -> str:
        return "yes"

    def con(state: Conversation) -> str:
        return "no"

    def judge(state: Conversation) -> str:
        return "yes wins"

    for rounds in (2, 3):
        result = await debate([pro, con], judge, rounds=rounds).run("Tides?")
        assert result.status is RunStatus.COMPLETED, result.reason
        assert result.output == "yes wins"


async def test_a_sub_workflows_limits_can_set_max_repeats_inside_it() -> None:
    spin = Graph(Poll, name="spin")
    spin.add(lambda state: {"status": "pending"}, name="poll", thread=False)
    spin.edge(START, "poll").route("poll", lambda state: "poll", ["poll", END])
    parent = Graph(Poll, name="parent")
    parent.add(spin.build(output="status"), name="team", into="status", limits=Limits(max_repeats=0))
    parent.edge(START, "team")
    result = await parent.build().run(Poll(), limits=Limits(max_repeats=None, max_iterations=50))
    no_progress(result, "team/poll")


# -- the progress view ----------------------------------------------------------------------------------------


def test_a_turns_round_is_not_progress_and_a_repeated_turn_adds_nothing() -> None:
    said = Turn(speaker="writer", content="draft", round=1)
    again = Turn(speaker="writer", content="draft", round=7)
    assert progress_key(said) == progress_key(again)
    assert progress_key(said) != progress_key(Turn(speaker="writer", content="draft 2", round=1))
    once = Conversation(task="t", turns=[said], round=1)
    twice = Conversation(task="t", turns=[said, again], round=5)
    assert progress_key(once) == progress_key(twice)
    assert progress_key(once) != progress_key(Conversation(task="t", turns=[said], result="done"))


def test_only_steps_on_a_cycle_are_watched() -> None:
    graph = Graph(Poll, name="mixed")
    for name in ("a", "b", "c", "d"):
        graph.add(lambda state: None, name=name, thread=False)
    graph.chain(START, "a", "b", "c").route("c", lambda state: END, ["b", "d", END])
    assert looping_steps(graph.build()) == {"b", "c"}


def test_max_repeats_must_not_be_negative() -> None:
    with pytest.raises(ConfigError, match="max_repeats"):
        Limits(max_repeats=-1)
    with pytest.raises(WorkflowDefinitionError, match="max_repeats"):
        Graph(Poll).add(lambda state: None, name="a", max_repeats=-1)
