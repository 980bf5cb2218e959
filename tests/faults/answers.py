"""What a flaky server reads in a chat-completions request, and its healthy (or schema-breaking) answers."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Answer", "Chat", "example", "off_schema", "read_chat", "schema_answer"]


@dataclass(frozen=True, kw_only=True)
class Chat:
    """A chat-completions request, as the server read it.

    Attributes:
        agent: the agent's name, from podium's system prompt ("You are NAME, ..."), else "".
        messages: the wire messages.
        schema: the JSON Schema of ``response_format``, if any.
        tools: the wire tools.
        stream: whether the client asked for server-sent events.
    """

    agent: str
    messages: list[dict[str, Any]]
    schema: dict[str, Any] | None
    tools: list[dict[str, Any]]
    stream: bool

    @property
    def user(self) -> str:
        """The last user message's text."""
        return next((str(m.get("content") or "") for m in reversed(self.messages) if m.get("role") == "user"), "")

    @property
    def said(self) -> str:
        """Every user message's text (a re-ask's last message is the correction, not the conversation)."""
        return "\n".join(str(m.get("content") or "") for m in self.messages if m.get("role") == "user")

    @property
    def tool_results(self) -> int:
        """How many tool results the conversation holds."""
        return sum(1 for m in self.messages if m.get("role") == "tool")


Answer = Callable[[Chat], dict[str, Any]]
"""Makes a healthy answer: the wire message (``{"content": ...}`` and/or ``{"tool_calls": [...]}``)."""


def schema_answer(chat: Chat) -> dict[str, Any]:
    """The default healthy answer.

    With tools and no tool result yet: a call of the first tool, with arguments that fit its parameters. With a
    JSON Schema: JSON that fits it, where a choice (an enum) goes to the first option not yet named as a speaker in
    the conversation ("- option: ..."), else the last, so a router visits each worker once and then says done.
    Otherwise a line of text naming the agent.
    """
    if chat.tools and not chat.tool_results:
        function = chat.tools[0]["function"]
        arguments = json.dumps(example(function.get("parameters") or {}, said=chat.said))
        call = {"id": "call_0", "type": "function", "function": {"name": function["name"], "arguments": arguments}}
        return {"content": None, "tool_calls": [call]}
    if chat.schema is not None:
        return {"content": json.dumps(example(chat.schema, said=chat.said))}
    return {"content": f"{chat.agent or 'agent'} noted: {chat.user[:60]}"}


def example(schema: Mapping[str, Any], defs: Mapping[str, Any] | None = None, *, said: str = "") -> Any:
    """A value that fits a JSON Schema (the subset pydantic writes). ``said`` is the conversation so far: an enum
    takes its first option not yet named as a speaker in it."""
    defs = defs if defs is not None else schema.get("$defs", {})
    if "$ref" in schema:
        return example(defs[str(schema["$ref"]).rsplit("/", 1)[-1]], defs, said=said)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        options = list(schema["enum"])
        return next((o for o in options if f"- {o}:" not in said), options[-1])
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [o for o in schema[key] if o.get("type") != "null"] or schema[key]
            return example(options[0], defs, said=said)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        properties: Mapping[str, Any] = schema.get("properties", {})
        return {name: example(sub, defs, said=said) for name, sub in properties.items()}
    if kind == "array":
        return [example(schema.get("items", {}), defs, said=said) for _ in range(max(schema.get("minItems", 0), 1))]
    if kind == "string":
        return "x" * int(schema["minLength"]) if schema.get("minLength") else "fine"
    if kind == "integer":
        return max(int(schema.get("minimum", 1)), int(schema.get("exclusiveMinimum", 0)) + 1)
    if kind == "number":
        return float(schema.get("minimum", 1.0))
    if kind == "boolean":
        return True
    return None


def off_schema(schema: Mapping[str, Any], variant: int) -> str:
    """Content that does not fit ``schema``: prose, JSON of the wrong shape, or JSON cut short."""
    shape = _shape(schema, schema.get("$defs", {}))
    wrong = '{"note": "an object, where a list was asked for"}' if shape == "array" else '["a list", "not an object"]'
    return [
        "Sure! Here is what you asked for, in my own words and not as JSON.",
        wrong,
        '{"title": "cut sho',
    ][variant % 3]


def _shape(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> str:
    if "$ref" in schema:
        return _shape(defs[str(schema["$ref"]).rsplit("/", 1)[-1]], defs)
    kind = schema.get("type")
    return kind if isinstance(kind, str) else "object"


def read_chat(raw: bytes) -> Chat:
    """The request as the server understands it (an unreadable body reads as an empty request)."""
    try:
        body = json.loads(raw)
    except ValueError:
        body = {}
    messages = [m for m in body.get("messages") or () if isinstance(m, dict)]
    system = next((str(m.get("content") or "") for m in messages if m.get("role") == "system"), "")
    agent = system.removeprefix("You are ").split(",", 1)[0].split(".", 1)[0] if system.startswith("You are ") else ""
    response_format = body.get("response_format") or {}
    schema = response_format.get("json_schema", {}).get("schema") or response_format.get("schema")
    return Chat(
        agent=agent,
        messages=messages,
        schema=schema if isinstance(schema, dict) else None,
        tools=[t for t in body.get("tools") or () if isinstance(t, dict)],
        stream=bool(body.get("stream")),
    )
