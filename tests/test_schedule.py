"""Recurring schedules (pure): occurrences at the right UTC instants across DST changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from broadcaster.domain import schedule
from broadcaster.errors import ApiError


def sched(**raw: Any) -> schedule.Schedule:
    return schedule.parse(raw)


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)


def test_weekly_amsterdam_across_both_transitions() -> None:
    s = sched(frequency="weekly", day_of_week=0, time="09:00", timezone="Europe/Amsterdam")
    # CET (+1) until Sunday 29 March 2026, CEST (+2) until Sunday 25 October 2026
    assert schedule.occurrences(s, utc(2026, 3, 20), 3) == [
        utc(2026, 3, 23, 8), utc(2026, 3, 30, 7), utc(2026, 4, 6, 7)]
    assert schedule.occurrences(s, utc(2026, 10, 15), 3) == [
        utc(2026, 10, 19, 7), utc(2026, 10, 26, 8), utc(2026, 11, 2, 8)]


def test_daily_new_york_across_both_transitions() -> None:
    s = sched(frequency="daily", time="09:00", timezone="America/New_York")
    assert schedule.occurrences(s, utc(2026, 3, 7), 2) == [utc(2026, 3, 7, 14), utc(2026, 3, 8, 13)]
    assert schedule.occurrences(s, utc(2026, 10, 31), 2) == [utc(2026, 10, 31, 13), utc(2026, 11, 1, 14)]


def test_nonexistent_local_time_runs_shifted_by_the_gap() -> None:
    ams = sched(frequency="weekly", day_of_week=6, time="02:30", timezone="Europe/Amsterdam")
    # 02:30 does not exist on 29 March: run at 02:30 CET = 01:30 UTC (03:30 CEST), that day
    assert schedule.occurrences(ams, utc(2026, 3, 22, 12), 2) == [utc(2026, 3, 29, 1, 30), utc(2026, 4, 5, 0, 30)]
    ny = sched(frequency="daily", time="02:30", timezone="America/New_York")
    assert schedule.occurrences(ny, utc(2026, 3, 7, 12), 2) == [utc(2026, 3, 8, 7, 30), utc(2026, 3, 9, 6, 30)]


def test_repeated_local_time_runs_once_at_its_first_occurrence() -> None:
    ams = sched(frequency="daily", time="02:30", timezone="Europe/Amsterdam")
    # 02:30 happens twice on 25 October (00:30 and 01:30 UTC): one run, the first
    assert schedule.occurrences(ams, utc(2026, 10, 24, 12), 2) == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]
    ny = sched(frequency="daily", time="01:30", timezone="America/New_York")
    assert schedule.occurrences(ny, utc(2026, 10, 31, 12), 2) == [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]


def test_monthly_and_series_end() -> None:
    s = sched(frequency="monthly", day_of_month=28, time="23:30", timezone="Africa/Johannesburg")
    assert schedule.occurrences(s, utc(2026, 1, 1), 3) == [
        utc(2026, 1, 28, 21, 30), utc(2026, 2, 28, 21, 30), utc(2026, 3, 28, 21, 30)]
    capped = sched(frequency="daily", time="10:00", timezone="UTC", max_runs=2)
    assert schedule.occurrences(capped, utc(2026, 1, 1), 5) == [utc(2026, 1, 1, 10), utc(2026, 1, 2, 10)]
    assert schedule.next_after(capped, utc(2026, 1, 3), runs_so_far=2) is None
    ends = sched(frequency="daily", time="10:00", timezone="UTC", ends_at="2026-01-02T10:00:00Z")
    assert schedule.occurrences(ends, utc(2026, 1, 1), 5) == [utc(2026, 1, 1, 10), utc(2026, 1, 2, 10)]
    # strictly after: an occurrence at exactly `after` is not the next one
    assert schedule.next_after(ends, utc(2026, 1, 1, 10)) == utc(2026, 1, 2, 10)


def test_catch_up_default_and_duration() -> None:
    assert sched(frequency="daily", time="10:00", timezone="UTC").catch_up == timedelta(hours=1)
    assert sched(frequency="daily", time="10:00", timezone="UTC", catch_up="15m").catch_up == timedelta(minutes=15)


@pytest.mark.parametrize(("raw", "field"), [
    ({"frequency": "hourly", "time": "10:00", "timezone": "UTC"}, "schedule.frequency"),
    ({"frequency": "daily", "time": "24:00", "timezone": "UTC"}, "schedule.time"),
    ({"frequency": "daily", "time": "9:00", "timezone": "UTC"}, "schedule.time"),
    ({"frequency": "daily", "time": "09:00", "timezone": "Mars/Olympus"}, "schedule.timezone"),
    ({"frequency": "daily", "time": "09:00", "timezone": "../../etc/passwd"}, "schedule.timezone"),
    ({"frequency": "daily", "time": "09:00"}, "schedule.timezone"),
    ({"frequency": "monthly", "day_of_month": 29, "time": "09:00", "timezone": "UTC"}, "schedule.day_of_month"),
    ({"frequency": "monthly", "time": "09:00", "timezone": "UTC"}, "schedule.day_of_month"),
    ({"frequency": "weekly", "day_of_week": 7, "time": "09:00", "timezone": "UTC"}, "schedule.day_of_week"),
    ({"frequency": "weekly", "time": "09:00", "timezone": "UTC"}, "schedule.day_of_week"),
    ({"frequency": "daily", "day_of_week": 1, "time": "09:00", "timezone": "UTC"}, "schedule.day_of_week"),
    ({"frequency": "daily", "time": "09:00", "timezone": "UTC", "max_runs": 0}, "schedule.max_runs"),
    ({"frequency": "daily", "time": "09:00", "timezone": "UTC", "ends_at": "soon"}, "schedule.ends_at"),
    ({"frequency": "daily", "time": "09:00", "timezone": "UTC", "catch_up": "1w"}, "schedule.catch_up"),
    ({"frequency": "daily", "time": "09:00", "timezone": "UTC", "every": 2}, "schedule.every"),
])
def test_invalid_names_the_field(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(ApiError) as e:
        schedule.parse(raw)
    assert e.value.status == 400 and field in e.value.message
