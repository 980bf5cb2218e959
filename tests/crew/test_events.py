"""The ``events`` flow of crew files: typed events declared under ``events:``, agents subscribed to them, answers
that are events emitted in turn (inside a run, as ``Graph.on`` / ``event_driven`` do in Python)."""

from __future__ import annotations

import json

import pydantic
import pytest

from podium import RunStatus, TestModel
from podium.crew import crew_schema, load_crew
from podium.errors import CrewFileError
from tests.crew.conftest import WriteCrew
from tests.crew.events import Ticket, Triaged

CREW = """
name: desk
model: test
events:
  Ticket: tests.crew.events:Ticket
  Triaged: tests.crew.events:Triaged
  Closed: tests.crew.events:Closed
agents:
  intake: {role: Intake, goal: Acknowledge the ticket}
  triager: {role: Triager, goal: Pick the queue, output: Triaged}
  router: {call: tests.crew.events:triage}
  closer: {call: tests.crew.events:close_all}
  billing: {role: Billing}
  archivist: {role: Archivist}
"""


def turns(result: object) -> list[tuple[str, object]]:
    return [(t.speaker, t.content) for t in result.state.turns]  # type: ignore[attr-defined]


async def test_agents_react_to_events_and_answers_that_are_events_wake_the_next(write_crew: WriteCrew) -> None:
    flow = """
flow:
  events:
    start: Ticket
    on:
      Ticket: [intake, router]
      Triaged: [billing]
"""
    crew = load_crew(write_crew(CREW + flow))
    assert crew.outline() == [
        "events (start: Ticket)",
        "  on Ticket: intake",
        "  on Ticket: router",
        "  on Triaged: billing",
    ]
    model = TestModel({"intake": ["got it"], "billing": ["refund sent"]})
    result = await crew.run('{"id": 7, "text": "charged twice"}', model=model)  # JSON text: --input does this

    assert result.status is RunStatus.COMPLETED, result.reason
    assert result.state.task == Ticket(id=7, text="charged twice")
    assert turns(result) == [
        ("intake", "got it"),
        ("router", Triaged(id=7, queue="billing")),
        ("billing", "refund sent"),
    ]
    assert result.output == "refund sent"  # the last answer
    [intake, billing] = model.calls
    assert 'Your part now: {"id":7,"text":"charged twice"}' in intake.messages[-1].content  # the event is its part
    assert 'Your part now: {"id":7,"queue":"billing"}' in billing.messages[-1].content


async def test_an_agent_whose_output_is_an_event_emits_it(write_crew: WriteCrew) -> None:
    flow = """
flow:
  events:
    start: Ticket
    on:
      Ticket: [triager]
      Triaged: [billing, archivist]
"""
    crew = load_crew(write_crew(CREW + flow))
    model = TestModel({"triager": [{"id": 3, "queue": "billing"}], "billing": ["paid"], "archivist": ["filed"]})
    result = await crew.run(json.dumps({"id": 3, "text": "x"}), model=model)
    assert result.status is RunStatus.COMPLETED, result.reason
    assert turns(result) == [("triager", Triaged(id=3, queue="billing")), ("billing", "paid"), ("archivist", "filed")]


async def test_python_members_may_emit_events_themselves_and_one_agent_may_hear_several(
    write_crew: WriteCrew,
) -> None:
    flow = """
flow:
  events:
    start: Ticket
    on:
      Ticket: [router]
      Triaged: [closer, archivist]
      Closed: [archivist]
"""
    crew = load_crew(write_crew(CREW + flow))
    assert crew.workflow.step_paths() == ["desk_source", "router", "closer", "archivist"]
    model = TestModel({"archivist": ["triaged noted", "closed 10", "closed 11"]})
    result = await crew.run('{"id": 1, "text": "broken"}', model=model)
    assert result.status is RunStatus.COMPLETED, result.reason
    assert turns(result) == [
        ("router", Triaged(id=1, queue="technical")),
        ("closer", "closing 1"),
        ("archivist", "triaged noted"),
        ("archivist", "closed 10"),
        ("archivist", "closed 11"),
    ]


async def test_an_input_that_is_not_the_start_event_is_refused_before_anything_runs(write_crew: WriteCrew) -> None:
    crew = load_crew(write_crew(CREW + "flow:\n  events: {start: Ticket, on: {Ticket: [intake]}}\n"))
    with pytest.raises(pydantic.ValidationError, match="text"):
        await crew.run('{"id": 7}')
    with pytest.raises(pydantic.ValidationError, match="Invalid JSON"):
        await crew.run("not json")
    state = crew.workflow.input_state({"id": 1, "text": "a mapping is the event's fields"})  # what triggers do
    assert state.task == Ticket(id=1, text="a mapping is the event's fields")


@pytest.mark.parametrize(
    ("flow", "field", "message"),
    [
        (
            "{start: Tiket, on: {Ticket: [intake]}}",
            "flow.events.start",
            "no event 'Tiket' is declared under 'events' (did you mean 'Ticket'?)",
        ),
        ("{start: Ticket, on: {Triage: [intake]}}", "flow.events.on.Triage", "no event 'Triage'"),
        ("{start: Ticket, on: {Ticket: [nobody]}}", "flow.events.on.Ticket[0]", "no agent 'nobody'"),
        (
            "{start: Ticket, on: {Ticket: [{sequential: [intake]}]}}",
            "flow.events.on.Ticket[0]",
            "subscribers are agents, not flows",
        ),
        ("{start: Ticket, on: {Ticket: [intake, intake]}}", "flow.events.on.Ticket[1]", "appears twice"),
        (
            "{start: Ticket, on: {Ticket: [intake], Triaged: [{agent: intake, fallbacks: [billing]}]}}",
            "flow.events.on.Triaged[0]",
            "subscribes elsewhere with other options",
        ),
        ("{start: Ticket}", "flow.events.on", "is required"),
    ],
)
def test_mistakes_in_an_events_flow_point_at_the_field(
    write_crew: WriteCrew, flow: str, field: str, message: str
) -> None:
    with pytest.raises(CrewFileError) as caught:
        load_crew(write_crew(CREW + f"flow:\n  events: {flow}\n"))
    assert caught.value.field == field
    assert message in str(caught.value)
    assert caught.value.line == 15


@pytest.mark.parametrize(
    ("events", "field", "message"),
    [
        ("Ticket: tests.crew.events:not_a_model", "events.Ticket", "is not a pydantic model class"),
        ("Ticket: tests.crew.events:Nothing", "events.Ticket", "has no attribute 'Nothing'"),
        ("Ticket: tests.crew.outputs:Draft", "events.Ticket", "also an output type, another class"),
    ],
)
def test_mistakes_in_declared_events(write_crew: WriteCrew, events: str, field: str, message: str) -> None:
    text = f"""
name: desk
model: test
outputs:
  Ticket: tests.crew.events:Ticket
events:
  {events}
agents:
  intake: {{role: Intake}}
flow:
  events: {{start: Ticket, on: {{Ticket: [intake]}}}}
"""
    with pytest.raises(CrewFileError) as caught:
        load_crew(write_crew(text))
    assert (caught.value.field, caught.value.line) == (field, 6)
    assert message in str(caught.value)


def test_the_schema_knows_events() -> None:
    schema = crew_schema()
    assert "events" in schema["properties"]
    assert "EventsFlow" in schema["$defs"]
