"""``OpenAICompatible``: any server that speaks OpenAI's chat-completions wire format, over plain httpx.

OpenAI itself, vLLM, llama.cpp's server, Ollama, LM Studio and most hosted gateways accept the same
``POST {base_url}/chat/completions``. The request is built from podium's plain values and the answer, streamed or
not, is cut down to them again (:mod:`podium.models._types`); no provider type escapes this module.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from podium.errors import ConfigError, ModelError, ModelPermanentError, ModelTransientError
from podium.models._prices import cost
from podium.models._types import INVALID_ARGUMENTS_KEY, Message, ModelRequest, ModelResponse, ToolCall, ToolSpec, Usage

__all__ = ["INVALID_ARGUMENTS_KEY", "OpenAICompatible"]

"""The only key of a :class:`ToolCall`'s ``arguments`` when the model's arguments were not a JSON object; its value
is the model's raw text, so the agent can tell the model its call was malformed and ask again."""

#: statuses worth trying again: timeouts, conflicts, too early, rate limits, and the server-side failures (5xx
#: other than these two, which say the server will never do this request).
_PERMANENT_5XX = frozenset({501, 505})
_TRANSIENT_4XX = frozenset({408, 409, 425, 429})

#: what reading an answer that is not the JSON podium expects raises: ``RecursionError`` is ``json``'s for JSON
#: nested deeper than its stack (``[[[[...``), which a hostile or broken server can send as easily as HTML.
_UNREADABLE = (ValueError, LookupError, TypeError, AttributeError, RecursionError)

#: what to do next, by status, appended to the server's own message.
_HINTS = {
    401: "the server refused the credentials; check the API key",
    403: "the key may not use this model or endpoint",
    404: "check the base URL (it usually ends in /v1) and the model name",
    429: "rate limited",
}


class OpenAICompatible:
    """A model behind an OpenAI-compatible chat-completions endpoint.

    Tool calls whose arguments are not a JSON object are kept, not dropped or raised: their ``arguments`` are
    ``{INVALID_ARGUMENTS_KEY: "<the model's raw text>"}``, so the agent loop can show the model its own malformed
    call and ask again; sent back in a later request, such a call carries the raw text unchanged.

    Args:
        base_url: the API root, e.g. ``https://api.openai.com/v1`` or ``http://127.0.0.1:8080/v1``.
        model: the model name the server knows.
        api_key: sent as ``Authorization: Bearer``; never logged or put in an error.
        name: how podium refers to the model (prices, journal, errors); defaults to ``"{base_url}#{model}"``.
        timeout: seconds an answer may take: a whole answer, or each event of a streamed one (so a long stream
            may run longer).
        headers: extra headers for every request (an organization id, a gateway's routing header...).
        transport: an httpx transport to use instead of the network (tests, proxies, retries at the socket level).

    Raises:
        ConfigError: the base URL is not http(s) or the timeout is not positive.
    """

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        name: str | None = None,
        timeout: float = 120.0,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base_url {base_url!r} must start with http:// or https://")
        if timeout <= 0:
            raise ConfigError(f"timeout must be positive seconds, got {timeout!r}")
        self.name = name or f"{base_url}#{model}"
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout = timeout
        self._api_key = api_key
        self._headers = dict(headers or {})
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._schema_form = "json_schema"  # OpenAI's; "json_object" (with a schema) once a server refuses it

    def __repr__(self) -> str:
        return f"OpenAICompatible(name={self.name!r})"

    async def __aenter__(self) -> OpenAICompatible:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections this model holds; the next call opens new ones."""
        client, loop = self._client, self._loop
        self._client = self._loop = None
        if client is not None and loop is asyncio.get_running_loop():  # another loop's connections died with it
            await client.aclose()

    async def complete(self, request: ModelRequest) -> ModelResponse:
        """Send the request; stream it when ``request.on_token`` is set.

        Raises:
            ModelTransientError: a timeout, a dropped or refused connection, 408/409/425/429/5xx, or an answer
                that is not the JSON podium expects.
            ModelPermanentError: any other refusal (400, 401, 403, 404, 422...).
        """
        try:
            try:
                return await self._ask(request)
            except ModelError as exc:
                if request.output_schema is None or self._schema_form != "json_schema" or not _refuses_form(exc):
                    raise
                # llama-cpp-python's server (and others) know only {"type": "json_object", "schema": ...}, and
                # refuse OpenAI's json_schema form, some with a 500: switch once, for this model object
                self._schema_form = "json_object"
                return await self._ask(request)
        except (httpx.TimeoutException, TimeoutError) as exc:
            message = f"no answer within {self.timeout:g} s ({type(exc).__name__})"
            raise ModelTransientError(message, model=self.name) from exc
        except (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError, httpx.DecodingError) as exc:
            raise ModelTransientError(self._redact(f"connection failed: {_describe(exc)}"), model=self.name) from exc
        except httpx.RequestError as exc:  # an unsupported scheme, a malformed request, too many redirects
            raise ModelPermanentError(self._redact(f"request failed: {_describe(exc)}"), model=self.name) from exc

    # -- the two ways of asking ----------------------------------------------------------------------------------

    async def _ask(self, request: ModelRequest) -> ModelResponse:
        body = self._body(request)
        if request.on_token is None:
            return await self._complete(body)
        return await self._stream(body, request.on_token)

    async def _complete(self, body: dict[str, Any]) -> ModelResponse:
        # httpx's timeout bounds each read, so a server that trickles a byte at a time would hold the call for ever
        async with asyncio.timeout(self.timeout):
            response = await self._http().post("/chat/completions", json=body)
        if not response.is_success:
            raise self._status_error(response.status_code, response.headers, response.text)
        text = response.text
        try:
            data = json.loads(text)
            choice = data["choices"][0]
            message = choice["message"]
            return self._response(
                content=_content(message.get("content")),
                raw_calls=message.get("tool_calls") or [],
                usage=data.get("usage"),
                finish_reason=choice.get("finish_reason"),
            )
        except _UNREADABLE as exc:
            raise self._malformed(text, response.status_code) from exc

    async def _stream(self, body: dict[str, Any], on_token: Callable[[str], None]) -> ModelResponse:
        stream = _Stream()
        loop = asyncio.get_running_loop()
        # each event must come within the timeout, not only each read: keep-alive comments or bytes trickled one at
        # a time would otherwise hold the call for ever
        async with (
            asyncio.timeout(self.timeout) as idle,
            self._http().stream("POST", "/chat/completions", json=body) as response,
        ):
            if not response.is_success:
                await response.aread()
                raise self._status_error(response.status_code, response.headers, response.text)
            async for data in _sse_data(response):
                idle.reschedule(loop.time() + self.timeout)
                if data.strip() == "[DONE]":
                    stream.done = True
                    break
                try:
                    chunk = json.loads(data)
                    if chunk.get("error"):  # a server that fails mid-answer says so in a chunk of its own
                        message = _server_message(json.dumps(chunk)) or data[:200]
                        raise ModelTransientError(self._redact(f"error in the stream: {message}"), model=self.name)
                    piece = stream.add(chunk)
                except _UNREADABLE as exc:
                    raise self._malformed(data, response.status_code) from exc
                if piece:
                    on_token(piece)
        if not stream.done and stream.finish_reason is None:
            raise ModelTransientError("the stream ended before the answer did", model=self.name)
        try:
            return self._response(
                content="".join(stream.text),
                raw_calls=stream.tool_calls(),
                usage=stream.usage,
                finish_reason=stream.finish_reason,
            )
        except _UNREADABLE as exc:
            raise self._malformed(json.dumps(stream.tool_calls()), response.status_code) from exc

    # -- building and reading --------------------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        # A client's connections belong to the event loop that opened them; `run_sync` makes a loop per call, so
        # a model object reused across loops gets a fresh client instead of one whose sockets are on a dead loop.
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop or self._client.is_closed:
            headers = {"Accept": "application/json", **self._headers}
            if self._api_key:
                headers["Authorization"] = f"Bearer {self._api_key}"
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                headers=headers,
                timeout=httpx.Timeout(self.timeout),
                transport=self._transport,
            )
            self._loop = loop
        return self._client

    def _body(self, request: ModelRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": [_wire_message(m) for m in request.messages]}
        if request.tools:
            body["tools"] = [_wire_tool(t) for t in request.tools]
        if request.output_schema is not None:
            schema = json_ready(request.output_schema)
            if self._schema_form == "json_schema":
                body["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "output", "schema": schema, "strict": False},
                }
            else:
                body["response_format"] = {"type": "json_object", "schema": schema}
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        if request.on_token is not None:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def _response(self, *, content: str, raw_calls: list[Any], usage: Any, finish_reason: Any) -> ModelResponse:
        calls = tuple(_tool_call(i, c) for i, c in enumerate(raw_calls))
        usage = usage or {}
        input_tokens = int(usage.get("prompt_tokens") or 0)
        output_tokens = int(usage.get("completion_tokens") or 0)
        return ModelResponse(
            message=Message(role="assistant", content=content, tool_calls=calls),
            usage=Usage(
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cost_usd=cost(self.name, input_tokens, output_tokens),
            ),
            model=self.name,
            finish_reason=str(finish_reason) if finish_reason else ("tool_calls" if calls else "stop"),
        )

    def _status_error(self, status: int, headers: httpx.Headers, text: str) -> ModelError:
        message = _server_message(text) or f"HTTP {status} with no message"
        if 300 <= status < 400:
            where = headers.get("location")
            message = f"redirected{f' to {where}' if where else ''}; use the final URL as base_url"
        elif hint := _HINTS.get(status):
            message = f"{message} ({hint})"
        message = self._redact(message)
        if status in _TRANSIENT_4XX or (status >= 500 and status not in _PERMANENT_5XX):
            return ModelTransientError(message, model=self.name, status=status, retry_after=retry_after(headers))
        return ModelPermanentError(message, model=self.name, status=status)

    def _malformed(self, text: str, status: int) -> ModelTransientError:
        return ModelTransientError(self._redact(f"malformed response: {text[:200]!r}"), model=self.name, status=status)

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text


# -- the wire format, both ways ----------------------------------------------------------------------------------


def _refuses_form(error: ModelError) -> bool:
    """Whether the server refused the json_schema response format (as opposed to anything else about the call)."""
    text = str(error)
    return error.status in (400, 422, 500) and "json_object" in text and "response_format" in text


def _wire_message(message: Message) -> dict[str, Any]:
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id or "", "content": message.content}
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.role == "assistant" and message.tool_calls:
        wire["content"] = message.content or None  # OpenAI's own form of "calls, no text"
        wire["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": _wire_arguments(c)}}
            for c in message.tool_calls
        ]
    return wire


def _wire_arguments(call: ToolCall) -> str:
    raw = call.arguments.get(INVALID_ARGUMENTS_KEY)
    if isinstance(raw, str) and len(call.arguments) == 1:
        return raw  # the model's own malformed text, back as it sent it
    return json.dumps(json_ready(call.arguments), ensure_ascii=False)


def _wire_tool(tool: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": tool.name, "description": tool.description, "parameters": json_ready(tool.parameters)},
    }


def _tool_call(index: int, raw: Any) -> ToolCall:
    function = raw["function"]
    name = function["name"]
    if not isinstance(name, str) or not name:
        raise TypeError("a tool call without a name")
    return ToolCall(
        id=str(raw.get("id") or f"call_{index}"), name=name, arguments=_arguments(function.get("arguments"))
    )


def _arguments(raw: Any) -> Mapping[str, Any]:
    if isinstance(raw, Mapping):  # a few servers send an object instead of a JSON string
        return dict(raw)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}  # a call of a tool without parameters
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        value = None
    return value if isinstance(value, dict) else {INVALID_ARGUMENTS_KEY: str(raw)}


def _content(raw: Any) -> str:
    if raw is None:
        return ""
    if isinstance(raw, str):
        return raw
    # a list of content parts, as some servers answer
    return "".join(part["text"] for part in raw if part.get("type") == "text")


def _server_message(text: str) -> str:
    """The error message in a server's error body: OpenAI's ``{"error": {"message"}}`` and its common cousins."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return text.strip()[:200]
    if isinstance(data, dict):
        error = data.get("error")
        for candidate in (
            error.get("message") if isinstance(error, dict) else error,
            data.get("message"),
            data.get("detail"),
        ):
            if isinstance(candidate, str) and candidate:
                return candidate
    return text.strip()[:200]


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds a server asked to wait: ``retry-after-ms``, or ``Retry-After`` in seconds or as an HTTP date."""
    millis = _finite(headers.get("retry-after-ms"))
    if millis is not None:
        return max(millis / 1000, 0.0)
    value = headers.get("retry-after")
    if not value:
        return None
    seconds = _finite(value)
    if seconds is not None:
        return max(seconds, 0.0)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _finite(text: str | None) -> float | None:
    """A header's number; None when absent, not a number, or not finite ("inf" would be a wait that never ends)."""
    try:
        value = float(text) if text else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def json_ready(value: Any) -> Any:
    """JSON-ready copies of read-only mappings and tuples, which ``json`` cannot write as they are."""
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return value


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


# -- streaming ---------------------------------------------------------------------------------------------------


async def _sse_data(response: httpx.Response) -> AsyncIterator[str]:
    """The ``data`` of each server-sent event (multi-line data joined with newlines, as the SSE spec says)."""
    lines: list[str] = []
    async for line in response.aiter_lines():
        if not line:
            if lines:
                yield "\n".join(lines)
                lines = []
            continue
        name, _, value = line.partition(":")
        if name == "data":
            lines.append(value.removeprefix(" "))
    if lines:
        yield "\n".join(lines)


@dataclass
class _Stream:
    """What the chunks of a streamed answer add up to: text, tool calls assembled by index, usage, finish."""

    text: list[str] = field(default_factory=list)
    calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    usage: Any = None
    finish_reason: str | None = None
    done: bool = False

    def add(self, chunk: Any) -> str:
        """Fold one chunk in; returns its text (may be empty)."""
        if chunk.get("usage"):
            self.usage = chunk["usage"]  # the final chunk's (some servers repeat a running total on every chunk)
        piece = ""
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            piece += _content(delta.get("content"))
            for part in delta.get("tool_calls") or ():
                self._add_call(part)
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
        if piece:
            self.text.append(piece)
        return piece

    def _add_call(self, part: Any) -> None:
        call = self.calls.setdefault(int(part.get("index", len(self.calls))), {"id": "", "name": "", "arguments": []})
        # id and name come whole in the first fragment of a call; the arguments come in pieces
        call["id"] = call["id"] or part.get("id") or ""
        function = part.get("function") or {}
        call["name"] = call["name"] or function.get("name") or ""
        if function.get("arguments"):
            call["arguments"].append(function["arguments"])

    def tool_calls(self) -> list[Any]:
        """The assembled calls, in the wire format of a non-streamed answer."""
        return [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": "".join(c["arguments"])}}
            for _, c in sorted(self.calls.items())
        ]
