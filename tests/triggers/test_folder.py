"""Watched folders: a file is one event once it is complete, seen again it starts no second run, changed it is a
new event; files there at start count, and a restart starts only what it had not."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from podium import ConfigError, MemoryStore, TriggerError
from podium.triggers import Launcher, WatchFolder
from podium.triggers._folder import FolderWatch
from tests.triggers.jobs import FakeClock, StopClock, jobs


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def touch(path: Path, data: bytes, *, append: bool = False, mtime_ns: int | None = None) -> None:
    with path.open("ab" if append else "wb") as file:
        file.write(data)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


async def test_a_file_written_in_pieces_is_one_event_once_it_is_stable(tmp_path: Path) -> None:
    watch = FolderWatch(WatchFolder(path=tmp_path, name="inbox", settle=2.0))
    report = tmp_path / "report.txt"
    touch(report, b"first half, ", mtime_ns=1_000)
    assert await watch.scan(0.0) == []  # just seen
    assert await watch.scan(1.0) == []  # not settled yet
    touch(report, b"second half", append=True, mtime_ns=2_000)
    assert await watch.scan(2.5) == []  # it changed: settling starts again
    assert await watch.scan(4.0) == []  # 1.5 s unchanged
    [event] = await watch.scan(4.5)  # 2 s unchanged
    content = b"first half, second half"
    assert event.trigger == "inbox"
    assert event.source == "folder"
    assert event.key == f"report.txt@sha256:{sha(content)}"
    assert event.payload == {"path": str(report.resolve()), "name": "report.txt", "size": 23, "sha256": sha(content)}
    watch.done(event)
    assert await watch.scan(10.0) == []  # handled: not again
    touch(report, b"new content", mtime_ns=3_000)
    assert await watch.scan(11.0) == []
    [changed] = await watch.scan(13.0)  # changed content is a new event
    assert changed.key == f"report.txt@sha256:{sha(b'new content')}"


async def test_an_event_not_marked_done_is_returned_again(tmp_path: Path) -> None:
    """When the run could not be journaled (a store error), the next poll tries the file again."""
    watch = FolderWatch(WatchFolder(path=tmp_path, settle=0))
    (tmp_path / "a.txt").write_text("a")
    assert await watch.scan(0.0) == []
    [first] = await watch.scan(0.0)
    [again] = await watch.scan(0.0)
    assert first == again


async def test_patterns_hidden_files_and_subfolders(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name in ("a.pdf", "b.txt", ".a.pdf.part", "sub/c.pdf", ".hidden/d.pdf"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(name.encode())

    async def names(trigger: WatchFolder) -> list[str]:
        watch = FolderWatch(trigger)
        await watch.scan(0.0)
        return [e.payload["name"] for e in await watch.scan(5.0)]

    assert await names(WatchFolder(path=tmp_path, pattern="*.pdf")) == ["a.pdf"]
    assert await names(WatchFolder(path=tmp_path, pattern="*.pdf", recursive=True)) == ["a.pdf", "sub/c.pdf"]
    assert await names(WatchFolder(path=tmp_path)) == ["a.pdf", "b.txt"]  # folders are not files


async def test_a_file_seen_twice_starts_one_run_and_a_restart_starts_only_new_files(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "old.txt").write_text("there before we started")
    store, workflow = MemoryStore(), jobs()
    trigger = WatchFolder(path=inbox, name="inbox", settle=1.0, poll=0.5)
    started: list[tuple[str, bool]] = []

    async def serve_for(seconds: float) -> None:
        launcher = Launcher(workflow, store)

        async def fire(event):  # type: ignore[no-untyped-def]
            fired = await launcher.fire(event, trigger.input)
            started.append((event.payload["name"], fired.created))
            return fired

        with pytest.raises(StopClock):
            await trigger.watch(fire, FakeClock(0.0, until=seconds))

    await serve_for(5.0)
    assert started == [("old.txt", True)]  # present at start: it counts
    (inbox / "new.txt").write_text("arrived while nothing was watching")
    await serve_for(5.0)  # a restart: a new watch, knowing nothing
    assert started == [("old.txt", True), ("new.txt", True), ("old.txt", False)]
    await serve_for(5.0)  # and another process watching the same folder
    assert sorted(started[3:]) == [("new.txt", False), ("old.txt", False)]
    assert len(await store.list_runs()) == 2
    info = await store.list_runs()
    assert all(i.status == "pending" for i in info)


async def test_a_file_whose_content_does_not_fit_is_refused_once(tmp_path: Path) -> None:
    calls: list[str] = []
    trigger = WatchFolder(path=tmp_path, settle=0, poll=1.0)
    (tmp_path / "x.txt").write_text("x")

    async def fire(event):  # type: ignore[no-untyped-def]
        calls.append(event.payload["name"])
        raise TriggerError("does not fit", trigger=event.trigger, key=event.key)

    with pytest.raises(StopClock):
        await trigger.watch(fire, FakeClock(0.0, until=5.0))
    assert calls == ["x.txt"]  # not again at every poll


def test_a_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no folder at"):
        FolderWatch(WatchFolder(path=tmp_path / "nowhere", name="inbox"))
    with pytest.raises(ConfigError, match="settle"):
        WatchFolder(path=tmp_path, poll=0)
