"""The flaky server itself, through podium's OpenAI-compatible client: every fault it injects reaches the client
classified (transient, permanent, or an answer that does not fit), its healthy answers fit, and its choice of faults
is reproducible."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from podium import ModelPermanentError, ModelTransientError
from podium.models import Message, ModelRequest, ToolSpec
from tests.faults.conftest import Models, Servers
from tests.faults.plan import PERMANENT, TRANSIENT, Fault, FaultPlan, observed
from tests.faults.server import Canned
from tests.faults.workflows import group


class Answer(BaseModel):
    title: str
    points: list[str]


SCHEMA = TypeAdapter(Answer).json_schema()
SEARCH = ToolSpec(
    name="search",
    description="Search the notes.",
    parameters={"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
)
#: forms of a fault: which body a malformed answer has, which wrong content an off-schema one
VARIANTS = {Fault.NOT_JSON: 3, Fault.MISSING_FIELDS: 4, Fault.OFF_SCHEMA: 3}
HANG_DETECTOR = 10.0
"""Seconds after which a call is taken to hang (the client's timeout is 0.3 s): the test fails, not the suite."""
CASES = [(kind, variant) for kind in Fault for variant in range(VARIANTS.get(kind, 1))]


def ask(text: str = "Summarize the tides.", **fields: Any) -> ModelRequest:
    system = Message(role="system", content="You are summarizer, Summarizer.")
    return ModelRequest(messages=[system, Message(role="user", content=text)], agent="summarizer", **fields)


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize(("kind", "variant"), CASES, ids=[f"{k}-{v}" for k, v in CASES])
async def test_every_fault_reaches_the_client_classified(
    kind: Fault, variant: int, streamed: bool, servers: Servers, models: Models
) -> None:
    server = servers()
    server.force(kind, variant=variant)
    model = models(server, timeout=0.3)
    tokens: list[str] = []
    request = ask(output_schema=SCHEMA, on_token=tokens.append if streamed else None)
    call = asyncio.wait_for(model.complete(request), HANG_DETECTOR)
    if kind is Fault.OFF_SCHEMA:
        response = await call  # the call succeeds; the agent finds the answer does not fit
        with pytest.raises(ValidationError):
            Answer.model_validate_json(response.message.content)
    else:
        expected = ModelPermanentError if kind in PERMANENT else ModelTransientError
        with pytest.raises(expected) as caught:
            await call
        assert type(caught.value) is expected
        assert caught.value.transient is (kind in TRANSIENT)
        assert group(str(caught.value)) == observed(kind)  # the journal's message tells the kind of fault apart
        if kind is Fault.RATE_LIMITED:
            assert caught.value.retry_after == 0.02
        if kind is Fault.RATE_LIMITED_BARE:
            assert caught.value.retry_after is None
    assert server.injected == Counter({kind: 1})
    assert [s.stream for s in server.served] == [streamed]


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "stream"])
async def test_healthy_answers_fit_the_schema_and_call_tools(streamed: bool, servers: Servers, models: Models) -> None:
    server = servers()
    model = models(server)
    tokens: list[str] = []
    on_token = tokens.append if streamed else None
    first = ask(output_schema=SCHEMA, tools=[SEARCH], on_token=on_token)
    called = await model.complete(first)
    [call] = called.message.tool_calls
    assert (call.name, call.arguments) == ("search", {"query": "fine"})
    result = Message(role="tool", content="the moon", tool_call_id=call.id, name="search")
    follow_up = ModelRequest(
        messages=[*first.messages, called.message, result],
        output_schema=SCHEMA,
        tools=[SEARCH],
        on_token=on_token,
        agent="summarizer",
    )
    final = await model.complete(follow_up)
    assert Answer.model_validate_json(final.message.content) == Answer(title="fine", points=["fine"])
    assert (final.usage.input_tokens, final.usage.output_tokens) == (80, 20)
    assert bool(tokens) is streamed
    assert server.injected == Counter()
    assert [s.agent for s in server.served] == ["summarizer", "summarizer"]


async def test_a_choice_goes_to_the_first_option_not_yet_heard_from(servers: Servers, models: Models) -> None:
    class Route(BaseModel):
        next: str

    schema = {"type": "object", "properties": {"next": {"enum": ["researcher", "writer", "done"]}}}
    model = models(servers())
    heard = ["Task: tides", "Task: tides\n- researcher: notes", "Task: tides\n- researcher: n\n- writer: draft"]
    picks = [json.loads((await model.complete(ask(t, output_schema=schema))).message.content)["next"] for t in heard]
    assert picks == ["researcher", "writer", "done"]


def test_the_choice_of_faults_is_a_function_of_the_seed_and_the_request() -> None:
    bodies = [json.dumps({"messages": [{"role": "user", "content": f"call {n}"}]}).encode() for n in range(4000)]
    one, same, other = (FaultPlan(rate=0.2, seed=seed) for seed in (7, 7, 8))
    fates = [one.draw(b, seen) for b in bodies for seen in (0, 1)]
    assert fates == [same.draw(b, seen) for b in bodies for seen in (0, 1)]
    assert fates != [other.draw(b, seen) for b in bodies for seen in (0, 1)]
    assert [one.draw(b, 0) for b in bodies] != [one.draw(b, 1) for b in bodies]  # a retry is a new draw
    kinds = Counter(kind for kind, _ in fates)
    assert 0.18 < 1 - kinds["ok"] / len(fates) < 0.22  # the rate (8,000 draws of a fixed seed)
    assert set(kinds) - {"ok"} == set(Fault)  # every kind, at about the same weight
    assert min(kinds[k] for k in Fault) > 0.5 * max(kinds[k] for k in Fault)


def test_weights_choose_which_faults() -> None:
    plan = FaultPlan(rate=1.0, faults={Fault.HANG: 1.0, Fault.UNAVAILABLE: 3.0})
    kinds = Counter(plan.draw(f"{n}".encode())[0] for n in range(2000))
    assert set(kinds) == {Fault.HANG, Fault.UNAVAILABLE}
    assert 2.5 < kinds[Fault.UNAVAILABLE] / kinds[Fault.HANG] < 3.5
    with pytest.raises(ValueError, match="rate"):
        FaultPlan(rate=1.5)


# -- hostile answers no fault kind describes -------------------------------------------------------------------


@pytest.mark.parametrize("asked", ["inf", "nan", "1e400", "-inf"])
@pytest.mark.parametrize("header", ["Retry-After", "retry-after-ms"])
async def test_a_wait_that_is_not_a_finite_number_is_not_taken_at_its_word(
    header: str, asked: str, servers: Servers, models: Models
) -> None:
    server = servers()
    server.force(Canned(status=429, body='{"error": {"message": "slow down"}}', headers={header: asked}))
    with pytest.raises(ModelTransientError) as caught:
        await models(server).complete(ask())
    assert caught.value.retry_after is None  # "inf" was a wait that never ended: the retry policy's backoff instead


async def test_an_error_body_nested_too_deep_is_still_classified(servers: Servers, models: Models) -> None:
    server = servers()
    server.force(Canned(status=503, body="[" * 100_000 + "]" * 100_000), Canned(status=400, body="{" * 100_000))
    model = models(server)
    with pytest.raises(ModelTransientError, match=r"HTTP 503"):
        await model.complete(ask())
    with pytest.raises(ModelPermanentError, match=r"HTTP 400"):
        await model.complete(ask())
