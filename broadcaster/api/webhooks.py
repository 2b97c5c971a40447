"""Deliveries that exhausted their retries: list them, replay them."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from aiohttp import web

from broadcaster import cursors, timefmt, validate
from broadcaster.errors import bad_request
from broadcaster.http import ok, read_json
from broadcaster.keys import POOL, SETTINGS
from broadcaster.middleware import current_app
from broadcaster.store import deliveries as store
from broadcaster.store import webhook_secrets
from broadcaster.webhooks import policy

routes = web.RouteTableDef()


def _item(r: Any) -> dict[str, Any]:
    return {
        "id": str(r["webhook_id"]),
        "event_type": r["event_type"],
        "receiver": r["receiver"],
        "webhook_url": r["url"],
        "campaign_id": r["campaign_id"],
        "attempts": r["attempt"],
        "series": r["series"],
        "last_status": r["last_status"],
        "last_error": r["last_error"],
        "failed_at": timefmt.fmt(r["failed_at"]),
        "created_at": timefmt.fmt(r["created_at"]),
        "payload": orjson.loads(r["payload"]),
    }


@routes.get("/webhooks/failed", name="QueryFailedWebhooks")
async def failed(request: web.Request) -> web.Response:
    app = current_app(request)
    limit = cursors.limit_of(request.query.get("limit"), "limit", default=100, hi=1000)
    secret = request.app[SETTINGS].cursor_secret
    req = cursors.begin(request.query, ("webhooks.failed", app.id), {}, secret, limit=limit)
    pos = req.position
    if pos is not None and (len(pos) != 1 or not isinstance(pos[0], int) or isinstance(pos[0], bool)):
        raise bad_request(f"{'prev' if req.backwards else 'next'} is not a valid cursor")
    key = pos[0] if pos is not None else None
    rows = await store.failed_page(
        request.app[POOL], app.id, after=None if req.backwards else key,
        before=key if req.backwards else None, limit=limit + 1)
    page, links = cursors.finish(req, list(rows), lambda r: [r["id"]], secret)
    return ok(request, {"webhooks": [_item(r) for r in page], **links})


@routes.post("/webhooks/replay", name="ReplayWebhooks")
async def replay(request: web.Request) -> web.Response:
    app = current_app(request)
    body = await read_json(request, required=True)
    ids = validate.str_list(body, "ids", min_items=1, max_items=10_000)
    since_raw = body.get("since")
    if (ids is None) == (since_raw is None):
        raise bad_request("give exactly one of ids (failed webhook ids) or since (a timestamp)")
    webhook_ids = None
    if ids is not None:
        webhook_ids = []
        for i, x in enumerate(ids):
            try:
                webhook_ids.append(str(uuid.UUID(x)))
            except ValueError:
                raise bad_request(f"ids[{i}] is not a webhook id: {x[:80]!r}") from None
    since = timefmt.parse(since_raw, "since") if since_raw is not None else None
    # to receivers that still exist and are enabled, at their current URL (recorded on the
    # rows again: the dispatcher sends each row to the URL recorded on it)
    n = await store.replay(request.app[POOL], app.id, webhook_ids=webhook_ids, since=since,
                           receivers=policy.active_receivers(app.settings))
    return ok(request, {"replayed": n})


MAX_OVERLAP_S = 7 * 86400


@routes.post("/webhooks/secrets/rotate", name="RotateWebhookSecret")
async def rotate_secret(request: web.Request) -> web.Response:
    """A new Standard Webhooks signing secret for one receiver, shown this once; the previous
    one keeps signing (both signatures sent) for overlap_seconds (default 24 h)."""
    app = current_app(request)
    body = await read_json(request, required=True)
    receiver = body.get("receiver")
    if not isinstance(receiver, str) or not receiver:
        raise bad_request("receiver must be 'webhook_url' or an event hook id")
    rid = receiver if receiver == policy.MAIN_RECEIVER or receiver.startswith("hook:") else f"hook:{receiver}"
    if rid not in policy.configured(app.settings):
        raise bad_request(f"receiver {receiver[:100]!r} is not configured (webhook_url or an event_hooks id)")
    overlap = body.get("overlap_seconds", 86400)
    if isinstance(overlap, bool) or not isinstance(overlap, int | float) or not 0 <= overlap <= MAX_OVERLAP_S:
        raise bad_request(f"overlap_seconds must be a number of seconds between 0 and {MAX_OVERLAP_S}")
    secret, until = await webhook_secrets.rotate(request.app[POOL], app.id, rid, float(overlap))
    return ok(request, {"receiver": rid, "secret": secret,
                        "previous_expires_at": timefmt.fmt(until) if until else None})
