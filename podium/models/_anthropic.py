"""``AnthropicModel``: Claude through the official ``anthropic`` SDK (``pip install 'podium[anthropic]'``).

The SDK does the wire format and the streaming; this module maps podium's plain values onto the Messages API and
back, and the SDK's errors onto :class:`ModelTransientError` / :class:`ModelPermanentError`. The SDK's own retries
are off (``max_retries=0``): trying again is podium's decision, made with the journal in view.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from podium.errors import ConfigError, ModelError, ModelPermanentError, ModelTransientError
from podium.models._openai import json_ready, retry_after
from podium.models._prices import cost
from podium.models._types import Message, ModelRequest, ModelResponse, ToolCall, Usage

if TYPE_CHECKING:
    import anthropic
    from anthropic.resources.messages import AsyncMessages
    from anthropic.types import Message as WireMessage

__all__ = ["AnthropicModel"]

#: the Messages API's stop reasons in the words the OpenAI format (and so the rest of podium) uses
_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "tool_use": "tool_calls", "max_tokens": "length"}

#: error types the API reports inside a stream (HTTP 200 by then) that are worth trying again
_TRANSIENT_TYPES = frozenset({"overloaded_error", "api_error", "rate_limit_error", "timeout_error"})
_TRANSIENT_STATUS = frozenset({408, 409, 425, 429})


class AnthropicModel:
    """Claude, through the Messages API.

    A request with an ``output_schema`` gets both ways of asking for JSON: the schema is added to the system prompt
    (which every model follows well), and, when the SDK knows ``output_config`` and ``structured_output`` is on,
    decoding is constrained to it with ``output_config={"format": {"type": "json_schema", ...}}``. Models before
    the structured-output generation refuse that with a 400; pass ``structured_output=False`` for them.

    Stop reasons are reported as podium's (OpenAI's) finish reasons: ``end_turn`` and ``stop_sequence`` as
    ``stop``, ``tool_use`` as ``tool_calls``, ``max_tokens`` as ``length``; any other as it is. Input tokens count
    the prompt cache's reads and writes too, like OpenAI's ``prompt_tokens``.

    Args:
        model: the model's id, e.g. ``claude-sonnet-4-5``.
        api_key: the key; when None the SDK looks in its usual places (``ANTHROPIC_API_KEY``, profiles...).
        base_url: another API root (a gateway, a test server).
        max_tokens: the longest answer when a request does not say; the API requires a bound.
        timeout: seconds to wait to connect, and for each read of the answer.
        name: how podium refers to the model; defaults to ``"anthropic:{model}"``, the key of :data:`PRICES`.
        structured_output: constrain decoding to the output schema, where the SDK supports it.

    Raises:
        ConfigError: the ``anthropic`` package is not installed, or a value is out of range.
    """

    def __init__(
        self,
        *,
        model: str,
        api_key: str | None = None,
        base_url: str | None = None,
        max_tokens: int = 4096,
        timeout: float = 120.0,
        name: str | None = None,
        structured_output: bool = True,
    ) -> None:
        try:
            from anthropic.resources.messages import AsyncMessages
        except ImportError as exc:
            raise ConfigError(
                f"model anthropic:{model} needs the Anthropic SDK: pip install 'podium[anthropic]'"
            ) from exc
        if max_tokens < 1:
            raise ConfigError(f"max_tokens must be at least 1, got {max_tokens!r}")
        if timeout <= 0:
            raise ConfigError(f"timeout must be positive seconds, got {timeout!r}")
        self.name = name or f"anthropic:{model}"
        self.model = model
        self.base_url = base_url
        self.max_tokens = max_tokens
        self.timeout = timeout
        # older SDKs have no output_config; the instruction in the system prompt then does the work alone
        self.structured_output = (
            structured_output and "output_config" in inspect.signature(AsyncMessages.create).parameters
        )
        self._api_key = api_key
        self._client: anthropic.AsyncAnthropic | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"AnthropicModel(name={self.name!r})"

    async def __aenter__(self) -> AnthropicModel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections this model holds; the next call opens new ones."""
        client, loop = self._client, self._loop
        self._client = self._loop = None
        if client is not None and loop is asyncio.get_running_loop():  # another loop's connections died with it
            await client.close()

    async def complete(self, request: ModelRequest) -> ModelResponse:
        """Send the request; stream it when ``request.on_token`` is set.

        Raises:
            ModelTransientError: a timeout, a dropped connection, 408/409/425/429/5xx/529 (overloaded), or an
                answer the SDK cannot read.
            ModelPermanentError: any other refusal, or no credentials.
        """
        import anthropic

        params = self._params(request)
        try:
            if request.on_token is None:
                message = await self._messages().create(**params)
            else:
                message = await self._stream(params, request.on_token)
        except anthropic.APIStatusError as exc:
            raise self._status_error(exc) from exc
        except anthropic.APITimeoutError as exc:
            raise ModelTransientError(f"no answer within {self.timeout:g} s", model=self.name) from exc
        except anthropic.APIConnectionError as exc:
            raise ModelTransientError(self._redact(f"connection failed: {exc}"), model=self.name) from exc
        except anthropic.APIResponseValidationError as exc:
            raise ModelTransientError(self._redact(f"malformed response: {exc}"), model=self.name) from exc
        except anthropic.CredentialsError as exc:  # a profile or credentials file it was told to use is broken
            raise ModelPermanentError(self._redact(f"credentials: {exc}"), model=self.name) from exc
        except TypeError as exc:
            if "authentication" not in str(exc):
                raise
            # the SDK found no key, token or profile anywhere, and says so with a TypeError
            raise ModelPermanentError(
                "no Anthropic credentials: set ANTHROPIC_API_KEY or pass api_key=", model=self.name
            ) from exc
        try:
            return self._response(message)
        except (AttributeError, TypeError, ValueError) as exc:  # a 2xx body that is not a message
            raise ModelTransientError(self._redact(f"malformed response: {message!r:.200}"), model=self.name) from exc

    async def _stream(self, params: dict[str, Any], on_token: Callable[[str], None]) -> WireMessage:
        started = False
        async with self._messages().stream(**params) as stream:
            events = aiter(stream)
            while True:
                try:
                    event = await anext(events)
                except StopAsyncIteration:
                    break
                except ValueError as exc:  # the SDK could not read the stream (a tool's input that is not JSON)
                    raise ModelTransientError(self._redact(f"malformed stream: {exc}"), model=self.name) from exc
                started = started or event.type == "message_start"
                if event.type == "text" and event.text:
                    on_token(event.text)
            final = await stream.get_final_message() if started else None
        if final is None or final.stop_reason is None:  # the SDK hands back whatever had arrived; podium will not
            raise ModelTransientError("the stream ended before the answer did", model=self.name)
        return final

    # -- building and reading --------------------------------------------------------------------------------

    def _messages(self) -> AsyncMessages:
        import anthropic

        loop = asyncio.get_running_loop()  # connections belong to the loop that opened them (see OpenAICompatible)
        if self._client is None or self._loop is not loop:
            self._client = anthropic.AsyncAnthropic(
                api_key=self._api_key, base_url=self.base_url, timeout=self.timeout, max_retries=0
            )
            self._loop = loop
        return self._client.messages

    def _params(self, request: ModelRequest) -> dict[str, Any]:
        system = [m.content for m in request.messages if m.role == "system" and m.content]
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens or self.max_tokens,
            "messages": _wire_messages(request.messages),
        }
        if request.output_schema is not None:
            schema = json_ready(request.output_schema)
            system.append(
                "Answer with only a JSON value that matches this JSON Schema: no prose, no code fences.\n"
                + json.dumps(schema, ensure_ascii=False)
            )
            if self.structured_output and (strict := _strict_schema(schema)) is not None:
                params["output_config"] = {"format": {"type": "json_schema", "schema": strict}}
        if system:
            params["system"] = "\n\n".join(system)
        if request.tools:
            params["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": json_ready(t.parameters)}
                for t in request.tools
            ]
        if request.temperature is not None:
            # SDK 1.0 took the sampling parameters out of its signatures; the API still takes them (though the
            # newest models refuse them with a 400), so they go in the body as they are
            params["extra_body"] = {"temperature": request.temperature}
        return params

    def _response(self, message: WireMessage) -> ModelResponse:
        texts = [block.text for block in message.content if block.type == "text"]
        calls = tuple(
            ToolCall(id=block.id, name=block.name, arguments=dict(block.input) if isinstance(block.input, dict) else {})
            for block in message.content
            if block.type == "tool_use"
        )
        usage = message.usage
        input_tokens = (
            usage.input_tokens + (usage.cache_creation_input_tokens or 0) + (usage.cache_read_input_tokens or 0)
        )
        reason = message.stop_reason or ("tool_use" if calls else "end_turn")
        return ModelResponse(
            message=Message(role="assistant", content="".join(texts), tool_calls=calls),
            usage=Usage(
                input_tokens=input_tokens,
                output_tokens=usage.output_tokens,
                cost_usd=cost(self.name, input_tokens, usage.output_tokens),
            ),
            model=self.name,
            finish_reason=_FINISH.get(reason, reason),
        )

    def _status_error(self, exc: anthropic.APIStatusError) -> ModelError:
        # an error event inside a stream arrives after a 200: its status says nothing, its error type does
        status = exc.status_code if exc.status_code >= 400 else None
        message = self._redact(exc.api_message or exc.message)
        if exc.type in _TRANSIENT_TYPES or (status is not None and (status in _TRANSIENT_STATUS or status >= 500)):
            after = retry_after(exc.response.headers)
            return ModelTransientError(message, model=self.name, status=status, retry_after=after)
        return ModelPermanentError(message, model=self.name, status=status)

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text


def _wire_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """podium's conversation as the Messages API wants it: user and assistant turns of content blocks.

    System messages go to ``system=``; tool results become ``tool_result`` blocks of a user turn; consecutive
    turns of one role are merged, since every result of one assistant turn must come in the single next user turn.
    """
    wire: list[dict[str, Any]] = []
    for message in messages:
        blocks = _blocks(message)
        if not blocks:
            continue
        role = "assistant" if message.role == "assistant" else "user"
        if wire and wire[-1]["role"] == role:
            wire[-1]["content"].extend(blocks)
        else:
            wire.append({"role": role, "content": blocks})
    for turn in wire:  # tool results must lead their user turn
        turn["content"].sort(key=lambda block: block["type"] != "tool_result")
    return wire


def _blocks(message: Message) -> list[dict[str, Any]]:
    if message.role == "system":
        return []
    if message.role == "tool":
        return [{"type": "tool_result", "tool_use_id": message.tool_call_id or "", "content": message.content}]
    blocks: list[dict[str, Any]] = []
    if message.content:  # the API refuses empty text blocks
        blocks.append({"type": "text", "text": message.content})
    for call in message.tool_calls:
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": json_ready(call.arguments)})
    return blocks


def _strict_schema(schema: dict[str, Any]) -> dict[str, Any] | None:
    """The schema in the subset the structured-output decoder takes (the SDK's own transform), or None if it
    cannot be expressed there; the system prompt still asks for it."""
    from anthropic import transform_schema

    try:
        return transform_schema(schema)
    except (ValueError, TypeError, KeyError):
        return None
