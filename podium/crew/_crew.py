"""``load_crew``: a crew file (and the SOUL.md files beside it) made into a runnable :class:`Crew`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from podium import Agent, ConfigError, Conversation, Hooks, Limits, Model, RunResult, Tool, Workflow, use_model
from podium.crew import _format as fmt
from podium.crew._flows import FlowBuilder
from podium.crew._imports import ImportFailed, import_object
from podium.crew._knowledge import CrewKnowledge, crew_knowledge
from podium.crew._members import Roster, budget_of
from podium.crew._outline import outline
from podium.crew._triggers import crew_triggers, secret_problems
from podium.crew._yaml import Locator, Path_, did_you_mean, read_yaml
from podium.knowledge import LoadReport

if TYPE_CHECKING:
    from podium.triggers import Trigger

__all__ = ["Crew", "load_crew"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Crew:
    """A loaded crew file.

    Attributes:
        name: the crew's name (its workflow's name in the journal).
        path: the crew file.
        workflow: the flow, ready to run with the task as input (``input="task"``); its output is the result. Its
            state is a ``Conversation``, or a ``Board`` when the flow is a ``board:`` (typed as the former).
        model: the model of agents without one of their own (None: podium's default, or ``use_model``'s).
        store: the store URL the file names, if any.
        limits: the file's limits (also the workflow's default limits), if any.
        agents: the declared agents, by name, as answering agents (routers get a decision schema per use).
        tools: the declared tools, by name.
        outputs: the declared output types, by name.
        events: the declared event types, by name.
        triggers: the triggers that start runs (``podium serve``), by name.
        knowledge: the knowledge base's sources and each agent's access, if the file has a ``knowledge:`` section.
        spec: the validated file.
    """

    name: str
    path: Path
    workflow: Workflow[Conversation]
    model: str | Model | None
    store: str | None
    limits: Limits | None
    agents: Mapping[str, Agent]
    tools: Mapping[str, Tool] = field(default_factory=dict)
    outputs: Mapping[str, type[BaseModel]] = field(default_factory=dict)
    events: Mapping[str, type[BaseModel]] = field(default_factory=dict)
    triggers: Mapping[str, Trigger] = field(default_factory=dict)
    knowledge: CrewKnowledge | None = None
    spec: fmt.CrewSpec

    def summary(self) -> dict[str, Any]:
        """The crew as plain data (``podium validate --json``): its agents, its flow's outline, its steps."""
        agents = {
            name: {
                "role": agent.role,
                "model": _model_name(agent.model),
                "tools": list(agent.tools),
                "output": getattr(agent.output, "__name__", None),
                "soul": self.spec.agents[name].soul,
                "approval": self.spec.agents[name].approval,
                "fallbacks": self.spec.agents[name].fallbacks,
            }
            for name, agent in self.agents.items()
        }
        knowledge = None
        if self.knowledge is not None:
            knowledge = {
                "sources": [
                    {"path": str(s.path), "namespace": s.namespace, "glob": list(s.globs)}
                    for s in self.knowledge.sources
                ],
                "access": {
                    name: {"read": list(a.read), "write": list(a.write)} for name, a in self.knowledge.access.items()
                },
            }
        return {
            "name": self.name,
            "path": str(self.path),
            "model": _model_name(self.model),
            "store": self.store,
            "agents": agents,
            "knowledge": knowledge,
            "flow": self.outline(),
            "steps": self.workflow.step_paths(),
            "events": {name: f"{kind.__module__}:{kind.__qualname__}" for name, kind in self.events.items()},
            "triggers": {name: spec.model_dump(exclude_defaults=True) for name, spec in self.spec.triggers.items()},
        }

    def outline(self) -> list[str]:
        """The flow as indented lines: each pattern with its settings, its members under it."""
        return outline(self.spec.flow)

    def models(self, model: str | Model | None = None) -> contextlib.AbstractContextManager[None]:
        """A context in which agents without a model of their own use ``model`` or else the crew's."""
        chosen = model or self.model
        return use_model(chosen) if chosen is not None else contextlib.nullcontext()

    async def run(
        self,
        task: Any,
        *,
        model: str | Model | None = None,
        store: Any = None,
        hooks: Sequence[Hooks] = (),
        run_id: str | None = None,
    ) -> RunResult[Conversation]:
        """Run the crew on ``task`` (with the crew's model and store unless given); its knowledge sources are loaded
        into the store first (only what changed)."""
        chosen = self.store if store is None else store
        await self.load_knowledge(chosen)
        with self.models(model):
            return await self.workflow.run(task, store=chosen, hooks=hooks, run_id=run_id)

    async def resume(
        self, run_id: str, *, model: str | Model | None = None, store: Any = None, hooks: Sequence[Hooks] = ()
    ) -> RunResult[Conversation]:
        """Resume one of the crew's runs (after a crash, a failure, or once its questions are answered)."""
        chosen = self.store if store is None else store
        await self.load_knowledge(chosen)
        with self.models(model):
            return await self.workflow.resume(run_id, store=chosen, hooks=hooks)

    async def load_knowledge(self, store: Any = None) -> list[LoadReport]:
        """Load the crew's knowledge sources into the knowledge base of ``store`` (a store, a URL, None for the
        default store; False: none), writing only what changed. Nothing to do without a ``knowledge:`` section.

        Raises:
            KnowledgeError: a source's file or folder is gone, or a file is not UTF-8 text.
        """
        from podium.flow._workflow import resolve_store

        resolved = resolve_store(store)
        if self.knowledge is None or resolved is None:
            return []
        return await self.knowledge.load(resolved)

    async def serve(
        self, stop: asyncio.Event, *, model: str | Model | None = None, store: Any = None, **options: Any
    ) -> None:
        """Run the crew's triggers and the runs they start until ``stop`` is set (``podium serve``); ``options``
        go to :func:`podium.triggers.serve` (``concurrency``, ``grace``, ``hooks``, ``observer``...).

        Raises:
            ConfigError: the crew has no triggers, a webhook's secret is not set, a watched folder does not exist,
                or a webhook cannot listen.
        """
        from podium.triggers import serve

        if not self.triggers:
            raise ConfigError(f"crew {self.name!r} has no triggers: add a 'triggers:' section to {self.path}")
        missing = secret_problems(self.spec.triggers)
        if missing:
            raise ConfigError("; ".join(missing))
        with self.models(model):
            await serve(
                self.workflow,
                list(self.triggers.values()),
                stop=stop,
                store=self.store if store is None else store,
                **options,
            )


def _model_name(model: Any) -> str | None:
    return model if isinstance(model, str | None) else str(getattr(model, "name", model))


def load_crew(path: str | Path, *, model: str | Model | None = None) -> Crew:
    """Load and check a crew file, and build its workflow.

    Args:
        model: run every agent on this model, whatever the file says (``podium run --model``, replays).

    Raises:
        CrewFileError: anything wrong with the file or a SOUL.md it names, with file, line, column and field.
    """
    file = Path(path)
    located = read_yaml(file)
    try:
        spec = fmt.CrewSpec.model_validate(located.data)
    except ValidationError as exc:
        raise located.from_validation(exc, describe=lambda error, at: _describe(located, error, at)) from exc
    if spec.flow.name is not None:
        raise located.error(("flow", "name"), f"the crew's flow is named by the crew's name ({spec.name!r})")
    folder = file.parent
    tools = {name: _tool(name, target, folder, located) for name, target in spec.tools.items()}
    outputs = {name: _output(name, target, folder, located) for name, target in spec.outputs.items()}
    events = {name: _output(name, target, folder, located, "events") for name, target in spec.events.items()}
    for name in events.keys() & outputs.keys():
        if events[name] is not outputs[name]:
            raise located.error(("events", name), f"{name!r} is also an output type, another class; rename one")
    knowledge = None
    if spec.knowledge is not None:
        knowledge = crew_knowledge(
            spec.knowledge, crew=spec.name, agents=list(spec.agents), tools=tools, folder=folder, located=located
        )
    roster = Roster(
        spec.agents,
        folder=folder,
        tools=tools,
        outputs={**events, **outputs},  # an agent may answer with an event
        locator=located,
        force_model=model is not None,
        knowledge=knowledge,
    )
    limits = _limits(spec, located)
    workflow = FlowBuilder(roster, located, events).build(spec.flow, ("flow",), spec.name, limits)
    return Crew(
        name=spec.name,
        path=file,
        workflow=workflow,
        model=model if model is not None else spec.model,
        store=spec.store,
        limits=limits,
        agents=roster.agents,
        tools=tools,
        outputs=outputs,
        events=events,
        triggers=crew_triggers(spec.triggers, folder, located),
        knowledge=knowledge,
        spec=spec,
    )


def _tool(name: str, target: str, folder: Path, located: Locator) -> Tool:
    where: Path_ = ("tools", name)
    try:
        found = import_object(target, folder)
    except ImportFailed as exc:
        raise located.error(where, str(exc)) from exc
    if isinstance(found, Tool):
        if found.name == name:
            return found
        return Tool(
            found.fn,
            name=name,
            description=found.description,
            idempotent=found.idempotent,
            compensate=found.compensate,
            reconcile=found.reconcile,
            timeout=found.timeout,
        )
    if callable(found) and not isinstance(found, type):
        try:
            return Tool(found, name=name)
        except Exception as exc:
            raise located.error(where, f"{target} cannot be a tool: {exc}") from exc
    raise located.error(where, f"{target} is a {type(found).__name__}, not a podium Tool or a function")


def _output(name: str, target: str, folder: Path, located: Locator, section: str = "outputs") -> type[BaseModel]:
    where: Path_ = (section, name)
    try:
        found = import_object(target, folder)
    except ImportFailed as exc:
        raise located.error(where, str(exc)) from exc
    if not (isinstance(found, type) and issubclass(found, BaseModel)):
        raise located.error(where, f"{target} is not a pydantic model class")
    return found


def _limits(spec: fmt.CrewSpec, located: Locator) -> Limits | None:
    if spec.limits is None:
        return None
    given = spec.limits.model_dump(exclude_none=True, exclude={"agents", "max_repeats"})
    repeats = spec.limits.max_repeats
    if repeats is not None:
        given["max_repeats"] = None if repeats is False else repeats  # false: off
    budgets = {}
    for name, budget in (spec.limits.agents or {}).items():
        if name not in spec.agents:
            hint = did_you_mean(name, spec.agents)
            raise located.error(("limits", "agents", name), f"no agent {name!r} is declared under 'agents'{hint}")
        budgets[name] = budget_of(budget)
    return Limits(**given, agents=budgets)


def _describe(located: Locator, error: Any, at: Path_) -> tuple[Path_, str] | None:
    """Better messages (and places) than pydantic's for the crew file's own shapes."""
    kind = error["type"]
    if kind == "crew_flow":
        return _flow_problem(located.data_at(at), at)
    if kind == "string_type" and isinstance(error.get("input"), bool):
        return at, f"YAML reads this as {error['input']!r}, not as a word: quote it if you meant the word"
    if kind == "string_pattern_mismatch":
        pattern = (error.get("ctx") or {}).get("pattern", "")
        if pattern == fmt.NAME:
            return at, f"{error['input']!r} is not a name: use letters, digits, '_' and '-', not starting with a digit"
        if pattern == fmt.MODEL:
            return at, (
                f"{error['input']!r} is not a model: use test, local, openai:<model>, ollama:<model>, "
                f"anthropic:<model> or an OpenAI-compatible URL (http://host/v1#<model>)"
            )
        if pattern == fmt.IMPORT:
            return at, f"{error['input']!r} is not an import path: write module:attribute (e.g. tools:publish)"
        if pattern == fmt.HOOK_PATH:
            return at, f"{error['input']!r} is not a path: start it with '/', without spaces, '?' or '#'"
    return None


def _flow_problem(value: Any, at: Path_) -> tuple[Path_, str]:
    patterns = ", ".join(fmt.PATTERNS)
    if not isinstance(value, dict):
        return at, f"a flow is a mapping with one pattern key ({patterns}), not a {type(value).__name__}"
    found = [key for key in value if key in fmt.PATTERNS]
    if len(found) > 1:
        return (*at, found[1]), f"a flow has one pattern, and this one also has {found[0]!r}; nest one in the other"
    unknown = [key for key in value if key != "name"]
    if not unknown:
        return at, f"names no pattern; a flow is a mapping with one of {patterns}"
    return (*at, unknown[0]), f"is not a pattern{did_you_mean(unknown[0], fmt.PATTERNS)}; the patterns are {patterns}"
