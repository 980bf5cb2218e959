"""Lifecycle hooks: every decision and observation of a run, as it happens.

Subclass :class:`Hooks` and override the methods you need, sync or async; pass instances to ``run(hooks=[...])``.
The journal, tracing and the UI attach here. Arguments are keyword-only so new ones can be added without breaking
hooks. A hook that raises stops the run and its exception propagates from ``run()``: an observer that cannot record
(a journal, say) is a broken part, not something to ignore.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from podium.runtime._result import RunResult

__all__ = ["HookSet", "Hooks", "emit"]


class Hooks:
    """No-op base; override what you observe. Methods may be ``def`` or ``async def``."""

    def on_run_start(self, *, run_id: str, workflow: str, state: Any) -> Any:
        """The run was accepted and its first superstep is about to be scheduled."""

    def on_superstep(self, *, run_id: str, scope: str, index: int, tasks: Sequence[str]) -> Any:
        """Tasks were scheduled for one superstep (``scope`` is ``""`` or a sub-workflow step's path)."""

    def on_step_start(self, *, run_id: str, step: str, task_id: str, attempt: int, item: Any) -> Any:
        """A task started."""

    def on_step_finish(
        self, *, run_id: str, step: str, task_id: str, attempt: int, update: Any, duration: float
    ) -> Any:
        """A task finished; ``update`` is what it wrote (a dict of fields), before merging."""

    def on_step_fail(
        self, *, run_id: str, step: str, task_id: str, attempt: int, error: BaseException, handled: bool
    ) -> Any:
        """A task failed; ``handled`` is True when the step's ``on_error`` turned it into an update."""

    def on_token(self, *, run_id: str, step: str, agent: str, text: str) -> Any:
        """A piece of a model's answer as it streams (called without waiting: an async one is scheduled)."""

    def on_route(self, *, run_id: str, step: str, task_id: str, targets: Sequence[str]) -> Any:
        """A routing decision: after ``step`` ran, these tasks were chosen (``"name"`` or ``"name[item]"``)."""

    def on_run_finish(self, *, run_id: str, result: RunResult[Any]) -> Any:
        """The run ended: completed, failed, limited or cancelled."""


_EVENTS = (
    "on_token",
    "on_run_start",
    "on_superstep",
    "on_step_start",
    "on_step_finish",
    "on_step_fail",
    "on_route",
    "on_run_finish",
)


_Handlers = tuple[tuple[Callable[..., Any], bool], ...]


class HookSet:
    """The overridden hook methods of a run, resolved once so an unobserved event costs one truth test."""

    __slots__ = _EVENTS
    on_run_start: _Handlers
    on_superstep: _Handlers
    on_step_start: _Handlers
    on_step_finish: _Handlers
    on_step_fail: _Handlers
    on_route: _Handlers
    on_token: _Handlers
    on_run_finish: _Handlers

    def __init__(self, hooks: Sequence[Hooks]) -> None:
        for event in _EVENTS:
            base = getattr(Hooks, event)
            found = []
            for hook in hooks:
                method = getattr(hook, event, None)
                if method is None or getattr(type(hook), event, None) is base:
                    continue
                found.append((method, inspect.iscoroutinefunction(method)))
            setattr(self, event, tuple(found))


async def emit(handlers: Sequence[tuple[Callable[..., Any], bool]], **kwargs: Any) -> None:
    """Call each handler with ``kwargs``, awaiting the async ones, in registration order."""
    for fn, is_async in handlers:
        result = fn(**kwargs)
        if is_async:
            await result
