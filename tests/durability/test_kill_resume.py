"""SIGKILL real processes running workflows at random moments, resume them, and prove the run's durability.

The requirement: a run whose process is killed with SIGKILL at any moment resumes and ends with the result an
uninterrupted run gives; a step whose completion was journaled never runs again; a step in flight at the crash
runs again. Every shape of :mod:`tests.durability.crashy` (a chain, static fan-outs with joins, a loop with short
steps, nested sub-workflows, dynamic fan-outs with ``Send``, a planner over sub-workflows, chained events) is put
through it.

How a shape is tested:

1. **Baseline.** The shape runs uninterrupted in a subprocess (its own journal). That gives the expected final
   state, the expected journal (each task id with its step path and its recorded update, routing and events), the
   set of *instrumented* tasks (those whose body writes a log line: every task but sub-workflow steps and the
   patterns' own routing steps), and the run's duration inside podium, D.
2. **Campaigns.** A campaign is one run id: ``start`` in a subprocess, wait for it to say it is about to call
   podium, tell it to go on, sleep ``uniform(0, D * max(0.5, 0.15 + the fraction of the tasks not journaled))``
   (a seeded ``random.Random``: the seed is in every failure message; ``PODIUM_KILL_SEED`` chooses it), SIGKILL it
   and reap it, read the journal; then ``resume`` in a new subprocess, kill it at a new random moment, and so on.
   A process that finishes before its kill ends the campaign and a new one starts, until the shape has had
   ``KILLS_PER_SHAPE`` kill points: SIGKILLs (returncode -9) after which the journal shows the run unfinished (a
   kill that hits a process exiting after its run finished is reported, not counted). The campaign that reaches
   the count ends with a resume that is not killed and must finish. A kill that lands before the run was accepted
   (no such run in the journal) is followed by ``start`` again.
3. **Journal after each death.** After every process ends (it is dead, so the journal is what survived), the test
   reads the journal directly (``SQLiteStore.read``) and records which task ids have ``step_completed`` and which
   were scheduled but had not completed (in flight at the kill, as far as the journal knows).

What is checked for each campaign, and why it proves the requirement (each task body logs one line *after* its
work and just before it returns, and podium journals a task's completion only after its body returned, so a line
means "this execution ran to the end" and a journaled completion means "some execution ran to the end"):

- **Result**: the run's status is ``completed``, the state printed by the last process (when it printed one) and
  the state replayed from the journal (``Workflow.history``) equal the baseline's, and so does the journaled output.
- **Journal**: exactly one ``step_completed`` per task id (no completion is journaled twice), and the tasks are the
  baseline's, each with the same step path, update, routing and events (task ids are stable across resumes).
  The journal only grows: what one process left is in the journal every later process left.
- **"A journaled completion never runs again"** (the precise check): let J(T) be the first process after whose
  death task T's completion was in the journal (so T's completion was journaled by process J(T), and after every
  later death it was there already). No process after J(T) has a log line for T.
- **"A step in flight at the crash runs again"**: process J(T) itself has a log line for T: the completion that was
  journaled came from an execution that ran the body in that process, so a task whose earlier execution(s) died
  unjournaled (killed mid-body, or after its body but before its write) was really executed again by a later
  process, not skipped or invented. Every task that was in flight (scheduled, not journaled) at a kill is
  journaled by a later process, and the baseline's instrumented tasks are exactly the logged ones.
- **Bounds**: a process logs a task at most once; log lines for T from processes before J(T) come only from killed
  processes (an execution whose completion was lost can only be one whose process died); so T's body ran to its
  end at most 1 + (kills in the campaign) times.

The figures per shape (kills, resumes, tasks in flight at a kill, bodies that ran to their end, were lost with
their process and ran again) are printed (``pytest -s``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from podium import RunNotFoundError, SQLiteStore
from podium.journal import RunFinished, StepCompleted, TasksScheduled, decode
from tests.durability import crashy

pytestmark = pytest.mark.slow

KILLS_PER_SHAPE = int(os.environ.get("PODIUM_KILLS_PER_SHAPE") or 10)
"""At least 10; raise it (e.g. ``PODIUM_KILLS_PER_SHAPE=100``) for a longer soak."""
SEED = int(os.environ.get("PODIUM_KILL_SEED") or random.SystemRandom().randrange(2**32))
ROOT = Path(__file__).resolve().parents[2]
_MAX_PROCESSES_PER_CAMPAIGN = 20 + 3 * KILLS_PER_SHAPE
"""A campaign that takes more processes than this is not making progress."""


# -- what a campaign leaves behind ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Journal:
    """What the journal of one run holds, read while no process runs it."""

    exists: bool
    completed: dict[str, list[StepCompleted]]
    """Every ``step_completed`` record, by task id."""
    scheduled: frozenset[str]
    finished: RunFinished | None

    @property
    def journaled(self) -> frozenset[str]:
        return frozenset(self.completed)


@dataclass(frozen=True, slots=True)
class Process:
    index: int
    pid: int
    mode: str
    delay: float | None
    """Seconds between telling it to go on and killing it (None: not to be killed)."""
    killed: bool
    output: dict[str, Any] | None
    journal: Journal
    """The journal once it was dead."""

    @property
    def interrupted(self) -> bool:
        """SIGKILL ended it before the run finished."""
        return self.killed and self.journal.finished is None


@dataclass(frozen=True, slots=True)
class Baseline:
    state: dict[str, Any]
    output: Any
    tasks: dict[str, tuple[str, Any, Any, Any]]
    """task id → (step path, update, goto, emitted), as the uninterrupted run journaled them."""
    logged: frozenset[str]
    seconds: float


@dataclass(slots=True)
class Campaign:
    run_id: str
    log: Path
    processes: list[Process] = field(default_factory=list)
    replayed_state: dict[str, Any] | None = None


@dataclass(slots=True)
class ShapeReport:
    shape: str
    baseline: Baseline | None = None
    campaigns: list[Campaign] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    @property
    def kills(self) -> int:
        """Kill points: SIGKILLs that interrupted an unfinished run (not those that hit a process that was exiting)."""
        return sum(p.interrupted for c in self.campaigns for p in c.processes)

    def summary(self) -> str:
        processes = [p for c in self.campaigns for p in c.processes]
        in_flight = sum(len(_in_flight(p)) for c in self.campaigns for p in c.processes if p.killed)
        rerun = sum(_rerun_bodies(c) for c in self.campaigns)
        before_accept = sum(1 for p in processes if p.killed and not p.journal.exists)
        after_finish = sum(1 for p in processes if p.killed and not p.interrupted)
        early = sum(1 for p in processes if not p.killed and p.delay is not None)
        return (
            f"[durability] {self.shape:8} kills={self.kills} processes={len(processes)} "
            f"resumes={sum(p.mode == 'resume' for p in processes)} campaigns={len(self.campaigns)} "
            f"in-flight-at-kill={in_flight} bodies-lost-and-rerun={rerun} kills-before-accept={before_accept} "
            f"kills-after-finish={after_finish} finished-before-kill={early} seconds={self.seconds:.1f} seed={SEED}"
        )


# -- running the program ------------------------------------------------------------------------------------------


def _run_process(
    shape: str, db: Path, run_id: str, log: Path, mode: str, delay: float | None
) -> tuple[int, bool, dict[str, Any] | None]:
    """Run crashy once; kill it ``delay`` seconds after it is ready. Returns its pid, whether SIGKILL ended it,
    and its JSON line if it printed one."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.durability.crashy", shape, str(db), run_id, str(log), mode],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, crashy.GO_ENV: "1"},
    )
    assert proc.stderr is not None
    assert proc.stdin is not None
    before = []
    while (line := proc.stderr.readline()) and line.strip() != crashy.READY:
        before.append(line)  # a warning printed at start-up, say
    if not line:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"{shape} {mode} did not start: {''.join(before)}{err}{out}")
    proc.stdin.write("go\n")
    proc.stdin.flush()  # the kill timer starts as the process goes on
    if delay is not None:
        time.sleep(delay)
        proc.kill()
    out, err = proc.communicate(timeout=60)
    killed = proc.returncode == -signal.SIGKILL
    if not killed and proc.returncode != 0:
        raise AssertionError(f"{shape} {mode} of {run_id} exited {proc.returncode}: {err}{out}")
    lines = out.strip().splitlines()
    output = json.loads(lines[-1]) if lines else None
    if not killed and output is None:
        raise AssertionError(f"{shape} {mode} of {run_id} printed nothing: {err}")
    return proc.pid, killed, output


def _read_journal(db: Path, run_id: str) -> Journal:
    async def read() -> Journal:
        store = SQLiteStore(db)
        await store.open()
        try:
            try:
                await store.get_run(run_id)
            except RunNotFoundError:
                return Journal(exists=False, completed={}, scheduled=frozenset(), finished=None)
            completed: dict[str, list[StepCompleted]] = {}
            scheduled: set[str] = set()
            finished = None
            for entry in await store.read(run_id):
                event = entry.event
                if isinstance(event, StepCompleted):
                    completed.setdefault(event.task_id, []).append(event)
                elif isinstance(event, TasksScheduled):
                    scheduled.update(task["id"] for task in event.tasks)
                elif isinstance(event, RunFinished):
                    finished = event
            return Journal(exists=True, completed=completed, scheduled=frozenset(scheduled), finished=finished)
        finally:
            await store.close()

    return asyncio.run(read())


def _replayed_state(shape: str, db: Path, run_id: str) -> dict[str, Any]:
    """The final state as the journal tells it (replayed without running a step)."""

    async def replay() -> dict[str, Any]:
        store = SQLiteStore(db)
        try:
            checkpoints = await crashy.SHAPES[shape].workflow.history(run_id, store=store)
        finally:
            await store.close()
        state: dict[str, Any] = checkpoints[-1].state.model_dump(mode="json")
        return state

    return asyncio.run(replay())


def _baseline(shape: str, workdir: Path) -> Baseline:
    db, log = workdir / f"{shape}-baseline.db", workdir / f"{shape}-baseline.log"
    _, _, output = _run_process(shape, db, "baseline", log, "start", None)
    assert output is not None
    assert output["status"] == "completed", output
    journal = _read_journal(db, "baseline")
    assert journal.finished is not None
    assert all(len(records) == 1 for records in journal.completed.values())
    lines = crashy.read_log(log)
    logged = Counter(line.task_id for line in lines)
    assert all(count == 1 for count in logged.values()), logged
    return Baseline(
        state=output["state"],
        output=journal.finished.output,
        tasks={task_id: _recorded(records[0]) for task_id, records in journal.completed.items()},
        logged=frozenset(logged),
        seconds=output["elapsed"],
    )


def _recorded(event: StepCompleted) -> tuple[str, Any, Any, Any]:
    return event.step, event.update, event.goto, event.emitted


def _window(baseline: Baseline, last: Process | None) -> float:
    """How long after it goes on a process may be killed: the uninterrupted run's duration D, scaled to the part of
    the run that is left, plus a margin for opening the journal, claiming, replaying and finishing; at least D/2, so
    that a resume near the end still gets past its replay often enough to finish the run."""
    done = len(last.journal.journaled & baseline.tasks.keys()) if last is not None else 0
    return baseline.seconds * max(0.5, 0.15 + 1.0 - done / len(baseline.tasks))


def _campaign(shape: str, db: Path, run_id: str, log: Path, rng: random.Random, report: ShapeReport) -> Campaign:
    """Start, kill, resume, kill, ... until a process finishes the run (see the module docstring)."""
    assert report.baseline is not None
    campaign = Campaign(run_id, log)
    report.campaigns.append(campaign)
    while len(campaign.processes) < _MAX_PROCESSES_PER_CAMPAIGN:
        last = campaign.processes[-1] if campaign.processes else None
        mode = "resume" if last is not None and last.journal.exists else "start"
        delay = rng.uniform(0.0, _window(report.baseline, last)) if report.kills < KILLS_PER_SHAPE else None
        pid, killed, output = _run_process(shape, db, run_id, log, mode, delay)
        journal = _read_journal(db, run_id)
        campaign.processes.append(Process(len(campaign.processes), pid, mode, delay, killed, output, journal))
        if journal.finished is not None:
            campaign.replayed_state = _replayed_state(shape, db, run_id)
            return campaign
        if not killed:
            raise AssertionError(f"{shape}: {mode} of {run_id} exited without finishing the run: {output}")
    raise AssertionError(f"{shape}: {run_id} did not finish in {_MAX_PROCESSES_PER_CAMPAIGN} processes")


def _crash_shape(shape: str, workdir: Path) -> ShapeReport:
    report = ShapeReport(shape)
    started = time.perf_counter()
    rng = random.Random(f"{SEED}:{shape}")
    try:
        report.baseline = _baseline(shape, workdir)
        db = workdir / f"{shape}.db"
        while report.kills < KILLS_PER_SHAPE:
            run_id = f"{shape}-{len(report.campaigns)}"
            _campaign(shape, db, run_id, workdir / f"{run_id}.log", rng, report)
    except Exception as exc:
        report.error = f"{type(exc).__name__}: {exc}"
    report.seconds = time.perf_counter() - started
    return report


# -- checking a campaign --------------------------------------------------------------------------------------------


def _first_journaled(campaign: Campaign) -> dict[str, int]:
    """J(T): the index of the first process after whose death task T's completion was in the journal."""
    first: dict[str, int] = {}
    for process in campaign.processes:
        for task_id in process.journal.journaled:
            first.setdefault(task_id, process.index)
    return first


def _in_flight(process: Process) -> frozenset[str]:
    """Tasks the journal shows scheduled but not completed when ``process`` died."""
    return process.journal.scheduled - process.journal.journaled


def _rerun_bodies(campaign: Campaign) -> int:
    """Bodies that ran to their end in a process that died before journaling them (and so ran again)."""
    first = _first_journaled(campaign)
    pids = {p.pid: p.index for p in campaign.processes}
    return sum(1 for line in crashy.read_log(campaign.log) if pids[line.pid] < first.get(line.task_id, -1))


def _problems(report: ShapeReport, campaign: Campaign) -> list[str]:
    baseline = report.baseline
    assert baseline is not None
    problems: list[str] = []
    processes = campaign.processes
    final = processes[-1].journal

    # the result
    if final.finished is None or final.finished.status != "completed":
        problems.append(f"the run did not complete: {final.finished}")
    elif final.finished.output != baseline.output:
        problems.append(f"journaled output {decode(final.finished.output)!r} != {decode(baseline.output)!r}")
    if campaign.replayed_state != baseline.state:
        problems.append(f"the journal replays to {campaign.replayed_state}, not {baseline.state}")
    printed = processes[-1].output
    if printed is not None and (printed["status"], printed.get("state")) != ("completed", baseline.state):
        problems.append(f"the last process printed {printed}, expected state {baseline.state}")

    # the journal
    for task_id, records in final.completed.items():
        if len(records) != 1:
            problems.append(f"task {task_id} has {len(records)} step_completed records")
    recorded = {task_id: _recorded(records[0]) for task_id, records in final.completed.items()}
    if recorded != baseline.tasks:
        for task_id in sorted(set(recorded) | set(baseline.tasks)):
            if recorded.get(task_id) != baseline.tasks.get(task_id):
                problems.append(
                    f"task {task_id}: journaled {recorded.get(task_id)}, uninterrupted run: "
                    f"{baseline.tasks.get(task_id)}"
                )
    for before, after in itertools.pairwise(processes):
        if not before.journal.journaled <= after.journal.journaled:
            problems.append(f"completions vanished between process {before.index} and {after.index}")

    # the log against the journal
    index_of = {p.pid: p.index for p in processes}
    if len(index_of) != len(processes):
        problems.append(f"a pid was reused within the campaign: {[p.pid for p in processes]}")
    lines = crashy.read_log(campaign.log)
    first = _first_journaled(campaign)
    kills = sum(p.killed for p in processes)
    by_task: dict[str, list[int]] = {}
    for line in lines:
        if line.pid not in index_of:
            problems.append(f"log line from a process that is not the campaign's: {line}")
            continue
        if recorded.get(line.task_id, ("?",))[0] != line.step:
            problems.append(f"log line for a task the journal does not hold as that step: {line}")
            continue
        by_task.setdefault(line.task_id, []).append(index_of[line.pid])
    if set(by_task) != baseline.logged:
        problems.append(f"tasks that ran to their end: {sorted(by_task)}, expected {sorted(baseline.logged)}")
    for task_id, ran_in in sorted(by_task.items()):
        journaled_by = first.get(task_id)
        if journaled_by is None:
            continue  # reported above: not in the final journal
        if len(set(ran_in)) != len(ran_in):
            problems.append(f"task {task_id} ran to its end twice in one process: processes {ran_in}")
        later = [i for i in ran_in if i > journaled_by]
        if later:
            problems.append(
                f"task {task_id} was journaled by process {journaled_by} and ran again in process(es) {later}"
            )
        if journaled_by not in ran_in:
            problems.append(
                f"task {task_id} was journaled by process {journaled_by}, which did not run it to its end "
                f"(it ran in {ran_in})"
            )
        survivors = [i for i in ran_in if i < journaled_by and not processes[i].killed]
        if survivors:
            problems.append(f"task {task_id}: lost executions in processes {survivors} that were not killed")
        if len(ran_in) > 1 + kills:
            problems.append(f"task {task_id} ran {len(ran_in)} times with only {kills} kills")
    for process in processes:
        for task_id in _in_flight(process):
            if first.get(task_id, -1) <= process.index:
                problems.append(f"task {task_id}, in flight when process {process.index} died, was not run again")
    return [f"{campaign.run_id}: {problem}" for problem in problems]


# -- the tests -------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ShapeReport]:
    """Every shape's campaigns, two shapes at a time (one per core); each shape has its own journal file."""
    workdir = tmp_path_factory.mktemp("kill-resume")
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = dict(zip(crashy.SHAPES, pool.map(lambda s: _crash_shape(s, workdir), crashy.SHAPES), strict=True))
    for report in done.values():
        print(report.summary())
    total = sum(r.kills for r in done.values())
    print(f"[durability] total kills={total} over {len(done)} shapes in {time.perf_counter() - started:.1f} s")
    return done


@pytest.mark.parametrize("shape", list(crashy.SHAPES))
def test_killed_runs_resume_to_the_uninterrupted_result(reports: dict[str, ShapeReport], shape: str) -> None:
    report = reports[shape]
    assert report.error is None, f"{report.error} (seed={SEED}; rerun with PODIUM_KILL_SEED={SEED})"
    assert report.kills >= KILLS_PER_SHAPE
    last = report.campaigns[-1].processes[-1]
    # the last process finished the run; on a loaded machine a SIGKILL can land just after that (the journal says
    # run_finished, the process had not exited yet), which is harmless and not counted as a kill
    assert last.journal.finished is not None, "the shape ends with a finished run"
    problems = [problem for campaign in report.campaigns for problem in _problems(report, campaign)]
    assert not problems, f"seed={SEED} (rerun with PODIUM_KILL_SEED={SEED}):\n" + "\n".join(problems)


def test_at_least_sixty_kill_points_over_six_shapes(reports: dict[str, ShapeReport]) -> None:
    assert len(reports) >= 6
    assert all(report.kills >= KILLS_PER_SHAPE for report in reports.values()), [
        (r.shape, r.kills, r.error) for r in reports.values()
    ]
    assert KILLS_PER_SHAPE >= 10
    assert sum(report.kills for report in reports.values()) >= 60
