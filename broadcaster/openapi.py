"""The OpenAPI 3.1 document: the wire contract of every route (operationId = route name).

Built as data so a test can hold it against the router, and schemathesis can fuzz the server
with it. Request schemas carry the limits the handlers enforce; response schemas name the
fields a client reads and leave room for more (the hosted API adds fields over time).
"""


from __future__ import annotations

from broadcaster import (
    openapi_campaigns,
    openapi_funnel,
    openapi_policy,  # noqa: F401  (adds its schemas when imported)
    openapi_series,
    openapi_v2,
)
from broadcaster.openapi_ops import ERRORS, RL_HEADERS, error, error_response, op, q
from broadcaster.openapi_schemas import (
    ANY_OBJ,
    BOOL,
    CHANNELS_QUERY,
    CID,
    CTYPE,
    CURSOR,
    ID,
    INT,
    MEMBER_OUT,
    MEMBER_PATCH,
    MEMBER_REF,
    SCHEMAS,
    ST,
    STR,
    TASK,
    TEXT,
    TIME,
    USERS_MAP,
    USERS_QUERY,
    J,
    arr,
    cursor_body,
    limit,
    nullable,
    obj,
    paged,
    ref,
)

# (method, path, operation): the contract every engineer implements.
OPERATIONS: list[tuple[str, str, J]] = [
    ("get", "/healthz", op("Healthz", "Operations", "Process is up", public=True, errors="")),
    ("get", "/readyz", op("Readyz", "Operations", "PostgreSQL and Redis reachable (503 if not)",
                          public=True, errors="503")),
    ("get", "/metrics", {**op("Metrics", "Operations", "Prometheus metrics", public=True,
                              errors=""), "responses": {"200": {"description": "text format",
                                                                **TEXT}}}),
    ("get", "/openapi.json", {**op("OpenAPI", "Operations", "This document", public=True,
                                   errors=""), "responses": {"200": {"description": "OpenAPI 3.1",
                                   "content": {"application/json": {"schema": ANY_OBJ}}}}}),
    ("get", "/docs", {**op("Docs", "Operations", "Human-readable API docs", public=True,
                           errors=""), "responses": {"200": {"description": "HTML page",
                           "content": {"text/html": {"schema": STR}}}}}),
    ("get", "/docs/{file}", {**op("DocsAsset", "Operations", "Asset of the docs page",
                                  public=True, errors="404"),
                             "responses": {"200": {"description": "the file", **TEXT},
                                           "404": error("404")}}),
    ("get", "/app", op("GetApp", "App", "App settings",
                       obj({"app": ref("AppSettings"), "duration": STR}, "app"), errors="")),
    ("patch", "/app", op("UpdateApp", "App", "Change webhook, rate-limit and send-rate settings",
                         obj({"webhook_secrets": {
                             "type": "object", "additionalProperties": STR,
                             "description": "receiver id -> its new Standard Webhooks signing "
                                            "secret (whsec_...), present once, for receivers "
                                            "this change added"}, "duration": STR}),
                         body=ref("AppSettings"), errors="400")),
    ("post", "/app/secret/rotate", op(
        "RotateAppSecret", "App", "New api_secret; the previous one verifies for grace_seconds more",
        obj({"app": obj({"api_key": STR, "api_secret": STR, "previous_secret_expires_at": TIME},
                        "api_key", "api_secret", "previous_secret_expires_at"), "duration": STR}, "app"),
        errors="400", body=obj({"grace_seconds": {"type": "number", "minimum": 0, "maximum": 30 * 86_400,
                                                  "default": 86_400}}))),
    ("post", "/users", op("UpsertUsers", "Users", "Create or replace up to 10,000 users (all or "
                          "nothing)", USERS_MAP, body_required=True, errors="400",
                          body=obj({"users": {"type": "object", "maxProperties": 10_000,
                                              "additionalProperties": ref("UserInput")}},
                                   "users"))),
    ("patch", "/users", op("UpdateUsersPartial", "Users", "Set and unset fields of users",
                           USERS_MAP, body_required=True, body=obj({"users": arr(obj({
                               "id": ID, "set": ANY_OBJ, "unset": arr(STR)}, "id"), 1, 100)},
                               "users"))),
    ("get", "/users", op("QueryUsers", "Users", "Query users with a filter, sort, limit, offset",
                         obj({"users": arr(ref("User")), "duration": STR}, "users"),
                         errors="400", params=(
                             {"name": "payload", "in": "query", "required": False,
                              "content": {"application/json": {"schema": USERS_QUERY}}},))),
    ("delete", "/users/{id}", op("DeleteUser", "Users", "Delete a user (soft unless hard)",
                                 obj({"user": ref("User"), "duration": STR}), params=(
                                     q("hard_delete", {"enum": ["true", "false"]}),
                                     q("mark_messages_deleted", {"enum": ["true", "false"]})))),
    ("post", "/users/delete", op("DeleteUsers", "Users", "Delete several users", TASK,
                                 body_required=True, errors="400", body=obj({
                                     "user_ids": arr(ID, 1, 100),
                                     "user": {"enum": ["soft", "hard"]},
                                     "messages": {"enum": ["soft", "hard"]},
                                     "conversations": {"enum": ["soft", "hard"]}},
                                     "user_ids"))),
    ("post", "/channels/{type}/{id}/query", op(
        "GetOrCreateChannel", "Channels", "Get or create a channel by type and id",
        ref("ChannelState"), body=ref("ChannelQuery"))),
    ("post", "/channels/{type}/query", op(
        "GetOrCreateDistinctChannel", "Channels",
        "Get or create the distinct channel of exactly data.members", ref("ChannelState"),
        body=ref("ChannelQuery"), body_required=True)),
    ("post", "/channels", op("QueryChannels", "Channels", "Query channels",
                             obj({"channels": arr(ref("ChannelState")), "duration": STR},
                                 "channels"), errors="400", body=CHANNELS_QUERY)),
    ("post", "/channels/{type}/{id}/message", op(
        "SendMessage", "Channels", "Send a message", obj({"message": ref("Message"),
                                                          "duration": STR}, "message"),
        body_required=True, body=obj({"message": obj({
            "id": nullable(ID), "text": STR, "user_id": ID, "user": ref("UserRef"),
            "attachments": arr(ANY_OBJ)})}, "message"))),
    ("post", "/channels/{type}/{id}/read", op(
        "MarkRead", "Channels", "Mark a channel read for a user",
        obj({"event": ANY_OBJ, "duration": STR}),
        body=obj({"user_id": ID, "user": ref("UserRef")}))),
    ("post", "/channels/{type}/{id}/hide", op(
        "HideChannel", "Channels", "Hide the channel for a member until someone else writes in it",
        body=MEMBER_REF, body_required=True)),
    ("post", "/channels/{type}/{id}/show", op(
        "ShowChannel", "Channels", "Show a channel the member had hidden", body=MEMBER_REF,
        body_required=True)),
    ("patch", "/channels/{type}/{id}/member/{user_id}", op(
        "UpdateMemberPartial", "Channels", "Partial update of a member: set {archived, pinned, "
        "...custom}, unset [...]", MEMBER_OUT, body=MEMBER_PATCH, body_required=True)),
    ("patch", "/channels/{type}/{id}/member", op(
        "UpdateMemberPartialQuery", "Channels", "The same with ?user_id= (the hosted API's "
        "document form)", MEMBER_OUT, body=MEMBER_PATCH, body_required=True,
        params=(q("user_id", ID, required=True),))),
    ("post", "/channels/delete", op("DeleteChannels", "Channels", "Delete channels by cid",
                                    TASK, errors="400", body_required=True, body=obj({
                                        "cids": arr(CID, 1, 100), "hard_delete": BOOL},
                                        "cids"))),
    ("post", "/segments", op("CreateSegment", "Segments", "Create a segment", ST, status="201",
                             errors="400 409", body_required=True, body=obj({
                                 "type": {"enum": ["user", "channel"]}, "id": nullable(ID),
                                 "name": {"type": "string", "maxLength": 1000},
                                 "description": {"type": "string", "maxLength": 10_000},
                                 "filter": ref("Filter"), "all_users": BOOL,
                                 "all_sender_channels": BOOL}, "type", description=(
                                 "filter, all_users and all_sender_channels are mutually "
                                 "exclusive; none of them = an explicit target list")))),
    ("get", "/segments/{id}", op("GetSegment", "Segments", "Get a segment", ST)),
    ("put", "/segments/{id}", op("UpdateSegment", "Segments", "Change name, description, filter",
                                 ST, body_required=True, body=obj({
                                     "name": {"type": "string", "maxLength": 1000},
                                     "description": {"type": "string", "maxLength": 10_000},
                                     "filter": ref("Filter")}))),
    ("delete", "/segments/{id}", op("DeleteSegment", "Segments",
                                    "Delete a segment (400 while a scheduled or running "
                                    "campaign uses it)")),
    ("post", "/segments/query", op("QuerySegments", "Segments", "Query segments",
                                   paged("segments", ref("Segment")), errors="400",
                                   body=cursor_body(1000, 100))),
    ("post", "/segments/{id}/addtargets", op(
        "AddSegmentTargets", "Segments", "Add 1..10,000 targets (atomic; duplicates ignored)",
        obj({"added": {**INT, "description": "targets new to the segment"},
             "size": {**INT, "description": "the segment's size after the call"}, "duration": STR},
            "added", "size", "duration"),
        body=ref("TargetIds"), body_required=True)),
    ("post", "/segments/{id}/deletetargets", op(
        "DeleteSegmentTargets", "Segments", "Remove targets (absent ids are no error)",
        obj({"deleted": {**INT, "description": "targets that were in the segment"},
             "size": {**INT, "description": "the segment's size after the call"}, "duration": STR},
            "deleted", "size", "duration"),
        body=ref("TargetIds"), body_required=True)),
    ("get", "/segments/{id}/target/{target_id}", op(
        "SegmentTargetExists", "Segments", "200 if the target is in the segment, else 404",
        obj({"target": ref("SegmentTarget"), "duration": STR}, "target", "duration"))),
    ("post", "/segments/{id}/targets/query", op(
        "QuerySegmentTargets", "Segments", "Keyset pages of targets (one index range scan a page)",
        paged("targets", ref("SegmentTarget")),
        body=obj({"filter": {**ref("Filter"), "description": "the filter language on target_id "
                             "and created_at"},
                  "sort": {**ref("Sort"), "description": "one of target_id (default, ascending) "
                           "or created_at"},
                  "limit": limit(10_000, 100), "next": CURSOR, "prev": CURSOR}))),
    *openapi_campaigns.operations(op, q),
    ("get", "/webhooks/failed", op(
        "QueryFailedWebhooks", "Webhooks", "Events that exhausted their retries",
        paged("webhooks", ref("FailedWebhook")), errors="400",
        params=(q("limit", limit(1000, 100)), q("next", STR), q("prev", STR)))),
    ("post", "/webhooks/replay", op(
        "ReplayWebhooks", "Webhooks", "Re-queue failed events by ids or since a time",
        obj({"replayed": INT, "duration": STR}, "replayed"), errors="400", body=obj({
            "ids": arr({"type": "string", "format": "uuid"}, 1, 10_000), "since": TIME},
            description="exactly one of ids (failed webhook ids) or since"),
        body_required=True)),
    ("post", "/webhooks/secrets/rotate", op(
        "RotateWebhookSecret", "Webhooks",
        "A new Standard Webhooks signing secret (whsec_...) for one receiver, shown once; the "
        "previous one keeps signing (both signatures sent) for overlap_seconds",
        obj({"receiver": STR, "secret": STR, "previous_expires_at": nullable(TIME), "duration": STR},
            "receiver", "secret"), errors="400", body=obj({
            "receiver": {"type": "string", "description": "'webhook_url' or an event_hooks id"},
            "overlap_seconds": {"type": "number", "minimum": 0, "maximum": 604800, "default": 86400}},
            "receiver"),
        body_required=True)),
    ("get", "/rate_limits", op(
        "GetRateLimits", "App", "Every operation with its limit, remaining and reset",
        obj({"server_side": {"type": "object", "additionalProperties": obj({
            "limit": INT, "remaining": INT, "reset": INT, "unlimited": BOOL})},
            "duration": STR}, "server_side"), errors="400",
        params=(q("endpoints", STR, "comma-separated operation names"),))),
]
OPERATIONS += openapi_funnel.operations(op, q)
OPERATIONS += openapi_series.operations(op, q)

PATH_PARAMS: J = {"type": CTYPE, "id": {"type": "string", "minLength": 1}, "user_id": ID,
                  "target_id": {"type": "string", "minLength": 1}, "file": STR, "token": STR}
DESCRIPTION = """Self-hosted campaign fan-out, wire-compatible with the hosted chat API.

Every non-public request carries `?api_key=KEY` and `Authorization: <server JWT>` (HS256 with
the app secret, claims `{"server": true}`; a `Bearer ` prefix is accepted) with
`stream-auth-type: jwt`. Errors are `{code, message, StatusCode, duration, more_info, details}`.
Limited operations answer with `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
`X-RateLimit-Reset`; a 429 adds `Retry-After`. List endpoints page with opaque `next`/`prev`
cursors that carry their query: a request with a cursor continues it (only `limit` may
change); a tampered or foreign cursor is a 400."""


def document(server_url: str | None = None) -> J:
    paths: J = {}
    for method, path, operation in [*OPERATIONS, *openapi_v2.operations(OPERATIONS)]:
        operation = dict(operation)
        names = [seg[1:-1] for seg in path.split("/") if seg.startswith("{")]
        operation["parameters"] = [
            *({"name": n, "in": "path", "required": True, "schema": PATH_PARAMS[n]}
              for n in names), *operation.get("parameters", [])]
        paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "broadcaster", "version": "0.1.0", "description": DESCRIPTION},
        "servers": [{"url": server_url or "/"}],
        "tags": [{"name": t} for t in ("Campaigns", "Segments", "Users", "Channels", "Webhooks",
                                       "App", "Operations", "v2")],
        "paths": paths,
        "components": {
            "schemas": {**SCHEMAS, **openapi_v2.schemas(SCHEMAS)},
            "responses": {f"E{c}": error_response(c) for c in ERRORS},
            "headers": RL_HEADERS,
            "securitySchemes": {
                "api_key": {"type": "apiKey", "in": "query", "name": "api_key",
                            "description": "the app's key"},
                "jwt": {"type": "apiKey", "in": "header", "name": "Authorization",
                        "description": "server JWT (HS256, app secret, server: true)"},
            },
        },
        "security": [{"api_key": [], "jwt": []}],
    }
