"""Resume semantics, in one process and fast: a crash is simulated by a step that raises ``crashy.Crash``.

``Crash`` is a ``BaseException``, not an ``Exception``: podium turns a step's exceptions into failed steps, but lets
this one leave ``run()`` at once, with the journal as it was at that moment, as a crash would. (Unlike a real crash,
the execution gives its lease up on the way out, so the resume need not wait for the lease of an owner that is still
alive; ``test_kill_resume`` covers real crashes.)

Every step of the shapes in :mod:`tests.durability.crashy` logs one line when its body runs to its end, so the tests
count executions per task: a task whose completion was journaled before the crash is never executed again, and
every other one (the crashed task included) is executed exactly once by the resume.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

import podium
from podium import (
    END,
    START,
    Graph,
    JournalMismatchError,
    JournalOptions,
    LeaseLostError,
    Limits,
    RunNotFoundError,
    RunStateError,
    RunStatus,
    SQLiteStore,
    Workflow,
    planner,
    reducers,
    sequential,
    step,
)
from podium.journal import Event, RunFinished, RunStarted, RunState, StepCompleted, StepFailed, decode
from tests.durability import crashy

RUN = "run-1"

CRASH_POINTS = {
    "chain": ("s4", 0),
    "fanout": ("a2", 0),  # a sync branch, in a parallel superstep
    "loop": ("critique", 3),
    "nested": ("team/deep/d2", 0),  # a sub-workflow inside a sub-workflow, in a parallel part
    "sends": ("work", 3),
    "planner": ("section/write", 2),  # a sub-workflow per subtask, in a dynamic fan-out
    "events": ("audit", 1),  # a sync subscriber of a chained event
}
"""Where each shape crashes: the n-th task (by task id) of a step path."""


@pytest.fixture
def probe(tmp_path: Path) -> Iterator[crashy.Probe]:
    crashy.PROBE.log_path = str(tmp_path / "steps.log")
    yield crashy.PROBE
    crashy.PROBE.log_path = None
    crashy.PROBE.crash = None
    crashy.PROBE.fail_at = frozenset()


def _options(shape: str) -> JournalOptions:
    return JournalOptions(snapshot_every=crashy.SHAPES[shape].snapshot_every)


def _log(probe: crashy.Probe) -> list[crashy.LogLine]:
    assert probe.log_path is not None
    return crashy.read_log(probe.log_path)


def _task_key(task_id: str) -> list[list[int]]:
    return [[int(n) for n in part.split(".")] for part in task_id.split("/")]


@dataclass(frozen=True, slots=True)
class Expected:
    """What the uninterrupted run gives."""

    state: dict[str, Any]
    tasks: dict[str, tuple[str, Any, Any, Any]]
    """task id → (step path, update, goto, emitted) as journaled."""
    logged: dict[str, str]
    """Instrumented task id → step path: the tasks whose body logs a line."""

    def task_of(self, path: str, nth: int) -> str:
        return sorted((t for t, p in self.logged.items() if p == path), key=_task_key)[nth]


async def _completed(store: SQLiteStore, run_id: str = RUN) -> dict[str, list[StepCompleted]]:
    completed: dict[str, list[StepCompleted]] = {}
    for entry in await store.read(run_id):
        if isinstance(entry.event, StepCompleted):
            completed.setdefault(entry.event.task_id, []).append(entry.event)
    return completed


def _recorded(completed: dict[str, list[StepCompleted]]) -> dict[str, tuple[str, Any, Any, Any]]:
    assert all(len(records) == 1 for records in completed.values()), "a completion was journaled twice"
    return {t: (r[0].step, r[0].update, r[0].goto, r[0].emitted) for t, r in completed.items()}


async def _events(store: SQLiteStore, run_id: str = RUN) -> list[Event]:
    return [entry.event for entry in await store.read(run_id)]


async def _uninterrupted(shape: str, tmp_path: Path, probe: crashy.Probe) -> Expected:
    """Run the shape to its end in a journal of its own (same run id), logging to a log of its own."""
    log_path = probe.log_path
    probe.log_path = str(tmp_path / "uninterrupted.log")
    store = SQLiteStore(tmp_path / "uninterrupted.db")
    try:
        spec = crashy.SHAPES[shape]
        result = await spec.workflow.run(spec.input, run_id=RUN, store=store, journal=_options(shape))
        assert result.status is RunStatus.COMPLETED, result.reason
        lines = _log(probe)
        assert Counter(line.task_id for line in lines).most_common(1)[0][1] == 1
        return Expected(
            state=result.state.model_dump(mode="json"),
            tasks=_recorded(await _completed(store)),
            logged={line.task_id: line.step for line in lines},
        )
    finally:
        await store.close()
        probe.log_path = log_path


async def _crash(shape: str, store: SQLiteStore, options: JournalOptions | None = None) -> None:
    """Run the shape until the crash the probe is armed with, and let a sync step that was cancelled with its
    superstep finish its thread (its result is discarded; it must not log after the test looked)."""
    spec = crashy.SHAPES[shape]
    with pytest.raises(crashy.Crash):
        await spec.workflow.run(spec.input, run_id=RUN, store=store, journal=options or _options(shape))
    await asyncio.sleep(0.05)


def _check_counts(
    expected: Expected, journaled: set[str], before: list[crashy.LogLine], after: list[crashy.LogLine]
) -> None:
    """Journaled before the resume: ran once, before it, and never again. Anything else: exactly once in it."""
    ran_before = Counter(line.task_id for line in before)
    ran_after = Counter(line.task_id for line in after)
    instrumented = set(expected.logged)
    assert not set(ran_after) & journaled, "a task whose completion was journaled ran again"
    assert ran_after == Counter(instrumented - journaled), "every task not journaled runs exactly once on resume"
    assert all(ran_before[t] == 1 for t in journaled & instrumented), "a journaled task ran once before the resume"
    assert all(line.step == expected.logged.get(line.task_id) for line in before + after), "task ids are stable"


# -- a crash, then a resume: every shape ----------------------------------------------------------------------------


@pytest.mark.parametrize("after_body", [False, True], ids=["mid-body", "after-body"])
@pytest.mark.parametrize("shape", list(crashy.SHAPES))
async def test_a_crashed_run_resumes_to_the_uninterrupted_result(
    shape: str, after_body: bool, probe: crashy.Probe, tmp_path: Path
) -> None:
    """Mid-body: the crashed task had not finished. After-body: its body ran to its end (it logged) but its result
    was not journaled yet. Either way it runs again, once; the resume uses the same store object (mid-body) or a
    new one on the same file (after-body)."""
    expected = await _uninterrupted(shape, tmp_path, probe)
    target = expected.task_of(*CRASH_POINTS[shape])
    store = SQLiteStore(tmp_path / "crash.db")
    probe.crash = crashy.CrashPoint(target, after_body=after_body)

    await _crash(shape, store)
    journaled = set(await _completed(store))
    before = _log(probe)
    assert target not in journaled
    assert [line.task_id for line in before].count(target) == (1 if after_body else 0)
    assert (await store.get_run(RUN)).owner is None, "an execution that dies of an exception gives its lease up"

    resumer = SQLiteStore(tmp_path / "crash.db") if after_body else store
    result = await crashy.SHAPES[shape].workflow.resume(RUN, store=resumer, journal=_options(shape))

    assert result.status is RunStatus.COMPLETED, result.reason
    assert result.state.model_dump(mode="json") == expected.state
    _check_counts(expected, journaled, before, _log(probe)[len(before) :])
    assert _recorded(await _completed(resumer)) == expected.tasks
    started = [e for e in await _events(resumer) if isinstance(e, RunStarted)]
    assert [e.resumed for e in started] == [False, True]
    await store.close()
    await resumer.close()


@pytest.mark.parametrize("shape", ["nested", "planner", "events"])
async def test_a_run_that_crashes_again_while_resuming_resumes_again(
    shape: str, probe: crashy.Probe, tmp_path: Path
) -> None:
    expected = await _uninterrupted(shape, tmp_path, probe)
    order = sorted(expected.logged, key=_task_key)
    store = SQLiteStore(tmp_path / "crash.db")

    probe.crash = crashy.CrashPoint(order[len(order) // 3])
    await _crash(shape, store)
    journaled_first = set(await _completed(store))
    at_first_crash = len(_log(probe))
    left = [task_id for task_id in order if task_id not in journaled_first]
    second = left[len(left) // 2]  # the resume runs every task that is not journaled, so it gets there
    probe.crash = crashy.CrashPoint(second, after_body=True)
    with pytest.raises(crashy.Crash):
        await crashy.SHAPES[shape].workflow.resume(RUN, store=store, journal=_options(shape))
    await asyncio.sleep(0.05)
    journaled_second = set(await _completed(store))
    before = _log(probe)
    result = await crashy.SHAPES[shape].workflow.resume(RUN, store=store, journal=_options(shape))

    assert result.status is RunStatus.COMPLETED, result.reason
    assert result.state.model_dump(mode="json") == expected.state
    assert journaled_first <= journaled_second
    assert not {line.task_id for line in before[at_first_crash:]} & journaled_first, "the first resume re-ran one"
    _check_counts(expected, journaled_second, before, _log(probe)[len(before) :])
    assert _recorded(await _completed(store)) == expected.tasks
    await store.close()


# -- what resume refuses --------------------------------------------------------------------------------------------


async def test_resume_of_a_completed_run_is_refused_and_writes_nothing(probe: crashy.Probe, tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "j.db")
    result = await crashy.CHAIN.run(run_id=RUN, store=store)
    assert result.status is RunStatus.COMPLETED
    journal, info, ran = await store.read(RUN), await store.get_run(RUN), len(_log(probe))

    for resumer in (store, SQLiteStore(tmp_path / "j.db")):
        with pytest.raises(RunStateError) as refused:
            await crashy.CHAIN.resume(RUN, store=resumer)
        assert (refused.value.run_id, refused.value.status) == (RUN, "completed")
        assert await resumer.read(RUN) == journal
        assert await resumer.get_run(RUN) == info
        await resumer.close()
    assert len(_log(probe)) == ran


async def test_resume_of_an_unknown_run_is_not_found(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "j.db")
    with pytest.raises(RunNotFoundError) as missing:
        await crashy.CHAIN.resume("no-such-run", store=store)
    assert missing.value.run_id == "no-such-run"
    assert await store.list_runs() == []
    await store.close()


async def test_resume_with_another_workflow_is_refused_and_writes_nothing(probe: crashy.Probe, tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "j.db")
    probe.crash = crashy.CrashPoint("4.0")
    await _crash("chain", store)
    journal, info = await store.read(RUN), await store.get_run(RUN)

    with pytest.raises(RunStateError, match="workflow 'chain', not 'fanout'"):
        await crashy.FANOUT.resume(RUN, store=store)

    assert await store.read(RUN) == journal
    assert await store.get_run(RUN) == info
    result = await crashy.CHAIN.resume(RUN, store=store)  # the right workflow still can
    assert result.status is RunStatus.COMPLETED
    await store.close()


async def _noop(state: Any) -> None:
    return None


def _chain_renamed(renamed: int) -> Workflow[crashy.Chain]:
    """The chain with step ``s<renamed>`` renamed: same workflow name, so only the replay can tell."""
    names = [f"s{n}" if n != renamed else f"s{n}_renamed" for n in range(1, 9)]
    return sequential(*(step(_noop, name=name) for name in names), state=crashy.Chain, name="chain")


async def test_resume_after_a_step_was_renamed_is_a_journal_mismatch(probe: crashy.Probe, tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "j.db")
    probe.crash = crashy.CrashPoint("5.0")
    await _crash("chain", store, JournalOptions())  # no snapshot: a resume replays the journal from the start
    ran = len(_log(probe))

    with pytest.raises(JournalMismatchError) as mismatch:
        await _chain_renamed(2).resume(RUN, store=store)

    # refused before replaying anything: the journal's fingerprint of the workflow's structure differs
    assert (mismatch.value.run_id, mismatch.value.task_id) == (RUN, "-")
    assert "steps removed ['s2'], added ['s2_renamed']" in str(mismatch.value)
    assert len(_log(probe)) == ran, "nothing ran"
    assert not [e for e in await _events(store) if isinstance(e, StepFailed | RunFinished)]
    # the mismatch gave the run up at once: the workflow that began it resumes it without waiting for a lease
    result = await crashy.CHAIN.resume(RUN, store=store)
    assert result.status is RunStatus.COMPLETED
    assert Counter(line.step for line in _log(probe)) == Counter(f"s{n}" for n in range(1, 9))
    await store.close()


async def test_resume_from_a_snapshot_whose_next_step_was_renamed_is_a_journal_mismatch(
    probe: crashy.Probe, tmp_path: Path
) -> None:
    store = SQLiteStore(tmp_path / "j.db")
    probe.crash = crashy.CrashPoint("6.0")
    await _crash("chain", store, JournalOptions(snapshot_every=2))  # snapshot after superstep 4, frontier: s5

    try:
        with pytest.raises(JournalMismatchError) as mismatch:
            await _chain_renamed(5).resume(RUN, store=store, journal=JournalOptions(snapshot_every=2))
        assert mismatch.value.run_id == RUN
    finally:
        result = await crashy.CHAIN.resume(RUN, store=store)  # the workflow that began it still finishes it
        assert result.status is RunStatus.COMPLETED
        await store.close()


def _nested_with_deep_renamed() -> Workflow[crashy.Outer]:
    """The nested shape, with the first step of the innermost sub-workflow renamed."""

    async def d(state: crashy.Deep) -> dict[str, Any]:
        return {"trail": "changed"}

    deep = sequential(
        step(d, name="d1_renamed"), step(d, name="d2"), step(d, name="d3"), state=crashy.Deep, name="deep"
    )
    team: Graph[crashy.Team] = Graph(crashy.Team, name="team")
    team.add(crashy.t_plan).add(crashy.t_a).add(crashy.t_b).add(deep, output=lambda final: {"parts": "x"})
    team.add(crashy.t_merge)
    team.edge(START, "t_plan").edge("t_plan", "t_a").edge("t_plan", "t_b").edge("t_plan", "deep")
    team.join(["t_a", "t_b", "deep"], "t_merge").edge("t_merge", END)
    outer: Graph[crashy.Outer] = Graph(crashy.Outer, name="nested")
    outer.add(crashy.intro).add(team.build(output="summary"), into="team_summary").add(crashy.side)
    outer.add(crashy.outro)
    outer.edge(START, "intro").edge("intro", "team").edge("intro", "side")
    outer.join(["team", "side"], "outro").edge("outro", END)
    return outer.build()


async def test_resume_after_a_step_in_a_sub_workflow_was_renamed_is_a_journal_mismatch(
    probe: crashy.Probe, tmp_path: Path
) -> None:
    expected = await _uninterrupted("nested", tmp_path, probe)
    store = SQLiteStore(tmp_path / "j.db")
    probe.crash = crashy.CrashPoint(expected.task_of("team/deep/d3", 0))
    await _crash("nested", store)
    journal = await _events(store)

    try:
        with pytest.raises(JournalMismatchError) as mismatch:
            await _nested_with_deep_renamed().resume(RUN, store=store, journal=_options("nested"))
        assert mismatch.value.task_id == "-"  # refused by the structural fingerprint, before any replay
        assert "team/deep/d1" in str(mismatch.value)
    finally:
        written = (await _events(store))[len(journal) :]
        # the workflow that began the run can still finish it: the failure above is not permanent
        result = await crashy.NESTED.resume(RUN, store=store, journal=_options("nested"))
        assert result.status is RunStatus.COMPLETED
        assert result.state.model_dump(mode="json") == expected.state
        await store.close()
    assert not [e for e in written if isinstance(e, StepFailed | RunFinished)], written


async def _work(state: podium.Conversation, subtask: str) -> str:
    return f"done {subtask}"


async def _synthesize(state: podium.Conversation) -> list[str]:
    return [f"{t.kind}:{t.content}" for t in state.turns if t.kind in ("subtask", "error")]


def _renamed_section() -> Workflow[crashy.Section]:
    return sequential(
        step(_noop, name="research_renamed"), step(_noop, name="write"), state=crashy.Section, name="section",
        input="topic", output="text",
    )  # fmt: skip


async def test_a_journal_mismatch_in_a_skipping_planner_worker_is_not_recorded_as_a_skipped_subtask(
    probe: crashy.Probe, tmp_path: Path
) -> None:
    def team(worker: Workflow[crashy.Section]) -> Workflow[podium.Conversation]:
        return planner(crashy.outline, worker, _synthesize, on_subtask_failure="skip", name="skipping")

    store = SQLiteStore(tmp_path / "j.db")
    probe.crash = crashy.CrashPoint("2.1/2.0")  # the write step of the second subtask
    with pytest.raises(crashy.Crash):
        await team(crashy.SECTION).run("Tides", run_id=RUN, store=store)
    await asyncio.sleep(0.05)

    try:
        with pytest.raises(JournalMismatchError):
            await team(_renamed_section()).resume(RUN, store=store)
    finally:
        await store.close()


# -- failed and limited runs ----------------------------------------------------------------------------------------


async def test_a_failed_run_resumed_after_the_fix_reruns_only_the_failed_step(
    probe: crashy.Probe, tmp_path: Path
) -> None:
    expected = await _uninterrupted("chain", tmp_path, probe)
    store = SQLiteStore(tmp_path / "j.db")
    probe.fail_at = frozenset({"5.0"})

    failed = await crashy.CHAIN.run(run_id=RUN, store=store)
    assert failed.status is RunStatus.FAILED
    assert "s5" in (failed.reason or "")
    assert [e.task_id for e in await _events(store) if isinstance(e, StepFailed)] == ["5.0"]
    assert [line.step for line in _log(probe)] == ["s1", "s2", "s3", "s4"]

    probe.fail_at = frozenset()  # the fix
    result = await crashy.CHAIN.resume(RUN, store=store)

    assert result.status is RunStatus.COMPLETED
    assert result.state.model_dump(mode="json") == expected.state
    assert [line.step for line in _log(probe)] == [f"s{n}" for n in range(1, 9)]
    assert _recorded(await _completed(store)) == expected.tasks
    await store.close()


async def test_a_run_failed_inside_a_sub_workflow_resumes_after_the_fix(probe: crashy.Probe, tmp_path: Path) -> None:
    expected = await _uninterrupted("nested", tmp_path, probe)
    store = SQLiteStore(tmp_path / "j.db")
    target = expected.task_of("team/deep/d2", 0)
    probe.fail_at = frozenset({target})

    failed = await crashy.NESTED.run(run_id=RUN, store=store)
    assert failed.status is RunStatus.FAILED
    assert "team/deep/d2" in (failed.reason or "")
    await asyncio.sleep(0.05)  # a sync sibling cancelled with the failure finishes its thread
    journaled = set(await _completed(store))
    before = _log(probe)
    assert target not in journaled

    probe.fail_at = frozenset()
    result = await crashy.NESTED.resume(RUN, store=store)

    assert result.status is RunStatus.COMPLETED
    assert result.state.model_dump(mode="json") == expected.state
    _check_counts(expected, journaled, before, _log(probe)[len(before) :])
    await store.close()


async def test_a_limited_run_resumed_with_higher_limits_completes(probe: crashy.Probe, tmp_path: Path) -> None:
    expected = await _uninterrupted("chain", tmp_path, probe)
    store = SQLiteStore(tmp_path / "j.db")

    limited = await crashy.CHAIN.run(run_id=RUN, store=store, limits=Limits(max_steps=4))
    assert (limited.status, limited.limit) == (RunStatus.LIMITED, "max_steps")
    assert [line.step for line in _log(probe)] == ["s1", "s2", "s3", "s4"]

    result = await crashy.CHAIN.resume(RUN, store=store, limits=Limits(max_steps=100))

    assert result.status is RunStatus.COMPLETED
    assert result.state.model_dump(mode="json") == expected.state
    assert [line.step for line in _log(probe)] == [f"s{n}" for n in range(1, 9)]
    assert result.steps == 8  # the replayed steps count towards the run's steps
    await store.close()


async def test_a_limited_run_resumed_with_the_same_limit_is_limited_again_without_running(
    probe: crashy.Probe, tmp_path: Path
) -> None:
    store = SQLiteStore(tmp_path / "j.db")
    await crashy.CHAIN.run(run_id=RUN, store=store, limits=Limits(max_steps=4))
    ran = len(_log(probe))

    again = await crashy.CHAIN.resume(RUN, store=store, limits=Limits(max_steps=4))

    assert (again.status, again.limit) == (RunStatus.LIMITED, "max_steps")
    assert len(_log(probe)) == ran
    await store.close()


# -- what a resume takes from the journal, and what it makes again ---------------------------------------------------


class Stamped(BaseModel):
    stamped_at: str = ""
    ids: Annotated[list[str], reducers.append] = []


_attempts: list[str] = []
"""The id ``flaky`` drew in each of its executions."""
_crash_flaky: list[bool] = []
"""Non-empty: ``flaky``'s next execution crashes (once)."""


async def stamp(state: Stamped) -> dict[str, Any]:
    ctx = podium.context()
    return {"stamped_at": ctx.now().isoformat(), "ids": f"stamp:{ctx.new_id()}"}


async def flaky(state: Stamped) -> dict[str, Any]:
    drawn = podium.context().new_id()
    _attempts.append(drawn)
    if _crash_flaky:
        _crash_flaky.clear()
        raise crashy.Crash("after drawing an id")
    return {"ids": f"flaky:{drawn}"}


async def later(state: Stamped) -> dict[str, Any]:
    return {"ids": f"later:{podium.context().new_id()}:{podium.context().task_id}"}


STAMPED = sequential(stamp, flaky, later, state=Stamped, name="stamped")


async def test_task_ids_and_new_ids_are_stable_across_a_resume_and_journaled_times_are_kept(tmp_path: Path) -> None:
    _attempts.clear()
    _crash_flaky.append(True)
    store = SQLiteStore(tmp_path / "j.db")
    with pytest.raises(crashy.Crash):
        await STAMPED.run(run_id=RUN, store=store)
    stamped = (await _completed(store))["1.0"][0]
    await asyncio.sleep(0.3)  # a step run again now would see another now(); the journaled one must be kept
    result = await STAMPED.resume(RUN, store=store)
    assert result.status is RunStatus.COMPLETED
    uninterrupted_store = SQLiteStore(tmp_path / "uninterrupted.db")  # the same run id, in another journal
    uninterrupted = await STAMPED.run(run_id=RUN, store=uninterrupted_store)

    assert len(_attempts) == 3  # crashed, resumed, uninterrupted
    assert len(set(_attempts)) == 1, "new_id() depends only on the run id, the task id and the count"
    assert result.state.ids == uninterrupted.state.ids
    assert result.state.stamped_at == decode(stamped.update)["stamped_at"]  # not run again
    journaled = {t: records[0].step for t, records in (await _completed(store)).items()}
    assert journaled == {t: r[0].step for t, r in (await _completed(uninterrupted_store)).items()}
    assert journaled == {"1.0": "stamp", "2.0": "flaky", "3.0": "later"}
    await store.close()
    await uninterrupted_store.close()


# -- the lease keeper at the end of a run -----------------------------------------------------------------------------


class SlowToAnswerStore(SQLiteStore):
    """A SQLite store whose writes that give a run's lease up return ``delay`` seconds after they committed, like a
    store across a network (PostgreSQL) or one that fsyncs in a thread (``durability="power"``)."""

    def __init__(self, path: Path, delay: float) -> None:
        super().__init__(path)
        self.delay = delay

    async def release(self, run_id: str, owner: str, *, at: float) -> None:
        await super().release(run_id, owner, at=at)
        await asyncio.sleep(self.delay)

    async def append(
        self,
        run_id: str,
        events: Sequence[Event],
        *,
        owner: str,
        lease_seconds: float,
        at: float,
        status: RunState | None = None,
        reason: str | None = None,
        release: bool = False,
    ) -> int:
        seq = await super().append(
            run_id, events, owner=owner, lease_seconds=lease_seconds, at=at, status=status, reason=reason,
            release=release,
        )  # fmt: skip
        if release:
            await asyncio.sleep(self.delay)
        return seq


_RACE = (
    "the lease keeper (RunJournal.keep_lease) is cancelled in execute()'s finally, after the write that releases "
    "the lease; a renewal that falls while that write is returning finds the lease gone and cancels the run's task"
)


async def test_a_completed_run_is_not_reported_as_lost_when_its_last_write_is_slow(
    probe: crashy.Probe, tmp_path: Path
) -> None:
    store = SlowToAnswerStore(tmp_path / "j.db", delay=0.1)
    try:
        result = await crashy.CHAIN.run(run_id=RUN, store=store, journal=JournalOptions(lease_seconds=0.06))
        assert result.status is RunStatus.COMPLETED
    except LeaseLostError:
        assert (await store.get_run(RUN)).status == "completed", "the journal says it completed"
        raise
    finally:
        await store.close()


async def test_the_exception_that_ends_a_run_is_not_replaced_when_giving_the_lease_up_is_slow(
    probe: crashy.Probe, tmp_path: Path
) -> None:
    store = SlowToAnswerStore(tmp_path / "j.db", delay=0.1)
    probe.crash = crashy.CrashPoint("3.0")
    try:
        with pytest.raises(crashy.Crash):
            await crashy.CHAIN.run(run_id=RUN, store=store, journal=JournalOptions(lease_seconds=0.06))
    finally:
        await store.close()
