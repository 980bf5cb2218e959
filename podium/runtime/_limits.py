"""Limits: every run is bounded by construction.

:class:`Limits` bound a run (and, given to ``Graph.add(child, limits=...)`` or ``build(limits=...)`` of a workflow
used as a step, each invocation of a sub-workflow); :class:`Budget` bounds what one agent may spend. Reaching any
bound ends the run as ``limited`` with the bound's name and a reason that says whose bound it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from podium.errors import ConfigError

__all__ = ["Budget", "LimitReached", "Limits"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Budget:
    """What one agent may spend on models: all its calls in a run, every step and branch it runs in together.

    Give it to the agent (``Agent(..., budget=Budget(max_tokens=20_000))``) or, by the agent's name, to the run
    (``Limits(agents={"writer": Budget(...)})``, what a crew file's ``limits: agents:`` sets); when both are given,
    both apply. Calls are counted under the agent's name, so two agents with one name share a budget. Like the
    run's budget it is checked before each model call: a call never starts once a bound is reached, and parallel
    branches overshoot it by at most the calls already in flight. A resumed run counts what was spent before.
    """

    max_tokens: int | None = None
    """Model tokens (in and out) of the agent's calls."""
    max_cost_usd: float | None = None
    """Money for the agent's calls, from ``podium.models.PRICES``."""
    max_model_calls: int | None = None
    """The agent's model calls (every call of its tool loop and re-asks counts)."""

    def __post_init__(self) -> None:
        _positive(self, "Budget", ("max_tokens", "max_cost_usd", "max_model_calls"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """The bounds a run may not cross. A run that reaches one ends with status ``limited``.

    Every check happens *before* work starts, so a run never begins a superstep it is not allowed to finish, and
    an agent never starts a model call once the run's tokens, cost or calls have reached their budget. Branches
    running in parallel share one budget; the most it can be overshot by is the model calls already in flight
    when it is reached (each is checked before it starts, not interrupted once started).

    **Sub-workflows.** A workflow used as a step runs each invocation within its own limits, in addition to the
    run's: those of ``Graph.add(child, limits=...)``, else the child's own ``build(limits=...)``, else none. They
    count only what runs inside that invocation (nested sub-workflows included; every task of a fan-out is its own
    invocation), while that usage still counts toward the run's and each agent's totals. ``max_seconds`` is the
    invocation's wall time; ``max_iterations`` and ``max_repeats`` apply, for every step inside that sets none of
    its own, with the run's (the smaller wins). Reaching one ends the whole run ``limited``, its reason naming the
    sub-workflow's path and task id: a bound the author set is not a failure for ``on_error`` to absorb.

    **No progress.** ``max_repeats`` stops loops that go round without changing anything: before each superstep,
    a step that would run again on a state whose *progress view* is the same as on ``max_repeats + 1`` of its
    earlier runs in this workflow invocation (its item, for a fan-out task, included) ends the run ``limited``
    with ``limit="no_progress"``. The progress view of a state is the state itself unless its type defines
    ``__progress__(self)`` returning what counts: :class:`~podium.Conversation` counts its task, its result and
    each *distinct* turn (a turn's speaker, kind, content and ``about``; not its round), so a critic that never
    approves a resubmitted draft, two agents handing a task back and forth, or a router sending a worker who says
    the same thing again are stopped, while a team whose members say something new each round goes on. A step
    whose repeat is legitimate (a poller) should write what changes (an attempt number, the time it polled), or
    be added with ``Graph.add(..., max_repeats=n)``. Only steps on a cycle of their workflow (edges, routes,
    joins, event subscriptions) are watched: nothing else can loop. Repeats are counted from the start of the
    invocation, or from the snapshot a resume continues from; a replay that only reads a journal (``history``)
    enforces no sub-workflow limit and no repeat bound.
    """

    max_steps: int | None = 1_000
    """Step executions in the whole run, sub-workflows included; each task of a fan-out counts."""
    max_iterations: int | None = 100
    """Supersteps any one step may run in (how many times a loop may go round); ``Graph.add`` can override."""
    max_seconds: float | None = 3_600.0
    """Wall-clock seconds for the run; the steps in flight when it passes are cancelled."""
    max_tokens: int | None = None
    """Model tokens (in and out) for the whole run, every agent and branch together."""
    max_cost_usd: float | None = None
    """Money for the whole run's model calls, from ``podium.models.PRICES``."""
    max_model_calls: int | None = None
    """Model calls for the whole run."""
    max_repeats: int | None = 2
    """How many times a step may run again on a state (progress view) it already ran on; the next time ends the
    run with ``limit="no_progress"``. ``Graph.add(max_repeats=...)`` overrides it for one step; None turns it off.
    On by default (podium's own suites and example crews run unchanged with it): a step about to see, for the
    fourth time, exactly what it saw before is stuck, and every further round of it costs model calls."""
    agents: Mapping[str, Budget] = field(default_factory=dict, hash=False)
    """Budgets of agents by name, for all their calls in the run (in a sub-workflow's limits: in the invocation)."""

    def __post_init__(self) -> None:
        _positive(
            self,
            "Limits",
            ("max_steps", "max_iterations", "max_seconds", "max_tokens", "max_cost_usd", "max_model_calls"),
        )
        if self.max_repeats is not None and self.max_repeats < 0:
            raise ConfigError(f"Limits.max_repeats must be 0 or more, or None, not {self.max_repeats!r}")
        for name, budget in self.agents.items():
            if not isinstance(budget, Budget):
                raise ConfigError(f"Limits.agents[{name!r}] must be a Budget, not {type(budget).__name__}")
        object.__setattr__(self, "agents", dict(self.agents))  # a copy: what the caller's dict does later is theirs


def _positive(bounds: Any, kind: str, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(bounds, name)
        if value is not None and value <= 0:
            raise ConfigError(f"{kind}.{name} must be positive or None, not {value!r}")


class LimitReached(Exception):
    """Raised to end the run as ``limited``: by the runtime when a :class:`Limits` bound is reached, or by a
    step or pattern that enforces a bound of its own (a maximum number of handoffs, say).

    Not a ``PodiumError``: ``except PodiumError`` in a step must not swallow it.

    Attributes:
        limit: the bound's name, e.g. ``"max_steps"``, or ``"no_progress"``.
        reason: one sentence saying what was reached.
    """

    def __init__(self, limit: str, reason: str) -> None:
        super().__init__(reason)
        self.limit = limit
        self.reason = reason
