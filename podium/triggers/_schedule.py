"""``Schedule``: start a run whenever a cron expression is due.

Each due time is one event, keyed by the time itself (in UTC), so two processes serving the same crew, or a
process restarted in the same minute, start one run per due time.

**Missed times.** A time that passes while no process serves the schedule (or while the machine is suspended) is
not made up for by default, as cron does not. With ``catch_up=seconds``, a schedule that starts, or wakes, within
that many seconds after a due time it missed fires once for the latest such time, never once for each time missed:
a daily report stopped for a week runs once, not seven times. That run's id is the one the time would have had,
so if the time was served after all (by another process) nothing new starts. A time noticed less than a minute
late (a busy event loop) is on time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from podium.errors import ConfigError
from podium.triggers._clock import Clock
from podium.triggers._cron import Cron, utc_iso
from podium.triggers._launch import Fired, InputMap, TriggerEvent

__all__ = ["Schedule"]

_LONGEST_NAP = 60.0
"""Sleep at most this long before looking at the clock again, so a clock that is set or a machine that wakes from
suspension is noticed within a minute."""
_ON_TIME = 60.0
"""A due time noticed at most this late is on time; a later one was missed (see ``catch_up``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    """Start a run each time ``cron`` is due.

    The payload is ``{"trigger": name, "due": "<local ISO time>", "cron": cron}``; the key is the due time in UTC.

    Args:
        cron: five fields or a shorthand (see :class:`~podium.triggers.Cron`): ``"*/5 * * * *"``, ``"@daily"``.
        name: the trigger's name (in run ids and the journal).
        timezone: the zone whose wall clock the fields are read on (IANA name).
        catch_up: at start, fire once for the latest due time missed at most this many seconds ago (0: never).
        input: how the payload becomes the run's input (see :data:`~podium.triggers.InputMap`).
    """

    source: ClassVar[str] = "schedule"

    cron: str
    name: str = "schedule"
    timezone: str = "UTC"
    catch_up: float = 0.0
    input: InputMap = None
    expression: Cron = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.catch_up < 0:
            raise ConfigError(f"schedule {self.name!r}: catch_up must be 0 or more seconds, not {self.catch_up}")
        object.__setattr__(self, "expression", Cron(self.cron, self.timezone))

    def event(self, due: datetime) -> TriggerEvent:
        """The event of the due time ``due``."""
        local = due.astimezone(self.expression.zone)
        payload = {"trigger": self.name, "due": local.isoformat(), "cron": self.cron}
        return TriggerEvent(trigger=self.name, source="schedule", key=utc_iso(due), payload=payload)

    def describe(self, now: float) -> str:
        """One line for people: the expression and when it is next due."""
        upcoming = self.expression.next_after(_at(now, self))
        return f"cron {self.cron!r} ({self.timezone}), next at {upcoming.isoformat()}"

    async def watch(self, fire: Callable[[TriggerEvent], Awaitable[Fired]], clock: Clock) -> None:
        """Fire at every due time, until cancelled. A failed fire is not tried again (the time is missed; ``fire``
        reports why)."""
        now = clock.now()
        if self.catch_up > 0:
            missed = self.expression.latest(_at(now, self))
            if missed is not None and now - missed.timestamp() <= self.catch_up:
                await _fire_once(fire, self.event(missed))
        last = _at(now, self)
        while True:
            due = self.expression.next_after(last)
            while (now := clock.now()) < due.timestamp():
                await clock.sleep(min(due.timestamp() - now, _LONGEST_NAP))
            # after a suspension several times may have passed: the latest stands for them all, if it is not late
            latest = self.expression.latest(_at(now, self)) or due
            if now - latest.timestamp() <= max(self.catch_up, _ON_TIME):
                await _fire_once(fire, self.event(latest))
            last = latest


def _at(timestamp: float, schedule: Schedule) -> datetime:
    return datetime.fromtimestamp(timestamp, schedule.expression.zone)


async def _fire_once(fire: Callable[[TriggerEvent], Awaitable[Any]], event: TriggerEvent) -> None:
    try:
        await fire(event)
    except Exception:  # reported by ``fire``; the schedule goes on with its next time
        return
