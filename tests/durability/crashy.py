"""Workflow shapes for the durability tests, and a program that runs one of them so that a test can SIGKILL it.

::

    python -m tests.durability.crashy SHAPE DB_PATH RUN_ID LOG_PATH (start|resume)

``start`` runs the shape as a new run ``RUN_ID`` journaled in the SQLite file ``DB_PATH``; ``resume`` resumes that
run from its journal. Either way the program writes :data:`READY` to stderr just before it calls podium (and, if
``$PODIUM_CRASHY_WAIT`` is set, waits for a line on stdin: the test times its kill from there rather than from
interpreter start-up), then prints one JSON line to stdout
(``status``, the final ``state`` as JSON, ``elapsed`` seconds inside podium, ``pid``) and exits 0. A resume that
podium refuses prints ``{"status": "not_found"}`` or ``{"status": "refused", "reason": ...}`` instead.

Every leaf step sleeps a small amount derived from its step path and task id (1-15 ms, or 1-3 ms for the ``loop``
shape, so that many kills land while the journal is being written), then appends exactly one line
``"<pid> <step path> <task id>\\n"`` to ``LOG_PATH`` with a single ``O_APPEND`` write as the *last* thing its body
does before returning. A line therefore means "one execution of this task ran its body to the end, in this
process". Updates depend only on the state and the item, never on timing, so every shape has exactly one correct
final state.

The module is also imported by the in-process tests, which steer it through :data:`PROBE`: where a step raises
:class:`Crash` (a ``BaseException``, so podium does not turn it into a failed step and it leaves ``run()`` like a
crash would) or :class:`StepBoom` (an ordinary failure).

Classes are defined at module level so the journal's codec can import them again: when run with ``-m``, the
program imports itself under its real name (``tests.durability.crashy``) and uses that module's shapes, so what
it journals names ``tests.durability.crashy:...`` rather than ``__main__:...``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel

import podium
from podium import (
    END,
    START,
    Conversation,
    Graph,
    JournalOptions,
    RunNotFoundError,
    RunStateError,
    Send,
    SQLiteStore,
    StepContext,
    StepSpec,
    Workflow,
    event_driven,
    loop,
    planner,
    reducers,
    sequential,
    step,
)

__all__ = [
    "GO_ENV",
    "PROBE",
    "READY",
    "SHAPES",
    "Crash",
    "CrashPoint",
    "LogLine",
    "Probe",
    "Shape",
    "StepBoom",
    "read_log",
]

READY = "crashy: ready"
"""Written to stderr (one line) just before podium is called."""
GO_ENV = "PODIUM_CRASHY_WAIT"
"""When this environment variable is set, the program waits for a line on stdin after :data:`READY`."""

T = TypeVar("T")


# -- instrumentation ------------------------------------------------------------------------------------------


class Crash(BaseException):
    """A simulated crash. Not an ``Exception``: podium catches those and fails the step, this one leaves ``run()``."""


class StepBoom(Exception):
    """An ordinary step failure: the run ends ``failed``."""


@dataclass(frozen=True, slots=True)
class CrashPoint:
    """Raise :class:`Crash` in task ``task_id``: in the middle of its body, or after its body logged its line."""

    task_id: str
    after_body: bool = False


@dataclass(slots=True)
class Probe:
    """What the steps do besides their work (set by the program from its arguments, or by in-process tests).

    Attributes:
        log_path: where each body appends its line; None writes nothing.
        crash: the next simulated crash (one shot: cleared when it fires).
        fail_at: task ids whose body raises :class:`StepBoom` (until removed).
    """

    log_path: str | None = None
    crash: CrashPoint | None = None
    fail_at: frozenset[str] = frozenset()


PROBE = Probe()


@dataclass(frozen=True, slots=True)
class LogLine:
    pid: int
    step: str
    task_id: str


def read_log(path: str | Path) -> list[LogLine]:
    """The lines a log holds, in the order they were written (a missing log is empty)."""
    file = Path(path)
    if not file.exists():
        return []
    lines = []
    for text in file.read_text().splitlines():
        pid, step_path, task_id = text.split(" ")
        lines.append(LogLine(int(pid), step_path, task_id))
    return lines


def _delay(ctx: StepContext, span_ms: int) -> float:
    """1..span_ms milliseconds, the same for a task every time it runs (crc32: ``hash()`` is salted per process)."""
    return (1 + zlib.crc32(f"{ctx.step}|{ctx.task_id}".encode()) % span_ms) / 1000


def _check(ctx: StepContext, *, after_body: bool) -> None:
    crash = PROBE.crash
    if crash is not None and crash.task_id == ctx.task_id and crash.after_body == after_body:
        PROBE.crash = None
        raise Crash(f"simulated crash in {ctx.step} ({ctx.task_id})")
    if not after_body and ctx.task_id in PROBE.fail_at:
        raise StepBoom(f"{ctx.step} ({ctx.task_id}) failed on purpose")


async def _begin(span_ms: int = 15) -> None:
    """The first part of an async step's body: its work (a sleep), and a crash or failure if one is due here."""
    ctx = podium.context()
    await asyncio.sleep(_delay(ctx, span_ms))
    _check(ctx, after_body=False)


def _begin_sync(span_ms: int = 15) -> None:
    """:func:`_begin` for sync steps (which run in a worker thread)."""
    ctx = podium.context()
    time.sleep(_delay(ctx, span_ms))
    _check(ctx, after_body=False)


def _done(update: T) -> T:
    """The last part of every step's body: log that the body ran to its end, and return its update."""
    ctx = podium.context()
    if PROBE.log_path is not None:
        fd = os.open(PROBE.log_path, os.O_APPEND | os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{os.getpid()} {ctx.step} {ctx.task_id}\n".encode())
        finally:
            os.close(fd)
    _check(ctx, after_body=True)
    return update


# -- (1) chain: eight steps in a row ----------------------------------------------------------------------------


class Chain(BaseModel):
    trail: Annotated[list[str], reducers.append] = []
    total: int = 0


def _link(n: int) -> StepSpec:
    """Step ``s<n>``: the total depends on every step before it, in order. Every third one is sync (a thread)."""

    def update(state: Chain) -> dict[str, Any]:
        return {"trail": f"s{n}", "total": state.total * 3 + n}

    if n % 3 == 0:

        def sync_link(state: Chain) -> dict[str, Any]:
            _begin_sync()
            return _done(update(state))

        return step(sync_link, name=f"s{n}")

    async def link(state: Chain) -> dict[str, Any]:
        await _begin()
        return _done(update(state))

    return step(link, name=f"s{n}")


CHAIN = sequential(*(_link(n) for n in range(1, 9)), state=Chain, name="chain")


# -- (2) fanout: two static fan-outs of four branches, each joined and merged through a reducer field -----------


class Fan(BaseModel):
    topic: str = "tides"
    parts: Annotated[list[str], reducers.append] = []
    rounds: Annotated[list[str], reducers.append] = []
    report: str = ""


def _branch(name: str, *, sync: bool) -> StepSpec:
    def update(state: Fan) -> dict[str, Any]:
        return {"parts": f"{name}:{len(state.parts)}:{state.topic}"}

    if sync:

        def sync_branch(state: Fan) -> dict[str, Any]:
            _begin_sync()
            return _done(update(state))

        return step(sync_branch, name=name)

    async def branch(state: Fan) -> dict[str, Any]:
        await _begin()
        return _done(update(state))

    return step(branch, name=name)


async def prep(state: Fan) -> dict[str, Any]:
    await _begin()
    return _done({"rounds": f"prep:{state.topic}"})


async def mid(state: Fan) -> dict[str, Any]:
    await _begin()
    return _done({"rounds": "mid:" + ",".join(state.parts)})


async def merge(state: Fan) -> dict[str, Any]:
    await _begin()
    return _done({"report": "|".join(state.parts), "rounds": "merge"})


def _fanout() -> Workflow[Fan]:
    graph: Graph[Fan] = Graph(Fan, name="fanout")
    first = [f"a{i}" for i in range(4)]
    second = [f"b{i}" for i in range(4)]
    graph.add(prep).add(mid).add(merge)
    for name in first + second:
        graph.add(_branch(name, sync=name in ("a2", "b1")))
    graph.edge(START, "prep")
    for name in first:
        graph.edge("prep", name)
    graph.join(first, "mid")
    for name in second:
        graph.edge("mid", name)
    graph.join(second, "merge")
    graph.edge("merge", END)
    return graph.build()


FANOUT = _fanout()


# -- (3) loop: draft -> critique, eight rounds, with short steps (1-3 ms) --------------------------------------


class Draft(BaseModel):
    text: str = ""
    score: int = 0
    notes: Annotated[list[str], reducers.append] = []


async def draft(state: Draft) -> dict[str, Any]:
    await _begin(span_ms=3)
    return _done({"text": state.text + f"d{state.score}"})


async def critique(state: Draft) -> dict[str, Any]:
    await _begin(span_ms=3)
    return _done({"score": state.score + 1, "notes": f"{state.score}:{len(state.text)}"})


def _good_enough(state: Draft) -> bool:
    return state.score >= 8


LOOP = loop(draft, critique, until=_good_enough, max_iterations=12, state=Draft, name="revise")


# -- (4) nested: a sub-workflow with a parallel part, holding a sub-workflow of its own -------------------------


class Deep(BaseModel):
    seed: str = ""
    trail: Annotated[list[str], reducers.append] = []


def _deep_step(name: str) -> StepSpec:
    async def deep_step(state: Deep) -> dict[str, Any]:
        await _begin()
        return _done({"trail": f"{name}:{state.seed}:{len(state.trail)}"})

    return step(deep_step, name=name)


DEEP = sequential(*(_deep_step(f"d{n}") for n in range(1, 4)), state=Deep, name="deep")


class Team(BaseModel):
    seed: str = ""
    parts: Annotated[list[str], reducers.append] = []
    summary: str = ""


async def t_plan(state: Team) -> dict[str, Any]:
    await _begin()
    return _done({"parts": f"plan:{state.seed}"})


async def t_a(state: Team) -> dict[str, Any]:
    await _begin()
    return _done({"parts": f"a:{len(state.parts)}"})


def t_b(state: Team) -> dict[str, Any]:
    _begin_sync()
    return _done({"parts": f"b:{len(state.parts)}"})


async def t_merge(state: Team) -> dict[str, Any]:
    await _begin()
    return _done({"summary": "+".join(state.parts)})


def _deep_parts(final: Deep) -> dict[str, Any]:
    return {"parts": "deep:" + ">".join(final.trail)}


def _team() -> Workflow[Team]:
    graph: Graph[Team] = Graph(Team, name="team")
    graph.add(t_plan).add(t_a).add(t_b).add(DEEP, output=_deep_parts).add(t_merge)
    graph.edge(START, "t_plan")
    for name in ("t_a", "t_b", "deep"):
        graph.edge("t_plan", name)
    graph.join(["t_a", "t_b", "deep"], "t_merge")
    graph.edge("t_merge", END)
    return graph.build(output="summary")


TEAM = _team()


class Outer(BaseModel):
    seed: str = "kelp"
    log: Annotated[list[str], reducers.append] = []
    team_summary: str = ""


async def intro(state: Outer) -> dict[str, Any]:
    await _begin()
    return _done({"log": f"intro:{state.seed}"})


async def side(state: Outer) -> dict[str, Any]:
    await _begin()
    return _done({"log": "side"})


async def outro(state: Outer) -> dict[str, Any]:
    await _begin()
    return _done({"log": f"outro:{state.team_summary}"})


def _nested() -> Workflow[Outer]:
    graph: Graph[Outer] = Graph(Outer, name="nested")
    graph.add(intro).add(TEAM, into="team_summary").add(side).add(outro)
    graph.edge(START, "intro").edge("intro", "team").edge("intro", "side")
    graph.join(["team", "side"], "outro")
    graph.edge("outro", END)
    return graph.build()


NESTED = _nested()


# -- (5) sends: a dynamic fan-out of six items (Graph + Send), gathered in order, then a second one of three ----


class Item(BaseModel):
    index: int
    value: int


class Batch(BaseModel):
    values: list[int] = [3, 1, 4, 1, 5, 9]
    results: Annotated[list[str], reducers.append] = []
    total: Annotated[int, reducers.add] = 0
    reviews: Annotated[list[str], reducers.append] = []
    summary: str = ""


async def plan(state: Batch) -> list[Send]:
    await _begin()
    return _done([Send("work", Item(index=i, value=v)) for i, v in enumerate(state.values)])


async def work(state: Batch, item: Item) -> dict[str, Any]:
    await _begin()
    return _done({"results": f"{item.index}:{item.value**2}", "total": item.value**2})


async def gather(state: Batch) -> list[Send]:
    await _begin()
    return _done([Send("review", result) for result in state.results[::2]])


def review(state: Batch, result: str) -> dict[str, Any]:
    _begin_sync()
    return _done({"reviews": f"ok:{result}:{len(state.results)}"})


async def finish(state: Batch) -> dict[str, Any]:
    await _begin()
    return _done({"summary": f"{state.total}:{','.join(state.reviews)}"})


def _sends() -> Workflow[Batch]:
    graph: Graph[Batch] = Graph(Batch, name="sends")
    graph.add(plan, routes=("work",)).add(work).add(gather, routes=("review",)).add(review).add(finish)
    graph.edge(START, "plan").edge("work", "gather").edge("review", "finish").edge("finish", END)
    return graph.build()


SENDS = _sends()


# -- (6) planner: podium.planner whose worker is a sub-workflow, one per subtask -------------------------------


class Section(BaseModel):
    topic: str = ""
    notes: list[str] = []
    text: str = ""


async def research(state: Section) -> dict[str, Any]:
    await _begin()
    return _done({"notes": [f"{state.topic} fact {i}" for i in range(2)]})


async def write(state: Section) -> dict[str, Any]:
    await _begin()
    return _done({"text": f"{state.topic}: " + "; ".join(state.notes)})


SECTION = sequential(research, write, state=Section, name="section", input="topic", output="text")


async def outline(state: Conversation) -> list[str]:
    await _begin()
    return _done([f"{state.task} part {i}" for i in range(5)])


async def assemble(state: Conversation) -> str:
    await _begin()
    return _done(" / ".join(str(turn.content) for turn in state.turns if turn.kind == "subtask"))


PLANNER = planner(outline, SECTION, assemble, name="planner")


# -- (7) events: event_driven with chained events (ticket -> triaged -> resolved) ------------------------------


class Ticket(BaseModel):
    id: int
    text: str


class Triaged(BaseModel):
    id: int
    team: str


class Resolved(BaseModel):
    id: int
    note: str


class Desk(BaseModel):
    inbox: list[Ticket] = [Ticket(id=i, text=text) for i, text in enumerate(["login", "billing", "crash", "refund"])]
    handled: Annotated[list[str], reducers.append] = []
    audit: Annotated[list[str], reducers.append] = []


async def intake(state: Desk, ticket: Ticket) -> dict[str, Any]:
    await _begin()
    podium.context().emit(Triaged(id=ticket.id, team="billing" if ticket.id % 2 else "core"))
    return _done({"audit": f"in:{ticket.id}:{ticket.text}"})


async def solve(state: Desk, event: Triaged) -> dict[str, Any]:
    await _begin()
    podium.context().emit(Resolved(id=event.id, note=f"{event.team}-fix-{len(state.audit)}"))
    return _done({"audit": f"solve:{event.id}"})


def audit(state: Desk, event: Triaged) -> dict[str, Any]:
    _begin_sync()
    return _done({"audit": f"seen:{event.id}:{event.team}"})


async def close(state: Desk, event: Resolved) -> dict[str, Any]:
    await _begin()
    return _done({"handled": f"{event.id}:{event.note}"})


def _inbox(state: Desk) -> list[Ticket]:
    return state.inbox


DESK = event_driven({Ticket: intake, Triaged: [solve, audit], Resolved: close}, source=_inbox, state=Desk, name="desk")


# -- the shapes, and the program -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Shape:
    """A workflow, its input, and how often its runs write a snapshot (50 is podium's default: none here)."""

    workflow: Workflow[Any]
    input: Any = None
    snapshot_every: int = 50


SHAPES: dict[str, Shape] = {
    "chain": Shape(CHAIN, snapshot_every=2),
    "fanout": Shape(FANOUT),
    "loop": Shape(LOOP, snapshot_every=3),
    "nested": Shape(NESTED),
    "sends": Shape(SENDS, snapshot_every=1),
    "planner": Shape(PLANNER, "Tides"),
    "events": Shape(DESK, snapshot_every=2),
}


async def _execute(shape: Shape, db: str, run_id: str, mode: str) -> dict[str, Any]:
    store = SQLiteStore(db)
    options = JournalOptions(snapshot_every=shape.snapshot_every)
    sys.stderr.write(READY + "\n")
    sys.stderr.flush()
    if os.environ.get(GO_ENV):
        sys.stdin.readline()  # the test starts its kill timer as it sends this line
    started = time.perf_counter()
    try:
        if mode == "start":
            result = await shape.workflow.run(shape.input, run_id=run_id, store=store, journal=options)
        else:
            result = await shape.workflow.resume(run_id, store=store, journal=options)
    except RunNotFoundError:
        return {"status": "not_found", "pid": os.getpid()}
    except RunStateError as exc:
        return {"status": "refused", "reason": str(exc), "pid": os.getpid()}
    finally:
        await store.close()
    return {
        "status": result.status.value,
        "reason": result.reason,
        "state": result.state.model_dump(mode="json"),
        "elapsed": time.perf_counter() - started,
        "pid": os.getpid(),
    }


def main(argv: Sequence[str]) -> int:
    if len(argv) != 5 or argv[0] not in SHAPES or argv[4] not in ("start", "resume"):
        sys.stderr.write(
            f"usage: python -m tests.durability.crashy ({'|'.join(SHAPES)}) DB RUN_ID LOG (start|resume)\n"
        )
        return 2
    name, db, run_id, log, mode = argv
    PROBE.log_path = log
    print(json.dumps(asyncio.run(_execute(SHAPES[name], db, run_id, mode))), flush=True)
    return 0


if __name__ == "__main__":
    from tests.durability import crashy  # this module under its real name, so journaled classes can be found

    sys.exit(crashy.main(sys.argv[1:]))
