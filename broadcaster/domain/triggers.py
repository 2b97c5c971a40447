"""Triggered campaigns (SPEC 5A), pure: the trigger fields, event types and the schema the
trigger's filter is compiled against.

An event, as a filter sees it: `type`, `user_id`, `created_at` (columns), `data.<path>` (the
event's data) and `user.<field>` (the event user's fields as stored when it is matched:
id, name, role, language, teams and every custom field), e.g.
`{"data.total": {"$gte": 100}, "user.country": "NL"}`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from broadcaster import filters
from broadcaster.domain import schedule
from broadcaster.errors import bad_request

BUILT_IN = ("user.created", "user.updated", "message.new", "channel.created")
# custom event types: letters, digits and . _ - : (1..64), not in the service's own namespaces
CUSTOM_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}\Z")
RESERVED_PREFIXES = ("user.", "message.", "channel.", "campaign.")
MAX_DELAY = timedelta(days=30)

EVENT_SCHEMA = filters.Schema(
    columns={
        "type": filters.Column("e.type", "text"), "user_id": filters.Column("e.user_id", "text"),
        "created_at": filters.Column("e.created_at", "time"),
    },
    custom="x.doc",
)


def event_type(value: Any, field: str) -> str:
    if not isinstance(value, str) or not CUSTOM_RE.match(value):
        raise bad_request(f"{field} must be one of {', '.join(BUILT_IN)} or a custom type matching"
                          f" [A-Za-z0-9][A-Za-z0-9._:-]{{0,63}}, got {str(value)[:70]!r}")
    if value not in BUILT_IN and value.startswith(RESERVED_PREFIXES):
        raise bad_request(f"{field} {value!r} is in a reserved namespace ({', '.join(RESERVED_PREFIXES)}):"
                          f" the service's own events are {', '.join(BUILT_IN)}")
    return value


def fields(body: dict[str, Any]) -> dict[str, Any]:
    """trigger {event, filter?}, delay?, once_per_user? of a triggered campaign (400 naming
    the field); the filter is compiled once here so a bad one is refused at create."""
    trig = body.get("trigger")
    if not isinstance(trig, dict):
        raise bad_request("trigger is required for a triggered campaign: {event, filter?}")
    extra = sorted(set(trig) - {"event", "filter"})
    if extra:
        raise bad_request(f"trigger.{extra[0]} is not a trigger field (event, filter)")
    if trig.get("event") is None:
        raise bad_request("trigger.event is required (user.created, order.completed, ...)")
    event = event_type(trig["event"], "trigger.event")
    flt = trig.get("filter")
    if flt is not None:
        if not isinstance(flt, dict):
            raise bad_request("trigger.filter must be an object (the filter language over the event)")
        filters.compile_filter(flt, EVENT_SCHEMA, filters.Params(), field="trigger.filter")
    delay = body.get("delay")
    if delay is not None and schedule.duration(delay, "delay") > MAX_DELAY:
        raise bad_request("delay must be at most 30d")
    once = body.get("once_per_user", True)
    if not isinstance(once, bool):
        raise bad_request("once_per_user must be a boolean")
    out: dict[str, Any] = {"event": event}
    if flt is not None:
        out["filter"] = flt
    return {"trigger": out, "delay": delay, "once_per_user": once}


def delay_seconds(delay: str | None) -> float:
    return schedule.duration(delay, "delay").total_seconds() if delay else 0.0
