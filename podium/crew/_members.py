"""The crew's agents, made for the part each plays in a flow.

An agent that answers joins the conversation as it is. An agent that decides gets an automatic output schema,
and its structured answer becomes the pattern's decision:

==================  =============================================================================================
supervisor router   ``{next: "done" | <worker>, instruction: str, result: str}``: a worker's name (or
                    ``Send(worker, instruction)`` with an instruction); ``done`` finishes with ``result`` (or the
                    last answer when empty)
handoff agent       ``{handoff_to: "none" | <other agent>, note: str, answer: <its output, or str>}``
planner             ``{subtasks: [str, ...]}``
voter, vote judge   ``{choice: <one of the vote's options>, reason: str}``, when the vote lists ``options``
==================  =============================================================================================

An agent with ``approval:`` asks a person to approve its answer before the answer is used (see
:func:`approved`). Every agent of a crew gets the same prompt: the task, the conversation so far, and its own
part (an instruction, a subtask, the candidates of a tie) when it has one.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, TypeAdapter, create_model

from podium import Agent, AgentError, Budget, Done, Handoff, Send, Tool, approve
from podium.crew._format import MODEL, AgentSpec, BudgetSpec
from podium.crew._imports import ImportFailed, import_object
from podium.crew._knowledge import TOOL_NAMES, CrewKnowledge
from podium.crew._yaml import Locator, Path_, did_you_mean
from podium.flow._step import arity_of, is_async_callable
from podium.knowledge._view import AgentKnowledge, acting_as

__all__ = ["Roster", "budget_of", "crew_prompt"]

_SETTINGS = ("role", "goal", "backstory", "instructions", "rules", "model", "max_reasks", "max_turns", "temperature")
_UNSET: Any = object()


@dataclass(frozen=True, slots=True)
class _Recipe:
    spec: AgentSpec
    soul: Path | None
    call: Callable[..., Any] | None = None


class PythonMember:
    """A crew member that is a plain Python callable (``call: module:function``): no model, no persona."""

    output = None
    model = None
    goal = ""

    def __init__(self, name: str, fn: Callable[..., Any], knowledge: AgentKnowledge | None = None) -> None:
        self.name = name
        self.fn = fn
        self.knowledge = knowledge
        self.role = f"Python: {getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', name)}"
        self.tools: dict[str, Any] = {}
        self.__name__ = name
        self._arity = arity_of(fn)
        self._async = is_async_callable(fn)

    async def __call__(self, state: Any, item: Any = None) -> Any:
        args = (state, item)[: self._arity]
        with acting_as(self.knowledge):  # podium.knowledge.current() inside it (a thread gets a copy of the context)
            return await self.fn(*args) if self._async else await asyncio.to_thread(self.fn, *args)


class Roster:
    """Makes the crew's agents: one per use, so a router and a worker of the same name each get their schema.

    Args:
        specs: the ``agents:`` section.
        folder: the crew file's folder (SOUL.md paths are relative to it).
        tools: the crew's tools by name.
        outputs: the crew's output types by name.
        locator: for errors that point into the crew file.
        force_model: drop every agent's own model (the crew's model, or ``use_model``'s, then applies to all).
        knowledge: the crew's knowledge base settings: agents with access get its tools.
    """

    def __init__(
        self,
        specs: Mapping[str, AgentSpec],
        *,
        folder: Path,
        tools: Mapping[str, Tool],
        outputs: Mapping[str, type[BaseModel]],
        locator: Locator,
        force_model: bool = False,
        knowledge: CrewKnowledge | None = None,
    ) -> None:
        self.tools = dict(tools)
        self.knowledge = knowledge
        self._kb_tools: dict[str, list[Tool]] = {}
        self.outputs = dict(outputs)
        self.locator = locator
        self.force_model = force_model
        self._recipes = {name: self._recipe(name, spec, folder) for name, spec in specs.items()}
        self._making: list[str] = []  # agents being made, each for the fallbacks of the one before
        self.agents = {name: self._make(name) for name in self._recipes}

    # -- checks ---------------------------------------------------------------------------------------------

    def check(self, name: str, path: Path_) -> None:
        """Raise if no agent ``name`` is declared (the error points at ``path``)."""
        if name not in self._recipes:
            raise self.locator.error(
                path, f"no agent {name!r} is declared under 'agents'{did_you_mean(name, self._recipes)}"
            )

    def output_of(self, name: str) -> Any:
        """The type of the agent's answers (None for text)."""
        return self.agents[name].output

    def _deciding(self, name: str, path: Path_, part: str) -> None:
        """Refuse an agent that decides (a router...) an output type or an approval of its own."""
        self.check(name, path)
        spec = self._recipes[name].spec
        where: Path_ = ("agents", name)
        if spec.approval is not None:
            raise self.locator.error((*where, "approval"), f"{name!r} is {part}: its decisions cannot be approved")
        if self.output_of(name) is not None:
            field = "output" if spec.output is not None else "soul"
            raise self.locator.error(
                (*where, field), f"{name!r} is {part}, so its answer is the decision: it cannot have an output type"
            )

    # -- the parts agents play ------------------------------------------------------------------------------

    def answerer(self, name: str) -> Callable[..., Any]:
        """The agent as a member that answers (with its approval, if it has one)."""
        return self._approved(name, self.agents[name], self.output_of(name))

    def router(self, name: str, choices: Sequence[str], path: Path_, part: str = "a router") -> Callable[..., Any]:
        """``route(conversation)`` for a supervisor: a worker's name, ``Send(worker, instruction)`` or ``Done``."""
        self._deciding(name, path, part)
        schema = create_model(
            f"{name}_decision",
            # the workers first: a model that goes down the list (the test model does) visits each, then finishes
            next=(_literal(*choices, "done"), Field(description="Who works next, or 'done' when the task is done.")),
            instruction=(str, Field("", description="What the chosen worker should do (optional).")),
            result=(str, Field("", description="When done: the team's answer (empty: the last answer).")),
        )
        agent = self._make(name, output=schema)

        async def route(state: Any) -> Any:
            decision = await agent(state)
            if decision.next == "done":
                return Done(decision.result or None)
            return Send(decision.next, decision.instruction) if decision.instruction else decision.next

        route.__name__ = name
        return route

    def handoff(self, name: str, others: Sequence[str], path: Path_) -> Callable[..., Any]:
        """A handoff member: answers, or returns ``Handoff(other, note)``."""
        self.check(name, path)
        if self._recipes[name].spec.approval is not None:
            raise self.locator.error(("agents", name, "approval"), f"{name!r} hands off: it cannot ask for approval")
        answer_type: Any = self.output_of(name) or str
        schema = create_model(
            f"{name}_handoff",
            handoff_to=(_literal("none", *others), Field(description="Who should take over, or 'none' to answer.")),
            note=(str, Field("", description="What the next agent needs to know.")),
            answer=(answer_type | None, Field(None, description="Your answer, when you do not hand off.")),
        )
        agent = self._make(name, output=schema)

        async def member(state: Any, item: Any = None) -> Any:
            decision = await agent(state, item)
            if decision.handoff_to != "none":
                return Handoff(decision.handoff_to, decision.note or None)
            return decision.answer if decision.answer is not None else ""

        member.__name__ = name
        return member

    def planner(self, name: str, path: Path_, max_subtasks: int = 20) -> Callable[..., Any]:
        """A planner: answers with the list of subtasks (at most ``max_subtasks``: the schema says so)."""
        self._require_no_output(name, path, "the planner")
        schema = create_model(
            f"{name}_plan",
            subtasks=(
                list[str],
                Field(min_length=1, max_length=max_subtasks, description="Self-contained instructions, one each."),
            ),
        )
        agent = self._make(name, output=schema)

        async def plan(state: Any, item: Any = None) -> Any:
            return list((await agent(state, item)).subtasks)

        plan.__name__ = name
        return self._approved(name, plan, list[str])

    def chooser(self, name: str, options: Sequence[str], path: Path_, part: str) -> Callable[..., Any]:
        """A voter or a vote's judge that answers ``{choice, reason}`` with one of ``options``."""
        self._require_no_output(name, path, part)
        schema = create_model(
            f"{name}_choice",
            choice=(_literal(*options), Field(description="Your choice.")),
            reason=(str, Field("", description="Why, in a sentence.")),
        )
        agent = self._make(name, output=schema)

        async def choose(state: Any, item: Any = None) -> Any:
            return (await agent(state, item)).choice

        choose.__name__ = name
        return self._approved(name, choose, _literal(*options))

    def _require_no_output(self, name: str, path: Path_, part: str) -> None:
        self.check(name, path)
        if self.output_of(name) is not None:
            spec = self._recipes[name].spec
            raise self.locator.error(
                ("agents", name, "output" if spec.output is not None else "soul"),
                f"{name!r} is {part}, so podium gives its answer a schema: it cannot have an output type",
            )

    def _approved(self, name: str, member: Callable[..., Any], answer_type: Any) -> Callable[..., Any]:
        prompt = self._recipes[name].spec.approval
        return member if prompt is None else approved(member, name=name, prompt=prompt, answer_type=answer_type)

    # -- making agents --------------------------------------------------------------------------------------

    def _recipe(self, name: str, spec: AgentSpec, folder: Path) -> _Recipe:
        where: Path_ = ("agents", name)
        for index, tool_name in enumerate(spec.tools or ()):
            if tool_name in TOOL_NAMES and tool_name not in self.tools:
                if not self._knowledge_tools(name):
                    raise self.locator.error(
                        (*where, "tools", index),
                        f"{tool_name!r} comes with knowledge access: give {name!r} an entry under knowledge.access",
                    )
                continue
            if tool_name not in self.tools:
                raise self.locator.error(
                    (*where, "tools", index),
                    f"no tool {tool_name!r} is declared under 'tools'{did_you_mean(tool_name, self.tools)}",
                )
        if spec.output is not None and spec.output not in self.outputs:
            raise self.locator.error(
                (*where, "output"),
                f"no output type {spec.output!r} is declared under 'outputs'{did_you_mean(spec.output, self.outputs)}",
            )
        if spec.call is not None:
            others = [k for k in type(spec).model_fields if k not in ("call", "approval") and getattr(spec, k)]
            if others:
                raise self.locator.error(
                    (*where, others[0]), f"{name!r} is a Python member (call:), so it has no {others[0]!r}"
                )
            try:
                fn = import_object(spec.call, folder)
            except ImportFailed as exc:
                raise self.locator.error((*where, "call"), str(exc)) from None
            if not callable(fn):
                raise self.locator.error((*where, "call"), f"{spec.call} is not callable")
            return _Recipe(spec, None, fn)
        soul = None
        if spec.soul is not None:
            soul = folder / spec.soul
            if not soul.is_file():
                raise self.locator.error((*where, "soul"), f"no SOUL.md file at {spec.soul} (looked for {soul})")
        return _Recipe(spec, soul)

    def _make(self, name: str, output: Any = _UNSET) -> Agent:
        recipe = self._recipes[name]
        spec = recipe.spec
        if recipe.call is not None:
            if output is not _UNSET:  # a router, a planner...: those decide with a model
                raise self.locator.error(
                    ("agents", name, "call"),
                    f"{name!r} is a Python member: it cannot decide "
                    f"for a pattern (route, hand off, plan, choose); give it a model instead",
                )
            view = self.knowledge.view(name) if self.knowledge is not None else None
            return PythonMember(name, recipe.call, view)  # type: ignore[return-value]
        settings: dict[str, Any] = {k: getattr(spec, k) for k in _SETTINGS if getattr(spec, k) is not None}
        if spec.tools is not None:
            settings["tools"] = [self.tools[t] for t in spec.tools if t in self.tools]
        if output is not _UNSET:
            settings["output"] = output
        elif spec.output is not None:
            settings["output"] = self.outputs[spec.output]
        if spec.budget is not None:
            settings["budget"] = budget_of(spec.budget)
        if self.force_model:
            settings["model"] = None
        settings["prompt"] = crew_prompt
        agent = self._agent(recipe, name, settings)
        if spec.fallbacks:  # made once its answer's type is known (a SOUL.md may name it)
            settings["fallbacks"] = self._fallbacks(name, spec.fallbacks, agent.output)
            agent = self._agent(recipe, name, settings)
        return agent

    def _agent(self, recipe: _Recipe, name: str, settings: dict[str, Any]) -> Agent:
        knowledge = {t.name: t for t in self._knowledge_tools(name)}
        if "tools" in settings:
            settings = {**settings, "tools": [*settings["tools"], *knowledge.values()]}
        if recipe.soul is None:
            agent = Agent(name, **{"tools": list(knowledge.values()), **settings})
        else:  # the crew's name for it wins: one SOUL.md may serve several agents
            toolbox = {**self.tools, **knowledge}  # a SOUL.md may list kb_search
            agent = Agent.from_soul(recipe.soul, toolbox=toolbox, outputs=self.outputs, name=name, **settings)
        agent.tools.update(knowledge)  # all its access gives, whichever of them a SOUL.md lists
        return agent

    def _knowledge_tools(self, name: str) -> list[Tool]:
        if self.knowledge is None:
            return []
        made = self._kb_tools.get(name)
        if made is None:
            made = self._kb_tools[name] = self.knowledge.tools(name)
        return made

    def _fallbacks(self, name: str, entries: Sequence[str], output: Any) -> list[Any]:
        """An agent's ``fallbacks:``: model specs, and other agents made to answer in its form."""
        made: list[Any] = []
        self._making.append(name)
        try:
            for index, entry in enumerate(entries):
                where: Path_ = ("agents", name, "fallbacks", index)
                if entry in self._recipes:
                    made.append(self._alternative(name, entry, output, where))
                elif re.fullmatch(MODEL, entry):
                    if not self.force_model:  # every agent runs on the one model it was given
                        made.append(entry)
                else:
                    raise self.locator.error(
                        where,
                        f"{entry!r} is neither an agent declared under 'agents'{did_you_mean(entry, self._recipes)} "
                        f"nor a model (test, local, openai:<model>, ...)",
                    )
        finally:
            self._making.pop()
        return made

    def _alternative(self, name: str, other: str, output: Any, where: Path_) -> Agent:
        if other in self._making:
            circle = " -> ".join([*self._making[self._making.index(other) :], other])
            raise self.locator.error(where, f"fallbacks go round in a circle: {circle}")
        recipe = self._recipes[other]
        if recipe.call is not None:
            raise self.locator.error(
                where, f"{other!r} is a Python member, not an agent; name it in the flow member's fallbacks instead"
            )
        declared, own = recipe.spec.output, self._recipes[name].spec.output
        if declared is not None and declared != own:
            raise self.locator.error(
                where,
                f"{other!r} answers with {declared}, {name!r} with {own or 'text'}: a fallback answers alike",
            )
        return self._make(other, output=output)


def budget_of(spec: BudgetSpec) -> Budget:
    """The :class:`~podium.Budget` a crew file's ``budget:`` (of an agent, or under ``limits: agents:``) sets."""
    return Budget(**spec.model_dump(exclude_none=True))


def approved(member: Callable[..., Any], *, name: str, prompt: str, answer_type: Any) -> Callable[..., Any]:
    """``member``, whose answer a person approves (it is used), edits (their value is used) or rejects (the step
    fails with an :class:`~podium.errors.AgentError`) before the run goes on.

    The run waits at the question; when it is resumed the step runs again from its start (the agent is asked
    again) and the answer is read from the journal. An approval that carries a value (``podium approve`` sends the
    value the person was shown) makes that value the answer, so what was approved is what is used.
    """
    adapter: TypeAdapter[Any] = TypeAdapter(answer_type if answer_type is not None else str)

    async def member_approved(state: Any, item: Any = None) -> Any:
        answer = await member(state, item)
        review = approve(prompt, value=answer)
        if review.decision == "reject":
            comment = f": {review.comment}" if review.comment else ""
            raise AgentError(f"a person rejected its answer{comment}", agent=name)
        return answer if review.value is None else adapter.validate_python(review.value)

    member_approved.__name__ = name
    return member_approved


def crew_prompt(state: Any, item: Any = None) -> str:
    """What a crew's agent is asked: the task, the conversation so far, and its own part when it has one (or the
    state's own ``__prompt__(item)``, when its type defines one: a board's request and thread)."""
    own = getattr(type(state), "__prompt__", None)
    if own is not None:
        return str(own(state, item))
    lines = [f"Task: {_text(getattr(state, 'task', state))}"]
    turns = getattr(state, "turns", None) or []
    if turns:
        lines += ["", "The conversation so far:"]
        for turn in turns:
            kind = "" if turn.kind == "message" else f" ({turn.kind})"
            lines.append(f"- {turn.speaker}{kind}: {_text(turn.content)}")
    if item is not None:
        lines += ["", f"Your part now: {_text(item)}"]
    return "\n".join(lines)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    try:
        return json.dumps(TypeAdapter(Any).dump_python(value, mode="json"))
    except Exception:
        return repr(value)


def _literal(*values: str) -> Any:
    """``Literal[values]``, made at run time."""
    return Literal[values]
