"""No-progress detection: a loop that goes round without changing anything is stopped (``Limits.max_repeats``).

Before each superstep, every task whose step ran before in this workflow invocation is keyed by its step, its item
and the *progress view* of the state it is about to run on. A step that would run on the same key more than
``max_repeats + 1`` times ends the run ``limited`` with ``limit="no_progress"``: whatever it does, it sees exactly
what it saw before, and so did the steps between its runs.

The progress view of a state is the state itself, unless its type defines ``__progress__(self)`` returning what
counts (plain data, pydantic models, dataclasses). Counters that a loop increments whatever happens (a round
number) belong outside it, or nothing would ever repeat; a record of what was said belongs inside it, without
duplicates, or nothing would ever repeat either: :class:`~podium.Conversation` does both. Views are compared by a
digest of their JSON form, so a long conversation costs one serialization per superstep in which a step runs
again, and nothing on a run that has no loop.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import deque
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from pydantic_core import to_json

from podium.flow._state import short
from podium.runtime._limits import LimitReached

if TYPE_CHECKING:
    from podium.flow._workflow import Workflow
    from podium.runtime._task import Outcome, Task

__all__ = ["Progress", "looping_steps", "progress_key", "progress_view"]

_unique = itertools.count()


def progress_view(value: Any) -> Any:
    """What of ``value`` counts as progress: ``value.__progress__()`` if its type defines it, else ``value``."""
    view = getattr(type(value), "__progress__", None)
    return value if view is None else view(value)


def progress_key(value: Any) -> bytes:
    """A digest of ``value``'s progress view: equal views give equal keys.

    A view that cannot be serialized gets a key of its own (never equal to another): when in doubt, progress.
    """
    try:
        data = to_json(progress_view(value), fallback=repr)
    except Exception:
        return b"unique:%d" % next(_unique)
    return hashlib.blake2b(data, digest_size=16).digest()


class Progress:
    """No-progress detection for one workflow invocation (one call of the scheduler's ``drive``).

    Args:
        default: the ``max_repeats`` of steps that set none (the run's, or the smallest of the run's and the
            enclosing sub-workflows' limits); None when only steps that set their own are watched.
        loops: the steps that can run again (see :func:`looping_steps`); no other step is watched.
    """

    __slots__ = ("default", "first", "log", "logged", "loops", "ran_at", "seen")

    def __init__(self, default: int | None, loops: frozenset[str]) -> None:
        self.default = default
        self.loops = loops
        self.first: dict[str, tuple[Any, list[Any]]] = {}
        """The state and items of each step's first run, keyed only if the step runs again."""
        self.seen: dict[tuple[str, bytes, bytes], int] = {}
        """Runs by (step, item key, state key)."""
        self.log: deque[tuple[str, Mapping[str, Any] | None]] = deque(maxlen=_LOGGED)
        """The latest outcomes (path, update), for the reason."""
        self.logged = 0
        self.ran_at: dict[str, int] = {}
        """Where each step's latest run is in the log (a count of outcomes logged before it)."""

    def check(self, tasks: Sequence[Task], state: Any) -> None:
        """Count the superstep's tasks; raise :class:`LimitReached` (``no_progress``) if one would repeat too often."""
        state_key: bytes | None = None
        counted: set[tuple[str, bytes, bytes]] = set()
        for task in tasks:
            step = task.step
            name = step.name
            cap = step.max_repeats if step.max_repeats is not None else self.default
            if cap is None or name not in self.loops:
                continue
            if task.iteration == 1:
                first = self.first.get(name)
                if first is None:
                    self.first[name] = (state, [task.item] if task.has_item else [])
                elif task.has_item:
                    first[1].append(task.item)
                continue
            first = self.first.pop(name, None)
            if first is not None:
                self._count_first(name, *first)
            if state_key is None:
                state_key = progress_key(state)
            key = (name, progress_key(task.item) if task.has_item else b"", state_key)
            if key in counted:  # a fan-out's identical items count once per superstep
                continue
            counted.add(key)
            runs = self.seen.get(key, 0) + 1
            if runs > cap + 1:
                raise LimitReached("no_progress", self._reason(task, runs, cap))
            self.seen[key] = runs

    def ran(self, outcomes: Sequence[Outcome]) -> None:
        """Log the superstep's outcomes (what a reason quotes)."""
        for outcome in outcomes:
            self.ran_at[outcome.task.step.name] = self.logged
            self.log.append((outcome.task.label, outcome.update))
            self.logged += 1

    def _count_first(self, name: str, state: Any, items: list[Any]) -> None:
        state_key = progress_key(state)
        item_keys = {progress_key(item) for item in items} if items else {b""}
        for item_key in item_keys:
            self.seen[(name, item_key, state_key)] = 1

    def _reason(self, task: Task, runs: int, cap: int) -> str:
        about = f" with the same item {short(task.item, 60)}" if task.has_item else ""
        since = self.logged - self.ran_at.get(task.step.name, self.logged)  # its last run and every one after
        written: dict[str, Mapping[str, Any]] = {}
        for label, update in list(self.log)[-since:] if since else ():
            if update:
                written.pop(label, None)
                written[label] = update  # the latest of each, in the order they came
        if written:
            said = "; ".join(f"{label!r} wrote {short(dict(update), 100)}" for label, update in written.items())
            repeated = f"its last run and the steps after it changed nothing that counts: {said}"
        else:
            repeated = "its last run and the steps after it wrote nothing"
        return (
            f"step {task.path!r} made no progress: it would run{about} on the same state for the {_nth(runs)} time "
            f"(max_repeats={cap}); {repeated}"
        )


def looping_steps(workflow: Workflow[Any]) -> frozenset[str]:
    """The steps of ``workflow`` that can run again in one invocation: those on a cycle of its edges, routes, the
    routes its steps declare, joins and event subscriptions (any step may emit any event). Cached per workflow."""
    found = _loops.get(workflow)
    if found is None:
        found = _loops[workflow] = _on_cycles(workflow)
    return found


_loops: WeakKeyDictionary[Workflow[Any], frozenset[str]] = WeakKeyDictionary()


def _on_cycles(workflow: Workflow[Any]) -> frozenset[str]:
    topology = workflow.topology
    steps = workflow.steps
    subscribers = {step for _, step in topology.subscriptions}
    after: dict[str, set[str]] = {name: set(subscribers) for name in steps}
    for name, step in steps.items():
        after[name].update(topology.edges.get(name, ()), step.routes)
        route = topology.routes.get(name)
        if route is not None:
            after[name].update(route.targets)
    for join in topology.joins:
        for source in join.sources:
            after[source].add(join.target)
    looping = set()
    for name in steps:
        reached: set[str] = set()
        frontier = [t for t in after[name] if t in steps]
        while frontier:
            target = frontier.pop()
            if target not in reached:
                reached.add(target)
                frontier.extend(t for t in after[target] if t in steps)
        if name in reached:
            looping.add(name)
    return frozenset(looping)


_LOGGED = 32


def _nth(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
