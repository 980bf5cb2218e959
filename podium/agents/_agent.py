"""``Agent``: a persona, a model, granted tools and an output contract — usable as a step anywhere.

The agent loop: send the conversation to the model; run the tools it asks for (refusing any it was not granted,
and telling it so); repeat until it answers; check the answer against the output schema, and if it does not fit,
ask again with the validation error — replacing the previous failed attempt rather than piling attempts up, so
the context does not grow with each re-ask — at most ``max_reasks`` times, then fail naming the agent, the field
and the value. Every model call and tool call is journaled (``model_called``, ``tool_called``), which is what
the replay model and cost accounting read.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from podium.agents._soul import load_soul
from podium.agents._tool import Tool, ToolResult, call_once, settle_left_over
from podium.errors import (
    AgentError,
    AgentOutputError,
    ConfigError,
    CrewFileError,
    ModelError,
    ModelPermanentError,
    ModelTransientError,
)
from podium.journal._codec import encode
from podium.journal._events import BreakerChanged, FallbackTaken, ModelCalled, ModelFailed, ToolCalled
from podium.models._prices import cost
from podium.models._types import INVALID_ARGUMENTS_KEY, Message, Model, ModelRequest, ModelResponse, ToolCall
from podium.runtime._breaker import CircuitBreaker, breaker_for
from podium.runtime._context import _current
from podium.runtime._limits import Budget
from podium.runtime._retry import RetryPolicy

__all__ = ["Agent"]

DEFAULT_MODEL = "local"
MODEL_RETRY = RetryPolicy(max_attempts=3, initial_interval=1.0, backoff=2.0, max_interval=30.0)
"""Model calls are retried by default: a 429 or a 503 should not fail a run (issue 5 adds breakers and fallbacks)."""


class Agent:
    """An LLM agent.

    Args:
        name: how the crew and the journal refer to it.
        role: who it is ("Senior writer").
        goal: what it is for.
        backstory: context that shapes how it works.
        instructions: the prose of its persona (a SOUL.md body).
        rules: short rules, listed in its system prompt.
        model: a model or model spec (``"local"``, ``"test"``, ``"openai:..."``...); defaults to the crew's, else
            ``"local"``.
        tools: the tools it is granted; a call to any other is refused.
        output: the answer's type (a pydantic model, or any type pydantic validates); ``str`` when None.
        max_reasks: how many times an answer that does not fit ``output`` is sent back.
        max_turns: model calls allowed in one task (tool rounds included).
        temperature: sampling temperature for its calls.
        retry: how a model call that fails transiently (timeout, 429, 5xx, connection) is tried again; every
            attempt is journaled (``model_failed``). ``Retry-After`` is honoured. None: never retried.
        fallbacks: alternatives, in order. A model (or model spec) is asked instead of the agent's model when a
            call fails for good (a permanent error, retries spent, or its circuit breaker open: see
            :mod:`podium.runtime._breaker`). An ``Agent`` (with the same ``output`` type) is given the whole task
            when this agent fails for good: its answer still does not fit after the re-asks, it gave no answer
            within ``max_turns``, or every model failed. Each switch to an agent is journaled
            (``fallback_taken``); when the last one fails too, the error names every failure.
        prompt: ``prompt(state, item) -> str``, the user message it gets as a step; the default describes the
            item, or the team's task and conversation, or the state's fields.
        budget: what it may spend on models in a run, all its calls together (see :class:`~podium.Budget`);
            checked before each call, like the run's ``Limits``.
    """

    def __init__(
        self,
        name: str,
        *,
        role: str = "",
        goal: str = "",
        backstory: str = "",
        instructions: str = "",
        rules: Sequence[str] = (),
        model: str | Model | None = None,
        tools: Iterable[Tool] = (),
        output: Any = None,
        max_reasks: int = 2,
        max_turns: int = 8,
        temperature: float | None = None,
        prompt: Callable[[Any, Any], str] | None = None,
        retry: RetryPolicy | None = MODEL_RETRY,
        fallbacks: Sequence[str | Model | Agent] = (),
        budget: Budget | None = None,
    ) -> None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", name):
            raise ConfigError(f"agent name {name!r} must be letters, digits, '_' or '-'")
        if budget is not None and not isinstance(budget, Budget):
            raise ConfigError(f"agent {name!r}: budget must be a podium.Budget, not {type(budget).__name__}")
        self.name = name
        self.role = role
        self.goal = goal
        self.backstory = backstory
        self.instructions = instructions
        self.rules = tuple(rules)
        self.model = model
        self.tools = {t.name: t for t in tools}
        self.output = output
        self.max_reasks = max_reasks
        self.max_turns = max_turns
        self.temperature = temperature
        self.prompt = prompt
        self.retry = retry
        self.fallbacks = tuple(fallbacks)
        self._models = tuple(f for f in self.fallbacks if not isinstance(f, Agent))
        self._agents = tuple(f for f in self.fallbacks if isinstance(f, Agent))
        for other in self._agents:
            if other.name == name:
                raise ConfigError(f"agent {name!r} cannot be its own fallback")
            if other.output != output:
                raise ConfigError(
                    f"agent {name!r}: fallback agent {other.name!r} answers with {_type_name(other.output)}, "
                    f"not {_type_name(output)}; a fallback must answer the same task in the same form"
                )
        self.budget = budget
        self._adapter: TypeAdapter[Any] | None = TypeAdapter(output) if output is not None else None
        self._schema = self._adapter.json_schema() if self._adapter is not None else None

    @property
    def __name__(self) -> str:  # so patterns and graphs name the step after the agent
        return self.name

    def __repr__(self) -> str:
        return f"<Agent {self.name}: {self.role or 'no role'}>"

    @classmethod
    def from_soul(
        cls,
        path: str | Path,
        *,
        toolbox: Mapping[str, Tool] | Iterable[Tool] = (),
        outputs: Mapping[str, Any] | None = None,
        **overrides: Any,
    ) -> Agent:
        """An agent from a SOUL.md file (see :mod:`podium.agents._soul`).

        Args:
            toolbox: the tools the file's ``tools:`` names may refer to.
            outputs: the types the file's ``output:`` name may refer to.
            overrides: any constructor argument (``name``, granted ``tools``, ``model``...), taking precedence over
                the file.

        Raises:
            CrewFileError: the file is malformed, or names a tool or output type that was not provided.
        """
        soul = load_soul(path)
        available = dict(toolbox) if isinstance(toolbox, Mapping) else {t.name: t for t in toolbox}
        settings: dict[str, Any] = {
            "role": soul.role,
            "goal": soul.goal,
            "backstory": soul.backstory,
            "instructions": soul.instructions,
            "rules": soul.rules,
            "model": soul.model,
            "max_reasks": soul.max_reasks,
            "temperature": soul.temperature,
        }
        if "tools" not in overrides:
            missing = [name for name in soul.tools if name not in available]
            if missing:
                raise CrewFileError(
                    f"names tools {missing} that are not provided; known: {sorted(available)}",
                    path=str(path),
                    line=soul.lines.get("tools"),
                    field="tools",
                )
            settings["tools"] = [available[n] for n in soul.tools]
        if "output" not in overrides and soul.output is not None:
            if soul.output not in (outputs or {}):
                raise CrewFileError(
                    f"names output type {soul.output!r}, which is not provided; known: {sorted(outputs or {})}",
                    path=str(path),
                    line=soul.lines.get("output"),
                    field="output",
                )
            settings["output"] = (outputs or {})[soul.output]
        settings.update(overrides)
        return cls(settings.pop("name", soul.name), **settings)

    # -- as a step ------------------------------------------------------------------------------------------

    async def __call__(self, state: Any, item: Any = None) -> Any:
        """Run as a workflow step: the prompt comes from ``state`` (and ``item``); returns the checked answer."""
        text = self.prompt(state, item) if self.prompt is not None else _describe(state, item)
        return await self.ask(text)

    async def ask(self, text: str, *, model: str | Model | None = None) -> Any:
        """Give the agent one task and return its checked answer (an ``output`` instance, or text).

        When it fails for good and has fallback agents, the next one is given the same text (with its own model).

        Raises:
            AgentOutputError: the answer did not fit ``output`` after ``max_reasks`` re-asks.
            AgentError: it did not answer within ``max_turns`` model calls; or it and each fallback agent failed
                (the message names every failure; ``__cause__`` is the last).
            ModelError: the model call failed.
        """
        if not self._agents:
            return await self._answer(text, model)
        failures: list[str] = []
        candidates: tuple[Agent, ...] = (self, *self._agents)
        ctx = _current.get()
        counted = dict(ctx._tool_calls or {}) if ctx is not None else None
        for index, agent in enumerate(candidates):
            if ctx is not None and index:  # a fallback's tool calls get the keys the failed agent's got: the same
                ctx._tool_calls = dict(counted or {})  # call is answered from the ledger, as in step fallbacks
            try:
                return await (self._answer(text, model) if agent is self else agent.ask(text))
            except (AgentError, ModelError) as exc:
                failures.append(f"{agent.name} ({type(exc).__name__}: {exc})")
                if index + 1 == len(candidates):
                    raise AgentError(
                        f"failed, and so did each of its fallbacks: {'; '.join(failures)}", agent=self.name
                    ) from exc
                await _fell_back(agent.name, candidates[index + 1].name, exc)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _answer(self, text: str, model: str | Model | None) -> Any:
        """The agent's own answer, on ``model`` or its own (see :meth:`ask`)."""
        from podium.models import resolve_model

        chosen = resolve_model(model or self.model or _crew_model() or DEFAULT_MODEL)
        messages = [Message(role="system", content=self.system_prompt()), Message(role="user", content=text)]
        calls = reasks = 0
        attempts: list[Message] = []  # the latest failed answer and its correction; replaced, never appended
        for _turn in range(self.max_turns):
            response = await self._complete(chosen, [*messages, *attempts], calls)
            calls += 1
            reply = response.message
            if reply.tool_calls:
                messages += [reply, *[await self._use(call, calls) for call in reply.tool_calls]]
                attempts = []
                continue
            if self._adapter is None:
                await settle_left_over(self.name, self.tools)
                return reply.content
            try:
                answer = self._adapter.validate_json(_json_in(reply.content))
            except ValidationError as exc:
                problem = _problem(exc, reply.content)
                if reasks >= self.max_reasks:
                    raise self._output_error(problem, reasks + 1) from exc
                reasks += 1
                attempts = [reply, Message(role="user", content=self._correction(problem))]
            else:
                await settle_left_over(self.name, self.tools)
                return answer
        raise AgentError(f"gave no final answer within max_turns={self.max_turns} model calls", agent=self.name)

    def system_prompt(self) -> str:
        """The system message: persona, rules, tools and the answer's form."""
        parts = [f"You are {self.name}" + (f", {self.role}" if self.role else "") + "."]
        if self.goal:
            parts.append(f"Your goal: {self.goal}")
        if self.backstory:
            parts.append(self.backstory)
        if self.instructions:
            parts.append(self.instructions)
        if self.rules:
            parts.append("Rules:\n" + "\n".join(f"- {rule}" for rule in self.rules))
        if self._schema is not None:
            parts.append("Answer with JSON only, matching this JSON Schema:\n" + json.dumps(self._schema))
        return "\n\n".join(parts)

    # -- the loop's parts ---------------------------------------------------------------------------------

    async def _complete(self, model: Model, messages: list[Message], index: int) -> ModelResponse:
        ctx = _current.get()
        on_token = (lambda text: ctx.token(self.name, text)) if ctx is not None and ctx._token else None
        request = ModelRequest(
            messages=messages,
            tools=[t.spec for t in self.tools.values()],
            output_schema=self._schema,
            temperature=self.temperature,
            agent=self.name,
            on_token=on_token,
        )
        if ctx is not None:
            ctx.check_budget(self.name, self.budget)  # before the call: a spent budget never starts another one
        started = time.monotonic()
        model, response = await self._call_models(model, request, index, ctx)
        usage = response.usage
        if usage.cost_usd == 0.0:
            usage = type(usage)(
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cost_usd=cost(model.name, usage.input_tokens, usage.output_tokens),
            )
        if ctx is not None:
            ctx.usage(self.name, usage)
            await ctx.record(
                ModelCalled(
                    task_id=ctx.task_id,
                    agent=self.name,
                    index=index,
                    model=model.name,
                    message=encode(response.message),
                    input_tokens=usage.input_tokens,
                    output_tokens=usage.output_tokens,
                    cost_usd=usage.cost_usd,
                    duration=time.monotonic() - started,
                )
            )
        return response

    async def _call_models(
        self, primary: Model, request: ModelRequest, index: int, ctx: Any
    ) -> tuple[Model, ModelResponse]:
        """The model's answer, or the first fallback's that gives one; skip any whose breaker is open."""
        from podium.models import resolve_model

        error: ModelError | None = None
        for model in (primary, *(resolve_model(m) for m in self._models)):
            breaker = breaker_for(model.name)
            admitted = breaker.admit()
            if admitted is None:
                error = ModelTransientError("its circuit breaker is open; not called", model=model.name)
                await self._failed(ctx, model, index, 0, error, None)
                continue
            try:
                return model, await self._attempts(model, request, index, ctx, breaker, admitted == "trial")
            except ModelError as exc:
                error = exc
        assert error is not None
        raise error

    async def _attempts(
        self, model: Model, request: ModelRequest, index: int, ctx: Any, breaker: CircuitBreaker, trial: bool
    ) -> ModelResponse:
        """Call the model, trying again as the retry policy says; journal each failed attempt.

        ``trial``: this call is the one a half-open breaker lets through; whatever ends it, the breaker hears.
        """
        attempt = 1
        try:
            while True:
                try:
                    response = await _classified(model, request)
                except ModelError as exc:
                    if exc.transient:
                        await self._breaker_changed(ctx, breaker, breaker.failed(), str(exc))
                        trial = False  # the breaker has its verdict
                    again = breaker.state != "open" and self.retry is not None and self.retry.retries(exc, attempt)
                    key = f"{ctx.task_id if ctx is not None else self.name}/{index}"
                    retry_in = self.retry.delay(attempt, key, exc) if again and self.retry is not None else None
                    await self._failed(ctx, model, index, attempt, exc, retry_in)
                    if retry_in is None:
                        raise
                else:
                    changed = breaker.succeeded(trial=trial)
                    trial = False
                    await self._breaker_changed(ctx, breaker, changed, "a call succeeded")
                    return response
                await asyncio.sleep(retry_in)
                attempt += 1
        finally:
            if trial:  # a permanent error or a cancellation: no verdict on the endpoint's health
                breaker.release()

    async def _failed(
        self, ctx: Any, model: Model, index: int, attempt: int, exc: ModelError, retry_in: float | None
    ) -> None:
        if ctx is not None:
            await ctx.record(
                ModelFailed(
                    task_id=ctx.task_id,
                    agent=self.name,
                    index=index,
                    attempt=attempt,
                    model=model.name,
                    error_type=type(exc).__name__,
                    message=str(exc),
                    transient=exc.transient,
                    retry_in=retry_in,
                )
            )

    async def _breaker_changed(self, ctx: Any, breaker: CircuitBreaker, state: str | None, reason: str) -> None:
        if state is not None and ctx is not None:
            await ctx.record(BreakerChanged(task_id=ctx.task_id, model=breaker.name, state=state, reason=reason))

    async def _use(self, call: ToolCall, index: int) -> Message:
        granted = self.tools.get(call.name)
        if granted is None:
            result = ToolResult(
                error=f"tool {call.name!r} is not granted to agent {self.name!r}; it may use "
                f"{sorted(self.tools) or 'no tools'}"
            )
        elif INVALID_ARGUMENTS_KEY in call.arguments:
            result = ToolResult(error=f"the arguments were not a JSON object: {call.arguments[INVALID_ARGUMENTS_KEY]}")
        else:  # exactly once per idempotency key, journaled by call_once
            result = await call_once(granted, call.arguments, agent=self.name, call_id=call.id)
            return Message(role="tool", content=result.text, tool_call_id=call.id, name=call.name)
        ctx = _current.get()
        if ctx is not None:
            await ctx.record(
                ToolCalled(
                    task_id=ctx.task_id,
                    agent=self.name,
                    tool=call.name,
                    call_id=call.id,
                    arguments=encode(dict(call.arguments)),
                    error=result.error,
                    refused=granted is None,
                )
            )
        return Message(role="tool", content=result.text, tool_call_id=call.id, name=call.name)

    def _correction(self, problem: tuple[str, Any, str]) -> str:
        field, value, message = problem
        return (
            f"That answer does not fit the required schema: field {field!r} got {value!r}: {message}. "
            f"Answer again with JSON only, matching the schema."
        )

    def _output_error(self, problem: tuple[str, Any, str], attempts: int) -> AgentOutputError:
        field, value, message = problem
        return AgentOutputError(agent=self.name, field=field, value=value, problem=message, attempts=attempts)


async def _fell_back(failed: str, to: str, error: Exception) -> None:
    """Journal that agent ``failed`` handed its task to ``to`` (nothing outside a run)."""
    ctx = _current.get()
    if ctx is not None:
        await ctx.record(
            FallbackTaken(
                task_id=ctx.task_id,
                step=ctx.step,
                failed=failed,
                to=to,
                error_type=type(error).__name__,
                reason=str(error),
            )
        )


def _type_name(output: Any) -> str:
    return "text" if output is None else getattr(output, "__name__", repr(output))


async def _classified(model: Model, request: ModelRequest) -> ModelResponse:
    """The model's answer; an exception that is not a :class:`ModelError` (a provider's bug, an SDK error podium
    does not know) becomes a permanent one, so it is journaled and goes on to the fallbacks like any other."""
    try:
        return await model.complete(request)
    except ModelError:
        raise
    except Exception as exc:
        raise ModelPermanentError(f"the model raised {type(exc).__name__}: {exc}", model=model.name) from exc


def _crew_model() -> str | Model | None:
    from podium.models import current_model

    return current_model()


def _json_in(text: str) -> str:
    """The JSON in an answer: the text itself, or the first fenced or braced block in it."""
    stripped = text.strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", stripped, flags=re.DOTALL)
    if fenced:
        return fenced.group(1).strip()
    if stripped[:1] in '{["' or stripped in ("true", "false", "null") or re.fullmatch(r"-?\d[\d.eE+-]*", stripped):
        return stripped
    braced = re.search(r"\{.*\}", stripped, flags=re.DOTALL)
    return braced.group(0) if braced else json.dumps(stripped)


def _problem(exc: ValidationError, text: str) -> tuple[str, Any, str]:
    error = exc.errors(include_url=False)[0]
    field = ".".join(str(p) for p in error["loc"]) or "answer"
    value = error.get("input", text)
    if error["type"] == "json_invalid":
        return "answer", text, f"not valid JSON ({error['msg']})"
    return field, value, error["msg"]


def _describe(state: Any, item: Any) -> str:
    """The default prompt for an agent used as a step: the state's own ``__prompt__(item)`` when its type defines
    one (a :class:`~podium.Board` does), else the item, or the team's task and conversation, or the state."""
    own = getattr(type(state), "__prompt__", None)
    if own is not None:
        return str(own(state, item))
    if item is not None:
        return item if isinstance(item, str) else _as_text(item)
    task = getattr(state, "task", None)
    turns = getattr(state, "turns", None)
    if task is not None and turns is not None:  # a team's Conversation
        lines = [f"Task: {_as_text(task)}"]
        if turns:
            lines.append("Conversation so far:")
            lines += [f"- {t.speaker}: {_as_text(t.content)}" for t in turns]
        return "\n".join(lines)
    return _as_text(state)


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json(indent=1)
    try:
        return json.dumps(TypeAdapter(Any).dump_python(value, mode="json"), indent=1)
    except Exception:
        return repr(value)
