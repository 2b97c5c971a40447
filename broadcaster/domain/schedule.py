"""Recurring schedules (SPEC 5A), pure: validation and occurrences as UTC instants.

An occurrence is a wall-clock time in the schedule's IANA timezone (`zoneinfo`, with the
`tzdata` package as the zone database when the system has none), so it keeps its local time
across DST changes. Two local times need a rule:
- a time that does not exist (the spring-forward gap, e.g. 02:30 on the last Sunday of March
  in Europe/Amsterdam) runs at the instant that time would have had before the change, i.e.
  shifted forward by the gap (02:30 CET = 01:30 UTC = 03:30 CEST): the run happens that day;
- a time that happens twice (the fall-back hour) runs once, at its first occurrence (fold=0,
  still on summer time).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from broadcaster import timefmt
from broadcaster.errors import bad_request

FREQUENCIES = ("daily", "weekly", "monthly")
DEFAULT_CATCH_UP = timedelta(hours=1)
_HHMM = re.compile(r"\A([01]\d|2[0-3]):([0-5]\d)\Z")
_DURATION = re.compile(r"\A(\d{1,6})([smhd])\Z")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_TZ_RE = re.compile(r"\A[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+){0,2}\Z")
_SEARCH_DAYS = 400  # every frequency has an occurrence within this many local days


@dataclass(frozen=True)
class Schedule:
    frequency: str
    hour: int
    minute: int
    tz: ZoneInfo
    day_of_week: int | None = None
    day_of_month: int | None = None
    ends_at: datetime | None = None
    max_runs: int | None = None
    catch_up: timedelta = DEFAULT_CATCH_UP


def duration(value: Any, field: str) -> timedelta:
    """"<n>s|m|h|d" (the spec's delay/catch_up form) as a timedelta."""
    m = _DURATION.match(value) if isinstance(value, str) else None
    if m is None:
        raise bad_request(f"{field} must be a duration like '30s', '15m', '1h' or '2d', got {str(value)[:40]!r}")
    return timedelta(seconds=int(m.group(1)) * _UNIT[m.group(2)])


def zone(value: Any, field: str) -> ZoneInfo:
    if not isinstance(value, str) or not _TZ_RE.match(value):
        raise bad_request(f"{field} must be an IANA timezone name like 'Europe/Amsterdam', got {str(value)[:60]!r}")
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise bad_request(f"{field} {value!r} is not a known IANA timezone") from None


def _int(raw: dict[str, Any], key: str, lo: int, hi: int, why: str = "") -> int | None:
    v = raw.get(key)
    if v is None:
        return None
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise bad_request(f"schedule.{key} must be an integer {lo}..{hi}{why}, got {str(v)[:40]!r}")
    return v


def parse(raw: Any) -> Schedule:
    """Validate a `schedule` object (400 naming the field)."""
    if not isinstance(raw, dict):
        raise bad_request("schedule must be an object {frequency, time, timezone, ...}")
    known = {"frequency", "time", "timezone", "day_of_week", "day_of_month", "ends_at", "max_runs", "catch_up"}
    extra = sorted(set(raw) - known)
    if extra:
        raise bad_request(f"schedule.{extra[0]} is not a schedule field (known: {', '.join(sorted(known))})")
    freq = raw.get("frequency")
    if freq not in FREQUENCIES:
        raise bad_request(f"schedule.frequency must be one of {', '.join(FREQUENCIES)}, got {str(freq)[:40]!r}")
    t = raw.get("time")
    m = _HHMM.match(t) if isinstance(t, str) else None
    if m is None:
        raise bad_request(f"schedule.time must be HH:MM (00:00..23:59), got {str(t)[:40]!r}")
    if raw.get("timezone") is None:
        raise bad_request("schedule.timezone is required (an IANA name like 'Europe/Amsterdam')")
    tz = zone(raw["timezone"], "schedule.timezone")
    dow = _int(raw, "day_of_week", 0, 6, " (Monday = 0)")
    dom = _int(raw, "day_of_month", 1, 28, " (29..31 do not exist in every month)")
    if freq == "weekly" and dow is None:
        raise bad_request("schedule.day_of_week is required for a weekly schedule (0..6, Monday = 0)")
    if freq == "monthly" and dom is None:
        raise bad_request("schedule.day_of_month is required for a monthly schedule (1..28)")
    if freq != "weekly" and dow is not None:
        raise bad_request(f"schedule.day_of_week applies to weekly schedules only, not {freq}")
    if freq != "monthly" and dom is not None:
        raise bad_request(f"schedule.day_of_month applies to monthly schedules only, not {freq}")
    max_runs = _int(raw, "max_runs", 1, 1_000_000)
    ends_at = timefmt.parse(raw["ends_at"], "schedule.ends_at") if raw.get("ends_at") is not None else None
    catch_up = duration(raw["catch_up"], "schedule.catch_up") if raw.get("catch_up") is not None else DEFAULT_CATCH_UP
    return Schedule(freq, int(m.group(1)), int(m.group(2)), tz, dow, dom, ends_at, max_runs, catch_up)


def _matches(s: Schedule, d: date) -> bool:
    if s.frequency == "weekly":
        return d.weekday() == s.day_of_week
    if s.frequency == "monthly":
        return d.day == s.day_of_month
    return True


def at(s: Schedule, d: date) -> datetime:
    """The UTC instant of the schedule's local time on local date d (see the module doc for
    the nonexistent and repeated local times)."""
    local = datetime(d.year, d.month, d.day, s.hour, s.minute, tzinfo=s.tz, fold=0)
    return local.astimezone(UTC)


def next_after(s: Schedule, after: datetime, runs_so_far: int = 0) -> datetime | None:
    """The first occurrence strictly after `after` (UTC), or None when the series is over
    (ends_at passed, or max_runs runs already started)."""
    if s.max_runs is not None and runs_so_far >= s.max_runs:
        return None
    d = after.astimezone(s.tz).date() - timedelta(days=1)  # the day before: offsets can cross midnight
    for _ in range(_SEARCH_DAYS):
        if _matches(s, d):
            t = at(s, d)
            if t > after:
                return None if s.ends_at is not None and t > s.ends_at else t
        d += timedelta(days=1)
    return None  # unreachable for valid schedules


def occurrences(s: Schedule, after: datetime, n: int) -> list[datetime]:
    """The next n occurrences after `after` (fewer when the series ends)."""
    out: list[datetime] = []
    t: datetime | None = after
    while t is not None and len(out) < n:
        t = next_after(s, t, len(out))
        if t is not None:
            out.append(t)
    return out


def as_json(raw: dict[str, Any]) -> dict[str, Any]:
    """The schedule as stored and answered: the fields given, in a stable order."""
    keys = ("frequency", "time", "day_of_week", "day_of_month", "timezone", "ends_at", "max_runs", "catch_up")
    return {k: raw[k] for k in keys if raw.get(k) is not None}
