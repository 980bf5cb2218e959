"""Real workflows of LLM agents for the fault-injection suite and ``bench.faults``, and how their runs are judged.

Four shapes, each made of :class:`~podium.Agent` s on whatever model they are given (the flaky server's, in the
suite): one agent step, a sequential pipeline (with a tool), a parallel fan-out with a merge, and a supervisor team.
A run must end ``completed`` with an output of the right type, or ``failed`` with a *classified* error (a model's
transient or permanent error, or an agent's answer that never fit): anything else is a bug. :func:`audit` reads
what the journal says happened, for comparison with what the server says it did.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel

from podium import (
    END,
    START,
    Agent,
    AgentError,
    AgentOutputError,
    Conversation,
    Done,
    Graph,
    Hooks,
    ModelPermanentError,
    ModelTransientError,
    RetryPolicy,
    RunResult,
    RunStatus,
    StepError,
    Store,
    Workflow,
    parallel,
    reducers,
    sequential,
    step,
    supervisor,
    tool,
)
from podium.journal import BreakerChanged, ModelCalled, ModelFailed, StepFailed
from podium.models import Model
from tests.faults.answers import Chat

__all__ = [
    "CLASSIFIED",
    "SHAPES",
    "Answers",
    "Audit",
    "Crew",
    "Shape",
    "TokenCounter",
    "always_a_tool_call",
    "audit",
    "group",
    "lookup",
    "outcome",
    "race",
    "root_cause",
    "run_all",
]

CLASSIFIED: tuple[type[BaseException], ...] = (ModelTransientError, ModelPermanentError, AgentOutputError, AgentError)
"""What a run may fail with: anything else reaching a run's error is an unclassified crash."""


# -- the agents' contracts -------------------------------------------------------------------------------------


class Summary(BaseModel):
    title: str
    points: list[str]


class Notes(BaseModel):
    facts: list[str]


class Draft(BaseModel):
    title: str
    body: str


class Finding(BaseModel):
    angle: str
    claim: str


class Report(BaseModel):
    headline: str
    findings: list[str]


class Decision(BaseModel):
    next: Literal["researcher", "writer", "done"]
    instruction: str = ""


class Job(BaseModel):
    topic: str = ""
    summary: Summary | None = None


class Post(BaseModel):
    topic: str = ""
    notes: Notes | None = None
    draft: Draft | None = None
    final: Draft | None = None


class Study(BaseModel):
    topic: str = ""
    findings: Annotated[list[Finding], reducers.append] = []
    report: Report | None = None


@tool(idempotent=True)
def search_notes(query: str) -> list[str]:
    """Search the team's notes.

    Args:
        query: words to look for.
    """
    return [f"a note about {query}", "another note"]


# -- the workflows --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Crew:
    """How every agent of a workflow is made: its model, retries, fallbacks and re-asks."""

    model: Model
    retry: RetryPolicy | None
    fallbacks: tuple[Model, ...] = ()
    max_reasks: int = 1

    def agent(self, name: str, output: Any, **options: Any) -> Agent:
        settings: dict[str, Any] = {"max_reasks": self.max_reasks, **options}
        return Agent(
            name,
            role=name.capitalize(),
            model=self.model,
            output=output,
            retry=self.retry,
            fallbacks=self.fallbacks,
            **settings,
        )


@dataclass(frozen=True, kw_only=True)
class Shape:
    """A workflow, the input of its run number ``n``, and what a completed run's output must be."""

    name: str
    workflow: Workflow[Any]
    input: Callable[[int], Any]
    output: type[Any]


def agent_step(crew: Crew) -> Shape:
    """One agent, no second chance for an answer that does not fit (``max_reasks=0``)."""
    graph = Graph(Job, name="agent_step")
    graph.add(crew.agent("summarizer", Summary, max_reasks=0), name="summarizer", into="summary")
    graph.chain(START, "summarizer", END)
    return Shape(
        name="agent_step",
        workflow=graph.build(output="summary"),
        input=lambda n: {"topic": f"tidal power, part {n}"},
        output=Summary,
    )


def pipeline(crew: Crew) -> Shape:
    """researcher (with a tool) → writer → editor."""
    workflow = sequential(
        step(crew.agent("researcher", Notes, tools=[search_notes]), into="notes"),
        step(crew.agent("writer", Draft), into="draft"),
        step(crew.agent("editor", Draft), into="final"),
        state=Post,
        name="pipeline",
        output="final",
    )
    return Shape(name="pipeline", workflow=workflow, input=lambda n: {"topic": f"wind farms, part {n}"}, output=Draft)


def fan_out(crew: Crew) -> Shape:
    """Three analysts at once, then a reporter; a failing analyst lets the others finish (no call is cancelled,
    so every request the server answered reaches the journal)."""
    analysts = [step(crew.agent(name, Finding), into="findings") for name in ("market", "competitor", "data")]
    workflow = parallel(
        *analysts,
        merge=step(crew.agent("reporter", Report), into="report"),
        state=Study,
        name="fan_out",
        output="report",
        on_branch_failure="finish",
    )
    return Shape(name="fan_out", workflow=workflow, input=lambda n: {"topic": f"heat pumps, part {n}"}, output=Report)


def team(crew: Crew) -> Shape:
    """A lead routes to a researcher and a writer until it says done (the server's answers visit each once)."""
    lead = crew.agent("lead", Decision)

    async def route(state: Conversation) -> Any:
        decision = await lead(state)
        return Done() if decision.next == "done" else decision.next

    route.__name__ = "lead"
    workers = [crew.agent("researcher", Notes), crew.agent("writer", Draft)]
    workflow = supervisor(route, workers, name="team", max_rounds=4)
    return Shape(name="team", workflow=workflow, input=lambda n: f"solar roofs, part {n}", output=Draft)


class Answers(BaseModel):
    answers: Annotated[list[str], reducers.append] = []


@tool
def lookup(query: str) -> str:
    """Look something up.

    Args:
        query: what to look up.
    """
    return f"nothing about {query}"


def always_a_tool_call(chat: Chat) -> dict[str, Any]:
    """A flaky server's answer for agents that never stop: every answer is another call of ``lookup``."""
    arguments = json.dumps({"query": f"round {chat.tool_results}"})
    function = {"name": "lookup", "arguments": arguments}
    return {
        "content": None,
        "tool_calls": [{"id": f"call_{chat.tool_results}", "type": "function", "function": function}],
    }


def race(model: Model, branches: int, retry: RetryPolicy | None) -> Workflow[Answers]:
    """``branches`` agents in parallel, each calling ``lookup`` for as long as its model asks it to (with
    :func:`always_a_tool_call`: until a budget stops the run)."""
    agents = [
        step(Agent(f"a{n}", role="Analyst", model=model, tools=[lookup], max_turns=10_000, retry=retry), into="answers")
        for n in range(branches)
    ]
    return parallel(*agents, state=Answers, name="race")


SHAPES: dict[str, Callable[[Crew], Shape]] = {
    "agent_step": agent_step,
    "pipeline": pipeline,
    "fan_out": fan_out,
    "team": team,
}


# -- running and judging ----------------------------------------------------------------------------------------


class TokenCounter(Hooks):
    """A hook that listens to streamed tokens: with it, agents ask their model to stream."""

    def __init__(self) -> None:
        self.tokens = 0

    def on_token(self, *, run_id: str, step: str, agent: str, text: str) -> None:
        self.tokens += 1


async def run_all(
    jobs: Iterable[tuple[Shape, int, bool]],
    store: Store,
    *,
    concurrency: int = 8,
    deadline: float = 60.0,
    on_start: Callable[[int], None] | None = None,
) -> list[tuple[Shape, RunResult[Any] | None]]:
    """Run ``(shape, n, streamed)`` jobs, ``concurrency`` at a time, journaled in ``store``. A run still going
    after ``deadline`` seconds is cancelled and reported as None: a hang. ``on_start(i)`` is called as the i-th job
    (from 0, in the order given) starts."""
    gate = asyncio.Semaphore(concurrency)
    started = 0

    async def one(shape: Shape, n: int, streamed: bool) -> tuple[Shape, RunResult[Any] | None]:
        nonlocal started
        async with gate:
            if on_start is not None:
                on_start(started)
            started += 1
            hooks = [TokenCounter()] if streamed else []
            try:
                result = await asyncio.wait_for(shape.workflow.run(shape.input(n), store=store, hooks=hooks), deadline)
            except TimeoutError:
                return shape, None
            return shape, result

    return list(await asyncio.gather(*(one(*job) for job in jobs)))


def root_cause(error: BaseException) -> BaseException:
    """The error under podium's step errors (a sub-workflow's step error wraps its own step's)."""
    current = error
    while isinstance(current, StepError) and current.__cause__ is not None:
        current = current.__cause__
    return current


def outcome(result: RunResult[Any] | None, output: type[Any] | None = None) -> str:
    """``completed``, ``failed:<error class>``, ``limited:<limit>``, or what went wrong: ``hung``,
    ``unclassified:<error class>``, ``invalid-output``."""
    if result is None:
        return "hung"
    if result.status is RunStatus.COMPLETED:
        return "completed" if output is None or isinstance(result.output, output) else "invalid-output"
    if result.status is RunStatus.LIMITED:
        return f"limited:{result.limit}"
    if result.status is RunStatus.FAILED and result.error is not None:
        cause = root_cause(result.error)
        name = type(cause).__name__
        return f"failed:{name}" if isinstance(cause, CLASSIFIED) else f"unclassified:{name}"
    return result.status.value


def group(message: str) -> str:
    """What kind of failure a ``model_failed`` message reports, grouped as :func:`tests.faults.plan.observed`
    groups the server's faults."""
    if "circuit breaker is open" in message:
        return "breaker-open"
    if "malformed response" in message or "stream ended before" in message or "error in the stream" in message:
        return "malformed"
    if "no answer within" in message:
        return "timeout"
    if "connection failed" in message:
        return "connection"
    status = re.search(r"\(HTTP (\d{3})\)", message)
    return f"http-{status.group(1)}" if status else "other"


@dataclass
class Audit:
    """What the journal of some runs says about the model calls.

    Attributes:
        failed: failed attempts that reached a model (``model_failed``, attempt 1 and up), by model and :func:`group`.
        skipped: calls not made because the model's breaker was open (``model_failed`` attempt 0), by model.
        retries: failed attempts that were tried again.
        called: answered calls (``model_called``), by model.
        breaker: every ``breaker_changed``: (model, state), in journal order.
        step_failures: the error types of the steps that failed for good (``step_failed``, not handled).
        waits: for each retried 429 whose server asked for a wait, (the wait asked for in s, the wait journaled).
    """

    failed: dict[str, Counter[str]] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    called: Counter[str] = field(default_factory=Counter)
    breaker: list[tuple[str, str]] = field(default_factory=list)
    step_failures: Counter[str] = field(default_factory=Counter)
    waits: list[tuple[float, float]] = field(default_factory=list)


async def audit(store: Store, run_ids: Sequence[str]) -> Audit:
    """Read the runs' journals."""
    found = Audit()
    for run_id in run_ids:
        for entry in await store.read(run_id):
            event = entry.event
            if isinstance(event, ModelFailed):
                if event.attempt == 0:
                    found.skipped[event.model] += 1
                else:
                    found.failed.setdefault(event.model, Counter())[group(event.message)] += 1
                if event.retry_in is not None:
                    found.retries += 1
                    asked = re.search(r"try again in (\d+)ms", event.message)
                    if asked:
                        found.waits.append((int(asked.group(1)) / 1000, event.retry_in))
            elif isinstance(event, ModelCalled):
                found.called[event.model] += 1
            elif isinstance(event, BreakerChanged):
                found.breaker.append((event.model, event.state))
            elif isinstance(event, StepFailed) and not event.handled and event.retry_in is None:
                found.step_failures[event.error_type] += 1
    return found
