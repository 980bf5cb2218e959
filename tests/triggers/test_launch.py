"""One event never starts two runs: fired twice in one process, at once, or by two processes racing on one SQLite
file; the event is journaled with its run; a payload that does not fit starts nothing."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydantic import BaseModel

from podium import END, START, Graph, MemoryStore, RunStatus, Store, TriggerError, Worker, open_store
from podium.observe._timeline import run_report
from podium.triggers import Launcher, run_id_for
from tests.triggers.jobs import event, jobs

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "memory":
        return MemoryStore()
    if request.param == "sqlite":
        return open_store(f"sqlite:///{tmp_path / 'runs.db'}")
    return open_store(request.getfixturevalue("postgres_store_url"))


async def test_a_trigger_that_fires_twice_starts_exactly_one_run(store: Store) -> None:
    workflow = jobs()
    launcher = Launcher(workflow, store)
    first = await launcher.fire(event("ticket-1", {"subject": "refund"}))
    second = await launcher.fire(event("ticket-1", {"subject": "refund"}))

    assert (first.created, second.created) == (True, False)
    assert first.run_id == second.run_id == run_id_for("jobs", "hook", "ticket-1")
    assert second.status == "pending"
    assert [r.run_id for r in await store.list_runs()] == [first.run_id]
    worker = Worker([workflow], store=store)
    assert await worker.run_once() == 1
    assert worker.finished[0].output == 'handled {"subject": "refund"}'
    again = await launcher.fire(event("ticket-1", {"subject": "refund"}))  # after it ran: still the same run
    assert (again.created, again.run_id, again.status) == (False, first.run_id, "completed")
    assert await worker.run_once() == 0
    assert len(await store.list_runs()) == 1


async def test_the_same_event_fired_many_times_at_once_starts_one_run(store: Store) -> None:
    launcher = Launcher(jobs(), store)
    fired = await asyncio.gather(*(launcher.fire(event("same")) for _ in range(20)))
    assert sum(f.created for f in fired) == 1
    assert len({f.run_id for f in fired}) == 1
    assert len(await store.list_runs()) == 1


def test_two_processes_racing_on_one_sqlite_file_start_each_event_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    go = tmp_path / "go"
    count = 200
    command = [sys.executable, "-m", "tests.triggers.jobs", url, str(go), str(count)]
    # one process fires the events from the first, the other from the last: they meet, and race, in the middle
    procs = [
        subprocess.Popen([*command, order], cwd=ROOT, stdout=subprocess.PIPE, text=True) for order in ("up", "down")
    ]
    deadline = time.monotonic() + 30
    while not all(Path(f"{go}.{order}").exists() for order in ("up", "down")) and time.monotonic() < deadline:
        time.sleep(0.01)  # both import podium and open the store; the race starts when 'go' appears
    go.touch()
    outputs = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    assert [p.returncode for p in procs] == [0, 0]

    assert sum(o["created"] for o in outputs) == count  # each event started one run, whoever saw it first
    assert outputs[0]["run_ids"] == outputs[1]["run_ids"]  # and both processes were told which

    async def check() -> None:
        store = open_store(url)
        await store.open()
        runs = await store.list_runs(limit=1000)
        assert sorted(r.run_id for r in runs) == sorted(outputs[0]["run_ids"])
        for run in runs:
            assert [e.event.kind for e in await store.read(run.run_id)] == ["run_accepted", "trigger_fired"]
        await store.close()

    asyncio.run(check())


async def test_the_event_is_journaled_with_its_run_and_shown(store: Store) -> None:
    workflow = jobs()
    fired = await Launcher(workflow, store).fire(event("k", {"a": [1, 2]}))
    accepted, record = [e.event for e in await store.read(fired.run_id)]
    assert accepted.kind == "run_accepted"
    assert record.kind == "trigger_fired"
    assert (record.trigger, record.source, record.key, record.payload) == ("hook", "webhook", "k", {"a": [1, 2]})
    await Worker([workflow], store=store).run_once()
    report = await run_report(store, fired.run_id)
    assert report["status"] == "completed"
    assert report["trigger"] == {"trigger": "hook", "source": "webhook", "key": "k", "payload": {"a": [1, 2]}}
    assert await store.compact(fired.run_id) >= 0
    assert "trigger_fired" in [e.event.kind for e in await store.read(fired.run_id)]  # kept: it is the audit trail


async def test_input_maps_the_payload_to_the_runs_input() -> None:
    store = MemoryStore()
    launcher = Launcher(jobs(), store)
    templated = await launcher.fire(event("t", {"name": "a.pdf", "size": 3}), "file {name} ({size} bytes)")
    computed = await launcher.fire(event("c", {"name": "b.pdf"}), lambda payload: payload["name"].upper())
    worker = Worker([launcher.workflow], store=store)
    await worker.run_once()
    outputs = {r.run_id: r.output for r in worker.finished}
    assert outputs[templated.run_id] == 'handled "file a.pdf (3 bytes)"'
    assert outputs[computed.run_id] == 'handled "B.PDF"'


class Ticket(BaseModel):
    subject: str
    priority: int


async def test_a_payload_that_does_not_fit_starts_nothing(store: Store) -> None:
    await store.open()
    graph = Graph(Ticket, name="tickets")
    graph.add(lambda state: None, name="noop")
    graph.chain(START, "noop", END)
    launcher = Launcher(graph.build(), store)
    with pytest.raises(TriggerError, match="trigger 'hook': the event does not fit workflow 'tickets': priority"):
        await launcher.fire(event("bad", {"subject": "refund", "priority": "high"}))
    with pytest.raises(TriggerError, match="names 'id', which the event does not have; it has \\['subject'\\]"):
        await launcher.fire(event("bad2", {"subject": "x"}), "ticket {id}")
    with pytest.raises(TriggerError, match="needs a JSON object, not a list"):
        await launcher.fire(event("bad3", [1, 2]), "ticket {id}")
    with pytest.raises(TriggerError, match="the event cannot be journaled"):
        await Launcher(jobs(), store).fire(event("bad4"), lambda payload: object())  # not JSON, not a model
    assert await store.list_runs() == []
    ok = await launcher.fire(event("good", {"subject": "refund", "priority": 2}))
    assert ok.created
    assert (await store.get_run(ok.run_id)).status == "pending"


def test_run_ids_are_stable_readable_and_distinct() -> None:
    run_id = run_id_for("crew", "inbox", "a.txt@sha256:00")
    assert run_id == run_id_for("crew", "inbox", "a.txt@sha256:00")
    assert run_id.startswith("inbox-")
    assert len({run_id, run_id_for("other", "inbox", "a.txt@sha256:00"), run_id_for("crew", "inbox", "b")}) == 3
    assert RunStatus.COMPLETED.value == "completed"
