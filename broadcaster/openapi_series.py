"""Campaign types' part of the OpenAPI document (SPEC 5A): type, schedule, runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from broadcaster.openapi_schemas import (
    ID,
    INT,
    SCHEMAS,
    STR,
    TIME,
    J,
    limit,
    nullable,
    obj,
    paged,
    ref,
)

TYPE: J = {"enum": ["one_time", "recurring"], "default": "one_time"}
SCHEMAS["Schedule"] = obj({
    "frequency": {"enum": ["daily", "weekly", "monthly"]},
    "time": {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$",
             "description": "HH:MM, wall-clock time in `timezone`"},
    "day_of_week": {"type": "integer", "minimum": 0, "maximum": 6, "description": "weekly: Monday = 0"},
    "day_of_month": {"type": "integer", "minimum": 1, "maximum": 28, "description": "monthly"},
    "timezone": {"type": "string", "description": "IANA name, e.g. Europe/Amsterdam (DST-correct)"},
    "ends_at": {**TIME, "description": "no occurrence after it"},
    "max_runs": {"type": "integer", "minimum": 1},
    "catch_up": {"type": "string", "pattern": "^[0-9]{1,6}[smhd]$", "default": "1h",
                 "description": "an occurrence missed (no worker) by less runs once, else it is skipped"},
}, "frequency", "time", "timezone", extra=False,
    description="A time that does not exist locally (spring forward) runs shifted by the gap; "
    "one that happens twice (fall back) runs once, at its first occurrence")
SCHEMAS["CampaignInput"]["properties"].update({
    "type": TYPE,
    "schedule": {**nullable(ref("Schedule")), "description": "required for type recurring, refused otherwise"},
})
SCHEMAS["Campaign"]["properties"].update({
    "type": TYPE, "schedule": nullable(ref("Schedule")),
    "next_run_at": {**nullable(TIME), "description": "recurring: the next occurrence (null when the series ended)"},
    "runs_started": {**INT, "description": "recurring: runs started so far"},
    "parent_id": {**ID, "description": "a run: its recurring campaign (runs are <parent>-run-<n>)"},
    "run_no": {**INT, "description": "a run: its number, from 1"},
})


def operations(op: Callable[..., J], q: Callable[..., J]) -> list[tuple[str, str, Any]]:
    return [
        ("get", "/campaigns/{id}/runs", op(
            "QueryCampaignRuns", "Campaigns", "The runs of a recurring campaign, newest first (extension)",
            paged("runs", ref("Campaign")), errors="400 404",
            params=(q("limit", limit(100, 25)), q("next", STR)))),
    ]
