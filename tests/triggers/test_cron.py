"""Cron expressions: parsing, the next and latest due times, shorthands, time zones and clock changes."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from podium import ConfigError
from podium.triggers import Cron

BERLIN = ZoneInfo("Europe/Berlin")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_next_after_is_strictly_after_and_latest_is_at_or_before() -> None:
    cron = Cron("*/5 * * * *")
    assert cron.next_after(utc(2024, 5, 1, 10, 4, 59)) == utc(2024, 5, 1, 10, 5)
    assert cron.next_after(utc(2024, 5, 1, 10, 5)) == utc(2024, 5, 1, 10, 10)
    assert cron.latest(utc(2024, 5, 1, 10, 5)) == utc(2024, 5, 1, 10, 5)
    assert cron.latest(datetime(2024, 5, 1, 10, 9, 59, 999999, tzinfo=UTC)) == utc(2024, 5, 1, 10, 5)
    assert cron.between(utc(2024, 5, 1, 10, 0), utc(2024, 5, 1, 11, 0)) == [
        utc(2024, 5, 1, 10, m) for m in range(5, 60, 5)
    ] + [utc(2024, 5, 1, 11, 0)]


def test_fields_names_ranges_and_shorthands() -> None:
    weekdays = Cron("0 7 * * MON-FRI")
    # 2024-05-03 is a Friday: the next is Monday the 6th
    assert weekdays.next_after(utc(2024, 5, 3, 7, 0)) == utc(2024, 5, 6, 7, 0)
    assert Cron("0 0 L * *").next_after(utc(2024, 2, 1)) == utc(2024, 2, 29)  # last day of the month
    assert Cron("@daily").next_after(utc(2024, 5, 1, 0, 0)) == utc(2024, 5, 2)
    assert Cron("@hourly").next_after(utc(2024, 5, 1, 10, 30)) == utc(2024, 5, 1, 11)
    assert Cron("@yearly").next_after(utc(2024, 5, 1)) == utc(2025, 1, 1)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * *", "has 3 fields; it needs 5"),
        ("0 0 * * * *", "has 6 fields"),
        ("61 * * * *", "Bad minute"),
        ("* 24 * * *", "Bad hour"),
        ("0 0 30 2 *", "Bad day-of-month"),  # never due: refused up front
        ("@often", "has 1 field;"),
        ("* * * * FUNDAY", "Bad day-of-week"),
    ],
)
def test_bad_expressions_are_refused_with_the_part_that_is_wrong(expression: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Cron(expression)


def test_an_unknown_time_zone_is_refused_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match="unknown time zone 'Europe/Berln' \\(did you mean 'Europe/Berlin'\\?\\)"):
        Cron("* * * * *", "Europe/Berln")


def test_fields_follow_the_zones_wall_clock() -> None:
    cron = Cron("0 9 * * *", "Europe/Berlin")
    assert cron.next_after(utc(2024, 1, 10, 0, 0)) == datetime(2024, 1, 10, 9, 0, tzinfo=BERLIN)
    assert cron.next_after(utc(2024, 1, 10, 0, 0)) == utc(2024, 1, 10, 8, 0)  # UTC+1 in winter
    assert cron.next_after(utc(2024, 7, 10, 0, 0)) == utc(2024, 7, 10, 7, 0)  # UTC+2 in summer


def test_a_fixed_time_in_the_skipped_hour_runs_once_when_the_clock_jumps() -> None:
    # 2024-03-31 in Berlin: 02:00 becomes 03:00, so 02:30 never happens
    due = Cron("30 2 * * *", "Europe/Berlin").between(utc(2024, 3, 29), utc(2024, 4, 2))
    assert [d.isoformat() for d in due] == [
        "2024-03-29T02:30:00+01:00",
        "2024-03-30T02:30:00+01:00",
        "2024-03-31T03:00:00+02:00",  # at the jump, once
        "2024-04-01T02:30:00+02:00",
    ]


def test_a_fixed_time_in_the_repeated_hour_runs_once() -> None:
    # 2024-10-27 in Berlin: 03:00 becomes 02:00 again, so 02:30 happens twice on the wall clock
    due = Cron("30 2 * * *", "Europe/Berlin").between(utc(2024, 10, 25), utc(2024, 10, 29))
    assert [d.isoformat() for d in due] == [
        "2024-10-25T02:30:00+02:00",
        "2024-10-26T02:30:00+02:00",
        "2024-10-27T02:30:00+02:00",  # the first 02:30 only
        "2024-10-28T02:30:00+01:00",
    ]


def test_an_interval_keeps_to_real_time_across_the_repeated_hour() -> None:
    due = Cron("*/30 * * * *", "Europe/Berlin").between(utc(2024, 10, 26, 23, 50), utc(2024, 10, 27, 1, 40))
    assert [d.isoformat() for d in due] == [
        "2024-10-27T02:00:00+02:00",
        "2024-10-27T02:30:00+02:00",
        "2024-10-27T02:00:00+01:00",  # the hour again: half an hour has passed each time
        "2024-10-27T02:30:00+01:00",
    ]
    assert len({d.timestamp() for d in due}) == 4
