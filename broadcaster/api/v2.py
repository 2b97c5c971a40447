"""The `/api/v2/...` paths the vendor's newer server SDKs call (PyPI `getstream`, npm
`@stream-io/node-sdk`): the same handlers as the root paths, under route names `v2.<Name>`.

The v2 request and response shapes of segments, campaigns, users and channels are the root
API's (the vendor's v2 OpenAPI names the same fields) but for timestamps: v2 answers them as
integer nanoseconds since the epoch (requests may send RFC 3339 strings, as the SDKs do). The
capitalised `Filter`/`Sort` of v2 QuerySegmentTargets are read where the fields are read."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PREFIX = "v2."
# root path prefix -> v2 path prefix
ALIASES = (
    ("/segments", "/api/v2/chat/segments"),
    ("/campaigns", "/api/v2/chat/campaigns"),
    ("/channels", "/api/v2/chat/channels"),
    ("/users", "/api/v2/users"),
)


def v2_path(path: str) -> str | None:
    for root, v2 in ALIASES:
        if path == root or path.startswith(root + "/"):
            return v2 + path[len(root):]
    return None


def operation_name(route_name: str | None) -> str | None:
    """The operation a route serves: v2 routes count (rate limits, metrics) as their root one."""
    if route_name is not None and route_name.startswith(PREFIX):
        return route_name[len(PREFIX):]
    return route_name


# Built-in timestamp fields of the objects these endpoints answer (custom fields stay as given).
TIME_KEYS = frozenset({
    "created_at", "updated_at", "deleted_at", "scheduled_for", "stop_at", "stats_started_at",
    "stats_completed_at", "last_read", "archived_at", "pinned_at", "sent_at", "read_at",
    "last_active", "revoke_tokens_issued_before",
})
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def unix_ns(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    ns = ((dt if dt.tzinfo else dt.replace(tzinfo=UTC)) - EPOCH) // _US * 1000
    # Nanoseconds overflow 64 bits after 2262-04-11: such a time stays an RFC 3339 string.
    return ns if -(2**63) <= ns < 2**63 else value


def to_v2(obj: Any) -> Any:
    """Timestamps of built-in fields as integer nanoseconds, everywhere in a body."""
    if isinstance(obj, dict):
        return {k: unix_ns(v) if k in TIME_KEYS else to_v2(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_v2(v) for v in obj]
    return obj


# The vendor's v2 StopCampaign and UpdateCampaign answer the CampaignResponse itself, not
# wrapped in {"campaign": ...} as the root paths (and the stream-chat SDKs' tests) have it.
BARE_CAMPAIGN = frozenset({"StopCampaign", "UpdateCampaign"})


def _v2_handler(handler: Handler, name: str) -> Handler:
    @functools.wraps(handler)
    async def run(request: web.Request) -> web.StreamResponse:
        resp = await handler(request)
        if isinstance(resp, web.Response) and resp.content_type == "application/json" and resp.body:
            body = orjson.loads(resp.body)  # type: ignore[arg-type]
            if name in BARE_CAMPAIGN and isinstance(body.get("campaign"), dict):
                body = {**body["campaign"], "duration": body.get("duration")}
            resp.body = orjson.dumps(to_v2(body))
        return resp

    return run


def add_aliases(app: web.Application) -> None:
    """Register every root route of the aliased resources again under its v2 path."""
    extra: list[web.RouteDef] = []
    for route in app.router.routes():
        name, path = route.name, route.resource.canonical if route.resource is not None else None
        target = v2_path(path) if path else None
        if target is not None and name is not None and route.method != "HEAD":
            extra.append(web.route(route.method, target, _v2_handler(route.handler, name), name=f"{PREFIX}{name}"))
    app.router.add_routes(extra)
