"""Schemas of the OpenAPI document (broadcaster/openapi.py): the shapes of bodies and objects."""

from __future__ import annotations

import re
from typing import Any

from broadcaster.appconfig import EVENT_TYPES
from broadcaster.validate import CID_RE, ID_RE, TYPE_RE

J = dict[str, Any]
STR: J = {"type": "string"}
BOOL: J = {"type": "boolean"}
INT: J = {"type": "integer"}
TIME: J = {"type": "string", "format": "date-time", "description": "RFC 3339, UTC with Z on output"}


def ecma(rx: re.Pattern[str]) -> str:
    """A Python pattern anchored with \\A...\\Z (no newline slips past $) in the ECMA-262
    dialect JSON Schema uses, where $ does not match before a final newline."""
    p = rx.pattern
    if p.startswith("\\A"):
        p = "^" + p[2:]
    if p.endswith("\\Z"):
        p = p[:-2] + "$"
    return p


ID: J = {"type": "string", "pattern": ecma(ID_RE), "description": "1..255 of A-Z a-z 0-9 @ _ - ! . ="}
CID: J = {"type": "string", "pattern": ecma(CID_RE), "description": "channel cid `type:id`"}
CTYPE: J = {"type": "string", "pattern": ecma(TYPE_RE)}
ANY_OBJ: J = {"type": "object", "additionalProperties": True}


def ref(name: str) -> J:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(props: J, *required: str, extra: bool = True, **kw: Any) -> J:
    out: J = {"type": "object", "properties": props, "additionalProperties": extra, **kw}
    if required:
        out["required"] = list(required)
    return out


def arr(items: J, lo: int | None = None, hi: int | None = None) -> J:
    out: J = {"type": "array", "items": items}
    if lo is not None:
        out["minItems"] = lo
    if hi is not None:
        out["maxItems"] = hi
    return out


def nullable(schema: J) -> J:
    return {"anyOf": [schema, {"type": "null"}]}


def limit(hi: int, default: int) -> J:
    return {"type": "integer", "minimum": 0, "maximum": hi, "default": default,
            "description": f"0 or absent: the default ({default})"}


def paged(items: str, schema: J) -> J:
    return obj({items: arr(schema), "next": STR, "prev": STR, "duration": STR}, items, "duration")


CURSOR: J = {"type": "string", "description": "a next/prev of a previous page: continues that "
              "page's query (filter and sort travel inside), whatever filter or sort is also sent"}


def cursor_body(hi: int, default: int, **props: J) -> J:
    return obj({"filter": ref("Filter"), "sort": ref("Sort"), "limit": limit(hi, default),
                "next": CURSOR, "prev": CURSOR, **props})


SCHEMAS: J = {
    "Error": obj({
        "code": {"type": "integer", "description": "4 bad input, 2 unknown api_key, 5 bad token, "
                 "40/41/42/43 token expired/nbf/iat/signature, 17 forbidden, 16 not found, "
                 "22 too large, 9 rate limited, -1 internal"},
        "message": {"type": "string", "description": "names the field (dot path) and the problem"},
        "StatusCode": {"type": "integer"}, "duration": STR, "more_info": STR,
        "exception_fields": {"type": "object", "additionalProperties": STR},
        "details": {"type": "array", "items": {"type": "integer"},
                    "description": "error-specific details (the hosted API's APIError.details); usually empty"},
    }, "code", "message", "StatusCode", "duration", "more_info", "details"),
    "Empty": obj({"duration": STR}, "duration"),
    "Filter": {**ANY_OBJ, "description": "MongoDB-like: {field: value} or {field: {$op: value}}; "
               "$eq $ne $gt $gte $lt $lte $in $nin $exists $contains $autocomplete, "
               "$and $or $nor; at most 8 levels deep"},
    "Sort": arr(obj({"field": STR, "direction": {"type": "integer", "enum": [1, -1]}},
                    "field", extra=False), hi=10),
    "UserInput": obj({"id": ID, "name": STR, "role": STR, "teams": arr(STR), "language": STR},
                     description="unknown keys are custom fields, returned at the top level"),
    "User": obj({"id": ID, "name": STR, "role": STR, "teams": arr(STR), "language": STR,
                 "created_at": TIME, "updated_at": TIME, "deleted_at": TIME}, "id"),
    "UserRef": obj({"id": ID}, "id"),
    "Channel": obj({"id": STR, "type": STR, "cid": STR, "team": STR, "created_by": ref("User"),
                    "member_count": INT, "created_at": TIME, "updated_at": TIME}, "cid"),
    "Member": obj({"user_id": STR, "user": ref("User"), "channel_role": STR, "created_at": TIME,
                   "updated_at": TIME, "archived_at": TIME, "pinned_at": TIME}),
    "Message": obj({"id": STR, "text": STR, "type": STR, "user": ref("User"), "cid": STR,
                    "attachments": arr(ANY_OBJ), "campaign_id": STR, "created_at": TIME}, "id"),
    "ChannelData": obj({
        "created_by_id": ID, "created_by": ref("UserRef"), "team": STR,
        "members": arr({"anyOf": [ID, obj({"user_id": ID, "channel_role": STR}, "user_id")]},
                       hi=1000),
    }, description="unknown keys are custom fields of the channel"),
    "ChannelQuery": obj({"data": ref("ChannelData"),
                         "messages": obj({"limit": {"type": "integer", "minimum": 0,
                                                    "maximum": 300, "default": 25}}),
                         "members": obj({"limit": {"type": "integer", "minimum": 0,
                                                   "maximum": 300, "default": 100}}),
                         "state": BOOL, "watch": BOOL, "presence": BOOL}),
    "ChannelState": obj({"channel": ref("Channel"), "members": arr(ref("Member")),
                         "messages": arr(ref("Message")), "read": arr(ANY_OBJ), "duration": STR},
                        "channel", "duration"),
    "Segment": obj({
        "id": STR, "type": {"enum": ["user", "channel"]}, "name": STR, "description": STR,
        "filter": nullable(ref("Filter")), "all_users": BOOL, "all_sender_channels": BOOL,
        "size": nullable(INT), "created_at": TIME, "updated_at": TIME,
        "deleted_at": {**nullable(TIME), "description": "always null: a deleted segment is gone"},
    }, "id", "type", "name", "description", "filter", "all_users", "all_sender_channels", "size",
        "created_at", "updated_at", "deleted_at"),
    "SegmentResponse": obj({"segment": ref("Segment"), "duration": STR}, "segment", "duration"),
    "TargetIds": obj({"target_ids": arr({"type": "string", "minLength": 1, "maxLength": 320},
                                        1, 10_000)}, "target_ids",
                     description="user ids, or channel cids for channel segments"),
    "MessageTemplate": obj({"text": {"type": "string", "maxLength": 20_000},
                            "attachments": arr(ANY_OBJ), "poll_id": STR, "custom": ANY_OBJ},
                           "text", description="Jinja-style: {{ sender.name }}, {{ receiver.id }}"),
    "ChannelTemplate": obj({
        "type": CTYPE, "id": STR, "team": STR, "custom": ANY_OBJ, "members": arr(ID, hi=1000),
        "members_template": arr(obj({"user_id": ID, "channel_role": STR, "custom": ANY_OBJ},
                                    "user_id"), hi=1000),
    }, "type"),
    "CampaignInput": obj({
        "id": nullable(ID), "name": STR, "description": STR,
        "segment_ids": nullable(arr(ID, 1, 25)), "user_ids": nullable(arr(ID, 1, 10_000)),
        "sender_id": ID, "sender_mode": nullable({"enum": ["include", "exclude"]}),
        "message_template": ref("MessageTemplate"), "create_channels": BOOL,
        "channel_template": nullable(ref("ChannelTemplate")), "skip_push": BOOL,
        "skip_webhook": BOOL, "sender_visibility": nullable({"enum": ["hidden", "archived"]}),
        "show_channels": BOOL,
    }, "sender_id", "message_template",
        description="exactly one of segment_ids / user_ids; create_channels needs channel_template"),
    "CampaignStats": obj({
        "progress": {"type": "number", "minimum": 0, "maximum": 1},
        "stats_started_at": nullable(TIME), "stats_completed_at": nullable(TIME),
        **{k: INT for k in ("stats_messages_sent", "stats_channels_created", "stats_users_sent",
                            "stats_users_read", "stats_messages_errored",
                            "stats_recipients_skipped", "stats_recipients_total")},
        "stats_send_rate": {"type": "number", "description": "effective messages/s of the run"},
    }, "progress", "stats_started_at", "stats_completed_at", "stats_messages_sent",
        "stats_channels_created", "stats_users_sent", "stats_users_read"),
    "Campaign": obj({
        "id": STR, "name": STR, "description": STR,
        "status": {"enum": ["draft", "scheduled", "in_progress", "paused", "completed",
                            "stopped"]},
        "segment_ids": arr(STR), "user_ids": arr(STR), "sender_id": STR,
        "sender_mode": nullable(STR), "sender_visibility": nullable({"enum": ["hidden", "archived"]}),
        "show_channels": BOOL,
        "segments": {**arr(ref("Segment")), "description": "the segment objects (deleted ones left out)"},
        "sender": {**ref("User"), "description": "the sender's user object"},
        "users": {**arr(ref("User")), "description": "a page of a user_ids campaign's users, by id "
                  "(GetCampaign ?limit=&next=&prev=, QueryCampaigns user_limit); [] for segments"},
        "message_template": ref("MessageTemplate"), "create_channels": BOOL,
        "channel_template": nullable(ref("ChannelTemplate")), "skip_push": BOOL,
        "skip_webhook": BOOL, "scheduled_for": nullable(TIME), "stop_at": nullable(TIME),
        "created_at": TIME, "updated_at": TIME, "stats": ref("CampaignStats"),
    }, "id", "segment_ids", "segments", "sender_id", "sender_mode", "sender_visibility", "name",
        "create_channels", "show_channels", "description", "skip_push", "skip_webhook",
        "user_ids", "status", "created_at", "updated_at", "stats",
        description="the hosted API's CampaignResponse plus extensions; `users` is left out of "
        "webhook event bodies"),
    "Pager": obj({"next": STR, "prev": STR}),
    "CampaignResponse": obj({"campaign": ref("Campaign"), "users": ref("Pager"), "duration": STR},
                            "campaign", "duration"),
    "SegmentTarget": obj({"target_id": STR, "segment_id": STR, "created_at": TIME,
                          "app_pk": {**INT, "description": "the app's numeric id"}},
                         "target_id", "segment_id", "created_at", "app_pk"),
    "Recipient": obj({
        "target_id": STR, "user_id": STR, "channel_cid": STR, "message_id": STR,
        "status": {"enum": ["pending", "sent", "skipped", "errored", "read"]},
        "error": STR, "sent_at": TIME, "read_at": TIME,
        "campaign_id": {"type": "string", "description": "a triggered campaign with once_per_user false: the "
                        "occurrence the row belongs to (the campaign itself or <id>-occ-<n>)"}}, "target_id", "status"),
    "FailedWebhook": obj({"id": {"type": "string", "format": "uuid"}, "event_type": STR,
                          "receiver": STR, "campaign_id": nullable(STR), "series": INT,
                          "webhook_url": STR, "attempts": INT, "last_status": nullable(INT),
                          "last_error": nullable({"type": "string", "description":
                                                  "a category (http_404, timeout, refused, "
                                                  "receiver removed, ...), never the answer's body"}),
                          "payload": ANY_OBJ,
                          "failed_at": TIME, "created_at": TIME}),
    "EventHook": obj({"id": STR, "webhook_url": {"type": "string", "format": "uri"},
                      "event_types": arr({"enum": list(EVENT_TYPES)}), "enabled": BOOL},
                     "webhook_url"),
    "AppSettings": obj({
        "webhook_url": {"type": "string", "description": "http(s) URL or empty; public addresses "
                        "only unless BROADCASTER_WEBHOOK_ALLOW_PRIVATE=1 (400 otherwise)"},
        "webhook_events": arr({"enum": list(EVENT_TYPES)}),
        "webhook_rate_limit": {"type": "number", "minimum": 0, "default": 1000},
        "event_hooks": arr(ref("EventHook")),
        "rate_limits": {"type": "object", "description": "{default|<Operation>: per minute}",
                        "additionalProperties": {"type": "integer", "minimum": 0}},
        "campaign_send_rate": {"type": "number", "minimum": 0, "default": 0,
                               "description": "messages/s per app, 0 = unlimited"},
    }),
}

ST = ref("SegmentResponse")
CAMP = ref("CampaignResponse")
USERS_MAP: J = obj({"users": {"type": "object", "additionalProperties": ref("User")},
                    "duration": STR}, "users", "duration")
USERS_QUERY: J = obj({"filter_conditions": ref("Filter"), "sort": ref("Sort"),
                      "limit": limit(1000, 100),
                      "offset": {"type": "integer", "minimum": 0, "maximum": 100_000},
                      "include_deleted": BOOL})
LIMIT_300: J = {"type": "integer", "minimum": 0, "maximum": 300}
CHANNELS_QUERY: J = obj({"filter_conditions": ref("Filter"), "sort": ref("Sort"),
                         "limit": limit(100, 10),
                         "offset": {"type": "integer", "minimum": 0, "maximum": 100_000},
                         "message_limit": {**LIMIT_300, "default": 25},
                         "member_limit": {**LIMIT_300, "default": 100},
                         "state": {"type": "boolean", "description": "false: channels only"},
                         "user_id": {**ID, "description": "whose channels: hidden and archived "
                                     "ones are left out unless filter_conditions has hidden: "
                                     "true / archived: true (also pinned: true|false)"},
                         "user": ref("UserRef")})
MEMBER_REF: J = obj({"user_id": ID, "user": ref("UserRef"),
                     "clear_history": {"enum": [False], "description": "not supported"}})
MEMBER_PATCH: J = obj({"set": obj({"archived": BOOL, "pinned": BOOL}), "unset": arr(STR)})
MEMBER_OUT: J = obj({"channel_member": ref("Member"), "duration": STR}, "channel_member")
TASK: J = obj({"task_id": STR, "result": {"type": "object", "additionalProperties": obj(
    {"status": {"enum": ["ok", "not_found"]}})}, "duration": STR}, "task_id")
TEXT = {"content": {"text/plain": {"schema": STR}}}
