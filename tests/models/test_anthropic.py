"""AnthropicModel through the real SDK against an HTTP server on loopback speaking the Messages API."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from podium.errors import ConfigError, ModelPermanentError, ModelTransientError
from podium.models import PRICES, Message, ModelRequest, Price, ToolCall, ToolSpec, resolve_model
from podium.models._anthropic import AnthropicModel
from tests.models._wire import Reply, WireServer, free_port, sse

KEY = "sk-ant-test-0123456789"
SEARCH = ToolSpec(
    name="search",
    description="Search the notes.",
    parameters={"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
)


def ask(text: str = "hi", **fields: Any) -> ModelRequest:
    return ModelRequest(messages=[Message(role="user", content=text)], **fields)


def message(*content: dict[str, Any], stop: str = "end_turn", usage: tuple[int, int] = (12, 6)) -> Any:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": list(content),
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": usage[0], "output_tokens": usage[1]},
    }


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def tool_use(id: str, name: str, input: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": id, "name": name, "input": input}


def error(kind: str, text: str) -> Any:
    return {"type": "error", "error": {"type": kind, "message": text}}


def model_for(server: WireServer, **options: Any) -> AnthropicModel:
    return AnthropicModel(model="claude-test", api_key=KEY, base_url=server.url, **options)


# -- answers -----------------------------------------------------------------------------------------------------


async def test_text_answer_with_usage_and_cost(server: WireServer, monkeypatch: pytest.MonkeyPatch) -> None:
    server.reply(Reply(body=message(text("Tides follow "), text("the moon."))))
    monkeypatch.setitem(PRICES, "anthropic:claude-test", Price(3.0, 15.0))
    request = ModelRequest(
        messages=[
            Message(role="system", content="Be brief."),
            Message(role="user", content="Why tides?"),
        ],
        temperature=0.3,
    )
    async with model_for(server) as model:
        response = await model.complete(request)

    assert response.message == Message(role="assistant", content="Tides follow the moon.")
    assert (response.usage.input_tokens, response.usage.output_tokens) == (12, 6)
    assert response.usage.cost_usd == pytest.approx((12 * 3.0 + 6 * 15.0) / 1_000_000)
    assert (response.model, response.finish_reason) == ("anthropic:claude-test", "stop")
    [sent] = server.requests
    assert (sent.method, sent.path) == ("POST", "/v1/messages")
    assert sent.headers["authorization"] == f"Bearer {KEY}"  # SDK 2.x sends the key as a bearer token, not x-api-key
    assert "anthropic-version" in sent.headers
    assert sent.json() == {
        "model": "claude-test",
        "max_tokens": 4096,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Why tides?"}]}],
        "temperature": 0.3,  # not in the SDK's signature since 1.0; podium sends it in the body
    }


async def test_a_request_max_tokens_wins_over_the_models(server: WireServer) -> None:
    server.reply(Reply(body=message(text("ok"), stop="max_tokens")))
    async with model_for(server, max_tokens=100) as model:
        response = await model.complete(ask(max_tokens=7))
    assert server.requests[0].json()["max_tokens"] == 7
    assert response.finish_reason == "length"


async def test_tool_use_round_trip(server: WireServer) -> None:
    server.reply(
        Reply(
            body=message(
                text("Let me look."),
                tool_use("toolu_1", "search", {"query": "tides"}),
                tool_use("toolu_2", "search", {"query": "moon"}),
                stop="tool_use",
            )
        ),
        Reply(body=message(text("The moon pulls the sea."))),
    )
    first = ModelRequest(
        messages=[Message(role="system", content="Use tools."), Message(role="user", content="Tides?")],
        tools=[SEARCH],
    )
    async with model_for(server) as model:
        response = await model.complete(first)
        assert response.finish_reason == "tool_calls"
        assert response.message == Message(
            role="assistant",
            content="Let me look.",
            tool_calls=(
                ToolCall(id="toolu_1", name="search", arguments={"query": "tides"}),
                ToolCall(id="toolu_2", name="search", arguments={"query": "moon"}),
            ),
        )
        results = [
            Message(role="tool", tool_call_id="toolu_1", name="search", content="lunar gravity"),
            Message(role="tool", tool_call_id="toolu_2", name="search", content="a satellite"),
        ]
        final = await model.complete(
            ModelRequest(messages=[*first.messages, response.message, *results], tools=[SEARCH])
        )

    assert final.message.content == "The moon pulls the sea."
    sent = server.requests[1].json()
    assert sent["tools"] == [{"name": "search", "description": "Search the notes.", "input_schema": SEARCH.parameters}]
    assert sent["system"] == "Use tools."
    assert sent["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Tides?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_1", "name": "search", "input": {"query": "tides"}},
                {"type": "tool_use", "id": "toolu_2", "name": "search", "input": {"query": "moon"}},
            ],
        },
        {
            "role": "user",  # both results in the one user turn after the calls
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "lunar gravity"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "a satellite"},
            ],
        },
    ]


async def test_tool_results_lead_the_user_turn_they_share_with_text(server: WireServer) -> None:
    server.reply(Reply(body=message(text("ok"))))
    call = ToolCall(id="toolu_1", name="search", arguments={"query": "tides"})
    conversation = [
        Message(role="user", content="Tides?"),
        Message(role="assistant", tool_calls=(call,)),
        Message(role="user", content="Be brief."),  # a nudge the agent added before the result
        Message(role="tool", tool_call_id="toolu_1", content="lunar gravity"),
    ]
    async with model_for(server) as model:
        await model.complete(ModelRequest(messages=conversation))
    assert server.requests[0].json()["messages"][1:] == [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "search",
                                           "input": {"query": "tides"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "lunar gravity"},
                                     {"type": "text", "text": "Be brief."}]},
    ]  # fmt: skip


async def test_output_schema_is_in_the_system_prompt_and_the_output_config(server: WireServer) -> None:
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string", "maxLength": 40}},
        "required": ["title"],
    }
    server.reply(Reply(body=message(text('{"title": "Tides"}'))), Reply(body=message(text('{"title": "Tides"}'))))
    async with model_for(server) as model:
        await model.complete(ask(output_schema=schema))
    sent = server.requests[0].json()
    assert sent["system"].startswith("Answer with only a JSON value that matches this JSON Schema")
    assert '"maxLength": 40' in sent["system"]  # the whole schema, as the user wrote it
    # the structured-output decoder's subset: closed objects, unsupported keywords moved to the description
    assert sent["output_config"] == {
        "format": {
            "type": "json_schema",
            "schema": {
                "type": "object",
                "properties": {"title": {"type": "string", "description": "{maxLength: 40}"}},
                "additionalProperties": False,
                "required": ["title"],
            },
        }
    }

    async with model_for(server, structured_output=False) as plain:
        await plain.complete(ask(output_schema=schema))
    sent = server.requests[1].json()
    assert "output_config" not in sent
    assert "JSON Schema" in sent["system"]


# -- streaming ---------------------------------------------------------------------------------------------------


def stream_events() -> list[str]:
    start = message(usage=(25, 1)) | {"stop_reason": None}
    return [
        sse({"type": "message_start", "message": start}, "message_start"),
        sse({"type": "content_block_start", "index": 0, "content_block": text("")}, "content_block_start"),
        sse({"type": "ping"}, "ping"),
        sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Looking "}},
            "content_block_delta"),
        sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "it up."}},
            "content_block_delta"),
        sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        sse({"type": "content_block_start", "index": 1, "content_block": tool_use("toolu_9", "search", {})},
            "content_block_start"),
        sse({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}},
            "content_block_delta"),
        sse({"type": "content_block_delta", "index": 1,
             "delta": {"type": "input_json_delta", "partial_json": '{"query": "ti'}}, "content_block_delta"),
        sse({"type": "content_block_delta", "index": 1,
             "delta": {"type": "input_json_delta", "partial_json": 'des"}'}}, "content_block_delta"),
        sse({"type": "content_block_stop", "index": 1}, "content_block_stop"),
        sse({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
             "usage": {"output_tokens": 17}}, "message_delta"),
        sse({"type": "message_stop"}, "message_stop"),
    ]  # fmt: skip


async def test_streaming_calls_on_token_and_reassembles_tool_input(server: WireServer) -> None:
    server.reply(Reply(events=stream_events()))
    tokens: list[str] = []
    async with model_for(server) as model:
        response = await model.complete(ask(tools=[SEARCH], on_token=tokens.append))

    assert tokens == ["Looking ", "it up."]
    assert response.message == Message(
        role="assistant",
        content="Looking it up.",
        tool_calls=(ToolCall(id="toolu_9", name="search", arguments={"query": "tides"}),),
    )
    assert (response.usage.input_tokens, response.usage.output_tokens) == (25, 17)
    assert response.finish_reason == "tool_calls"
    assert server.requests[0].json()["stream"] is True


async def test_an_overloaded_error_inside_a_stream_is_transient(server: WireServer) -> None:
    events = [*stream_events()[:4], sse(error("overloaded_error", "Overloaded"), "error")]
    server.reply(Reply(events=events))
    tokens: list[str] = []
    async with model_for(server) as model:
        with pytest.raises(ModelTransientError, match="Overloaded") as caught:
            await model.complete(ask(on_token=tokens.append))
    assert tokens == ["Looking "]
    assert caught.value.status is None  # the stream's 200 is not the error's status


@pytest.mark.parametrize("cut", [0, 6], ids=["empty-stream", "no-message-delta"])
async def test_a_stream_that_ends_before_the_answer_is_transient(server: WireServer, cut: int) -> None:
    server.reply(Reply(events=stream_events()[:cut]))
    async with model_for(server) as model:
        with pytest.raises(ModelTransientError, match="ended before"):
            await model.complete(ask(on_token=lambda _: None))


# -- errors ------------------------------------------------------------------------------------------------------


async def test_429_is_transient_with_retry_after(server: WireServer) -> None:
    server.reply(Reply(status=429, headers={"retry-after": "12"}, body=error("rate_limit_error", "slow down")))
    async with model_for(server) as model:
        with pytest.raises(ModelTransientError, match="slow down") as caught:
            await model.complete(ask())
    assert (caught.value.status, caught.value.retry_after) == (429, 12.0)
    assert len(server.requests) == 1  # the SDK's own retries are off


async def test_529_overloaded_is_transient(server: WireServer) -> None:
    server.reply(Reply(status=529, body=error("overloaded_error", "Overloaded")))
    async with model_for(server) as model:
        with pytest.raises(ModelTransientError, match="Overloaded") as caught:
            await model.complete(ask())
    assert caught.value.status == 529
    assert len(server.requests) == 1


async def test_a_streamed_request_refused_with_529_is_transient(server: WireServer) -> None:
    server.reply(Reply(status=529, body=error("overloaded_error", "Overloaded")))
    async with model_for(server) as model:
        with pytest.raises(ModelTransientError, match="Overloaded"):
            await model.complete(ask(on_token=lambda _: None))


async def test_400_is_permanent_with_the_servers_message(server: WireServer) -> None:
    server.reply(Reply(status=400, body=error("invalid_request_error", "prompt is too long")))
    async with model_for(server) as model:
        with pytest.raises(ModelPermanentError, match="prompt is too long") as caught:
            await model.complete(ask())
    assert caught.value.status == 400


async def test_401_is_permanent_and_never_shows_the_key(server: WireServer) -> None:
    server.reply(Reply(status=401, body=error("authentication_error", f"invalid x-api-key {KEY}")))
    async with model_for(server) as model:
        with pytest.raises(ModelPermanentError, match="invalid x-api-key") as caught:
            await model.complete(ask())
    assert caught.value.status == 401
    assert KEY not in str(caught.value)


async def test_connection_refused_is_transient() -> None:
    async with AnthropicModel(model="m", api_key=KEY, base_url=f"http://127.0.0.1:{free_port()}") as model:
        with pytest.raises(ModelTransientError, match="connection failed"):
            await model.complete(ask())


async def test_a_server_that_never_answers_times_out_as_transient(server: WireServer) -> None:
    server.reply(Reply(hang=True))
    async with model_for(server, timeout=0.2) as model:
        with pytest.raises(ModelTransientError, match=r"no answer within 0\.2 s"):
            await model.complete(ask())


@pytest.mark.parametrize(
    "body",
    ["<html>502 Bad Gateway</html>", {"object": "list"}, {"type": "message", "content": "nope"}],
    ids=["not-json", "wrong-shape", "content-not-blocks"],
)
async def test_a_2xx_body_that_is_not_a_message_is_transient_malformed(server: WireServer, body: Any) -> None:
    server.reply(Reply(body=body))
    async with model_for(server) as model:
        with pytest.raises(ModelTransientError, match="malformed response"):
            await model.complete(ask())


async def test_cancelling_a_call_closes_its_connection(server: WireServer) -> None:
    server.reply(Reply(hang=True))
    async with model_for(server) as model:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(model.complete(ask()), 0.5)
        assert len(server.requests) == 1
        assert await asyncio.to_thread(server.disconnected.wait, 2)  # before the model closes its connections


NO_CREDENTIALS = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_PROFILE",
    "ANTHROPIC_CONFIG_DIR",
    "ANTHROPIC_IDENTITY_TOKEN",
    "ANTHROPIC_IDENTITY_TOKEN_FILE",
    "ANTHROPIC_FEDERATION_RULE_ID",
)


@pytest.mark.parametrize(
    ("config_dir", "says"),
    [(False, "set ANTHROPIC_API_KEY or pass api_key="), (True, "Config file not found")],
    ids=["nothing-anywhere", "empty-config-dir"],
)
async def test_no_credentials_is_permanent(
    server: WireServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, config_dir: bool, says: str
) -> None:
    for name in NO_CREDENTIALS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.config/anthropic profile either
    if config_dir:  # a config folder the user named must hold a profile; the SDK says so with its own error
        monkeypatch.setenv("ANTHROPIC_CONFIG_DIR", str(tmp_path))
    async with AnthropicModel(model="m", base_url=server.url) as model:
        with pytest.raises(ModelPermanentError, match=re.escape(says)):
            await model.complete(ask())
    assert server.requests == []


def test_without_the_sdk_the_constructor_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "anthropic" or m.startswith("anthropic.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "anthropic", None)  # what `import anthropic` meets when it is not installed
    with pytest.raises(ConfigError, match=r"pip install 'podium\[anthropic\]'"):
        AnthropicModel(model="claude-test")


def test_resolve_anthropic() -> None:
    model = resolve_model("anthropic:claude-sonnet-4-5")
    assert isinstance(model, AnthropicModel)
    assert (model.name, model.model) == ("anthropic:claude-sonnet-4-5", "claude-sonnet-4-5")
