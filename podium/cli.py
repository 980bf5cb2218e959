"""The ``podium`` command: scaffold, check, run, inspect, resume, approve and replay crews.

::

    podium init [DIR]                              a crew to start from (runs at once with --model test)
    podium validate CREW                           check a crew file; print its agents and flow
    podium run CREW --input TEXT [--model M]       run it (--model runs every agent on M, e.g. test)
    podium runs [--status S] [--limit N]           the store's runs, newest first
    podium show RUN_ID                             a run's timeline from its journal
    podium resume RUN_ID --crew CREW               finish a run that crashed, failed or was limited
    podium approve RUN_ID [QUESTION] --crew CREW   approve (--value JSON: edit, or answer), then resume
    podium reject RUN_ID [QUESTION] --crew CREW    reject, then resume (the step that asked fails)
    podium graph CREW                              the flow as a Mermaid flowchart
    podium replay RUN_ID --crew CREW               run it again offline, models answering from its journal
    podium serve CREW [--model M]                  run its triggers and the runs they start, until Ctrl-C/SIGTERM
    podium schema                                  the crew file's JSON Schema

A step that failed and escalated to a person (``on_error: {escalate: ...}``) asks a question too: ``approve --value
JSON`` answers in the step's place, ``approve`` without a value runs the step again, ``reject`` lets it fail.

Options: ``--store URL`` (default: the crew's ``store``, else ``$PODIUM_STORE``, else
``sqlite:///.podium/podium.db``), ``--json`` (one JSON document on stdout; progress is not shown), ``--debug``
(tracebacks). ``--crew`` defaults to ``crew.yaml``. Progress and messages go to stderr, results to stdout.

Exit codes:

== ==========================================================================================================
0  success: the run completed; a replay's outcome equals the recorded one
1  an error: bad arguments, a malformed crew file, an unknown run or question, a store that cannot be used
2  the run failed (a rejected approval fails the step that asked)
3  the run ended limited or cancelled
4  the run waits for a person: ``podium approve`` or ``podium reject``
5  a replay's outcome differs from the recorded run's
== ==========================================================================================================

An error is one line on stderr, ``error: <message>`` (a crew file's: ``error: path:line:col: field '...': ...``);
``--debug`` adds the traceback.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import TypeAdapter
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from podium import (
    Approval,
    Escalation,
    Hooks,
    PodiumError,
    Question,
    RunResult,
    RunStatus,
    SQLiteStore,
    Store,
    answer,
    open_store,
)
from podium.crew import Crew, crew_schema, load_crew, scaffold
from podium.crew import replay as replay_run
from podium.errors import ConfigError, RunNotFoundError, RunStateError
from podium.journal import DEFAULT_STORE_URL, decode, encode
from podium.models import resolve_model
from podium.observe._console import ConsoleProgress, print_run_report
from podium.observe._timeline import plain, run_report
from podium.triggers import Fired, Trigger, TriggerEvent, TriggerHooks

__all__ = ["app", "main"]

EXIT_OK, EXIT_ERROR, EXIT_FAILED, EXIT_LIMITED, EXIT_WAITING, EXIT_DIFFERS = 0, 1, 2, 3, 4, 5
_STATUS_EXIT = {
    RunStatus.COMPLETED: EXIT_OK,
    RunStatus.FAILED: EXIT_FAILED,
    RunStatus.LIMITED: EXIT_LIMITED,
    RunStatus.CANCELLED: EXIT_LIMITED,
    RunStatus.WAITING: EXIT_WAITING,
}
_STATES = ("pending", "running", "waiting", "completed", "failed", "limited", "cancelled")


class _Group(TyperGroup):
    """Usage mistakes are one ``error:`` line and exit code 1, like every other error."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            code = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except typer.TyperException as exc:  # an unknown command or option, a missing argument
            _error(exc.format_message())
            code = EXIT_ERROR
        except typer.Abort:
            _error("interrupted")
            code = 130
        code = code if isinstance(code, int) else EXIT_OK
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=_Group,
    name="podium",
    help="Run teams of AI agents durably.",
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

StoreOpt = Annotated[
    str | None, typer.Option("--store", help="Store URL (default: the crew's, $PODIUM_STORE, .podium/podium.db).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks.")]
CrewArg = Annotated[Path, typer.Argument(help="The crew file.", show_default=False)]
CrewOpt = Annotated[Path, typer.Option("--crew", help="The crew file the run belongs to.")]
ModelOpt = Annotated[str | None, typer.Option("--model", help="Run every agent on this model (e.g. test).")]
RunIdArg = Annotated[str, typer.Argument(help="The run's id (podium runs lists them).", show_default=False)]
QuestionArg = Annotated[
    str | None, typer.Argument(help="The question's id (default: the run's only pending one).", show_default=False)
]
CommentOpt = Annotated[str | None, typer.Option("--comment", help="A comment recorded with the answer.")]
_CREW_FILE = Path("crew.yaml")


def main() -> None:
    """The console script's entry point."""
    app()


@app.callback(invoke_without_command=True)
def _top(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:  # plain `podium`: the help, not an error
        print(ctx.get_help())


# -- errors and output ------------------------------------------------------------------------------------------


def _error(message: str) -> None:
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr)


def _guard(debug: bool, work: Callable[[], int]) -> None:
    """Run a command's body; any exception becomes one ``error:`` line and exit code 1."""
    try:
        code = work()
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        _error("interrupted")
        raise typer.Exit(130) from None
    except BrokenPipeError:  # the reader went away (| head): nothing left to tell anyone
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - so the interpreter's final flush does not fail
        raise typer.Exit(EXIT_ERROR) from None
    except Exception as exc:
        if debug:
            traceback.print_exc()
        _error(_describe(exc))
        raise typer.Exit(EXIT_ERROR) from None
    if code:
        raise typer.Exit(code)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, PodiumError | OSError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _console(stderr: bool = False) -> Console:
    """A console on stdout or stderr (as they are now: tests swap them), not wrapped at 80 columns in a pipe."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(file=stream, highlight=False, soft_wrap=True, width=None if stream.isatty() else 160)


def _print_json(data: Any) -> int:
    print(json.dumps(data, indent=2, default=str))
    return EXIT_OK


def jsonable(value: Any) -> Any:
    """A value as JSON data: models and dataclasses as dicts; anything else as its journal form, or its repr."""
    try:
        return TypeAdapter(Any).dump_python(value, mode="json")
    except Exception:
        try:
            return plain(encode(value))
        except Exception:
            return repr(value)


def _store_url(store: str | None, crew: Crew | None = None) -> str:
    return store or (crew.store if crew is not None else None) or os.environ.get("PODIUM_STORE") or DEFAULT_STORE_URL


async def _open(url: str) -> Store:
    store = open_store(url)
    await store.open()
    return store


async def _existing(url: str) -> Store | None:
    """The store at ``url``, or None when it is a SQLite file that does not exist (looking creates nothing)."""
    store = open_store(url)
    if isinstance(store, SQLiteStore) and store.path is not None and not store.path.exists():
        return None
    await store.open()
    return store


@contextmanager
def _progress(quiet: bool) -> Iterator[list[Hooks]]:
    """The run's hooks: a live line per step on stderr, unless ``quiet`` (``--json``)."""
    if quiet:
        yield []
        return
    with ConsoleProgress(_console(stderr=True)).shown() as progress:
        yield [progress]


async def _report(result: RunResult[Any], store: Store, crew_path: Path, as_json: bool) -> int:
    """Print a run's outcome (its output on stdout, how it ended on stderr); return the exit code."""
    pending = await store.questions(result.run_id, pending=True) if result.status is RunStatus.WAITING else []
    usage = result.usage
    if as_json:
        _print_json(
            {
                "run_id": result.run_id,
                "workflow": result.workflow,
                "status": result.status.value,
                "output": jsonable(result.output),
                "reason": result.reason,
                "waiting": list(result.waiting),
                "questions": [{"id": q.interrupt_id, "prompt": q.prompt, "kind": q.ask} for q in pending],
                "usage": {
                    "input_tokens": usage.input_tokens,
                    "output_tokens": usage.output_tokens,
                    "cost_usd": usage.cost_usd,
                },
                "steps": result.steps,
                "duration": round(result.duration, 3),
                "store": store.url,
            }
        )
    elif result.status is RunStatus.COMPLETED:
        output = result.output
        print(output if isinstance(output, str) else json.dumps(jsonable(output), indent=2))
    code = _STATUS_EXIT[result.status]
    err = _console(stderr=True)
    if code in (EXIT_FAILED, EXIT_LIMITED):
        _error(f"run {result.run_id} ended {result.status.value}: {result.reason}")
    elif code == EXIT_WAITING:
        err.print(f"run {result.run_id} waits for a person:")
        for q in pending:
            err.print(f"  {q.interrupt_id} ({q.ask}): {escape(q.prompt)}")
        err.print(f"answer: podium approve {result.run_id} --crew {crew_path}   (or: podium reject ...)")
    elif not as_json:
        spent = f"{usage.input_tokens} in / {usage.output_tokens} out tokens, ${usage.cost_usd:.4f}"
        err.print(f"[green]completed[/] run {result.run_id}: {result.steps} steps, {result.duration:.2f}s, {spent}")
        err.print(f"journal: {store.url}   (podium show {result.run_id})")
    return code


# -- init, validate, graph, schema --------------------------------------------------------------------------------


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Where to create the crew.")] = Path("."),
    name: Annotated[str | None, typer.Option("--name", help="The crew's name (default: the folder's).")] = None,
    debug: DebugOpt = False,
) -> None:
    """Create a crew to start from: crew.yaml, agents/*.md and tools.py."""
    _guard(debug, lambda: _init(directory, name))


def _init(directory: Path, name: str | None) -> int:
    files = scaffold(directory, name=name)
    err = _console(stderr=True)
    for path in files:
        err.print(f"created {path}")
    err.print(f'next: podium run {files[0]} --input "tidal power" --model test')
    return EXIT_OK


@app.command()
def validate(path: CrewArg, as_json: JsonOpt = False, debug: DebugOpt = False) -> None:
    """Check a crew file (and its SOUL.md files, tools and types); print its agents and flow."""
    if not as_json:
        _guard(debug, lambda: _validate(path))
        return
    try:
        crew = load_crew(path)
    except Exception as exc:
        if debug:
            traceback.print_exc()
        where = {k: getattr(exc, k, None) for k in ("path", "line", "column", "field")}
        _print_json({"ok": False, "error": _describe(exc), **where})
        _error(_describe(exc))
        raise typer.Exit(EXIT_ERROR) from None
    _print_json({"ok": True, **crew.summary()})


def _validate(path: Path) -> int:
    crew = load_crew(path)
    data = crew.summary()
    out = _console()
    out.print(f"[green]ok[/]: {escape(str(path))}: crew {crew.name!r}, {len(crew.agents)} agents")
    table = Table("agent", "role", "model", "tools", "output", "soul", box=None, pad_edge=False)
    for name, agent in data["agents"].items():
        table.add_row(
            name + (" (approval)" if agent["approval"] else ""),
            agent["role"] or "",
            agent["model"] or f"{data['model'] or 'default'} (crew)",
            ", ".join(agent["tools"]),
            agent["output"] or "text",
            agent["soul"] or "",
        )
    out.print(table)
    out.print("flow:")
    for line in data["flow"]:
        out.print(f"  {escape(line)}")
    if data["triggers"]:
        out.print("triggers (podium serve):")
        for name, spec in data["triggers"].items():
            out.print(f"  {escape(name)}: {escape(json.dumps(spec))}")
    knowledge = data["knowledge"]
    if knowledge is not None:
        out.print("knowledge:")
        for source in knowledge["sources"]:
            globs = ", ".join(source["glob"])
            out.print(f"  source {escape(source['path'])} ({escape(globs)}) -> {escape(source['namespace'])}")
        for name, access in knowledge["access"].items():
            read, write = ", ".join(access["read"]) or "-", ", ".join(access["write"]) or "-"
            out.print(f"  {escape(name)}: reads {escape(read)}; writes {escape(write)}")
    return EXIT_OK


@app.command()
def graph(path: CrewArg, debug: DebugOpt = False) -> None:
    """Print the crew's flow as a Mermaid flowchart."""

    def mermaid() -> int:
        print(load_crew(path).workflow.mermaid())
        return EXIT_OK

    _guard(debug, mermaid)


@app.command()
def schema(debug: DebugOpt = False) -> None:
    """Print the JSON Schema of crew files."""
    _guard(debug, lambda: _print_json(crew_schema()))


# -- run, resume, approve, reject -----------------------------------------------------------------------------------


@app.command()
def run(
    path: CrewArg,
    input: Annotated[str, typer.Option("--input", "-i", help="The task.", show_default=False)],
    model: ModelOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Run a crew on a task."""
    _guard(debug, lambda: asyncio.run(_run(path, input, model, store, as_json)))


def _load(path: Path, model: str | None) -> Crew:
    if model is not None and model != "local":  # "local" loads the embedded model: leave that to the first call
        resolve_model(model)  # an unknown model is a usage error, found before anything is journaled
    return load_crew(path, model=model)


async def _run(path: Path, task: str, model: str | None, store_url: str | None, as_json: bool) -> int:
    crew = _load(path, model)
    store = await _open(_store_url(store_url, crew))
    with _progress(as_json) as hooks:
        result = await crew.run(task, store=store, hooks=hooks)
    return await _report(result, store, path, as_json)


@app.command()
def resume(
    run_id: RunIdArg,
    crew: CrewOpt = _CREW_FILE,
    model: ModelOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Resume a run: after a crash, a failure, a limit, or once its questions are answered."""
    _guard(debug, lambda: asyncio.run(_resume(run_id, crew, model, store, as_json)))


async def _crew_of_run(run_id: str, path: Path, model: str | None, store_url: str | None) -> tuple[Crew, Store]:
    crew = _load(path, model)
    store = await _open(_store_url(store_url, crew))
    info = await store.get_run(run_id)
    if info.workflow != crew.name:
        raise RunStateError(
            f"it is a run of {info.workflow!r}, and {path} is crew {crew.name!r}", run_id=run_id, status=info.status
        )
    return crew, store


async def _resume(run_id: str, path: Path, model: str | None, store_url: str | None, as_json: bool) -> int:
    crew, store = await _crew_of_run(run_id, path, model, store_url)
    with _progress(as_json) as hooks:
        result = await crew.resume(run_id, store=store, hooks=hooks)
    return await _report(result, store, path, as_json)


@app.command()
def approve(
    run_id: RunIdArg,
    question: QuestionArg = None,
    crew: CrewOpt = _CREW_FILE,
    value: Annotated[str | None, typer.Option("--value", help="JSON: an edited value, or the answer.")] = None,
    comment: CommentOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Approve a run's pending question (--value edits it, or answers a question), then resume the run."""
    reply = _approval("approve", value, comment)
    _guard(debug, lambda: asyncio.run(_answer(run_id, question, crew, reply, store, as_json)))


@app.command()
def reject(
    run_id: RunIdArg,
    question: QuestionArg = None,
    crew: CrewOpt = _CREW_FILE,
    comment: CommentOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Reject a run's pending approval, then resume the run (the step that asked fails)."""
    reply = _approval("reject", None, comment)
    _guard(debug, lambda: asyncio.run(_answer(run_id, question, crew, reply, store, as_json)))


def _approval(decision: str, value: str | None, comment: str | None) -> Callable[[Question], Any]:
    """How to answer a question: approve/reject map to an ``Approval``; other questions take ``--value``."""

    def reply(question: Question) -> Any:
        given = _json_value(value) if value is not None else None
        if question.ask == "escalate":  # a step that failed: answer in its place, run it again, or let it fail
            if decision == "reject":
                return Escalation(decision="abort", comment=comment)
            if value is None:
                return Escalation(decision="retry", comment=comment)
            return Escalation(decision="answer", value=given, comment=comment)
        if question.ask == "approve":
            if decision == "reject":
                return Approval(decision="reject", comment=comment)
            if value is not None:
                return Approval(decision="edit", value=given, comment=comment)
            return Approval(decision="approve", value=_decoded(question.value), comment=comment)  # what was shown
        if decision == "reject":
            raise ConfigError(f"question {question.interrupt_id} asks for an answer: podium approve ... --value JSON")
        if value is None:
            raise ConfigError(f"question {question.interrupt_id} ({question.prompt}) needs an answer: --value JSON")
        return given

    return reply


async def _answer(
    run_id: str,
    question_id: str | None,
    path: Path,
    reply: Callable[[Question], Any],
    store_url: str | None,
    as_json: bool,
) -> int:
    crew, store = await _crew_of_run(run_id, path, None, store_url)
    pending = await store.questions(run_id, pending=True)
    chosen = [q for q in pending if question_id in (None, q.interrupt_id)]
    if len(chosen) != 1:
        listed = "; ".join(f"{q.interrupt_id} ({q.prompt})" for q in pending) or "none"
        which = f"no pending question {question_id!r}" if question_id else f"{len(pending)} pending questions"
        raise ConfigError(f"run {run_id} has {which}: {listed}" + ("; name one" if len(chosen) > 1 else ""))
    await answer(run_id, chosen[0].interrupt_id, reply(chosen[0]), store=store)
    with _progress(as_json) as hooks:
        result = await crew.resume(run_id, store=store, hooks=hooks)
    return await _report(result, store, path, as_json)


def _json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--value is not JSON: {exc}") from exc


def _decoded(value: Any) -> Any:
    try:
        return decode(value)
    except PodiumError:
        return None  # its class cannot be imported here: the step keeps its own answer


# -- runs, show ------------------------------------------------------------------------------------------------------


@app.command()
def runs(
    status: Annotated[
        str | None, typer.Option("--status", help=f"Only runs with this status: {', '.join(_STATES)}.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 20,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """List the store's runs, newest first."""
    _guard(debug, lambda: asyncio.run(_runs(status, limit, store, as_json)))


async def _runs(status: str | None, limit: int, store_url: str | None, as_json: bool) -> int:
    if status is not None and status not in _STATES:
        raise ConfigError(f"unknown status {status!r}; use one of {', '.join(_STATES)}")
    url = _store_url(store_url)
    store = await _existing(url)
    infos = await store.list_runs(status=status, limit=limit) if store is not None else []  # type: ignore[arg-type]
    rows = [
        {
            "run_id": info.run_id,
            "workflow": info.workflow,
            "status": info.status,
            "started": _when(info.created_at),
            "duration": round(info.duration, 3),
            "events": info.last_seq,
            "reason": info.reason,
        }
        for info in infos
    ]
    if as_json:
        return _print_json(rows)
    table = Table("run id", "workflow", "status", "started", "duration", "events", box=None, pad_edge=False)
    for row in rows:
        cells = [row["run_id"], row["workflow"], row["status"], row["started"], f"{row['duration']:.1f}s"]
        table.add_row(*map(str, cells), str(row["events"]))
    _console().print(table if rows else f"no runs in {url}")
    return EXIT_OK


def _when(at: float) -> str:
    return datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M:%S")


@app.command()
def show(run_id: RunIdArg, store: StoreOpt = None, as_json: JsonOpt = False, debug: DebugOpt = False) -> None:
    """A run's timeline from its journal: each task's step, agents, duration, tokens, cost and status."""
    _guard(debug, lambda: asyncio.run(_show(run_id, store, as_json)))


async def _show(run_id: str, store_url: str | None, as_json: bool) -> int:
    url = _store_url(store_url)
    store = await _existing(url)
    if store is None:
        raise RunNotFoundError(run_id, url=url)
    data = await run_report(store, run_id)
    if as_json:
        return _print_json(data)
    print_run_report(_console(), data)
    return EXIT_OK


# -- replay ---------------------------------------------------------------------------------------------------------


@app.command()
def replay(
    run_id: RunIdArg,
    crew: CrewOpt = _CREW_FILE,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Run a recorded run again (a new run), its models answering from its journal; compare the outcomes."""
    _guard(debug, lambda: asyncio.run(_replay(run_id, crew, store, as_json)))


async def _replay(run_id: str, path: Path, store_url: str | None, as_json: bool) -> int:
    with _progress(as_json) as hooks:
        outcome = await replay_run(path, run_id, store=store_url, hooks=hooks)
    result = outcome.result
    if as_json:
        _print_json(
            {
                "run_id": result.run_id,
                "recorded_run_id": run_id,
                "equal": outcome.equal,
                "status": result.status.value,
                "recorded_status": outcome.recorded_status,
                "output": plain(outcome.output),
                "recorded_output": plain(outcome.recorded_output),
                "model_calls_replayed": outcome.model_calls,
                "reason": result.reason,
            }
        )
    if not outcome.equal:
        _error(
            f"replay {result.run_id} of run {run_id} differs: it ended {result.status.value} with "
            f"{json.dumps(plain(outcome.output))[:200]}, the recording {outcome.recorded_status} with "
            f"{json.dumps(plain(outcome.recorded_output))[:200]}" + (f" ({result.reason})" if result.reason else "")
        )
        return EXIT_DIFFERS
    if not as_json:
        _console(stderr=True).print(
            f"[green]same[/]: replay {result.run_id} of run {run_id} ended {result.status.value} with the recorded "
            f"output ({outcome.model_calls} model calls answered from the journal)"
        )
    return EXIT_OK


# -- serve ----------------------------------------------------------------------------------------------------------


@app.command()
def serve(
    path: CrewArg,
    model: ModelOpt = None,
    store: StoreOpt = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, help="Runs executed at once.")] = 4,
    grace: Annotated[
        float, typer.Option("--grace", min=0, help="Seconds runs in progress may take to finish when stopping.")
    ] = 30.0,
    debug: DebugOpt = False,
) -> None:
    """Run the crew's triggers (schedules, watched folders, webhooks) and the runs they start, until Ctrl-C or
    SIGTERM; a second signal stops at once (runs in progress are resumed by the next serve)."""
    _guard(debug, lambda: asyncio.run(_serve(path, model, store, concurrency, grace)))


class _ServeConsole(Hooks, TriggerHooks):
    """What ``podium serve`` prints on stderr: where it listens, what fired, how each run ended."""

    def __init__(self, console: Console, header: str) -> None:
        self.console = console
        self.header: str | None = header  # printed once serving has begun: not before an error that stops it

    def on_ready(self, *, trigger: Trigger, detail: str) -> None:
        if self.header is not None:
            self.console.print(self.header)
            self.header = None
        self.console.print(f"{trigger.source} {escape(trigger.name)}: {escape(detail)}")

    def on_fired(self, *, fired: Fired) -> None:
        name = escape(fired.event.trigger)
        if fired.created:
            self.console.print(f"{name}: started run {fired.run_id}")
        else:
            self.console.print(f"{name}: seen before, run {fired.run_id} ({fired.status}); nothing started")

    def on_refused(self, *, event: TriggerEvent, error: Exception) -> None:
        _error(f"{event.trigger}: no run started: {_describe(error)}")

    def on_run_finish(self, *, run_id: str, result: RunResult[Any]) -> None:
        reason = f": {escape(str(result.reason))}" if result.reason else ""
        self.console.print(f"run {run_id} {result.status.value} in {result.duration:.2f}s{reason}")


async def _serve(path: Path, model: str | None, store_url: str | None, concurrency: int, grace: float) -> int:
    crew = _load(path, model)
    store = await _open(_store_url(store_url, crew))
    err = _console(stderr=True)
    stop = asyncio.Event()
    main_task = asyncio.current_task()
    loop = asyncio.get_running_loop()

    def signalled() -> None:
        if stop.is_set() and main_task is not None:
            main_task.cancel()  # a second signal: now
            return
        err.print(f"stopping: no new runs; runs in progress have {grace:g}s to finish (signal again to stop now)")
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, signalled)
    shown = _ServeConsole(err, escape(f"serving crew {crew.name!r}, journal {store.url}; stop with Ctrl-C"))
    try:
        await crew.serve(stop, store=store, concurrency=concurrency, grace=grace, hooks=[shown], observer=shown)
    except asyncio.CancelledError:
        if not stop.is_set():
            raise
        err.print("stopped at once; runs that were in progress will be resumed by the next serve")
        return 130
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    err.print("stopped")
    return EXIT_OK


if __name__ == "__main__":
    main()
