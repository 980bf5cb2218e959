"""``Cron``: a five-field cron expression in a time zone, and the times it is due.

The fields are minute, hour, day of month, month and day of week, with the usual ``*``, ``,``, ``-`` and ``/``,
names (``MON``, ``JAN``), ``L`` (last day of the month), ``LW`` and ``MON#2``; ``@hourly``, ``@daily``
(``@midnight``), ``@weekly``, ``@monthly`` and ``@yearly`` (``@annually``) are shorthands. Evaluation is
``cronsim``'s, which follows Debian cron where clocks change: a job at a fixed time in an hour that is skipped
(spring forward) runs when the clock jumps, and one in an hour that repeats (fall back) runs once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from cronsim import CronSim, CronSimError

from podium.errors import ConfigError

__all__ = ["Cron", "utc_iso"]

_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class Cron:
    """A cron expression, checked, in a time zone.

    Args:
        expression: five fields (minute hour day-of-month month day-of-week) or an ``@`` shorthand.
        timezone: an IANA name (``Europe/Berlin``); the fields are read on that zone's wall clock.

    Raises:
        ConfigError: the expression or the time zone is not valid (the message says which part).
    """

    def __init__(self, expression: str, timezone: str = "UTC") -> None:
        self.expression = expression
        self.timezone = timezone
        text = _ALIASES.get(expression.strip().lower(), expression.strip())
        count = len(text.split())
        if count != 5:
            raise ConfigError(
                f"cron expression {expression!r} has {count} field{'' if count == 1 else 's'}; it needs 5 "
                f"(minute hour day-of-month month day-of-week) or a shorthand ({', '.join(_ALIASES)})"
            )
        self._fields = text
        self.zone = _zone(timezone)
        try:
            CronSim(text, datetime(2000, 1, 1, tzinfo=self.zone))
        except CronSimError as exc:
            raise ConfigError(f"cron expression {expression!r} is not valid: {exc}") from None

    def __repr__(self) -> str:
        return f"Cron({self.expression!r}, timezone={self.timezone!r})"

    def next_after(self, moment: datetime) -> datetime:
        """The first time the expression is due strictly after ``moment`` (aware), in the cron's time zone.

        Raises:
            ConfigError: it is never due again (``0 0 31 2 *``: it is checked 50 years ahead).
        """
        local = moment.astimezone(self.zone)
        try:
            return next(CronSim(self._fields, local)).astimezone(self.zone)
        except StopIteration:
            raise ConfigError(f"cron expression {self.expression!r} is never due after {local.isoformat()}") from None

    def latest(self, moment: datetime) -> datetime | None:
        """The last time the expression was due at or before ``moment`` (aware), or None if never in 50 years."""
        local = moment.astimezone(self.zone).replace(microsecond=0) + timedelta(seconds=1)
        try:
            return next(CronSim(self._fields, local, reverse=True)).astimezone(self.zone)
        except StopIteration:
            return None

    def between(self, start: datetime, end: datetime) -> list[datetime]:
        """Every due time ``t`` with ``start < t <= end``."""
        times = []
        moment = start
        while (due := self.next_after(moment)) <= end:
            times.append(due)
            moment = due
        return times


def _zone(name: str) -> ZoneInfo:
    if name.upper() == "UTC":
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        import difflib

        close = difflib.get_close_matches(name, sorted(available_timezones()), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown time zone {name!r}{hint}; use an IANA name such as 'Europe/Berlin'") from None


def utc_iso(moment: datetime) -> str:
    """``moment`` in UTC, ISO 8601 to the second: one text per instant, whatever the zone it was given in."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")
