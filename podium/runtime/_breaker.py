"""Circuit breakers: one per model, shared by every run of the process, so a failing endpoint is left alone.

A breaker is **closed** while calls go through. After ``failure_threshold`` transient failures in a row it
**opens**: calls to that model fail at once (an agent with fallbacks goes straight to the next model) for
``reset_after`` seconds. Then it is **half-open**: one call is let through as a trial; success closes it, failure
opens it again. Permanent failures (a 400, a refused key) say nothing about the endpoint's health and are not
counted. Agents journal every change of state they cause (``breaker_changed``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["CircuitBreaker", "breaker_for", "reset_breakers"]

State = Literal["closed", "open", "half-open"]


@dataclass(slots=True, kw_only=True)
class CircuitBreaker:
    """The health of one model endpoint, as this process has seen it.

    Attributes:
        name: the model's name.
        failure_threshold: transient failures in a row that open the breaker.
        reset_after: seconds an open breaker waits before letting a trial call through.
    """

    name: str
    failure_threshold: int = 5
    reset_after: float = 30.0
    state: State = "closed"
    failures: int = 0
    opened_at: float = 0.0
    _trial: bool = field(default=False, repr=False)

    def allows(self, now: float | None = None) -> bool:
        """Whether a call would be let through now; a question only (:meth:`admit` is what lets a call through)."""
        if self.state == "closed":
            return True
        now = time.monotonic() if now is None else now
        if self.state == "open":
            return now - self.opened_at >= self.reset_after
        return not self._trial

    def admit(self, now: float | None = None) -> Literal["call", "trial"] | None:
        """Let a call through (``"trial"`` when it is the one a half-open breaker tests), or None when open.

        Whoever is given the trial must report how it ended: :meth:`succeeded` or :meth:`failed` with
        ``trial=True``, or :meth:`release` when it ended without a verdict (a permanent error, a cancellation), so
        that the next call becomes the trial instead of the endpoint being refused for good.
        """
        if self.state == "closed":
            return "call"
        now = time.monotonic() if now is None else now
        if self.state == "open" and now - self.opened_at >= self.reset_after:
            self.state = "half-open"
            self._trial = False
        if self.state == "half-open" and not self._trial:
            self._trial = True
            return "trial"
        return None

    def succeeded(self, *, trial: bool = True) -> State | None:
        """Record a success; returns the new state if it changed.

        Only the trial closes a breaker that is not closed: a call let through before the breaker opened that
        succeeds afterwards says nothing about the endpoint now, and must not cut the wait short.
        """
        if self.state == "closed":
            self.failures = 0
            return None
        if trial and self.state == "half-open":
            self.state = "closed"
            self.failures = 0
            return "closed"
        return None

    def failed(self, now: float | None = None) -> State | None:
        """Record a transient failure; returns the new state if it changed."""
        if self.state == "open":
            return None  # a call from before it opened: the wait is already running
        self.failures += 1
        if self.state == "half-open" or self.failures >= self.failure_threshold:
            self.state = "open"
            self.opened_at = time.monotonic() if now is None else now
            return "open"
        return None

    def release(self) -> None:
        """The trial ended without a verdict: let the next call be the trial."""
        if self.state == "half-open":
            self._trial = False


_breakers: dict[str, CircuitBreaker] = {}


def breaker_for(model: str, *, failure_threshold: int = 5, reset_after: float = 30.0) -> CircuitBreaker:
    """The process's breaker for ``model`` (made with these settings the first time it is asked for)."""
    breaker = _breakers.get(model)
    if breaker is None:
        breaker = _breakers[model] = CircuitBreaker(
            name=model, failure_threshold=failure_threshold, reset_after=reset_after
        )
    return breaker


def reset_breakers() -> None:
    """Forget every breaker (tests; or after an outage everyone knows is over)."""
    _breakers.clear()
