"""Campaign state machine (pure): which action is legal in which status, and where it leads.

draft -> scheduled -> in_progress -> completed; stopped from scheduled, in_progress or
paused; the extension paused <-> in_progress. A campaign is sent once.
"""

from __future__ import annotations

from datetime import datetime

from broadcaster.errors import bad_request

STATUSES = ("draft", "scheduled", "in_progress", "paused", "completed", "stopped")
LIVE = ("scheduled", "in_progress", "paused")

# action -> (statuses it is legal from, status it leads to; None = decided by the caller)
_RULES: dict[str, tuple[frozenset[str], str | None]] = {
    "start": (frozenset({"draft"}), None),
    "fire": (frozenset({"scheduled"}), "in_progress"),
    "stop": (frozenset({"scheduled", "in_progress", "paused"}), "stopped"),
    "pause": (frozenset({"in_progress"}), "paused"),
    "resume": (frozenset({"paused"}), "in_progress"),
    "complete": (frozenset({"in_progress"}), "completed"),
    "update": (frozenset({"draft", "scheduled"}), None),
    "delete": (frozenset({"draft", "scheduled", "completed", "stopped"}), None),
}

_WHY = {
    "start": "only a draft campaign can be started (a campaign is sent once)",
    "update": "only draft or scheduled campaigns can be updated",
    "delete": "stop it first",
}


def allowed(action: str, status: str) -> bool:
    return status in _RULES[action][0]


def check(action: str, status: str) -> None:
    """Raise a 400 naming the current status when `action` is illegal in it."""
    if not allowed(action, status):
        legal = ", ".join(sorted(_RULES[action][0]))
        why = _WHY.get(action, f"it is allowed only when the campaign is {legal}")
        raise bad_request(f"cannot {action} a campaign whose status is {status!r}: {why}")


def after(action: str, status: str) -> str:
    check(action, status)
    target = _RULES[action][1]
    return target if target is not None else status


def start_status(now: datetime, scheduled_for: datetime | None) -> str:
    """start with no scheduled_for, or one in the past, starts now."""
    if scheduled_for is None or scheduled_for <= now:
        return "in_progress"
    return "scheduled"


def check_start_times(now: datetime, scheduled_for: datetime | None, stop_at: datetime | None) -> None:
    # A stop_at before scheduled_for is allowed: the campaign is stopped while still scheduled.
    if stop_at is not None and stop_at <= now:
        raise bad_request("stop_at must be in the future")


def progress(processed: int, total: int, planned: bool, status: str) -> float:
    if status == "completed":
        return 1.0
    if total <= 0:
        return 0.0
    p = processed / total
    return round(min(p, 1.0 if planned else 0.99), 4)


def send_rate(sent: int, started: datetime | None, ended: datetime) -> float:
    """The effective messages/s since the start (what stats show next to the configured rate)."""
    if started is None or sent <= 0:
        return 0.0
    secs = (ended - started).total_seconds()
    return round(sent / secs, 1) if secs > 0 else float(sent)
