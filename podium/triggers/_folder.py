"""``WatchFolder``: start a run for each file that lands in a folder, once it is complete.

The folder is polled (no platform file-event API: it works the same on every system and on network file systems).
A file is one event once it is *stable*: its size and modification time have not changed for ``settle`` seconds
(and at least one poll), so a file still being written, copied or uploaded in pieces is not picked up half-done.
Its content is then hashed, and the event's key is its path (relative to the folder) and that hash:

- the same file seen again (by another poll, another process, or after a restart) is the same event, and the
  store refuses its second run;
- a file changed (new content under the same name) is a new event;
- files already in the folder when watching starts count: those that had started runs before are refused as
  duplicates, so a restart processes exactly the files that arrived or changed while nothing was watching.

Names starting with ``.`` are skipped (editors and uploaders write such temporary files, then rename them). Files
are never moved or deleted: what happens to a file is the run's business.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from podium.errors import ConfigError, TriggerError
from podium.triggers._clock import Clock
from podium.triggers._launch import Fired, InputMap, TriggerEvent

__all__ = ["FolderWatch", "WatchFolder"]


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchFolder:
    """Start a run for each stable file matching ``pattern`` in ``path``.

    The payload is ``{"path": "<absolute path>", "name": "<path in the folder>", "size": bytes, "sha256": hex}``;
    the key is the name and the hash.

    Args:
        path: the folder (it must exist when watching starts).
        name: the trigger's name (in run ids and the journal).
        pattern: a glob for file names (``"*.pdf"``).
        recursive: also look in subfolders (``name`` is then ``sub/file.pdf``).
        settle: seconds a file's size and modification time must stay unchanged before it counts.
        poll: seconds between looks at the folder.
        input: how the payload becomes the run's input (see :data:`~podium.triggers.InputMap`).
    """

    source: ClassVar[str] = "folder"

    path: Path | str
    name: str = "folder"
    pattern: str = "*"
    recursive: bool = False
    settle: float = 2.0
    poll: float = 1.0
    input: InputMap = None
    folder: Path = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.settle < 0 or self.poll <= 0:
            raise ConfigError(f"folder trigger {self.name!r}: settle must be >= 0 and poll > 0 seconds")
        object.__setattr__(self, "folder", Path(self.path).expanduser().resolve())

    def describe(self, now: float) -> str:
        """One line for people: what is watched."""
        where = self.folder / ("**" if self.recursive else "") / self.pattern
        return f"watching {where} (stable after {self.settle:g}s, polled every {self.poll:g}s)"

    async def watch(self, fire: Callable[[TriggerEvent], Awaitable[Fired]], clock: Clock) -> None:
        """Fire for each file once it is stable, until cancelled.

        Raises:
            ConfigError: the folder does not exist when watching starts.
        """
        watcher = FolderWatch(self)
        while True:
            for event in await watcher.scan(clock.now()):
                try:
                    await fire(event)
                except TriggerError:  # this content will never fit: wait for the file to change
                    watcher.done(event)
                except Exception:  # the store could not be written: try again at the next poll
                    continue
                else:
                    watcher.done(event)
            await clock.sleep(self.poll)


@dataclass(slots=True)
class _Sighting:
    signature: tuple[int, int]  # size, modification time (ns)
    since: float
    done: bool = False


class FolderWatch:
    """What a watch has seen of its folder: each file's size and time, since when, and whether it fired."""

    def __init__(self, trigger: WatchFolder) -> None:
        if not trigger.folder.is_dir():
            raise ConfigError(f"folder trigger {trigger.name!r}: no folder at {trigger.folder}")
        self.trigger = trigger
        self.seen: dict[str, _Sighting] = {}

    async def scan(self, now: float) -> list[TriggerEvent]:
        """Look at the folder once; return the events of files that became stable and have not fired yet (call
        :meth:`done` for each once it is handled, or it is returned again by the next scan)."""
        listing = await asyncio.to_thread(self._list)
        for gone in self.seen.keys() - listing.keys():
            del self.seen[gone]
        stable = []
        for name, signature in sorted(listing.items()):
            sighting = self.seen.get(name)
            if sighting is None or sighting.signature != signature:
                self.seen[name] = _Sighting(signature, now)
            elif not sighting.done and now - sighting.since >= self.trigger.settle:
                stable.append(name)
        events = []
        for name in stable:
            found = await asyncio.to_thread(_hash, self.trigger.folder / name, self.seen[name].signature)
            if found is None:  # it changed while being read: it is not stable after all
                self.seen.pop(name, None)
                continue
            digest, size = found
            payload = {"path": str(self.trigger.folder / name), "name": name, "size": size, "sha256": digest}
            events.append(
                TriggerEvent(trigger=self.trigger.name, source="folder", key=f"{name}@sha256:{digest}", payload=payload)
            )
        return events

    def done(self, event: TriggerEvent) -> None:
        """The event was handled: do not return it again until the file changes."""
        sighting = self.seen.get(event.payload["name"])
        if sighting is not None:
            sighting.done = True

    def _list(self) -> dict[str, tuple[int, int]]:
        root = self.trigger.folder
        try:
            candidates = root.rglob(self.trigger.pattern) if self.trigger.recursive else root.glob(self.trigger.pattern)
            found = {}
            for path in candidates:
                name = path.relative_to(root).as_posix()
                if any(part.startswith(".") for part in name.split("/")):
                    continue
                try:
                    stat = path.stat()
                except OSError:  # removed since it was listed
                    continue
                if path.is_file():
                    found[name] = (stat.st_size, stat.st_mtime_ns)
            return found
        except OSError:  # the folder itself went away: nothing is in it
            return {}


def _hash(path: Path, signature: tuple[int, int]) -> tuple[str, int] | None:
    """The file's SHA-256 and size, or None if it changed (or went away) while it was read."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as file:
            while chunk := file.read(1 << 20):
                digest.update(chunk)
        stat = path.stat()
    except OSError:
        return None
    if (stat.st_size, stat.st_mtime_ns) != signature:
        return None
    return digest.hexdigest(), stat.st_size
