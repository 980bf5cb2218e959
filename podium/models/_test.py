"""``TestModel``: a deterministic model for users' own tests. No network, no randomness.

It answers in three ways, in this order:

1. the next entry of the calling agent's script, if it has one: text, a structured answer (a dict), or tool calls
   (``TestModel.call("search", query="tides")``);
2. for a request with an output schema, the simplest value that satisfies the schema; where the schema offers a
   choice (an enum, a ``Literal``), the agent's n-th call takes the n-th option (the last once they run out), so
   a router visits each worker in turn and then picks its last option (``done``);
3. otherwise a short text that names the agent and echoes the last user message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from podium.models._types import Message, ModelRequest, ModelResponse, ToolCall, Usage

__all__ = ["TestModel"]

Scripted = str | Mapping[str, Any] | ToolCall | Sequence[ToolCall]


class TestModel:
    """A model that answers from scripts, or with the simplest valid answer.

    Args:
        scripts: per agent name (or ``"*"`` for any agent), the answers to give in order.
        name: the model's name.
    """

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self, scripts: Mapping[str, Sequence[Scripted]] | None = None, *, name: str = "test") -> None:
        self.name = name
        self._scripts = {agent: list(script) for agent, script in (scripts or {}).items()}
        self.calls: list[ModelRequest] = []
        self._answered: dict[str, int] = {}

    @staticmethod
    def call(tool: str, /, **arguments: Any) -> ToolCall:
        """A scripted tool call."""
        return ToolCall(id=f"call_{tool}", name=tool, arguments=arguments)

    async def complete(self, request: ModelRequest) -> ModelResponse:
        self.calls.append(request)
        script = self._scripts.get(request.agent or "") or self._scripts.get("*")
        if script:
            message = _scripted(script.pop(0), len(self.calls))
        elif request.output_schema is not None:
            n = self._answered.get(request.agent or "", 0)
            self._answered[request.agent or ""] = n + 1
            message = Message(role="assistant", content=json.dumps(example(request.output_schema, pick=n)))
        else:
            last = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
            message = Message(role="assistant", content=f"{request.agent or 'agent'}: {last[:200]}".strip())
        if request.on_token is not None and message.content:
            for word in message.content.split(" "):
                request.on_token(word + " ")
        words = sum(len(m.content.split()) for m in request.messages)
        usage = Usage(input_tokens=words, output_tokens=len(message.content.split()))
        return ModelResponse(
            message=message, usage=usage, model=self.name, finish_reason="tool_calls" if message.tool_calls else "stop"
        )


def _scripted(entry: Scripted, n: int) -> Message:
    if isinstance(entry, str):
        return Message(role="assistant", content=entry)
    if isinstance(entry, ToolCall):
        entry = [entry]
    if isinstance(entry, Mapping):
        return Message(role="assistant", content=json.dumps(entry))
    calls = tuple(ToolCall(id=f"{c.id}_{n}_{i}", name=c.name, arguments=c.arguments) for i, c in enumerate(entry))
    return Message(role="assistant", tool_calls=calls)


def example(schema: Mapping[str, Any], defs: Mapping[str, Any] | None = None, *, pick: int = 0) -> Any:
    """The simplest value that satisfies a JSON Schema (the subset pydantic emits); ``pick`` chooses among enum
    options (the last once they run out)."""
    defs = defs if defs is not None else schema.get("$defs", {})
    if "$ref" in schema:
        return example(defs[schema["$ref"].rsplit("/", 1)[-1]], defs, pick=pick)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][min(pick, len(schema["enum"]) - 1)]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [o for o in schema[key] if o.get("type") != "null"] or schema[key]
            return example(options[0], defs, pick=pick)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        required = schema.get("required", list(schema.get("properties", {})))
        properties = schema.get("properties", {}).items()
        return {name: example(sub, defs, pick=pick) for name, sub in properties if name in required}
    if kind == "array":
        return [example(schema.get("items", {}), defs, pick=pick) for _ in range(schema.get("minItems", 0))]
    if kind == "string":
        return "x" * max(schema.get("minLength", 4), 1) if schema.get("minLength") else "test"
    if kind == "integer":
        return max(int(schema.get("minimum", 0)), int(schema.get("exclusiveMinimum", -1)) + 1)
    if kind == "number":
        return float(schema.get("minimum", 0.0))
    if kind == "boolean":
        return True
    return None
