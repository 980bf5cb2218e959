"""``serve``: run a workflow's triggers, and the runs they start, until told to stop.

Triggers journal pending runs (see :mod:`podium.triggers._launch`); a :class:`~podium.Worker` in the same process
claims and executes them, woken as each is journaled. Because runs go through the journal, nothing is lost between
the two: a run journaled just before the process stops is executed by the next ``serve`` (or by any worker on the
store), and several processes may serve one crew on one store (each event still starts one run; webhooks need
their own ports).

Stopping (``stop`` is set, e.g. on SIGTERM): the webhooks stop listening and the other triggers stop watching at
once; runs in progress get ``grace`` seconds to finish, and those still going are then cancelled without being
marked as ended: each gives its lease up and is resumed by the next worker (steps it finished are not run again).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

from podium.errors import ConfigError
from podium.runtime._worker import Worker
from podium.triggers._clock import SYSTEM_CLOCK, Clock
from podium.triggers._folder import WatchFolder
from podium.triggers._http import HttpServer
from podium.triggers._launch import Fired, Launcher, TriggerEvent
from podium.triggers._schedule import Schedule
from podium.triggers._webhook import HookRoutes, Webhook

if TYPE_CHECKING:
    from podium.flow._workflow import StoreArg, Workflow
    from podium.observe._hooks import Hooks
    from podium.runtime._limits import Limits
    from podium.runtime._runner import JournalOptions

__all__ = ["Trigger", "TriggerHooks", "serve"]

Trigger: TypeAlias = Schedule | WatchFolder | Webhook


class TriggerHooks:
    """Observers of a serving process; override what you need (called synchronously, on the event loop)."""

    def on_ready(self, *, trigger: Trigger, detail: str) -> None:
        """A trigger is listening or watching (``detail``: where, e.g. ``listening on http://127.0.0.1:8080/x``)."""

    def on_fired(self, *, fired: Fired) -> None:
        """An event was journaled as a new run, or found to be a duplicate (``fired.created`` is False)."""

    def on_refused(self, *, event: TriggerEvent, error: Exception) -> None:
        """An event could not start a run: it does not fit the workflow (``TriggerError``), or the store failed."""


async def serve(
    workflow: Workflow[Any],
    triggers: Sequence[Trigger],
    *,
    stop: asyncio.Event,
    store: StoreArg = None,
    concurrency: int = 4,
    grace: float = 30.0,
    execute: bool = True,
    hooks: Sequence[Hooks] = (),
    observer: TriggerHooks | None = None,
    limits: Limits | None = None,
    journal: JournalOptions | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> None:
    """Run ``triggers`` for ``workflow``, and execute the runs they start, until ``stop`` is set.

    Args:
        stop: set it to stop (see the module's docstring for what stopping does).
        store: where runs are journaled and deduplicated (the default store unless given).
        concurrency: runs executed at once.
        grace: seconds runs in progress may take to finish once stopping.
        execute: False to only journal runs, for workers elsewhere to execute.
        hooks: observers of every run executed here.
        observer: observer of the triggers.
        limits: override the workflow's limits.
        journal: lease and snapshot settings of the runs.
        clock: the time schedules and watched folders see (tests drive their own).

    Raises:
        ConfigError: two triggers have one name or one webhook address, a watched folder does not exist, or a
            webhook cannot listen on its address.
    """
    from podium.flow._workflow import resolve_store

    resolved = resolve_store(store)
    if resolved is None:
        raise ConfigError("serve() needs a store: the runs are journaled there before they execute")
    _check(triggers)
    await resolved.open()
    watch = observer or TriggerHooks()
    worker = None
    if execute:
        worker = Worker(
            [workflow], store=resolved, concurrency=concurrency, hooks=hooks, limits=limits, journal=journal
        )
    launcher = Launcher(workflow, resolved, submitted=worker.wake if worker is not None else None)

    async def fire(trigger: Trigger, event: TriggerEvent) -> Fired:
        try:
            fired = await launcher.fire(event, trigger.input)
        except Exception as exc:
            watch.on_refused(event=event, error=exc)
            raise
        watch.on_fired(fired=fired)
        return fired

    servers: list[HttpServer] = []
    tasks: list[asyncio.Task[None]] = []
    worker_task = None
    failure = None
    try:
        servers = await _listen([t for t in triggers if isinstance(t, Webhook)], fire, watch)
        for trigger in triggers:
            if isinstance(trigger, Schedule | WatchFolder):
                tasks.append(asyncio.create_task(trigger.watch(functools.partial(fire, trigger), clock)))
                watch.on_ready(trigger=trigger, detail=trigger.describe(clock.now()))
        if worker is not None:
            worker_task = asyncio.create_task(worker.serve(stop))
        await _until(stop, [*tasks, *([worker_task] if worker_task else [])])
    finally:
        stop.set()  # the worker claims nothing more
        for server in servers:
            await server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if worker_task is not None:
            failure = await _finish(worker_task, grace)
    if failure is not None:
        raise failure  # a run's unexpected error while the last runs finished


def _check(triggers: Sequence[Trigger]) -> None:
    names: set[str] = set()
    for trigger in triggers:
        if trigger.name in names:
            raise ConfigError(f"two triggers are named {trigger.name!r}; each needs its own name (run ids use it)")
        names.add(trigger.name)
        if isinstance(trigger, WatchFolder) and not trigger.folder.is_dir():
            raise ConfigError(f"folder trigger {trigger.name!r}: no folder at {trigger.folder}")


async def _listen(
    hooks: Sequence[Webhook], fire: Callable[[Webhook, TriggerEvent], Awaitable[Fired]], watch: TriggerHooks
) -> list[HttpServer]:
    """One server per address, listening; the webhooks it serves are reported ready."""
    by_address: dict[tuple[str, int], list[Webhook]] = {}
    for hook in hooks:
        by_address.setdefault((hook.host, hook.port), []).append(hook)
    servers: list[HttpServer] = []
    try:
        for (host, port), group in by_address.items():
            routes = HookRoutes(group, fire)
            server = HttpServer(host, port, routes.handle, max_body=max(h.max_body for h in group))
            try:
                await server.start()
            except OSError as exc:
                names = ", ".join(repr(h.name) for h in group)
                raise ConfigError(f"webhook {names} cannot listen on {host}:{port}: {exc.strerror or exc}") from None
            servers.append(server)
            shown = f"[{host}]" if ":" in host else host
            for hook in group:
                watch.on_ready(trigger=hook, detail=f"listening on http://{shown}:{server.port}{hook.path}")
    except BaseException:
        for server in servers:
            await server.close()
        raise
    return servers


async def _until(stop: asyncio.Event, tasks: Sequence[asyncio.Task[None]]) -> None:
    """Wait for ``stop``; a trigger or the worker that ends before it (an error) ends serving with its error."""
    stopping = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    for task in done:
        if task is not stopping:
            task.result()  # raises the error that ended it
            raise RuntimeError("a trigger stopped by itself")  # pragma: no cover - they run until cancelled


async def _finish(worker: asyncio.Task[None], grace: float) -> BaseException | None:
    """Let the worker's runs finish within ``grace`` seconds, then cancel them (they stay resumable); returns the
    worker's error, if it failed."""
    try:
        await asyncio.wait([worker], timeout=grace)
    finally:
        if not worker.done():
            worker.cancel()
            await asyncio.wait([worker])
    return None if worker.cancelled() else worker.exception()
