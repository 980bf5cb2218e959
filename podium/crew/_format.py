"""The crew file format, as pydantic models: what the loader validates and what ``podium schema`` prints.

Every model forbids unknown keys (a typo is an error with a did-you-mean, not a silently ignored setting). A
flow is a mapping with exactly one pattern key (plus an optional ``name``); wherever a flow expects a member, an
agent's name or another flow mapping (a nested flow) may be given.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    model_validator,
)
from pydantic_core import PydanticCustomError

from podium.crew._yaml import did_you_mean

__all__ = [
    "PATTERNS",
    "AccessSpec",
    "AgentSpec",
    "BoardFlow",
    "BudgetSpec",
    "ChunkingSpec",
    "CrewSpec",
    "DebateFlow",
    "EventsFlow",
    "EventsOptions",
    "Flow",
    "FolderSpec",
    "HandoffFlow",
    "HierarchicalFlow",
    "KnowledgeSpec",
    "LimitsSpec",
    "LoopFlow",
    "Member",
    "MemberSpec",
    "OnErrorSpec",
    "ParallelFlow",
    "PlannerFlow",
    "ScheduleSpec",
    "SequentialFlow",
    "SourceSpec",
    "SupervisorFlow",
    "TeamSpec",
    "TriggerSpec",
    "Until",
    "VoteFlow",
    "WebhookSpec",
    "crew_schema",
    "pattern_of",
]

NAME = r"^[A-Za-z_][A-Za-z0-9_-]*$"
AgentName = Annotated[str, Field(pattern=NAME, description="The name of an agent declared under `agents`.")]
IMPORT = r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$"
ImportPath = Annotated[str, Field(pattern=IMPORT, description="`module:attribute`")]
MODEL = r"^(test|local|https?://\S+|[A-Za-z][\w-]*:\S+)$"
"""A model spec's shape: ``test``, ``local``, ``provider:model`` or an OpenAI-compatible base URL."""
HOOK_PATH = r"^/[^\s?#]*$"
PATTERNS = (
    "sequential",
    "parallel",
    "supervisor",
    "hierarchical",
    "handoff",
    "debate",
    "vote",
    "loop",
    "planner",
    "board",
    "events",
)


class _Spec(BaseModel):
    """A part of the crew file: frozen, and strict about its keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if key not in cls.model_fields:
                    fields = list(cls.model_fields)
                    hint = did_you_mean(str(key), fields)
                    raise PydanticCustomError(
                        "unknown_field",
                        "{message}",
                        {"key": str(key), "message": f"is not a known field{hint}; the fields here are {fields}"},
                    )
        return data


class BudgetSpec(_Spec):
    """What one agent may spend on models in a run (a run that reaches it ends `limited`)."""

    max_tokens: int | None = Field(default=None, gt=0, description="Model tokens (in and out) of its calls.")
    max_cost_usd: float | None = Field(default=None, gt=0, description="US dollars of its model calls.")
    max_model_calls: int | None = Field(default=None, gt=0, description="Its model calls.")


class LimitsSpec(_Spec):
    """Bounds of every run of the crew (a run that reaches one ends `limited`)."""

    max_steps: int | None = Field(default=None, gt=0, description="Step executions in a run (default 1000).")
    max_iterations: int | None = Field(
        default=None, gt=0, description="Supersteps any one step may run in (default 100)."
    )
    max_seconds: float | None = Field(default=None, gt=0, description="Wall-clock seconds of a run (default 3600).")
    max_tokens: int | None = Field(default=None, gt=0, description="Model tokens (in and out) of a run.")
    max_cost_usd: float | None = Field(default=None, gt=0, description="US dollars of model calls in a run.")
    max_model_calls: int | None = Field(default=None, gt=0, description="Model calls in a run.")
    max_repeats: Annotated[int, Field(ge=0)] | Literal[False] | None = Field(
        default=None,
        description="How many times a step may run again on a state it already ran on before the run ends "
        "`limited` with no progress (default 2); `false` turns the check off.",
    )
    agents: dict[AgentName, BudgetSpec] | None = Field(
        default=None, description="Budgets of agents by name, for all their model calls in a run."
    )


class AgentSpec(_Spec):
    """An agent: a SOUL.md file, fields given here, or both (fields here override the file's)."""

    soul: str | None = Field(default=None, description="Path of a SOUL.md file, relative to the crew file.")
    role: str | None = Field(default=None, description="Who it is (`Senior writer`).")
    goal: str | None = Field(default=None, description="What it is for.")
    backstory: str | None = Field(default=None, description="Context that shapes how it works.")
    instructions: str | None = Field(default=None, description="The prose of its persona (a SOUL.md body).")
    rules: list[str] | None = Field(default=None, description="Short rules listed in its system prompt.")
    model: str | None = Field(default=None, pattern=MODEL, description="Its own model; otherwise the crew's `model`.")
    tools: list[str] | None = Field(default=None, description="Names of tools (declared under `tools`) it may call.")
    output: str | None = Field(default=None, description="Name of its answer's type (declared under `outputs`).")
    max_reasks: int | None = Field(default=None, ge=0, le=10, description="Re-asks when an answer does not fit.")
    max_turns: int | None = Field(default=None, ge=1, le=100, description="Model calls allowed in one task.")
    temperature: float | None = Field(default=None, ge=0.0, le=2.0, description="Sampling temperature.")
    budget: BudgetSpec | None = Field(default=None, description="What it may spend on models in a run.")
    approval: str | None = Field(
        default=None,
        description="Ask a person this question (`Publish this?`) with the agent's answer before it is used: the "
        "run waits; approve, edit or reject it with `podium approve|reject`. A rejection fails the step.",
    )
    call: str | None = Field(
        default=None,
        description="`module:function`: a plain Python member instead of a model-driven agent (DESIGN: an agent is "
        "anything that takes a message and returns a result). It is called like any step, with the conversation "
        "(and an item, if it takes one); what it returns is its answer. Only `approval` may go with it.",
    )
    fallbacks: list[str] | None = Field(
        default=None,
        description="Alternatives, in order: model specs (`openai:gpt-4.1-mini`), asked when a call to its model "
        "fails for good; and names of other agents, given its whole task when it fails for good (its answer never "
        "fits, it runs out of turns, or every model failed). A fallback agent answers in its place and form.",
    )


def _member_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "agent"
    if isinstance(value, dict):
        return "member" if "agent" in value else "flow"
    if isinstance(value, MemberSpec):
        return "member"
    if isinstance(value, BaseModel):
        return "flow"
    return None


class OnErrorSpec(_Spec):
    """What a member's failure becomes once its fallbacks failed too: one of `escalate` or `goto`."""

    escalate: str | None = Field(
        default=None,
        description="Ask a person this (the step, the error's type and message are added); the run waits, and "
        "their answer is the member's answer (`podium approve RUN --value JSON`). `podium approve RUN` without a "
        "value runs the member again; `podium reject RUN` lets it fail. On resume the member runs once more first.",
    )
    goto: str | None = Field(
        default=None,
        pattern=NAME,
        description="Run this other member of the same pattern instead of going on (its part is the failure: "
        "which step, the error's type and message); the failed member's successors are skipped.",
    )

    @model_validator(mode="after")
    def _one_of(self) -> OnErrorSpec:
        if (self.escalate is None) == (self.goto is None):
            raise PydanticCustomError("on_error_one", "give one of 'escalate' or 'goto'")
        return self


class MemberSpec(_Spec):
    """A member with what to do when it fails: ``{agent: writer, fallbacks: [backup], on_error: {escalate: ...}}``."""

    agent: AgentName = Field(description="The agent (declared under `agents`).")
    fallbacks: list[AgentName] | None = Field(
        default=None,
        description="Members that take its part, in order, when it fails for good (after the agent's own "
        "fallbacks and approval); each answers in its place.",
    )
    on_error: OnErrorSpec | None = Field(
        default=None, description="When it (and its fallbacks) failed: escalate to a person, or go to another member."
    )


def pattern_of(value: Any) -> str | None:
    """The pattern key of a flow (a mapping or a validated flow), or None when it has none or several."""
    if isinstance(value, BaseModel):
        return next((p for p in PATTERNS if getattr(value, p, None) is not None), None)
    if not isinstance(value, dict):
        return None
    found = [key for key in value if key in PATTERNS]
    return found[0] if len(found) == 1 else None


Member = Annotated[
    Annotated[AgentName, Tag("agent")] | Annotated[MemberSpec, Tag("member")] | Annotated["Flow", Tag("flow")],
    Discriminator(
        _member_kind,
        custom_error_type="crew_member",
        custom_error_message="must be an agent's name, an agent with options ({agent: a, on_error: ...}) or a flow "
        "mapping (e.g. {sequential: [a, b]})",
    ),
]
"""An agent's name, an agent with its failure handling, or an inline flow run as a sub-workflow."""


class _Flow(_Spec):
    name: str | None = Field(
        default=None,
        pattern=NAME,
        description="The (sub-)workflow's name; a nested flow defaults to its pattern's name.",
    )


class SequentialFlow(_Flow):
    """Members one after another; each sees the conversation so far; the result is the last answer."""

    sequential: list[Member] = Field(min_length=1)


class ParallelOptions(_Spec):
    branches: list[Member] = Field(min_length=1, description="Members that answer at once.")
    merge: Member | None = Field(
        default=None,
        description="Reads every branch's answer; its answer is the result. Without it, the result is the list of "
        "the branches' answers.",
    )
    on_branch_failure: Literal["cancel", "finish"] = Field(
        default="cancel", description="When a branch fails, cancel the others at once or let them finish first."
    )


class ParallelFlow(_Flow):
    """Fan out to branches at once, then merge."""

    parallel: ParallelOptions


class SupervisorOptions(_Spec):
    router: AgentName = Field(description="Picks the next worker (or `done`) after each answer.")
    workers: list[Member] = Field(min_length=1)
    max_rounds: int = Field(default=10, ge=1, description="Dispatches allowed before the router must be done.")
    on_max: Literal["limit", "stop"] = Field(
        default="limit",
        description="When the router is not done after `max_rounds`: end `limited`, or `stop` with the last answer.",
    )


class SupervisorFlow(_Flow):
    """A router agent picks the next worker, with an instruction, until it says it is done."""

    supervisor: SupervisorOptions


class TeamSpec(_Spec):
    """A team of a hierarchy: a router over its workers."""

    router: AgentName
    workers: list[Member] = Field(min_length=1)


def _team_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        return "team" if "router" in value or "workers" in value else "flow"
    return None


Team = Annotated[
    Annotated[TeamSpec, Tag("team")] | Annotated["Flow", Tag("flow")],
    Discriminator(
        _team_kind,
        custom_error_type="crew_team",
        custom_error_message="must be a team ({router: name, workers: [...]}) or a flow mapping",
    ),
]


class HierarchicalOptions(_Spec):
    lead: AgentName = Field(description="Routes to the teams.")
    teams: dict[Annotated[str, Field(pattern=NAME)], Team] = Field(min_length=1)
    max_rounds: int = Field(default=10, ge=1)


class HierarchicalFlow(_Flow):
    """Supervisors of supervisors: a lead routes to teams, each a router over its workers."""

    hierarchical: HierarchicalOptions


class HandoffOptions(_Spec):
    start: AgentName = Field(description="Who gets the task first.")
    agents: list[AgentName] = Field(min_length=1, description="Each either answers or hands off to another.")
    max_handoffs: int = Field(default=10, ge=1)


class HandoffFlow(_Flow):
    """An agent answers, or hands the task (with a note) to another."""

    handoff: HandoffOptions


class DebateOptions(_Spec):
    debaters: list[Member] = Field(min_length=2)
    judge: Member
    rounds: int = Field(default=2, ge=1)


class DebateFlow(_Flow):
    """Debaters answer each other for some rounds; a judge decides."""

    debate: DebateOptions


class VoteOptions(_Spec):
    voters: list[Member] = Field(min_length=1)
    rule: Literal["majority", "plurality", "unanimous", "quorum", "weighted"] = "majority"
    quorum: int | None = Field(default=None, ge=1, description="Votes needed, for rule `quorum`.")
    weights: dict[str, float] | None = Field(default=None, description="Voter → weight, for rule `weighted`.")
    options: list[str] | None = Field(
        default=None,
        min_length=1,
        description="The choices: voting agents (and the judge) then answer {choice, reason} with one of them.",
    )
    judge: AgentName | None = Field(default=None, description="Breaks a tie or a missing majority.")


class VoteFlow(_Flow):
    """Every voter answers at once; a rule combines the ballots into a tally (the result)."""

    vote: VoteOptions


class Until(_Spec):
    """Stop the loop when ``agent``'s latest answer has a truthy ``field``."""

    agent: AgentName
    field: str


class LoopOptions(_Spec):
    body: list[Member] = Field(min_length=1, description="The members of one round, in order.")
    max_iterations: int = Field(ge=1, description="The most rounds.")
    until: Until | None = None
    on_max: Literal["stop", "limit"] = Field(
        default="stop", description="At max_iterations: complete with the last answer, or end `limited`."
    )


class LoopFlow(_Flow):
    """Run the body again and again until a condition or the maximum; the result is the last answer."""

    loop: LoopOptions


class PlannerOptions(_Spec):
    plan: AgentName = Field(description="Answers with the list of subtasks.")
    worker: Member = Field(description="Runs once per subtask, all at once.")
    synthesize: Member = Field(description="Reads the subtasks' answers; its answer is the result.")
    max_subtasks: int = Field(default=20, ge=1)
    on_subtask_failure: Literal["fail", "skip"] = "fail"


class PlannerFlow(_Flow):
    """Plan, run one worker per subtask at once, synthesize."""

    planner: PlannerOptions


class BoardOptions(_Spec):
    members: list[Member] = Field(
        min_length=1, description="Who may be mentioned (`@name`); each answers the messages that mention it."
    )
    opener: AgentName | None = Field(
        default=None, description="The member an opening message (the run's input) that mentions no one goes to."
    )
    max_mentions: int = Field(default=5, ge=1, description="The most members one message reaches (the rest: a notice).")
    max_depth: int = Field(
        default=8, ge=1, description="The deepest a reply chain may grow before the run is `limited`."
    )
    max_messages: int = Field(
        default=50, ge=1, description="The most messages on the board before the run is `limited`."
    )
    max_exchanges: int = Field(
        default=6, ge=2, description="The most messages in a row two members may address to each other (ping-pong)."
    )
    on_failure: Literal["fail", "notice"] = Field(
        default="fail", description="A member that fails: fail the run, or post a notice to whoever asked and go on."
    )


class BoardFlow(_Flow):
    """A message board: a message that mentions `@member` asks it; its answer is posted back as a reply."""

    board: BoardOptions


class EventsOptions(_Spec):
    start: str = Field(
        pattern=NAME,
        description="The event the run begins with (a name under `events`): the run's input, a JSON object or "
        "JSON text, is validated into it.",
    )
    on: dict[Annotated[str, Field(pattern=NAME)], list[Member]] = Field(
        min_length=1,
        description="Event name (under `events`) → the agents that react to it, each given the event as its part. "
        "An answer that is one of the declared events is emitted in turn and wakes that event's agents.",
    )


class EventsFlow(_Flow):
    """Agents subscribe to typed events and react; an answer that is an event wakes the next ones. The run ends
    when no event is left; the result is the last answer."""

    events: EventsOptions


Flow = Annotated[
    Annotated[SequentialFlow, Tag("sequential")]
    | Annotated[ParallelFlow, Tag("parallel")]
    | Annotated[SupervisorFlow, Tag("supervisor")]
    | Annotated[HierarchicalFlow, Tag("hierarchical")]
    | Annotated[HandoffFlow, Tag("handoff")]
    | Annotated[DebateFlow, Tag("debate")]
    | Annotated[VoteFlow, Tag("vote")]
    | Annotated[LoopFlow, Tag("loop")]
    | Annotated[PlannerFlow, Tag("planner")]
    | Annotated[BoardFlow, Tag("board")]
    | Annotated[EventsFlow, Tag("events")],
    Discriminator(
        pattern_of,
        custom_error_type="crew_flow",
        custom_error_message="a flow is a mapping with one pattern key",
    ),
]
"""How the agents work together: a mapping with one pattern key."""


class ScheduleSpec(_Spec):
    """Start a run each time a cron expression is due; the payload is `{trigger, due, cron}` (`due`: local ISO)."""

    cron: str = Field(description="Five fields (`*/5 * * * *`, `0 7 * * MON-FRI`) or `@hourly`, `@daily`...")
    timezone: str = Field(default="UTC", description="The IANA zone whose wall clock the fields follow.")
    catch_up: float = Field(
        default=0,
        ge=0,
        description="At start, fire once for the latest due time missed at most this many seconds ago (0: never).",
    )


class FolderSpec(_Spec):
    """Start a run for each file in a folder once it is complete; the payload is `{path, name, size, sha256}`."""

    path: str = Field(description="The folder, relative to the crew file; it must exist when serving starts.")
    pattern: str = Field(
        default="*", description="A glob for file names (`*.pdf`); names starting with `.` are skipped."
    )
    recursive: bool = Field(default=False, description="Also look in subfolders.")
    settle: float = Field(default=2.0, ge=0, description="Seconds a file must stay unchanged before it counts.")
    poll: float = Field(default=1.0, gt=0, description="Seconds between looks at the folder.")


class WebhookSpec(_Spec):
    """Start a run for each JSON document POSTed to a path; the payload is the body."""

    path: str = Field(pattern=HOOK_PATH, description="Where it is served (`/hooks/tickets`).")
    host: str = Field(default="127.0.0.1", description="The address to bind (this machine only by default).")
    port: int = Field(default=8080, ge=0, le=65535, description="The port (0: any free one, shown when serving).")
    secret_env: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="An environment variable holding a shared secret that requests must send in `secret_header`.",
    )
    secret_header: str = Field(default="X-Podium-Secret", description="The header that carries the secret.")
    max_body: int = Field(default=1 << 20, ge=1, description="The largest body accepted, in bytes.")


class TriggerSpec(_Spec):
    """Something outside a run that starts one: one of `schedule`, `folder` or `webhook`, and optionally `input`."""

    schedule: ScheduleSpec | None = None
    folder: FolderSpec | None = None
    webhook: WebhookSpec | None = None
    input: str | None = Field(
        default=None,
        description="The run's task, a template filled with the payload's fields (`New file: {name}`); without "
        "it the payload itself is the task.",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> TriggerSpec:
        if sum(kind is not None for kind in (self.schedule, self.folder, self.webhook)) != 1:
            raise PydanticCustomError("trigger_kind", "give exactly one of 'schedule', 'folder' or 'webhook'")
        return self


class ChunkingSpec(_Spec):
    """How source files are split into chunks: by headings, then paragraphs, within a size, with some overlap."""

    max_chars: int = Field(default=1200, ge=100, description="The most characters in one chunk.")
    overlap: int = Field(
        default=150, ge=0, description="Characters of a chunk repeated at the start of the next (at most half)."
    )


class SourceSpec(_Spec):
    """A file, or a folder's files, loaded into the knowledge base (one document per file, chunked). Loading again
    changes nothing unless a file changed; a file gone from a folder is removed."""

    path: str = Field(description="A file or folder, relative to the crew file.")
    glob: str | list[str] | None = Field(
        default=None,
        description="Which files of a folder (`**/` descends into sub-folders); default `**/*.md` and `**/*.txt`.",
    )
    namespace: str = Field(
        default="crew",
        description="Where the documents go: `crew` (the crew's namespace, the default) or `agent:<name>`.",
    )
    chunking: ChunkingSpec | None = Field(default=None, description="How this source's files are split.")


class AccessSpec(_Spec):
    """What one agent may do with the knowledge base. Entries: `crew`, `run` (the run it works in), `agent` (its
    own notes), `kind:name` (`agent:researcher`) or `kind:*` (`run:*`). Writing a namespace implies reading it."""

    read: list[str] = Field(default_factory=list, description="Namespaces it may search and read.")
    write: list[str] = Field(default_factory=list, description="Namespaces it may write (and read).")


class KnowledgeSpec(_Spec):
    """The shared knowledge base, kept in the run's store: sources to load, and who may read and write what."""

    sources: list[SourceSpec] = Field(
        default_factory=list, description="Files and folders loaded before a run starts (only what changed)."
    )
    access: dict[AgentName, AccessSpec] = Field(
        default_factory=dict,
        description="Agent name → what it may read and write. Each agent named here gets the tools kb_search and "
        "kb_read (and kb_write if it may write); a Python member (`call:`) gets `podium.knowledge.current()`.",
    )
    search: Literal["keyword", "semantic", "hybrid"] | None = Field(
        default=None, description="How the tools search: default hybrid with an embedder, else keyword."
    )
    limit: int = Field(default=5, ge=1, le=20, description="Passages a search returns unless the agent asks.")
    chunking: ChunkingSpec | None = Field(default=None, description="How source files are split, by default.")
    embedder: ImportPath | None = Field(
        default=None,
        description="`module:attribute` of an embedder (or a function that makes one) for semantic search: an "
        "object with `name`, `dimensions` and `embed(texts)`.",
    )


class CrewSpec(_Spec):
    """A podium crew file: agents, and how they work together."""

    model_config = ConfigDict(title="podium crew file", extra="forbid", frozen=True)

    name: str = Field(
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$",
        description="The crew's name: the workflow's name in the journal, `podium runs` and `resume`.",
    )
    description: str | None = Field(default=None, description="What the crew does.")
    model: str | None = Field(
        default=None,
        pattern=MODEL,
        description="The model of agents without one: test, local, openai:<model>, ollama:<model>, "
        "anthropic:<model>, or an OpenAI-compatible URL (http://host/v1#model).",
    )
    store: str | None = Field(
        default=None, description="Where runs are journaled (sqlite:///path.db, postgresql://..., memory://)."
    )
    limits: LimitsSpec | None = Field(default=None, description="Bounds of every run (the runtime's defaults else).")
    tools: dict[Annotated[str, Field(pattern=NAME)], ImportPath] = Field(
        default_factory=dict,
        description="Tool name → `module:attribute` of a podium Tool or a plain function (made a tool).",
    )
    outputs: dict[Annotated[str, Field(pattern=NAME)], ImportPath] = Field(
        default_factory=dict, description="Type name → `module:Class` of a pydantic model."
    )
    events: dict[Annotated[str, Field(pattern=NAME)], ImportPath] = Field(
        default_factory=dict,
        description="Event name → `module:Class` of a pydantic model, for `events` flows; agents may answer with "
        "one (`output: <event>`).",
    )
    knowledge: KnowledgeSpec | None = Field(
        default=None, description="The shared knowledge base: sources to load, and each agent's access."
    )
    agents: dict[Annotated[str, Field(pattern=NAME)], AgentSpec] = Field(
        min_length=1, description="Agent name → its settings."
    )
    flow: Flow = Field(
        description="How the agents work together: a mapping with one pattern key (sequential, parallel, supervisor, "
        "hierarchical, handoff, debate, vote, loop, planner, board, events); members are agent names or nested flows."
    )
    triggers: dict[Annotated[str, Field(pattern=NAME)], TriggerSpec] = Field(
        default_factory=dict,
        description="Trigger name → a schedule, watched folder or webhook that starts runs (`podium serve`); an "
        "event that is seen twice starts one run.",
    )


_RECURSIVE: tuple[type[BaseModel], ...] = (
    SequentialFlow,
    ParallelOptions,
    SupervisorOptions,
    TeamSpec,
    HierarchicalOptions,
    DebateOptions,
    VoteOptions,
    LoopOptions,
    PlannerOptions,
    BoardOptions,
    EventsOptions,
    CrewSpec,
)
for _model in _RECURSIVE:  # they refer to Flow, defined after them
    _model.model_rebuild()


def crew_schema() -> dict[str, Any]:
    """The JSON Schema of crew files (what ``podium schema`` prints)."""
    schema = CrewSpec.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
