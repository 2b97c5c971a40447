"""Delivery policy's part of the OpenAPI document (SPEC 5B): the app settings and campaign
fields of local-time delivery, quiet hours and frequency caps."""

from __future__ import annotations

from broadcaster.openapi_schemas import SCHEMAS, J, arr, nullable, obj

HHMM: J = {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"}
SCHEMAS["AppSettings"]["properties"].update({
    "default_timezone": {**nullable({"type": "string", "maxLength": 64}),
                         "description": "IANA zone of users without a valid `timezone` field (default UTC)"},
    "quiet_hours": {**nullable(obj({"start": HHMM, "end": HHMM}, "start", "end", extra=False)),
                    "description": "in each recipient's local time; start > end spans midnight; start != end"},
    "frequency_caps": {**nullable(arr(obj({"max": {"type": "integer", "minimum": 1, "maximum": 100_000},
                                           "period": {"type": "string", "pattern": "^[1-9][0-9]{0,3}[hd]$"}},
                                          "max", "period", extra=False), 0, 10)),
                       "description": "every campaign message a user received within `period` counts; beyond"
                                      " `max` the recipient is skipped frequency_capped"},
})
_FIELDS: J = {
    "send_in_local_time": {"type": "boolean", "default": False,
                           "description": "one-time campaigns with scheduled_for: each recipient at scheduled_for's"
                                          " UTC date and time as wall-clock time in their own timezone"},
    "quiet_hours": {**nullable({"enum": ["defer", "skip", "ignore"]}),
                    "description": "inside the app's quiet hours: wait for their end (defer, the default),"
                                   " skip (reason quiet_hours) or send anyway (ignore)"},
    "ignore_frequency_caps": {"type": "boolean", "default": False},
}
for _name in ("CampaignInput", "Campaign"):
    SCHEMAS[_name]["properties"].update(_FIELDS)
