"""Tools: typed Python functions an agent may call. Their JSON Schema comes from type hints and docstrings.

::

    @tool(idempotent=True)
    def search_notes(query: str, limit: int = 5) -> list[str]:
        \"\"\"Search the team's notes.

        Args:
            query: words to look for.
            limit: at most this many notes.
        \"\"\"

The schema a model sees has ``query`` (string, required, "words to look for") and ``limit`` (integer, default 5).
A call's arguments are validated against the same types before the function runs; a bad call becomes an error
message to the model, not an exception in the run.

**Side effects.** Inside a run, tool calls are exactly-once (see :mod:`podium.runtime._ledger`): a call whose result
is journaled is answered from the journal, after a crash or in a retried attempt, and the tool is not called again.
A tool with side effects can say more::

    @tool(compensate=close_account, reconcile=find_account)
    def open_account(email: str, idempotency_key: str) -> str:
        ...

- ``idempotency_key``: a parameter of that name is not shown to the model; podium passes the call's key, stable
  across crashes and retries, to hand on to an API that deduplicates (a payment provider's ``Idempotency-Key``).
- ``compensate(result)`` or ``compensate(result, arguments)``: undoes the call if the run later fails or is
  cancelled (saga compensation, :mod:`podium.runtime._saga`).
- ``reconcile(call)``: settles a call that was in flight when the run stopped. It gets an :class:`InFlightCall`
  and returns ``call.done(result)`` if the call took effect, or ``call.redo()`` to call the tool again. Without
  one, a tool that is not ``idempotent`` asks a person (approve: it took effect, ``--value`` its result; reject:
  call it again), and the run waits until someone answers.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, overload

from pydantic import ConfigDict, TypeAdapter, ValidationError, create_model
from pydantic.fields import FieldInfo

from podium.errors import ConfigError, PodiumError
from podium.flow._state import every_error
from podium.journal._codec import decode, encode
from podium.journal._events import ToolCalled, ToolStarted
from podium.models._types import ToolSpec
from podium.runtime._context import StepContext, _current
from podium.runtime._ledger import register_compensation, tool_key

__all__ = ["InFlightCall", "Resolution", "Tool", "ToolResult", "call_once", "settle_left_over", "tool"]

KEY_PARAMETER = "idempotency_key"
"""A tool parameter of this name gets the call's idempotency key from podium; the model never sees it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolResult:
    """What a tool call gave back: the value, or the error message the model will read."""

    value: Any = None
    error: str | None = None
    in_doubt: bool = False
    """The call was cut off (it timed out): it may or may not have taken effect."""

    @property
    def text(self) -> str:
        """The result as the model reads it."""
        if self.error is not None:
            return f"error: {self.error}"
        if isinstance(self.value, str):
            return self.value
        return TypeAdapter(Any).dump_json(self.value).decode()


@dataclass(frozen=True, slots=True)
class Resolution:
    """How an in-flight call was settled: it took effect (with ``value``), or it is to be called again."""

    took_effect: bool
    value: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class InFlightCall:
    """A tool call that was in flight when its run stopped: it may or may not have taken effect.

    Attributes:
        tool: the tool's name.
        arguments: the arguments it was called with.
        key: its idempotency key (what the tool was given as ``idempotency_key``, if it takes one).
    """

    tool: str
    arguments: dict[str, Any]
    key: str

    def done(self, result: Any = None) -> Resolution:
        """It took effect, and this is what it returned."""
        return Resolution(took_effect=True, value=result)

    def redo(self) -> Resolution:
        """It did not take effect: call the tool again."""
        return Resolution(took_effect=False)


class Tool:
    """A function an agent may call, with the JSON Schema of its arguments.

    Attributes:
        name: what the model calls it.
        description: what it does (the docstring's first paragraph).
        idempotent: calling it twice with the same arguments has the effect of calling it once; a call in flight
            when its run stopped is simply made again.
        compensate: ``compensate(result)`` or ``compensate(result, arguments)`` undoes a call when its run fails or
            is cancelled later; it may run more than once after a crash, so make it idempotent too.
        reconcile: ``reconcile(call: InFlightCall) -> Resolution`` settles a call that was in flight when its run
            stopped; without one, a tool that is not idempotent asks a person.
        timeout: seconds a call may take; then the model is told it timed out (a sync function's thread cannot
            be stopped and runs on: a timed-out call may still take effect).
        spec: the :class:`~podium.models.ToolSpec` a model sees.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        idempotent: bool = False,
        compensate: Callable[..., Any] | None = None,
        reconcile: Callable[[InFlightCall], Any] | None = None,
        timeout: float | None = None,
    ) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]{0,63}", self.name):
            raise ConfigError(f"tool name {self.name!r} must be letters, digits, '_' or '-' (at most 64)")
        if timeout is not None and timeout <= 0:
            raise ConfigError(f"tool {self.name!r}: timeout must be positive, not {timeout!r}")
        for hook, label in ((compensate, "compensate"), (reconcile, "reconcile")):
            if hook is not None and not callable(hook):
                raise ConfigError(f"tool {self.name!r}: {label} must be callable, not {hook!r}")
        summary, arg_docs = _parse_docstring(inspect.getdoc(fn) or "")
        self.description = description or summary or self.name
        self.idempotent = idempotent
        self.compensate = compensate
        self.reconcile = reconcile
        self.timeout = timeout
        self._is_async = inspect.iscoroutinefunction(fn)
        self._takes_key = KEY_PARAMETER in inspect.signature(fn).parameters
        self._arguments = _arguments_model(fn, arg_docs)
        if compensate is not None:
            register_compensation(self.name, compensate)
        schema = self._arguments.model_json_schema()
        schema.pop("title", None)
        self.spec = ToolSpec(name=self.name, description=self.description, parameters=schema)

    def __repr__(self) -> str:
        return f"<Tool {self.name}>"

    async def __call__(self, arguments: Mapping[str, Any], *, key: str | None = None) -> ToolResult:
        """Validate ``arguments`` and call the function (sync ones in a thread). Never raises for the tool's own
        errors: they come back as ``ToolResult.error`` for the model to read.

        Args:
            key: the call's idempotency key, for a function that takes ``idempotency_key`` (a fresh one if None).
        """
        try:
            parsed = self._arguments.model_validate(dict(arguments))
        except ValidationError as exc:
            return ToolResult(error=f"invalid arguments for {self.name}: {every_error(exc, 'arguments')}")
        kwargs = {name: getattr(parsed, name) for name in type(parsed).model_fields}
        if self._takes_key:
            kwargs[KEY_PARAMETER] = key or str(uuid.uuid4())
        try:
            async with asyncio.timeout(self.timeout):
                if self._is_async:
                    value = await self.fn(**kwargs)
                else:
                    value = await asyncio.to_thread(self.fn, **kwargs)
        except TimeoutError:
            return ToolResult(
                error=f"timed out after {self.timeout:g} s; it may or may not have taken effect", in_doubt=True
            )
        except Exception as exc:
            return ToolResult(error=f"{type(exc).__name__}: {exc}")
        return ToolResult(value=value)


async def call_once(tool: Tool, arguments: Mapping[str, Any], *, agent: str, call_id: str) -> ToolResult:
    """Call ``tool`` at most once per idempotency key in a run, journaling the call and its result.

    Outside a run this is a plain call. Inside one: a result the ledger holds (of a call that did not fail) is
    returned without calling; a call that was in flight when the run stopped is settled first (made again if the
    tool is idempotent, else by its ``reconcile`` hook, else by asking a person); a tool that is not idempotent is
    journaled as started before it runs; the result is journaled after.
    """
    ctx = _current.get()
    if ctx is None or ctx._run is None:
        return await tool(arguments)
    ledger = ctx._run.ledger
    if ctx._tool_calls is None:
        ctx._tool_calls = {}
    key = tool_key(ctx.run_id, ctx.task_id, tool.name, arguments, ctx._tool_calls)
    done = ledger.results.get(key)
    if done is not None and done.error is None:  # a call that failed is made again: its failure is not an answer
        return ToolResult(value=decode(done.result))
    result: ToolResult | None = None
    how = None
    started = ledger.in_flight.get(key)
    if started is not None:
        resolution, how = await _settle(tool, started, ctx)
        if resolution.took_effect:
            result = ToolResult(value=resolution.value)
    if result is None:
        if not tool.idempotent and started is None:
            started = ToolStarted(
                task_id=ctx.task_id, agent=agent, tool=tool.name, key=key, arguments=encode(dict(arguments))
            )
            ledger.in_flight[key] = started  # from here on, in this execution too, the call is in doubt until settled
            await ctx.record(started)
        result = await tool(arguments, key=key)
        if result.in_doubt and not tool.idempotent:
            return result  # still in flight: the model hears it timed out; the same call again gets settled first
    record = ToolCalled(
        task_id=ctx.task_id,
        agent=agent,
        tool=tool.name,
        call_id=call_id,
        arguments=encode(dict(arguments)),
        result=journaled(result.value),
        error=result.error,
        key=key,
        resolved=how,
        compensable=tool.compensate is not None,
    )
    ledger.tool_finished(record, encoded=False, value=result.value, undo=tool.compensate)  # before the write:
    await ctx.record(record)  # a cancellation while it commits must not lose the effect to undo
    return result


_NOT_DONE = "it was in flight when the run stopped, did not take effect, and was not asked for again"


async def settle_left_over(agent: str, tools: Mapping[str, Tool]) -> None:
    """Settle this task's calls of ``agent`` that were in flight when an earlier execution stopped and that its
    answer this time did not make again (a model need not word its calls the same way twice).

    Each is settled as :func:`call_once` would (the tool's ``reconcile`` hook, else a person): one that took
    effect is journaled with its result, so it is compensated if the run fails; one that did not is journaled as
    such, and is not made now, since the agent no longer asked for it. Called when the agent has its answer.
    """
    ctx = _current.get()
    if ctx is None or ctx._run is None:
        return
    ledger = ctx._run.ledger
    left = [s for s in ledger.in_flight.values() if s.task_id == ctx.task_id and s.agent == agent and s.tool in tools]
    for started in left:
        tool = tools[started.tool]
        resolution, how = await _settle(tool, started, ctx)
        took = resolution.took_effect
        record = ToolCalled(
            task_id=ctx.task_id,
            agent=agent,
            tool=tool.name,
            call_id="",
            arguments=started.arguments,
            result=journaled(resolution.value) if took else None,
            error=None
            if took
            else "it was in flight when the run stopped, did not take effect, and was not asked for again",
            key=started.key,
            resolved=how,
            compensable=tool.compensate is not None,
        )
        ledger.tool_finished(record, encoded=False, value=resolution.value, undo=tool.compensate)
        await ctx.record(record)


def journaled(value: Any) -> Any:
    """A tool's result as the journal holds it: encoded, or its repr when it cannot be encoded."""
    try:
        return encode(value)
    except PodiumError:
        return repr(value)


async def _settle(tool: Tool, started: ToolStarted, ctx: StepContext) -> tuple[Resolution, str]:
    """Decide whether a call that was in flight took effect: by the tool's nature, its hook, or a person."""
    call = InFlightCall(tool=tool.name, arguments=decode(started.arguments), key=started.key)
    if tool.idempotent:
        return call.redo(), "redone"
    if tool.reconcile is not None:
        resolution = tool.reconcile(call)
        if inspect.isawaitable(resolution):
            resolution = await resolution
        if not isinstance(resolution, Resolution):
            raise ConfigError(
                f"tool {tool.name!r}: reconcile must return call.done(result) or call.redo(), not {resolution!r}"
            )
        return resolution, "reconciled"
    return _ask_person(call, ctx), "person"


def _ask_person(call: InFlightCall, ctx: StepContext) -> Resolution:
    """The person's verdict on an in-flight call, or ``Interrupted`` (the run waits) until there is one."""
    from podium.runtime._interrupt import Approval, pending_answer

    answer = pending_answer(
        f"{ctx.task_id}#{call.tool}:{call.key[:8]}",
        f"Needs attention: tool {call.tool!r} was in flight when the run stopped, and may or may not have taken "
        f"effect (arguments {call.arguments}, idempotency key {call.key}). Approve if it did (give its result as "
        f"the value), reject to call it again.",
        schema=Approval,
        value={"tool": call.tool, "arguments": call.arguments, "key": call.key},
        kind="approve",
    )
    approval = TypeAdapter(Approval).validate_python(answer)
    if not approval.approved:
        return call.redo()
    return call.done(approval.value if approval.decision == "edit" else None)


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...
@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    idempotent: bool = False,
    compensate: Callable[..., Any] | None = None,
    reconcile: Callable[[InFlightCall], Any] | None = None,
    timeout: float | None = None,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    idempotent: bool = False,
    compensate: Callable[..., Any] | None = None,
    reconcile: Callable[[InFlightCall], Any] | None = None,
    timeout: float | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a function a :class:`Tool`: ``@tool``, or ``@tool(idempotent=True, compensate=undo, ...)``."""

    def make(f: Callable[..., Any]) -> Tool:
        return Tool(
            f,
            name=name,
            description=description,
            idempotent=idempotent,
            compensate=compensate,
            reconcile=reconcile,
            timeout=timeout,
        )

    return make(fn) if fn is not None else make


def _arguments_model(fn: Callable[..., Any], docs: Mapping[str, str]) -> Any:
    try:
        hints = inspect.get_annotations(fn, eval_str=True)
    except Exception as exc:
        raise ConfigError(f"cannot read the type hints of tool {fn.__name__!r}: {exc}") from exc
    fields: dict[str, Any] = {}
    for param in inspect.signature(fn).parameters.values():
        if param.name == KEY_PARAMETER:
            continue  # podium passes it; the model never sees it
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ConfigError(f"tool {fn.__name__!r} cannot take *{param.name}: a model needs named arguments")
        annotation = hints.get(param.name)
        if annotation is None:
            raise ConfigError(f"tool {fn.__name__!r}: parameter {param.name!r} needs a type hint")
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (annotation, FieldInfo(default=default, description=docs.get(param.name)))
    return create_model(f"{fn.__name__}_arguments", __config__=ConfigDict(extra="forbid"), **fields)


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The first paragraph, and Google-style ``Args:`` descriptions by parameter name."""
    summary = doc.split("\n\n", 1)[0].strip()
    args: dict[str, str] = {}
    match = re.search(r"^Args:\n((?:[ \t]+.+\n?)+)", doc, flags=re.MULTILINE)
    if match:
        current = None
        for line in match.group(1).splitlines():
            entry = re.match(r"\s+(\w+)(?:\s*\([^)]*\))?:\s*(.*)", line)
            if entry and (current is None or len(line) - len(line.lstrip()) <= 8):
                current = entry.group(1)
                args[current] = entry.group(2).strip()
            elif current is not None:
                args[current] = f"{args[current]} {line.strip()}".strip()
    return summary, args
