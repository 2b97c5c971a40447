"""Campaign types (SPEC 5A), pure: the fields they add to a campaign, the lifecycle of a
recurring series, and what the tick does with a due occurrence.

A recurring parent is never sent itself: `start` makes it `scheduled`, and it stays there
while its runs (ordinary campaigns) come and go; `pause` (scheduled -> paused) makes due
occurrences skipped, `resume` (paused -> scheduled) continues from the next occurrence,
`stop` ends the series and the run in progress, and the series `completed` once no
occurrence is left and its last run finished.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from broadcaster import timefmt
from broadcaster.errors import bad_request

TYPES = ("one_time", "recurring", "triggered")
EDITABLE = ("type", "schedule", "trigger", "delay", "once_per_user")

_SERIES_RULES = {  # action -> (legal from, leads to)
    "pause": (("scheduled",), "paused"),
    "resume": (("paused",), "scheduled"),
    "stop": (("scheduled", "paused"), "stopped"),
}


def series_after(action: str, status: str) -> str:
    legal, to = _SERIES_RULES[action]
    if status not in legal:
        raise bad_request(
            f"cannot {action} a recurring campaign whose status is {status!r}: it is allowed only"
            f" when the series is {' or '.join(legal)}")
    return to


def occurrence_outcome(status: str, due: datetime, now: datetime, catch_up: timedelta) -> str:
    """'start', or the reason the occurrence is skipped: a paused series skips it, and one
    missed (no worker ran) by catch_up or more is not sent late."""
    if status == "paused":
        return "paused"
    if now - due >= catch_up:
        return "missed"
    return "start"


def run_id(parent_id: str, run_no: int) -> str:
    return f"{parent_id}-run-{run_no}"


MAX_PARENT_ID = 240  # room for "-run-<n>" within the 255 characters of an id


def view_fields(r: Any) -> dict[str, Any]:
    """What the campaign object adds for its type: every campaign has `type`; a series its
    schedule, next occurrence and runs started; a run its parent and number."""
    out: dict[str, Any] = {"type": r["type"]}
    if r["type"] == "recurring":
        out.update({"schedule": r["schedule"], "next_run_at": timefmt.fmt(r["next_run_at"]),
                    "runs_started": int(r["runs_started"])})
    if r["type"] == "triggered":
        out.update({"trigger": r["trigger"], "delay": r["delay"], "once_per_user": r["once_per_user"]})
    if r["parent_id"] is not None:
        out.update({"parent_id": r["parent_id"], "run_no": r["run_no"]})
    return out


def stats_fields(r: Any) -> dict[str, Any]:
    """Stats a campaign type adds: a triggered campaign's matched events."""
    return {"stats_times_triggered": int(r["times_triggered"])} if r["type"] == "triggered" else {}
