"""OpenAICompatible against a real HTTP server on loopback, speaking the chat-completions wire format."""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from typing import Any

import pytest

from podium.errors import ConfigError, ModelPermanentError, ModelTransientError
from podium.models import PRICES, Message, ModelRequest, Price, ToolCall, ToolSpec, resolve_model
from podium.models._openai import INVALID_ARGUMENTS_KEY, OpenAICompatible, retry_after
from tests.models._wire import Reply, WireServer, free_port, sse

KEY = "sk-test-0123456789"
SEARCH = ToolSpec(
    name="search",
    description="Search the notes.",
    parameters={"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
)
CLOCK = ToolSpec(name="clock", description="The time.", parameters={"type": "object", "properties": {}})


def ask(text: str = "hi", **fields: Any) -> ModelRequest:
    return ModelRequest(messages=[Message(role="user", content=text)], **fields)


def completion(message: dict[str, Any], *, finish: str = "stop", usage: dict[str, int] | None = None) -> Any:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
        "usage": usage or {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return sse({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [choice]})


def model_for(server: WireServer, **options: Any) -> OpenAICompatible:
    return OpenAICompatible(base_url=f"{server.url}/v1", model="m", **options)


# -- answers -----------------------------------------------------------------------------------------------------


async def test_plain_text_answer_with_usage_and_cost(server: WireServer, monkeypatch: pytest.MonkeyPatch) -> None:
    server.reply(Reply(body=completion({"content": "Tides are driven by the moon."})))
    model = model_for(server, api_key=KEY, name="wire-test")
    monkeypatch.setitem(PRICES, "wire-test", Price(1.0, 2.0))
    request = ModelRequest(
        messages=[Message(role="system", content="Be brief."), Message(role="user", content="Why tides?")],
        temperature=0.2,
        max_tokens=50,
    )
    async with model:
        response = await model.complete(request)

    assert response.message == Message(role="assistant", content="Tides are driven by the moon.")
    assert (response.usage.input_tokens, response.usage.output_tokens) == (10, 5)
    assert response.usage.cost_usd == pytest.approx((10 * 1.0 + 5 * 2.0) / 1_000_000)
    assert (response.model, response.finish_reason) == ("wire-test", "stop")
    [sent] = server.requests
    assert (sent.method, sent.path) == ("POST", "/v1/chat/completions")
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["content-type"] == "application/json"
    assert sent.json() == {
        "model": "m",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why tides?"}],
        "temperature": 0.2,
        "max_tokens": 50,
    }


async def test_name_defaults_to_base_url_and_model_and_no_key_sends_no_authorization(server: WireServer) -> None:
    server.reply(Reply(body=completion({"content": "ok"})))
    async with model_for(server) as model:
        response = await model.complete(ask())
    assert model.name == response.model == f"{server.url}/v1#m"
    assert response.usage.cost_usd == 0.0
    assert "authorization" not in server.requests[0].headers


async def test_extra_headers_are_sent(server: WireServer) -> None:
    server.reply(Reply(body=completion({"content": "ok"})))
    async with model_for(server, headers={"OpenAI-Organization": "org-1"}) as model:
        await model.complete(ask())
    assert server.requests[0].headers["openai-organization"] == "org-1"


async def test_output_schema_asks_for_a_json_schema_response_format(server: WireServer) -> None:
    schema = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}
    server.reply(Reply(body=completion({"content": '{"title": "Tides"}'})))
    async with model_for(server) as model:
        response = await model.complete(ask(output_schema=schema))
    assert json.loads(response.message.content) == {"title": "Tides"}
    assert server.requests[0].json()["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema, "strict": False},
    }


# -- tools -------------------------------------------------------------------------------------------------------


async def test_tool_calls_are_parsed_and_the_follow_up_is_serialized_as_openai_expects(server: WireServer) -> None:
    calls = [
        {"id": "call_a", "type": "function", "function": {"name": "search", "arguments": '{"query": "tides"}'}},
        {"id": "call_b", "type": "function", "function": {"name": "clock", "arguments": "{}"}},
    ]
    server.reply(
        Reply(body=completion({"content": None, "tool_calls": calls}, finish="tool_calls")),
        Reply(body=completion({"content": "It is noon; tides are lunar."})),
    )
    first = ModelRequest(messages=[Message(role="user", content="Tides, and the time?")], tools=[SEARCH, CLOCK])
    async with model_for(server) as model:
        response = await model.complete(first)
        assert response.finish_reason == "tool_calls"
        assert response.message == Message(
            role="assistant",
            tool_calls=(
                ToolCall(id="call_a", name="search", arguments={"query": "tides"}),
                ToolCall(id="call_b", name="clock", arguments={}),
            ),
        )
        results = [
            Message(role="tool", tool_call_id="call_a", name="search", content="the moon"),
            Message(role="tool", tool_call_id="call_b", name="clock", content="12:00"),
        ]
        follow_up = ModelRequest(messages=[*first.messages, response.message, *results], tools=first.tools)
        final = await model.complete(follow_up)

    assert final.message.content == "It is noon; tides are lunar."
    sent = server.requests[1].json()
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {"name": "search", "description": "Search the notes.", "parameters": SEARCH.parameters},
        },
        {"type": "function", "function": {"name": "clock", "description": "The time.", "parameters": CLOCK.parameters}},
    ]
    assert sent["messages"] == [
        {"role": "user", "content": "Tides, and the time?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "search", "arguments": '{"query": "tides"}'}},
                {"id": "call_b", "type": "function", "function": {"name": "clock", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "the moon"},
        {"role": "tool", "tool_call_id": "call_b", "content": "12:00"},
    ]


async def test_tool_arguments_that_are_not_a_json_object_keep_the_raw_text(server: WireServer) -> None:
    calls = [
        {"id": "c1", "type": "function", "function": {"name": "search", "arguments": '{"query": "tid'}},
        {"id": "c2", "type": "function", "function": {"name": "search", "arguments": '["tides"]'}},
        {"id": "c3", "type": "function", "function": {"name": "clock", "arguments": ""}},
    ]
    server.reply(Reply(body=completion({"tool_calls": calls}, finish="tool_calls")), Reply(body=completion({})))
    async with model_for(server) as model:
        response = await model.complete(ask(tools=[SEARCH, CLOCK]))
        assert [c.arguments for c in response.message.tool_calls] == [
            {INVALID_ARGUMENTS_KEY: '{"query": "tid'},
            {INVALID_ARGUMENTS_KEY: '["tides"]'},
            {},  # no arguments at all is a call of a tool without parameters
        ]
        await model.complete(ModelRequest(messages=[Message(role="user", content="hi"), response.message]))
    # sent back, the malformed call carries the model's own text, not a JSON encoding of podium's marker
    wire_calls = server.requests[1].json()["messages"][1]["tool_calls"]
    assert [c["function"]["arguments"] for c in wire_calls] == ['{"query": "tid', '["tides"]', "{}"]


# -- streaming ---------------------------------------------------------------------------------------------------


async def test_streaming_reassembles_text_and_tool_call_fragments(server: WireServer) -> None:
    def call(index: int, **function: str) -> dict[str, Any]:
        head = {"id": f"call_{'ab'[index]}", "type": "function"} if "name" in function else {}
        return {"tool_calls": [{"index": index, **head, "function": function}]}

    events = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Let me "}),
        chunk({"content": "look."}),
        chunk(call(0, name="search", arguments="")),
        chunk(call(0, arguments='{"qu')),
        chunk(call(1, name="clock", arguments="{")),
        chunk(call(0, arguments='ery": "ti')),
        chunk(call(1, arguments="}")),
        chunk(call(0, arguments='des"}')),
        chunk({}, finish="tool_calls"),
        sse(
            {
                "id": "c",
                "object": "chat.completion.chunk",
                "choices": [],
                "usage": {"prompt_tokens": 21, "completion_tokens": 9},
            }
        ),
        "data: [DONE]\n\n",
    ]
    server.reply(Reply(events=events))
    tokens: list[str] = []
    async with model_for(server) as model:
        response = await model.complete(ask(tools=[SEARCH, CLOCK], on_token=tokens.append))

    assert tokens == ["Let me ", "look."]
    assert response.message.content == "Let me look."
    assert response.message.tool_calls == (
        ToolCall(id="call_a", name="search", arguments={"query": "tides"}),
        ToolCall(id="call_b", name="clock", arguments={}),
    )
    assert (response.usage.input_tokens, response.usage.output_tokens) == (21, 9)
    assert response.finish_reason == "tool_calls"
    sent = server.requests[0].json()
    assert (sent["stream"], sent["stream_options"]) == (True, {"include_usage": True})


async def test_a_stream_that_ends_before_the_answer_is_transient(server: WireServer) -> None:
    server.reply(Reply(events=[chunk({"content": "Half an ans"})]))
    tokens: list[str] = []
    async with model_for(server) as model:
        with pytest.raises(ModelTransientError, match="ended before"):
            await model.complete(ask(on_token=tokens.append))
    assert tokens == ["Half an ans"]


async def test_an_error_inside_a_stream_is_transient_with_its_message(server: WireServer) -> None:
    server.reply(Reply(events=[chunk({"content": "x"}), sse({"error": {"message": "upstream overloaded"}})]))
    async with model_for(server) as model:
        with pytest.raises(ModelTransientError, match="upstream overloaded"):
            await model.complete(ask(on_token=lambda _: None))


async def test_a_streamed_request_refused_with_a_status_is_classified(server: WireServer) -> None:
    server.reply(Reply(status=400, body={"error": {"message": "bad tools"}}))
    async with model_for(server) as model:
        with pytest.raises(ModelPermanentError, match="bad tools") as caught:
            await model.complete(ask(on_token=lambda _: None))
    assert caught.value.status == 400


# -- errors ------------------------------------------------------------------------------------------------------


async def test_429_is_transient_with_retry_after(server: WireServer) -> None:
    server.reply(Reply(status=429, headers={"Retry-After": "7"}, body={"error": {"message": "slow down"}}))
    async with model_for(server) as model:
        with pytest.raises(ModelTransientError, match="slow down") as caught:
            await model.complete(ask())
    assert (caught.value.status, caught.value.retry_after, caught.value.transient) == (429, 7.0, True)


async def test_503_is_transient(server: WireServer) -> None:
    server.reply(Reply(status=503, body="upstream unavailable"))
    async with model_for(server) as model:
        with pytest.raises(ModelTransientError, match="upstream unavailable") as caught:
            await model.complete(ask())
    assert (caught.value.status, caught.value.retry_after) == (503, None)


async def test_400_is_permanent_with_the_servers_message(server: WireServer) -> None:
    server.reply(Reply(status=400, body={"error": {"message": "context too long", "type": "invalid_request_error"}}))
    async with model_for(server) as model:
        with pytest.raises(ModelPermanentError) as caught:
            await model.complete(ask())
    assert caught.value.status == 400
    assert not caught.value.transient
    assert "context too long" in str(caught.value)


async def test_401_is_permanent_and_never_shows_the_key(server: WireServer) -> None:
    # a server that echoes the key back in its message must not get it into podium's error
    server.reply(Reply(status=401, body={"error": {"message": f"Incorrect API key provided: {KEY}."}}))
    async with model_for(server, api_key=KEY) as model:
        with pytest.raises(ModelPermanentError, match="Incorrect API key") as caught:
            await model.complete(ask())
    assert caught.value.status == 401
    assert KEY not in str(caught.value)
    assert KEY not in repr(caught.value.args)
    assert KEY not in repr(model)


async def test_connection_refused_is_transient() -> None:
    async with OpenAICompatible(base_url=f"http://127.0.0.1:{free_port()}/v1", model="m") as model:
        with pytest.raises(ModelTransientError, match="connection failed") as caught:
            await model.complete(ask())
    assert caught.value.status is None


async def test_a_server_that_never_answers_times_out_as_transient(server: WireServer) -> None:
    server.reply(Reply(hang=True))
    started = time.monotonic()
    async with model_for(server, timeout=0.2) as model:
        with pytest.raises(ModelTransientError, match=r"no answer within 0\.2 s"):
            await model.complete(ask())
    assert time.monotonic() - started < 5  # did not hang


@pytest.mark.parametrize(
    "body",
    ["<html>502 Bad Gateway</html>", {"object": "list", "data": []}, {"choices": []}],
    ids=["not-json", "wrong-shape", "no-choices"],
)
async def test_a_2xx_body_that_is_not_a_completion_is_transient_malformed(server: WireServer, body: Any) -> None:
    server.reply(Reply(body=body))
    async with model_for(server) as model:
        with pytest.raises(ModelTransientError, match="malformed response") as caught:
            await model.complete(ask())
    text = body if isinstance(body, str) else json.dumps(body)
    assert text[:20] in str(caught.value)


async def test_cancelling_a_call_closes_its_connection(server: WireServer) -> None:
    server.reply(Reply(hang=True))
    async with model_for(server) as model:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(model.complete(ask()), 0.5)
        assert len(server.requests) == 1  # the request did reach the server before it was cancelled
        # while the model (and its connection pool) is still open: the cancellation itself hung up
        assert await asyncio.to_thread(server.disconnected.wait, 2)


async def test_cancelling_a_stream_midway_closes_its_connection(server: WireServer) -> None:
    server.reply(Reply(events=[chunk({"content": "Once upon"})], hang=True))
    tokens: list[str] = []
    async with model_for(server) as model:
        task = asyncio.create_task(model.complete(ask(on_token=tokens.append)))
        for _ in range(200):  # until the first token arrives (2 s at most)
            if tokens:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert tokens == ["Once upon"]
        assert await asyncio.to_thread(server.disconnected.wait, 2)  # before the model closes its connections


def test_retry_after_reads_seconds_milliseconds_and_http_dates() -> None:
    assert retry_after({"retry-after": "3"}) == 3.0
    assert retry_after({"retry-after-ms": "1500", "retry-after": "3"}) == 1.5
    assert retry_after({}) is None
    assert retry_after({"retry-after": "soon"}) is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 20 < (retry_after({"retry-after": later}) or 0) <= 30
    earlier = email.utils.formatdate(time.time() - 30, usegmt=True)
    assert retry_after({"retry-after": earlier}) == 0.0


def test_one_model_object_serves_calls_from_two_event_loops(server: WireServer) -> None:
    # run_sync makes an event loop per call; the model's connections must not outlive the loop that opened them
    server.reply(Reply(body=completion({"content": "one"})), Reply(body=completion({"content": "two"})))
    model = model_for(server)
    first = asyncio.run(model.complete(ask()))
    second = asyncio.run(model.complete(ask()))
    assert (first.message.content, second.message.content) == ("one", "two")


def test_a_base_url_that_is_not_http_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="http"):
        OpenAICompatible(base_url="127.0.0.1:8080/v1", model="m")


# -- resolve_model -----------------------------------------------------------------------------------------------


async def test_resolve_a_base_url_spec(server: WireServer) -> None:
    server.reply(Reply(body=completion({"content": "ok"})))
    model = resolve_model(f"{server.url}/v1#tiny")
    assert isinstance(model, OpenAICompatible)
    assert (model.name, model.base_url, model.model) == (f"{server.url}/v1#tiny", f"{server.url}/v1", "tiny")
    async with model:
        await model.complete(ask())
    assert server.requests[0].path == "/v1/chat/completions"
    assert server.requests[0].json()["model"] == "tiny"


async def test_resolve_openai_uses_the_environment(server: WireServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server.reply(Reply(body=completion({"content": "ok"})))
    model = resolve_model("openai:x")
    assert isinstance(model, OpenAICompatible)
    assert (model.name, model.base_url, model.model) == ("openai:x", f"{server.url}/v1", "x")
    async with model:
        await model.complete(ask())
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_resolve_openai_defaults_to_the_openai_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    model = resolve_model("openai:gpt-4.1-mini")
    assert isinstance(model, OpenAICompatible)
    assert (model.name, model.base_url, model.model) == (
        "openai:gpt-4.1-mini",
        "https://api.openai.com/v1",
        "gpt-4.1-mini",
    )
    ollama = resolve_model("ollama:llama3.2")
    assert isinstance(ollama, OpenAICompatible)
    assert (ollama.name, ollama.base_url) == ("ollama:llama3.2", "http://127.0.0.1:11434/v1")


async def test_a_server_that_refuses_the_json_schema_form_gets_json_object_with_the_schema(server: WireServer) -> None:
    refusal = {
        "detail": [{"loc": ["body", "response_format", "type"], "msg": "Input should be 'text' or 'json_object'"}]
    }
    server.reply(
        Reply(status=500, body={"error": {"message": json.dumps(refusal)}}),
        Reply(body=completion({"content": '{"name": "Rex"}'})),
        Reply(body=completion({"content": '{"name": "Tom"}'})),
    )
    model = model_for(server)
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    assert (await model.complete(ask(output_schema=schema))).message.content == '{"name": "Rex"}'
    assert (await model.complete(ask(output_schema=schema))).message.content == '{"name": "Tom"}'
    forms = [r.json()["response_format"] for r in server.requests]
    assert forms[0]["type"] == "json_schema"
    assert forms[1:] == [{"type": "json_object", "schema": schema}] * 2  # switched once, for good


async def test_other_500s_are_not_mistaken_for_a_refused_form(server: WireServer) -> None:
    server.reply(Reply(status=500, body={"error": {"message": "out of memory"}}))
    schema = {"type": "object", "properties": {}}
    with pytest.raises(ModelTransientError, match="out of memory"):
        await model_for(server).complete(ask(output_schema=schema))
    assert len(server.requests) == 1
