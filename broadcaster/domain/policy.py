"""Delivery policy (SPEC 5B), pure: the app settings and campaign fields it adds, and what
becomes of one recipient at a given instant: sent now, held until a later instant (local
time, quiet hours deferred), or skipped (quiet_hours, frequency_capped).

A recipient's zone is their `timezone` user field when it names an IANA zone, else the app's
`default_timezone`, else UTC. Quiet hours `{start, end}` are local wall-clock times; start >
end spans midnight (22:00-07:00), start == end is refused (it would mean always or never).
Frequency caps count every campaign message the user received within each cap's period
(a sliding window ending now): a recipient is capped when any cap already has `max` sends.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from broadcaster.domain import schedule
from broadcaster.errors import bad_request

QUIET_MODES = ("defer", "skip", "ignore")
EDITABLE = ("send_in_local_time", "quiet_hours", "ignore_frequency_caps")
MAX_CAPS = 10
_PERIOD = re.compile(r"\A([1-9]\d{0,3})([hd])\Z")
_HHMM = re.compile(r"\A([01]\d|2[0-3]):([0-5]\d)\Z")
UTC_ZONE = ZoneInfo("UTC")


@dataclass(frozen=True)
class Cap:
    max: int
    period: timedelta


@dataclass(frozen=True)
class Quiet:
    start: int  # minutes after local midnight
    end: int


def _minutes(v: Any, field: str) -> int:
    m = _HHMM.match(v) if isinstance(v, str) else None
    if m is None:
        raise bad_request(f"{field} must be HH:MM (00:00..23:59), got {str(v)[:40]!r}")
    return int(m.group(1)) * 60 + int(m.group(2))


def parse_quiet(raw: Any, field: str = "quiet_hours") -> Quiet:
    if not isinstance(raw, dict) or set(raw) - {"start", "end"}:
        raise bad_request(f"{field} must be an object {{start: 'HH:MM', end: 'HH:MM'}}")
    q = Quiet(_minutes(raw.get("start"), f"{field}.start"), _minutes(raw.get("end"), f"{field}.end"))
    if q.start == q.end:
        raise bad_request(f"{field}.start and {field}.end must differ")
    return q


def parse_caps(raw: Any, field: str = "frequency_caps") -> list[Cap]:
    if not isinstance(raw, list) or len(raw) > MAX_CAPS:
        raise bad_request(f"{field} must be a list of at most {MAX_CAPS} objects {{max, period}}")
    out = []
    for i, c in enumerate(raw):
        p = f"{field}[{i}]"
        if not isinstance(c, dict) or set(c) - {"max", "period"}:
            raise bad_request(f"{p} must be an object {{max: N, period: '<n>h|d'}}")
        n = c.get("max")
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 100_000:
            raise bad_request(f"{p}.max must be an integer 1..100000, got {str(n)[:40]!r}")
        m = _PERIOD.match(c["period"]) if isinstance(c.get("period"), str) else None
        if m is None or int(m.group(1)) * (24 if m.group(2) == "d" else 1) > 24 * 366:
            raise bad_request(f"{p}.period must be '<n>h' or '<n>d' (at most 366 days), got {str(c.get('period'))[:40]!r}")
        out.append(Cap(n, timedelta(hours=int(m.group(1)) * (24 if m.group(2) == "d" else 1))))
    return out


def validate_settings(body: dict[str, Any]) -> dict[str, Any]:
    """The policy keys of a PATCH /app body (null clears one)."""
    out: dict[str, Any] = {}
    if "default_timezone" in body:
        v = body["default_timezone"]
        out["default_timezone"] = None if v is None else schedule.zone(v, "default_timezone").key
    if "quiet_hours" in body:
        v = body["quiet_hours"]
        if v is not None:
            parse_quiet(v)
            v = {"start": v["start"], "end": v["end"]}
        out["quiet_hours"] = v
    if "frequency_caps" in body:
        v = body["frequency_caps"]
        if v is not None:
            parse_caps(v)
            v = [{"max": c["max"], "period": c["period"]} for c in v]
        out["frequency_caps"] = v or None
    return out


def public_settings(s: dict[str, Any]) -> dict[str, Any]:
    return {k: s.get(k) for k in ("default_timezone", "quiet_hours", "frequency_caps")}


def campaign_fields(body: dict[str, Any], *, scheduled_kind: str) -> dict[str, Any]:
    """send_in_local_time, quiet_hours (mode), ignore_frequency_caps of a create/update body."""
    local = body.get("send_in_local_time", False)
    if local is None:
        local = False
    if not isinstance(local, bool):
        raise bad_request("send_in_local_time must be a boolean")
    if local and scheduled_kind != "one_time":
        raise bad_request(f"send_in_local_time applies to one-time campaigns, not type {scheduled_kind!r}")
    mode = body.get("quiet_hours")
    if mode is not None and mode not in QUIET_MODES:
        raise bad_request(f"quiet_hours must be one of {', '.join(QUIET_MODES)} (or omitted: defer), got {str(mode)[:40]!r}")
    ign = body.get("ignore_frequency_caps", False)
    if ign is None:
        ign = False
    if not isinstance(ign, bool):
        raise bad_request("ignore_frequency_caps must be a boolean")
    return {"send_in_local_time": local, "quiet_hours": mode, "ignore_frequency_caps": ign}


def view_fields(r: Any) -> dict[str, Any]:
    return {"send_in_local_time": r["send_in_local_time"], "quiet_hours": r["quiet_hours"] or "defer",
            "ignore_frequency_caps": r["ignore_frequency_caps"]}


def zone_of(name: Any, default: ZoneInfo) -> ZoneInfo:
    if isinstance(name, str) and name:
        try:
            return schedule.zone(name, "timezone")
        except Exception:  # an invalid user field falls back to the app's zone (SPEC 5B)
            return default
    return default


def wall_instant(wall: datetime, tz: ZoneInfo) -> datetime:
    """The UTC instant of a naive wall-clock time in tz (a nonexistent time shifts by the
    gap, a repeated one is its first occurrence: as recurring schedules)."""
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)


def earliest_instant(wall: datetime, zones: Sequence[ZoneInfo]) -> datetime:
    return min(wall_instant(wall, z) for z in zones)


def quiet_until(q: Quiet, now: datetime, tz: ZoneInfo) -> datetime | None:
    """The instant quiet hours end if `now` falls inside them in tz, else None."""
    local = now.astimezone(tz)
    m = local.hour * 60 + local.minute
    inside = q.start <= m < q.end if q.start < q.end else (m >= q.start or m < q.end)
    if not inside:
        return None
    day = local.date() if (q.start < q.end or m < q.end) else local.date() + timedelta(days=1)
    end = datetime(day.year, day.month, day.day, q.end // 60, q.end % 60)
    return max(wall_instant(end, tz), now + timedelta(seconds=1))


@dataclass(frozen=True)
class Rules:
    """What applies to one campaign's send now."""

    default_zone: ZoneInfo
    wall: datetime | None  # send_in_local_time: the naive wall-clock time
    quiet: Quiet | None
    quiet_mode: str
    caps: list[Cap]
    check_caps: bool

    @property
    def active(self) -> bool:
        return self.wall is not None or self.quiet is not None or bool(self.caps)


def rules(camp: Any, settings: dict[str, Any]) -> Rules:
    dz = zone_of(settings.get("default_timezone"), UTC_ZONE)
    mode = camp["quiet_hours"] or "defer"
    qh = settings.get("quiet_hours")
    quiet = parse_quiet(qh) if qh and mode != "ignore" else None
    caps = parse_caps(settings.get("frequency_caps") or [])
    wall = camp["local_send_at"] if camp["send_in_local_time"] else None
    return Rules(dz, wall, quiet, mode, caps, not camp["ignore_frequency_caps"])


def timing(r: Rules, tz: ZoneInfo, now: datetime) -> tuple[str, datetime | None, str | None]:
    """(action, until, reason) for a recipient in zone tz: ('send', None, None), ('hold',
    until, 'local_time'|'quiet_hours') or ('skip', None, 'quiet_hours')."""
    if r.wall is not None:
        due = wall_instant(r.wall, tz)
        if due > now:
            return "hold", due, "local_time"
    if r.quiet is not None:
        until = quiet_until(r.quiet, now, tz)
        if until is not None:
            return ("skip", None, "quiet_hours") if r.quiet_mode == "skip" else ("hold", until, "quiet_hours")
    return "send", None, None
