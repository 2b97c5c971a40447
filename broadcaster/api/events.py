"""POST /events (SPEC 5A): custom events for triggered campaigns, recorded before the 201."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from broadcaster import timefmt
from broadcaster.domain import triggers
from broadcaster.errors import bad_request
from broadcaster.http import ok, read_json
from broadcaster.keys import POOL, REDIS
from broadcaster.middleware import current_app
from broadcaster.services import triggers as triggered
from broadcaster.store import events
from broadcaster.validate import ident

routes = web.RouteTableDef()
MAX_EVENTS = 1000


def parse(body: dict[str, Any]) -> list[tuple[str, str, str, Any, Any]]:
    """Every event validated before anything is written: one bad event refuses the call."""
    raw = body.get("events")
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_EVENTS:
        raise bad_request(f"events must be a list of 1..{MAX_EVENTS} events {{id?, type, user_id, data?, created_at?}}")
    out: dict[str, tuple[str, str, str, Any, Any]] = {}
    for i, e in enumerate(raw):
        p = f"events[{i}]"
        if not isinstance(e, dict):
            raise bad_request(f"{p} must be an object")
        extra = sorted(set(e) - {"id", "type", "user_id", "data", "created_at"})
        if extra:
            raise bad_request(f"{p}.{extra[0]} is not an event field (id, type, user_id, data, created_at)")
        eid = ident(e["id"], f"{p}.id") if e.get("id") is not None else str(uuid.uuid4())
        if e.get("type") is None:
            raise bad_request(f"{p}.type is required")
        etype = triggers.event_type(e["type"], f"{p}.type")
        if e.get("user_id") is None:
            raise bad_request(f"{p}.user_id is required")
        uid = ident(e["user_id"], f"{p}.user_id")
        data = e.get("data") or {}
        if not isinstance(data, dict):
            raise bad_request(f"{p}.data must be an object")
        at = timefmt.parse(e["created_at"], f"{p}.created_at") if e.get("created_at") is not None else None
        out.setdefault(eid, (eid, etype, uid, data, at))  # a repeated id within the call: the first counts
    return list(out.values())


@routes.post("/events", name="TrackEvents")
async def track_events(request: web.Request) -> web.Response:
    app = current_app(request)
    rows = parse(await read_json(request, required=True))
    new = await events.record(request.app[POOL], app.id, rows)
    if new:
        await triggered.notify(request.app[REDIS], app.id)
    listed = [{"id": r[0], "type": r[1], "user_id": r[2], "status": "recorded" if r[0] in new else "duplicate"}
              for r in rows]
    return ok(request, {"events": listed, "recorded": len(new), "duplicates": len(rows) - len(new)}, status=201)
