"""Limits: every run is bounded by construction."""

from __future__ import annotations

from dataclasses import dataclass

from podium.errors import ConfigError

__all__ = ["LimitReached", "Limits"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """The bounds a run may not cross. A run that reaches one ends with status ``limited``.

    Every check happens *before* work starts, so a run never begins a superstep it is not allowed to finish, and
    an agent never starts a model call once the run's tokens, cost or calls have reached their budget. Branches
    running in parallel share one budget; the most it can be overshot by is the model calls already in flight
    when it is reached (each is checked before it starts, not interrupted once started).
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

    def __post_init__(self) -> None:
        for name in ("max_steps", "max_iterations", "max_seconds", "max_tokens", "max_cost_usd", "max_model_calls"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"Limits.{name} must be positive or None, not {value!r}")


class LimitReached(Exception):
    """Raised to end the run as ``limited``: by the runtime when a :class:`Limits` bound is reached, or by a
    step or pattern that enforces a bound of its own (a maximum number of handoffs, say).

    Not a ``PodiumError``: ``except PodiumError`` in a step must not swallow it.

    Attributes:
        limit: the bound's name, e.g. ``"max_steps"``.
        reason: one sentence saying what was reached.
    """

    def __init__(self, limit: str, reason: str) -> None:
        super().__init__(reason)
        self.limit = limit
        self.reason = reason
