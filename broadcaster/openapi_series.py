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
    arr,
    limit,
    nullable,
    obj,
    paged,
    ref,
)

TYPE: J = {"enum": ["one_time", "recurring", "triggered"], "default": "one_time"}
EVENT_TYPE: J = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$",
                 "description": "user.created, user.updated, message.new, channel.created, or a custom type"
                 " outside the user./message./channel./campaign. namespaces"}
DELAY: J = {"type": "string", "pattern": "^[0-9]{1,6}[smhd]$", "description": "at most 30d"}
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
SCHEMAS["Trigger"] = obj({
    "event": EVENT_TYPE,
    "filter": {**ref("Filter"), "description": "over the event: type, user_id, created_at, data.<path>, user.<field>"},
}, "event", extra=False)
SCHEMAS["EventInput"] = obj({
    "id": {**ID, "description": "de-duplicates for 7 days (default: a new uuid)"}, "type": EVENT_TYPE,
    "user_id": ID, "data": {"type": "object"}, "created_at": TIME,
}, "type", "user_id", extra=False)
TRIGGER_FIELDS: J = {
    "trigger": {**nullable(ref("Trigger")), "description": "required for type triggered, refused otherwise"},
    "delay": nullable(DELAY),
    "once_per_user": {"type": "boolean", "default": True, "description":
                      "false: one message per (campaign, event); a user's n-th goes to the occurrence"
                      " campaign <id>-occ-<n> (n >= 2), listed by /runs"},
}
SCHEMAS["CampaignInput"]["properties"].update({
    "type": TYPE, **TRIGGER_FIELDS,
    "schedule": {**nullable(ref("Schedule")), "description": "required for type recurring, refused otherwise"},
})
SCHEMAS["CampaignStats"]["properties"]["stats_times_triggered"] = {
    **INT, "description": "triggered: events that matched the trigger"}
SCHEMAS["Campaign"]["properties"].update({
    "type": TYPE, **TRIGGER_FIELDS, "schedule": nullable(ref("Schedule")),
    "next_run_at": {**nullable(TIME), "description": "recurring: the next occurrence (null when the series ended)"},
    "runs_started": {**INT, "description": "recurring: runs started so far"},
    "parent_id": {**ID, "description": "a run: its recurring campaign (runs are <parent>-run-<n>), or an"
                  " occurrence: its triggered campaign (<parent>-occ-<n>)"},
    "run_no": {**INT, "description": "a run: its number, from 1"},
})


def operations(op: Callable[..., J], q: Callable[..., J]) -> list[tuple[str, str, Any]]:
    html_page = {"content": {"text/html": {"schema": STR}}}
    return [
        ("get", "/u/{token}", {**op("Unsubscribe", "Users", "The signed {{ unsubscribe_url }} link: sets"
                                    " campaigns_opt_out on the user (idempotent), answers a small page",
                                    public=True, errors="404"),
                               "responses": {"200": {"description": "unsubscribed", **html_page},
                                             "404": {"description": "not a link we signed; nothing changed",
                                                     **html_page}}}),
        ("post", "/events", op(
            "TrackEvents", "Campaigns", "Record 1..1,000 events for triggered campaigns (all or nothing)",
            obj({"events": arr(obj({"id": STR, "type": STR, "user_id": STR,
                                    "status": {"enum": ["recorded", "duplicate"]}})),
                 "recorded": INT, "duplicates": INT, "duration": STR}, "events", "recorded", "duplicates"),
            status="201", body_required=True, errors="400",
            body=obj({"events": arr(ref("EventInput"), 1, 1000)}, "events"))),
        ("get", "/campaigns/{id}/runs", op(
            "QueryCampaignRuns", "Campaigns", "The runs of a recurring campaign, or the occurrences of a triggered one,"
            " newest first (extension)",
            paged("runs", ref("Campaign")), errors="400 404",
            params=(q("limit", limit(100, 25)), q("next", STR), q("prev", STR)))),
    ]
