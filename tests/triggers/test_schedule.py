"""Schedules, on a clock the test drives: each due time fires once, missed times are caught up once or not at all,
and a due time fired twice (two processes, a restart) starts one run."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from podium import ConfigError, MemoryStore, Worker
from podium.triggers import Fired, Launcher, Schedule, TriggerEvent, run_id_for
from tests.triggers.jobs import FakeClock, StopClock, jobs


def at(hour: int, minute: int, second: int = 0) -> float:
    return datetime(2024, 5, 1, hour, minute, second, tzinfo=UTC).timestamp()


async def watch(schedule: Schedule, clock: FakeClock, launcher: Launcher | None = None) -> list[Fired | TriggerEvent]:
    """Run the schedule until the clock ends; what it fired (as runs when a launcher is given)."""
    seen: list[Fired | TriggerEvent] = []

    async def fire(event: TriggerEvent) -> Fired:
        if launcher is None:
            seen.append(event)
            return Fired(event=event, run_id="-", created=True, status="pending")
        fired = await launcher.fire(event, schedule.input)
        seen.append(fired)
        return fired

    with pytest.raises(StopClock):
        await schedule.watch(fire, clock)
    return seen


def dues(seen: list[Fired | TriggerEvent]) -> list[str]:
    return [(s.event if isinstance(s, Fired) else s).payload["due"][11:16] for s in seen]


async def test_every_due_time_in_an_hour_starts_one_run() -> None:
    store, workflow = MemoryStore(), jobs()
    schedule = Schedule(cron="*/5 * * * *", name="every5")
    seen = await watch(schedule, FakeClock(at(10, 2, 30), until=at(11, 1)), Launcher(workflow, store))

    assert dues(seen) == [f"10:{m:02d}" for m in range(5, 60, 5)] + ["11:00"]
    fired = [s for s in seen if isinstance(s, Fired)]
    assert all(f.created for f in fired)
    assert fired[0].event.key == "2024-05-01T10:05:00+00:00"
    assert fired[0].run_id == run_id_for("jobs", "every5", "2024-05-01T10:05:00+00:00")
    assert fired[0].event.payload == {"trigger": "every5", "due": "2024-05-01T10:05:00+00:00", "cron": "*/5 * * * *"}
    assert len(await store.list_runs()) == 12
    worker = Worker([workflow], store=store)
    assert await worker.run_once() == 12
    assert {r.output for r in worker.finished} == {f"handled {p}" for p in _payloads(fired)}


def _payloads(fired: list[Fired]) -> list[str]:
    import json

    return [json.dumps(f.event.payload, sort_keys=True) for f in fired]


async def test_a_due_time_fired_twice_starts_one_run() -> None:
    """Two processes serving one crew (or one restarted within the minute) see the same due times."""
    store, workflow = MemoryStore(), jobs()
    schedule = Schedule(cron="0 * * * *", name="hourly")
    first = await watch(schedule, FakeClock(at(9, 30), until=at(12, 30)), Launcher(workflow, store))
    second = await watch(schedule, FakeClock(at(10, 59, 59), until=at(12, 30)), Launcher(workflow, store))

    assert dues(first) == ["10:00", "11:00", "12:00"]
    assert dues(second) == ["11:00", "12:00"]
    assert [s.created for s in second if isinstance(s, Fired)] == [False, False]
    assert [s.run_id for s in second if isinstance(s, Fired)] == [s.run_id for s in first[1:] if isinstance(s, Fired)]
    assert len(await store.list_runs()) == 3


async def test_without_catch_up_a_time_missed_before_starting_is_not_made_up() -> None:
    seen = await watch(Schedule(cron="*/5 * * * *"), FakeClock(at(10, 7, 30), until=at(10, 16)))
    assert dues(seen) == ["10:10", "10:15"]


async def test_catch_up_fires_once_for_the_latest_missed_time_within_the_window() -> None:
    seen = await watch(Schedule(cron="*/5 * * * *", catch_up=600), FakeClock(at(10, 7, 30), until=at(10, 11)))
    assert dues(seen) == ["10:05", "10:10"]  # not 10:00 as well: missed times are coalesced into the latest
    seen = await watch(Schedule(cron="*/5 * * * *", catch_up=60), FakeClock(at(10, 7, 30), until=at(10, 11)))
    assert dues(seen) == ["10:10"]  # 10:05 is 150 s late, more than the window


async def test_catch_up_after_a_restart_does_not_repeat_a_time_that_ran() -> None:
    store, workflow = MemoryStore(), jobs()
    schedule = Schedule(cron="*/5 * * * *", name="s", catch_up=3600)
    first = await watch(schedule, FakeClock(at(10, 4), until=at(10, 6)), Launcher(workflow, store))
    again = await watch(schedule, FakeClock(at(10, 6), until=at(10, 7)), Launcher(workflow, store))
    assert [(s.payload["due"][11:16] if isinstance(s, TriggerEvent) else s.created) for s in first] == [True, True]
    assert [s.created for s in again if isinstance(s, Fired)] == [False]  # 10:05 caught up, but it ran already
    assert len(await store.list_runs()) == 2  # 10:00 (caught up at the first start) and 10:05


async def test_after_a_suspension_the_times_missed_are_one_run_or_none() -> None:
    # asleep from 10:11 to 13:15:10: 13:15 (10 s ago) stands for all the times missed
    suspended = (at(10, 10, 30), at(13, 15, 10) - at(10, 11))
    seen = await watch(Schedule(cron="*/5 * * * *"), FakeClock(at(10, 2), until=at(13, 21), jump=suspended))
    assert dues(seen) == ["10:05", "10:10", "13:15", "13:20"]
    # back at 13:18: 13:15 is late, and without catch_up it is missed
    suspended = (at(10, 10, 30), at(13, 18) - at(10, 11))
    seen = await watch(Schedule(cron="*/5 * * * *"), FakeClock(at(10, 2), until=at(13, 21), jump=suspended))
    assert dues(seen) == ["10:05", "10:10", "13:20"]
    # with catch_up it is not (and 10:00, missed before starting, is caught up too)
    seen = await watch(
        Schedule(cron="*/5 * * * *", catch_up=600), FakeClock(at(10, 2), until=at(13, 21), jump=suspended)
    )
    assert dues(seen) == ["10:00", "10:05", "10:10", "13:15", "13:20"]


async def test_a_failed_fire_misses_that_time_and_the_schedule_goes_on() -> None:
    calls: list[str] = []

    async def fire(event: TriggerEvent) -> Fired:
        calls.append(event.payload["due"][11:16])
        raise RuntimeError("the store is down")

    with pytest.raises(StopClock):
        await Schedule(cron="*/5 * * * *").watch(fire, FakeClock(at(10, 2), until=at(10, 11)))
    assert calls == ["10:05", "10:10"]


async def test_times_follow_the_schedules_zone_and_keys_are_utc() -> None:
    seen = await watch(Schedule(cron="0 9 * * *", timezone="Europe/Berlin"), FakeClock(at(0, 0), until=at(8, 0)))
    assert [s.payload["due"] for s in seen if isinstance(s, TriggerEvent)] == ["2024-05-01T09:00:00+02:00"]
    assert [s.key for s in seen if isinstance(s, TriggerEvent)] == ["2024-05-01T07:00:00+00:00"]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="Bad hour"):
        Schedule(cron="0 25 * * *")
    with pytest.raises(ConfigError, match="catch_up"):
        Schedule(cron="@daily", catch_up=-1)
    with pytest.raises(ConfigError, match="unknown time zone"):
        Schedule(cron="@daily", timezone="Mars/Olympus")


async def test_describe_says_when_it_is_next_due() -> None:
    schedule = Schedule(cron="0 7 * * MON-FRI", timezone="UTC")
    assert schedule.describe(at(8, 0)) == "cron '0 7 * * MON-FRI' (UTC), next at 2024-05-02T07:00:00+00:00"
    await asyncio.sleep(0)
