"""What goes to a model and what comes back: messages, tool calls, requests, responses, usage.

Providers cut every wire format down to these plain values (the httpx lesson: the transport boundary speaks
plain data), so agents, the journal and the replay model never see a provider's own types.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = [
    "INVALID_ARGUMENTS_KEY",
    "Message",
    "Model",
    "ModelRequest",
    "ModelResponse",
    "ToolCall",
    "ToolSpec",
    "Usage",
]

INVALID_ARGUMENTS_KEY = "__invalid_json__"
"""A tool call whose arguments were not a JSON object carries the model's raw text under this key, so the agent
can show the model its own mistake instead of failing."""

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCall:
    """A model's request to call a tool: ``arguments`` already parsed from the model's JSON."""

    id: str
    name: str
    arguments: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """One message of a conversation with a model.

    Attributes:
        role: ``system``, ``user``, ``assistant`` or ``tool``.
        content: the text (for a tool message, the tool's result as text).
        tool_calls: the tools an assistant message asks to call.
        tool_call_id: for a tool message, which call it answers.
        name: for a tool message, the tool's name.
    """

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolSpec:
    """A tool as a model sees it: a name, what it does, and the JSON Schema of its arguments."""

    name: str
    description: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    """Tokens a call used, and what they cost (0.0 when the model has no price)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cost_usd=self.cost_usd + other.cost_usd,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelRequest:
    """One call to a model.

    Attributes:
        messages: the conversation so far, system message first.
        tools: tools the model may call.
        output_schema: a JSON Schema the final answer must satisfy; providers that can constrain decoding to it
            do (llama.cpp, OpenAI's ``json_schema`` response format), the rest are asked for JSON.
        temperature: sampling temperature; None for the model's default.
        max_tokens: the longest answer.
        on_token: called with each piece of text as it streams, when the provider streams.
        agent: the name of the agent calling, for attribution (usage per agent, scripted test answers).
    """

    messages: Sequence[Message]
    tools: Sequence[ToolSpec] = ()
    output_schema: Mapping[str, Any] | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    on_token: Callable[[str], None] | None = field(default=None, compare=False)
    agent: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelResponse:
    """A model's answer: an assistant message (text, tool calls, or both) and what it cost."""

    message: Message
    usage: Usage
    model: str
    finish_reason: str = "stop"


@runtime_checkable
class Model(Protocol):
    """Anything that answers a :class:`ModelRequest`. ``name`` is how prices, the journal and errors refer to it."""

    name: str

    async def complete(self, request: ModelRequest) -> ModelResponse:
        """Answer the request.

        Raises:
            ModelTransientError: worth trying again (timeout, 429, 5xx, connection).
            ModelPermanentError: not worth trying again.
        """
        ...
